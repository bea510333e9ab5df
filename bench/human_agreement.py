"""Does the model's uncertainty follow what people find ambiguous? On the sentences of one
split that have human ratings (model/snippets.py: about 18 ratings on -4..4 each), the
Spearman correlation of the model's aleatoric, total and (1 - confidence) with how weakly
people rate a sentence, -|mean rating|; beside them, a tf-idf logistic regression's entropy
(bench/own_data.py's: word uni- and bigrams, fitted on the 2,800 training sentences, C
chosen on the validation sentences) and the raters' own ceiling:
each sentence's ratings split into two random halves, the Spearman correlation between the
halves' -|mean|, averaged over `--seeds` seeds. With two labels, total (the entropy of the
mean prediction) ranks the sentences as (1 - confidence) does: the two read the same.

The validation split's ratings are for choosing; the test split (`--split test`) is for the
final evaluation only: do not choose or tune anything by its figures. `--split train` reads
the rated training sentences, which the model learned from: beside validation's figure, how
far its ranking carries to sentences it never saw (the tf-idf regression is fitted on them too).
Usage: python -m bench.human_agreement [--model DIR] [--split train|val|test] [--seeds N]"""
from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.stats import spearmanr

from model.evaluate import predict_all
from model.predictor import Predictor
from model.snippets import Snippet, rated


def weakness(items: list[Snippet]) -> np.ndarray:
    """-|mean rating| of each snippet: higher where people rate it more weakly."""
    return -np.abs(np.array([s.mean for s in items]))


def split_half(items: list[Snippet], seeds: int) -> list[float]:
    """For each seed, the Spearman correlation between the -|mean| of two random halves of
    each sentence's raters."""
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        a, b = [], []
        for s in items:
            r = rng.permutation(np.array(s.ratings, dtype=float))
            a.append(-abs(r[: len(r) // 2].mean()))
            b.append(-abs(r[len(r) // 2 :].mean()))
        out.append(float(spearmanr(a, b).statistic))
    return out


def tfidf_entropy(texts: list[str]) -> np.ndarray:
    """The predictive entropy of bench/own_data.py's tf-idf regression, fitted on the
    training sentences with C chosen on the validation sentences."""
    from model.data import split_rows

    from .own_data import tfidf_model

    predict, _ = tfidf_model(split_rows("train"), split_rows("val"))
    return entropy(predict(texts))


def entropy(p: np.ndarray) -> np.ndarray:
    """(N, C) class probabilities -> (N,) their entropy in nats."""
    p = np.clip(p, 1e-12, 1.0)
    return -(p * np.log(p)).sum(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    ap.add_argument("--split", choices=("train", "val", "test"), default="val",
                    help="the split's rated sentences (test: the final evaluation only; train: learned from)")
    ap.add_argument("--seeds", type=int, default=20, help="random halvings of the raters")
    args = ap.parse_args()
    pairs = rated(args.split)
    rows, items = [r for r, _ in pairs], [s for _, s in pairs]
    pred = Predictor.load(args.model)
    texts = [r.text for r in rows]
    probs, (total, aleatoric, _) = predict_all(pred, texts, args.split)
    y = np.array([pred.labels.index(r.label) for r in rows])
    target = weakness(items)
    halves = split_half(items, args.seeds)

    def rho(x: np.ndarray) -> float:
        return round(float(spearmanr(x, target).statistic), 4)

    print(json.dumps({
        "model_version": pred.version, "split": args.split, "n": len(rows),
        "accuracy": round(float((probs.argmax(1) == y).mean()), 4),
        "spearman_with_minus_abs_mean_rating": {
            "aleatoric": rho(aleatoric), "total": rho(total), "one_minus_confidence": rho(1.0 - probs.max(1)),
            "tfidf_logistic_entropy": rho(tfidf_entropy(texts))},
        "raters_split_half": {"mean": round(float(np.mean(halves)), 4), "sd": round(float(np.std(halves)), 4),
                              "seeds": args.seeds},
    }, indent=2))


if __name__ == "__main__":
    main()
