"""How large ECE reads from sampling noise alone: the ECE (15 bins, as `bet eval`) of a model
that is perfectly calibrated by construction, with the model's own confidences on a labelled
file. Each draw resamples the texts' confidences with replacement and draws each "correct"
as a coin with that confidence, so every bin's true accuracy equals its confidence; the
spread of the draws' ECE is the floor that a measured ECE sits on.
Usage: python -m bench.ece_floor [--model DIR] [--data FILE] [--draws N] [--json]"""
from __future__ import annotations

import argparse
import json

import numpy as np

from model.data import cache_dir, fetch
from model.evaluate import labelled_predictions
from model.metrics import ece
from model.predictor import Predictor


def calibrated_ece(conf: np.ndarray, draws: int, seed: int = 0) -> np.ndarray:
    """(N,) confidences -> (draws,) ECE of a calibrated model with confidences like them."""
    rng = np.random.default_rng(seed)
    out = np.empty(draws)
    for i in range(draws):
        c = rng.choice(conf, len(conf), replace=True)
        out[i] = ece(c, (rng.random(len(c)) < c).astype(float))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    ap.add_argument("--data", help="labelled CSV or JSONL (default: the 800 test sentences)")
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    pred = Predictor.load(args.model)
    data = args.data or cache_dir() / "test.csv"
    if args.data is None and not data.exists():
        fetch()
    probs, labels, _ = labelled_predictions(pred, data)
    conf = probs.max(1)
    measured = ece(conf, (probs.argmax(1) == labels).astype(float))
    floor = calibrated_ece(conf, args.draws)
    result = {"n": len(labels), "measured_ece": measured, "calibrated_mean": float(floor.mean()),
              "calibrated_median": float(np.median(floor)), "calibrated_p90": float(np.quantile(floor, 0.9)),
              "share_of_calibrated_above_measured": float((floor >= measured).mean()),
              "share_of_calibrated_above_0.03": float((floor > 0.03).mean())}
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
