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
import copy
import itertools

import numpy as np
import torch

from model import calibrate
from model.data import cache_dir, fetch, read_rows
from model.config import SCORES
from model.windows import window_pieces
from model.metrics import auroc, summarize
from model.predictor import Predictor
from model.train import scale_texts
from model.uncertainty import similarity
from model.views import text_seed

from .ood_sets import all_sets

DEV = ("english_mixed_oanc", "italian_web")
QUANTILES = (0.90, 0.92)
# feature distance, in-domain logit (the reference, 1), unigram NLL, n-gram in-domain logit,
# general-English ratio (config.SCORES)
GRID = ((0.5, 0.75, 1.0), (1.0,), (0.8, 1.0), (0.7, 0.85, 1.0), (1.0, 1.25, 1.5, 1.75, 2.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    args = ap.parse_args()
    pred = Predictor.load(args.model)
    exp, tok = pred.expectation, pred.ckpt.tokenizer
    if not (cache_dir() / "val.csv").exists():
        fetch()
    rows = read_rows(cache_dir() / "val.csv")
    labels = torch.tensor([pred.labels.index(r.label) for r in rows])
    seed = int(pred.ckpt.metadata.get("training", {}).get("seed", 0))

    def outputs(texts: list[str]):
        bodies = tok.bodies(texts)
        out = exp.raw(bodies, [text_seed(t) for t in texts])
        return out, exp.scores(out, bodies), out.pieces

    val = outputs([r.text for r in rows])
    scale = outputs(scale_texts([r.text for r in rows], seed))
    sets = all_sets()
    dev = {name: outputs(sets[name]) for name in DEV}
    base = copy.deepcopy(exp.cfg.head)

    def row(q: float, weights: tuple[float, ...]) -> dict:
        head = exp.cfg.head = copy.deepcopy(base)
        out, scores, n = val
        r = calibrate.fit_similarity(scale[1], scale[2], out, scores, labels, head,
                                     window_pieces(pred.ckpt.cfg.network), base.scores_off(), q,
                                     dict(zip(SCORES, weights)))
        d = exp.combine(out, r)
        m = summarize(d.probs.numpy(), labels.numpy(), d.total.numpy())
        tv = d.total.numpy()
        for name, (o, s, p) in dev.items():
            t = exp.combine(o, similarity(s, p, head)).total.numpy()
            m[name] = auroc(np.r_[tv, t], np.r_[np.zeros(len(tv), bool), np.ones(len(t), bool)])
        return {"q": q, "weights": weights, "w": head.ngram_weight, "T": head.temperature, **m}

    try:
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
    finally:
        exp.cfg.head = base


if __name__ == "__main__":
    main()
