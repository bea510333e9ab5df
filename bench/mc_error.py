"""The Monte-Carlo error of the uncertainty split: each number the model returns is an
estimate over K views and M draws per view, all seeded by the text. Here each text is
answered R times with R independent seeds (other offsets, window starts and draws); the
standard deviation of those R answers is the standard error of one answer. Reported per set:
the mean and the 95th percentile over its texts, for total, aleatoric and epistemic, in nats.
Usage: python -m bench.mc_error [--model DIR] [--replicates 8] [--per-set 200] [--json]"""
from __future__ import annotations

import argparse
import json

import numpy as np

from model.data import split_rows
from model.predictor import Predictor
from model.views import text_seed

from .ood_sets import all_sets


def replicate_split(pred: Predictor, texts: list[str], replicates: int) -> np.ndarray:
    """(R, 3, N) total, aleatoric, epistemic of each text under R independent seeds."""
    bodies = pred.ckpt.tokenizer.bodies(texts)
    out = []
    for r in range(replicates):
        seeds = [text_seed(f"{r}\x00{t}") for t in texts]
        dec = pred.expectation(bodies, seeds)
        out.append(np.stack([dec.total.numpy(), dec.aleatoric.numpy(), dec.epistemic.numpy()]))
    return np.stack(out)


def standard_errors(pred: Predictor, texts: list[str], replicates: int) -> dict[str, dict[str, float]]:
    se = replicate_split(pred, texts, replicates).std(axis=0, ddof=1)  # (3, N)
    return {part: {"mean": float(se[j].mean()), "p95": float(np.quantile(se[j], 0.95)), "max": float(se[j].max())}
            for j, part in enumerate(("total", "aleatoric", "epistemic"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--per-set", type=int, default=200, help="texts from each set (the first ones)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    pred = Predictor.load(args.model)
    sets = {"test_sentences": [r.text for r in split_rows("test")]} | all_sets()
    result = {name: standard_errors(pred, texts[: args.per_set], args.replicates) for name, texts in sets.items()}
    result["_setup"] = {"replicates": args.replicates, "n_views": pred.ckpt.cfg.views.n_views,
                        "n_draws": pred.ckpt.cfg.views.n_draws}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'set':22} {'total mean/p95':>16} {'aleatoric mean/p95':>19} {'epistemic mean/p95':>19}")
    for name, r in result.items():
        if not name.startswith("_"):
            print(f"{name:22} " + " ".join(f"{r[p]['mean']:9.4f}/{r[p]['p95']:.4f}"
                                           for p in ("total", "aleatoric", "epistemic")))


if __name__ == "__main__":
    main()
