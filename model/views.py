"""The seeded views whose expectation is the prediction.

After Chlon et al. 2025 ("LLMs are Bayesian, in expectation, not in realization"):
positional encodings break exchangeability, so one forward pass is one draw from a family
of orderings; the answer is the mean over K of them. A view here is

- a positional offset: every position of the view shifts by it;
- for a text longer than one window, where its windows start (model/windows.py): each view
  cuts the text at other places, so no word is always at a window's edge;
- M draws from the logit posterior (model/uncertainty.py), whose spread is the epistemic
  part of the uncertainty.

Offsets and window starts are stratified over the K views (view k takes the k-th of K equal
strata, the place inside it drawn), and the draws over M quantiles, so that the mean over a
few views and draws is close to the expectation it estimates (`bench/mc_error.py` measures
how close). Every random choice comes from one generator seeded by a hash of the text, so a
text gets the same views in any process, on any replica and in any batch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtri

from .config import NetworkConfig, ViewConfig


def text_seed(text: str) -> int:
    """A stable 63-bit seed from the text (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class TextViews:
    offsets: np.ndarray  # (K,) positional offset of each view
    starts: np.ndarray  # (K,) where each view's window grid starts, in [0, window pieces)
    u: np.ndarray  # (K, M, C - 1) the draws' stratified uniforms (draws_from turns them into z)


def stratified(k: int, span: float, rng: np.random.Generator) -> np.ndarray:
    """k values, the i-th uniform in [i * span / k, (i + 1) * span / k)."""
    return (np.arange(k) + rng.random(k)) * (span / k)


def draw_views(seed: int, vcfg: ViewConfig, ncfg: NetworkConfig) -> TextViews:
    rng = np.random.default_rng(seed)
    K = vcfg.n_views
    offsets = stratified(K, ncfg.max_offset, rng).astype(np.int64) if ncfg.max_offset else np.zeros(K, np.int64)
    # permuted, so that a view's offset says nothing about where its windows start
    starts = rng.permutation(stratified(K, ncfg.max_len - 2, rng).astype(np.int64))
    return TextViews(offsets, starts, draw_uniforms(K, vcfg.n_draws, ncfg.n_labels, rng))


def draw_uniforms(k: int, m: int, c: int, rng: np.random.Generator) -> np.ndarray:
    """(k, m, c - 1) stratified uniforms. With two labels, one coordinate, whose strata are
    filled in antithetic pairs (u, 1 - u), so that the draws' mean is exactly 0. With C > 2,
    the same idea for C labels: g = ceil(m / C) generators, each of the C - 1 coordinates a
    Latin hypercube over g quantile strata per view, each generator's uniforms in C rows in
    a row (the last generator's cut at m), which draws_from turns into the C cyclic shifts of
    its draw over the labels. The prior is the same under any relabelling, so each shift is
    as much a draw of it as the generator; and a whole orbit of shifts gives every label the
    same mean probability at zero similarity: far from the data the answer is uniform,
    exactly when C divides m, to within (m mod C) / m otherwise (as 0.5 exactly with two)."""
    d = c - 1
    if c == 2:
        half = (np.arange((m + 1) // 2) + rng.random((k, (m + 1) // 2))) / m  # strata in [0, 1/2)
        return np.concatenate([half, 1.0 - half], axis=1)[:, :m, None]
    g = -(-m // c)
    u = (np.argsort(rng.random((k, d, g)), axis=-1) + rng.random((k, d, g))) / g
    return np.repeat(u.transpose(0, 2, 1), c, axis=1)[:, :m]  # (k, m, d): row j from generator j // C


def draws_from(u: np.ndarray, c: int) -> np.ndarray:
    """(..., M, C - 1) uniforms -> (..., M, C) draws of N(0, I) projected onto the logits that
    sum to zero (softmax ignores a shift of all logits, so nothing is lost); with C > 2, draw
    j is its generator's shifted by j mod C labels (draw_uniforms). Done once for a batch:
    the same numbers whatever the batch holds."""
    z = ndtri(np.clip(u, 1e-12, 1 - 1e-12)) @ _sum_zero_basis(c).T
    if c == 2:
        return z
    m = z.shape[-2]
    shift = (np.arange(c)[None, :] - np.arange(m)[:, None] % c) % c  # (M, C): z_j[l] = generator[l - j mod C]
    return np.take_along_axis(z, np.broadcast_to(shift, z.shape), axis=-1)


@lru_cache(maxsize=8)
def _sum_zero_basis(c: int) -> np.ndarray:
    """(c, c - 1) orthonormal columns spanning the logits that sum to zero (Helmert)."""
    basis = np.zeros((c, c - 1))
    for j in range(1, c):
        basis[:j, j - 1] = 1.0 / np.sqrt(j * (j + 1))
        basis[j, j - 1] = -j / np.sqrt(j * (j + 1))
    return basis


def positions(n: int, offset: int) -> np.ndarray:
    """Position ids of a sequence of n ids ([CLS] ... [SEP]) in a view with this offset."""
    return np.arange(n, dtype=np.int64) + offset


def training_positions(n: int, rng: np.random.Generator, ncfg: NetworkConfig) -> np.ndarray:
    """A fresh random view's positions for one training sequence: every offset a view can
    take at inference is in distribution."""
    return positions(n, int(rng.integers(0, ncfg.max_offset)) if ncfg.max_offset else 0)
