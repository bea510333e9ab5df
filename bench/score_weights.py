"""The grid that chose TrainSettings.score_weight and shrink_quantile: for each weighting of
the five familiarity scores, the head's threshold, w and temperature are refitted as
training fits them (calibrate.fit_scales on the scale texts, calibrate.fit_ngram_weight on
validation) on a finished model's own outputs, and the row reports validation accuracy, NLL,
ECE and misclassification AUROC with the AUROC of total uncertainty on the two dev OOD sets
(validation sentences as the in-domain side). Test sentences are never read.
Rows that keep validation NLL, misclassification AUROC and the Italian set at least where
the unweighted head has them (within 0.005 and 0.001 for the last two) and validation ECE
at most 0.03 are marked "*". Usage: python -m bench.score_weights [--model DIR]"""
from __future__ import annotations

import argparse
import itertools

from model.predictor import Predictor

from .head_fit import Cached, named

QUANTILES = (0.90, 0.92)
# feature distance, in-domain logit (the reference, 1), unigram NLL, n-gram in-domain logit,
# general-English ratio (config.SCORES)
GRID = ((0.5, 0.75, 1.0), (1.0,), (0.8, 1.0), (0.7, 0.85, 1.0), (1.0, 1.25, 1.5, 1.75, 2.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    args = ap.parse_args()
    cached = Cached.of(Predictor.load(args.model))

    def row(q: float, weights: tuple[float, ...]) -> dict:
        return {"q": q, "weights": weights, **cached.refit(q, named(weights))}

    ref = row(0.92, (1.0,) * 5)
    print(f"{'q':>4} {'weights':26} {'w':>4} {'T':>5} {'acc':>6} {'NLL':>7} {'ECE':>6} {'mAUROC':>6} "
          f"{'OANC':>6} {'Italian':>7}")
    for q, weights in itertools.product(QUANTILES, itertools.product(*GRID)):
        m = row(q, weights)
        keep = (m["nll"] <= ref["nll"] and m["ece"] <= 0.03 and m["italian_web"] >= ref["italian_web"] - 0.001
                and m["misclassification_auroc_confidence"] >= ref["misclassification_auroc_confidence"] - 0.005)
        print(f"{q:4.2f} {str(weights):26} {m['w']:4.1f} {m['T']:5.2f} {m['accuracy']:6.4f} {m['nll']:7.5f} "
              f"{m['ece']:6.4f} {m['misclassification_auroc_confidence']:6.4f} {m['english_mixed_oanc']:6.4f} "
              f"{m['italian_web']:7.4f}{' *' if keep else ''}", flush=True)


if __name__ == "__main__":
    main()
