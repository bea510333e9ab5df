"""Fitting the uncertainty head after training: feature density on the training split,
its distance scale and the temperature on the validation split. No OOD data is used:
every constant here comes from in-distribution quantiles."""
from __future__ import annotations

import numpy as np
import torch

from .config import HeadConfig
from .expectation import Expectation
from .uncertainty import FeatureDensity, decompose, view_probabilities

# A view counts as fully familiar up to this quantile of validation distances; beyond
# it, similarity halves for every (q99 - q50) / ln 2 of extra squared distance.
D2_REF_QUANTILE = 0.95


def fit_density(exp: Expectation, seqs, seeds, labels: torch.Tensor, n_labels: int) -> FeatureDensity:
    _, feats, _ = exp.raw(seqs, seeds)  # (N, K, D)
    N, K, D = feats.shape
    return FeatureDensity.fit(feats.reshape(N * K, D), labels.repeat_interleave(K), n_labels)


def fit_distance_scale(d2_val: torch.Tensor, head: HeadConfig) -> None:
    q = torch.quantile(d2_val.flatten().double(), torch.tensor([0.5, D2_REF_QUANTILE, 0.99], dtype=torch.float64))
    head.d2_ref = float(q[1])
    head.d2_scale = float(max(q[2] - q[0], 1e-6) / np.log(2.0))


def nll(exp: Expectation, logits, d2, z, labels: torch.Tensor, head: HeadConfig) -> float:
    probs = decompose(view_probabilities(logits, d2, z, head)).probs
    return float(-torch.log(probs[torch.arange(len(labels)), labels].clamp_min(1e-12)).mean())


def fit_temperature(exp: Expectation, logits, d2, z, labels: torch.Tensor, head: HeadConfig) -> None:
    """Minimises validation NLL over the temperature: a coarse log grid, then a finer one."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
    for _ in range(2):
        scores = []
        for t in grid:
            head.temperature = float(t)
            scores.append(nll(exp, logits, d2, z, labels, head))
        best = grid[int(np.argmin(scores))]
        grid = best * np.exp(np.linspace(-0.15, 0.15, 31))
    head.temperature = float(best)
