"""OOD AUROC: how well the uncertainty tells the 800 test sentences from text unlike the
training data. Usage: python -m bench.ood_eval [--model DIR] [--json]"""
from __future__ import annotations

import argparse
import json

import numpy as np

from model.data import split_rows
from model.evaluate import predict_all
from model.metrics import auroc
from model.predictor import Predictor

from .ood_sets import all_sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    pred = Predictor.load(args.model)
    _, in_unc = predict_all(pred, [r.text for r in split_rows("test")], "test sentences")
    result = {}
    for name, texts in all_sets().items():
        _, unc = predict_all(pred, texts, name)
        is_ood = np.r_[np.zeros(in_unc.shape[1], bool), np.ones(unc.shape[1], bool)]
        result[name] = {
            "n": len(texts),
            "auroc_total": auroc(np.r_[in_unc[0], unc[0]], is_ood),
            "auroc_epistemic": auroc(np.r_[in_unc[2], unc[2]], is_ood),
            "mean_total": float(unc[0].mean()),
            "mean_epistemic": float(unc[2].mean()),
            "epistemic_share": float(unc[2].mean() / max(unc[0].mean(), 1e-12)),
        }
    result["_in_distribution"] = {"n": int(in_unc.shape[1]), "mean_total": float(in_unc[0].mean()),
                                  "mean_epistemic": float(in_unc[2].mean())}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'set':22} {'n':>4} {'AUROC total':>11} {'AUROC epist.':>12} {'mean total':>10} {'epist. share':>12}")
    for name, r in result.items():
        if not name.startswith("_"):
            print(f"{name:22} {r['n']:>4} {r['auroc_total']:>11.3f} {r['auroc_epistemic']:>12.3f} "
                  f"{r['mean_total']:>10.3f} {r['epistemic_share']:>12.2f}")
    d = result["_in_distribution"]
    print(f"test sentences: mean total {d['mean_total']:.3f}, mean epistemic {d['mean_epistemic']:.4f}")


if __name__ == "__main__":
    main()
