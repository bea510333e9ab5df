"""Fitting the uncertainty head after training: the densities on in-domain training text,
the familiarity scales and the temperature on the validation split. No OOD data is used
here: every constant comes from in-distribution quantiles."""
from __future__ import annotations

import numpy as np
import torch

from .config import HeadConfig
from .expectation import Expectation, ViewOutputs
from .uncertainty import FeatureDensity, decompose, view_probabilities

REF_QUANTILE = 0.95  # z = 1 at this validation quantile of each unfamiliarity score


def fit_density(exp: Expectation, seqs, seeds, labels: torch.Tensor, n_labels: int) -> FeatureDensity:
    feats = exp.raw(seqs, seeds).feats  # (N, K, D)
    N, K, D = feats.shape
    return FeatureDensity.fit(feats.reshape(N * K, D), labels.repeat_interleave(K), n_labels)


def fit_scales(scores: torch.Tensor, head: HeadConfig) -> None:
    """scores (N, K, 3) on validation -> per-score median and (q95 - median)."""
    flat = scores.reshape(-1, scores.shape[-1]).double()
    med = torch.quantile(flat, 0.5, dim=0)
    ref = torch.quantile(flat, REF_QUANTILE, dim=0)
    head.score_median = [float(x) for x in med]
    head.score_spread = [float(max(x, 1e-6)) for x in ref - med]


def _nll(out: ViewOutputs, r: torch.Tensor, labels: torch.Tensor, head: HeadConfig) -> float:
    probs = decompose(view_probabilities(out.logits, r, out.z, head)).probs
    return float(-torch.log(probs[torch.arange(len(labels)), labels].clamp_min(1e-12)).mean())


def fit_temperature(out: ViewOutputs, r: torch.Tensor, labels: torch.Tensor, head: HeadConfig) -> None:
    """Minimises validation NLL over the temperature: a coarse log grid, then a finer one."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
    for _ in range(2):
        scores = []
        for t in grid:
            head.temperature = float(t)
            scores.append(_nll(out, r, labels, head))
        best = grid[int(np.argmin(scores))]
        grid = best * np.exp(np.linspace(-0.15, 0.15, 31))
    head.temperature = float(best)
