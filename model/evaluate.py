"""`bet eval`: quality of a checkpoint on labelled data, and a reliability diagram."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import read_rows
from .metrics import ECE_BINS, auroc, summarize
from .predictor import Predictor

CHUNK = 256  # texts per predict call, for the progress bar


def predict_all(pred: Predictor, texts: list[str], desc: str = "predict"):
    """Calibrated probabilities (N, C) and the uncertainty split (3, N) for many texts."""
    probs, unc = [], []
    for b in tqdm(range(0, len(texts), CHUNK), desc=desc, unit="chunk"):
        for p in pred.predict(texts[b : b + CHUNK]):
            probs.append([p.probabilities[name] for name in pred.labels])
            unc.append([p.uncertainty.total, p.uncertainty.aleatoric, p.uncertainty.epistemic])
    return np.array(probs), np.array(unc).T


def labelled_predictions(pred: Predictor, data: str | Path):
    """A labelled file's calibrated probabilities (N, C), label indices (N,) and uncertainty
    split (3, N)."""
    rows = read_rows(data)
    unknown = sorted({r.label for r in rows} - set(pred.labels))
    if unknown:
        raise ValueError(f"{data}: labels {unknown} are not among the model's {pred.labels}")
    y = np.array([pred.labels.index(r.label) for r in rows])
    probs, unc = predict_all(pred, [r.text for r in rows], "evaluate")
    return probs, y, unc


def evaluate(model_dir: str | Path | None, data: str | Path, report: str | Path | None = None,
             dtype: str = "float32") -> dict:
    pred = Predictor.load(model_dir, dtype=dtype)
    probs, y, (total, aleatoric, epistemic) = labelled_predictions(pred, data)
    wrong = probs.argmax(1) != y
    out = {"model_version": pred.version, "compute_dtype": dtype, **summarize(probs, y, total),
           "misclassification_auroc_confidence_ci95": bootstrap_auroc(1.0 - probs.max(1), wrong),
           "misclassification_auroc_aleatoric": auroc(aleatoric, wrong),
           "mean_uncertainty": {"total": float(total.mean()), "aleatoric": float(aleatoric.mean()),
                                "epistemic": float(epistemic.mean())}}
    if report:
        out["reliability_diagram"] = str(reliability_diagram(probs, y, Path(report)))
    return out


def bootstrap_auroc(scores: np.ndarray, positives: np.ndarray, rounds: int = 2000, seed: int = 0) -> list[float] | None:
    """The 95% bootstrap interval (2.5th and 97.5th percentiles over resampled rows)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, len(scores), len(scores))
        value = auroc(scores[idx], positives[idx])
        if value is not None:
            values.append(value)
    return [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))] if values else None


def reliability_diagram(probs: np.ndarray, y: np.ndarray, report: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0, 1, ECE_BINS + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, ECE_BINS - 1)
    acc = [correct[idx == b].mean() if (idx == b).any() else np.nan for b in range(ECE_BINS)]
    count = [int((idx == b).sum()) for b in range(ECE_BINS)]
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    ax.bar(edges[:-1], acc, width=1 / ECE_BINS, align="edge", edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram")
    ax.legend(loc="upper left")
    axc.bar(edges[:-1], count, width=1 / ECE_BINS, align="edge", edgecolor="black", color="tab:orange")
    axc.set_xlabel("confidence")
    axc.set_ylabel("texts")
    report.mkdir(parents=True, exist_ok=True)
    path = report / "reliability.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
