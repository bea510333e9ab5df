"""How a long text's windows should combine, measured on the development reviews only.

Each review is cut into windows of the model's width (grid from its first piece), each
window is read as its own text (all views, the n-gram head, its similarity), and the
windows' answers are combined by each rule below. For each rule the calibrated NLL is read
at the temperature (one factor on the combined logits) that minimises it.
Usage: python -m bench.window_combine [--model DIR] [--limit N]"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from model.data import dev_reviews
from model.metrics import ece
from model.predictor import Predictor
from model.views import text_seed
from model.windows import window_pieces


def window_outputs(pred: Predictor, body: list[int], seed: int):
    """Per window: calibrated mean logits over views (C,), mean similarity, pieces."""
    exp = pred.expectation
    width = window_pieces(pred.ckpt.cfg.network)
    parts = [body[a : a + width] for a in range(0, len(body), width)]
    out = exp.raw(parts, [seed + j for j in range(len(parts))])
    r = exp.similarity(out, parts)
    head = exp.cfg.head
    logits = (out.logits + head.ngram_weight * out.ngram_logits) / head.temperature  # (W, K, C)
    return logits.mean(1).numpy(), r.mean(1).numpy(), np.array([len(p) for p in parts], float)


def rules(lg: np.ndarray, r: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    """(W, C) window logits -> combined (C,) logits per rule."""
    w = n / n.sum()
    evidence = np.abs(lg[:, 1] - lg[:, 0]) if lg.shape[1] == 2 else lg.max(1) - lg.min(1)
    fam = w * r
    return {
        "first window only": lg[0],
        "mean of logits (piece-weighted)": w @ lg,
        "sum of logits (product of experts)": lg.sum(0),
        "mean of probabilities (piece-weighted)": np.log(np.clip(w @ softmax(lg, axis=1), 1e-12, None)),
        "mean of logits, weighted by familiarity": fam @ lg / max(fam.sum(), 1e-12),
        "mean of logits, weighted by evidence": (w * evidence) @ lg / max((w * evidence).sum(), 1e-12),
        "last window only": lg[-1],
    }


def calibrated(logits: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """-> (factor, NLL, ECE) at the factor on the logits that minimises the NLL."""
    def nll(log_a: float) -> float:
        lp = log_softmax(logits * np.exp(log_a), axis=1)
        return float(-lp[np.arange(len(y)), y].mean())

    a = minimize_scalar(nll, bounds=(-4, 4), method="bounded").x
    p = softmax(logits * np.exp(a), axis=1)
    return float(np.exp(a)), nll(a), ece(p.max(1), (p.argmax(1) == y).astype(float))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="checkpoint directory (default: the embedded model)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N development reviews")
    args = ap.parse_args()
    pred = Predictor.load(args.model)
    rows = dev_reviews()
    rows = rows[: args.limit] if args.limit else rows
    bodies = pred.ckpt.tokenizer.bodies([r.text for r in rows])
    y = np.array([pred.labels.index(r.label) for r in rows])
    combined: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for row, body in zip(rows, bodies, strict=True):
            for name, lg in rules(*window_outputs(pred, body, text_seed(row.text))).items():
                combined.setdefault(name, []).append(lg)
    print(f"{len(rows)} development reviews, {np.mean([len(b) for b in bodies]):.0f} word pieces on average")
    print(f"{'rule':42} {'accuracy':>8} {'factor':>7} {'NLL':>6} {'ECE':>6}")
    for name, parts in combined.items():
        logits = np.stack(parts)
        factor, nll, e = calibrated(logits, y)
        print(f"{name:42} {(logits.argmax(1) == y).mean():8.3f} {factor:7.2f} {nll:6.3f} {e:6.3f}")


if __name__ == "__main__":
    main()
