"""Classification and uncertainty quality measures used by `bet eval` and training."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

ECE_BINS = 15


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over equal-width confidence bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total)


def auroc(scores: np.ndarray, positives: np.ndarray) -> float | None:
    """AUROC of `scores` for telling positives (True) from negatives; None if one class."""
    if positives.all() or not positives.any():
        return None
    return float(roc_auc_score(positives.astype(int), scores))


def selective_accuracy(conf: np.ndarray, correct: np.ndarray, coverage: float = 0.8) -> float:
    """Accuracy on the `coverage` fraction of inputs the model is most confident about."""
    keep = max(1, int(round(coverage * len(conf))))
    order = np.argsort(-conf, kind="stable")[:keep]
    return float(correct[order].mean())


def summarize(probs: np.ndarray, labels: np.ndarray, total: np.ndarray) -> dict:
    """probs (N, C) calibrated, labels (N,), total uncertainty (N,) -> the `bet eval` JSON."""
    pred = probs.argmax(1)
    conf = probs.max(1)
    correct = pred == labels
    onehot = np.eye(probs.shape[1])[labels]
    return {
        "n": int(len(labels)),
        "accuracy": float(correct.mean()),
        "nll": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()),
        "brier": float(((probs - onehot) ** 2).sum(1).mean()),
        "ece": ece(conf, correct.astype(float)),
        "misclassification_auroc_confidence": auroc(1.0 - conf, ~correct),
        "misclassification_auroc_total_uncertainty": auroc(total, ~correct),
        "selective_accuracy_at_80": selective_accuracy(conf, correct.astype(float)),
    }
