"""The grid that chose the similarity's threshold quantile, its decay and the prior's
spread sigma0 (TrainSettings.shrink_quantile, decay, sigma0): each row refits the head on a
finished model's outputs (bench/head_fit.py) and reports validation accuracy, NLL, ECE,
misclassification AUROC by confidence and by aleatoric uncertainty, mean epistemic, and on
the two dev OOD sets the AUROC of total and of epistemic uncertainty and the epistemic
share of the total. Test sentences are never read.
Usage: python -m bench.head_grid [--model DIR]"""
from __future__ import annotations

import argparse
import itertools

from model.predictor import Predictor

from .head_fit import Cached

QUANTILES = (0.92,)
DECAYS = (8.0,)
GENTLE = (0.0, 0.01, 0.03)  # per unit of the worst score past its gentle quantile
GENTLE_QUANTILES = (0.5,)
SIGMAS = (4.0, 5.0, 6.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    args = ap.parse_args()
    cached = Cached.of(Predictor.load(args.model))
    weights = dict(cached.base.score_weight)
    print(f"{'q':>4} {'decay':>5} {'gentle':>6} {'gq':>4} {'sigma0':>6} {'T':>5} {'acc':>6} {'NLL':>7} {'ECE':>6} "
          f"{'mAUC':>6} {'mAUCal':>6} {'epist':>6} {'OANC t/e/share':>16} {'Italian t/e/share':>18}")
    for q, decay, gentle, gq, sigma0 in itertools.product(QUANTILES, DECAYS, GENTLE, GENTLE_QUANTILES, SIGMAS):
        m = cached.refit(q, weights, gentle_quantile=gq, decay=decay, gentle=gentle, sigma0=sigma0)
        dev = " ".join(f"{m[n]:.3f}/{m[n + '_epistemic']:.3f}/{m[n + '_share']:.2f}"
                       for n in ("english_mixed_oanc", "italian_web"))
        print(f"{q:4.2f} {decay:5.1f} {gentle:6.2f} {gq:4.2f} {sigma0:6.1f} {m['T']:5.2f} {m['accuracy']:6.4f} "
              f"{m['nll']:7.5f} {m['ece']:6.4f} {m['misclassification_auroc_confidence']:6.4f} "
              f"{m['misclassification_auroc_aleatoric']:6.4f} "
              f"{m['mean_epistemic']:6.4f} {dev}", flush=True)


if __name__ == "__main__":
    main()
