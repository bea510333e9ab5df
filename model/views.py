"""The seeded views whose expectation is the prediction.

After Chlon et al. 2025 ("LLMs are Bayesian, in expectation, not in realization"):
positional encodings break exchangeability, so one forward pass is one draw from a family
of orderings; the answer is the mean over K of them. A view here is a seeded positional
offset (optionally with tokens permuted within small windows: `ViewConfig.window`, off by
default since it lost on validation NLL), and an antithetic draw z from the logit
posterior (used by `uncertainty.py`). Every random choice comes from one generator seeded
by a hash of the text, so a text gets the same views in any process, on any replica and
in any batch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from .config import NetworkConfig, ViewConfig


def text_seed(text: str) -> int:
    """A stable 63-bit seed from the text (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass
class PackedViews:
    ids: torch.Tensor  # (N,) token ids of every view of every text, end to end, view-major within a text
    pos: torch.Tensor  # (N,) their position ids
    runs: list[tuple[int, int]]  # (length, count) of consecutive views of one length
    z: torch.Tensor  # (B, K, n_labels) standard-normal posterior draws, antithetic pairs


def text_views(n: int, seed: int, vcfg: ViewConfig, ncfg: NetworkConfig) -> tuple[np.ndarray, np.ndarray]:
    """For a sequence of n ids ([CLS] ... [SEP]): position ids (K, n) and posterior draws
    (K, n_labels), all from one generator seeded by the text.

    Draws: views 2j and 2j+1 get +z and -z (antithetic), so far from the data, where the
    logit mean is 0, the mean over views is exactly uniform."""
    K = vcfg.n_views
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, ncfg.max_offset, K) if vcfg.offsets and ncfg.max_offset else np.zeros(K, np.int64)
    pos = np.tile(np.arange(n), (K, 1))
    w = vcfg.window
    if w > 1 and n > 3:
        m = n - 2  # [CLS] and [SEP] keep their places
        keys = rng.random((K, m)) + (np.arange(m) // w)  # the window index dominates the sort
        pos[:, 1 : n - 1] = 1 + np.argsort(np.argsort(keys, axis=1), axis=1)  # rank within its window
    half = rng.standard_normal(((K + 1) // 2, ncfg.n_labels))
    z = np.stack([half, -half], axis=1).reshape(-1, ncfg.n_labels)[:K]
    return pos + offsets[:, None], z


def pack_views(seqs: list[list[int]], seeds: list[int], vcfg: ViewConfig, ncfg: NetworkConfig) -> PackedViews:
    """Every view of every text, in the given order, laid end to end without padding
    (Encoder.packed); texts sorted by length make few runs."""
    K = vcfg.n_views
    ids, pos, z = [], [], []
    runs: list[tuple[int, int]] = []
    for seq, seed in zip(seqs, seeds):
        n = len(seq)
        p, draws = text_views(n, seed, vcfg, ncfg)
        ids.append(np.tile(np.asarray(seq, dtype=np.int64), K))
        pos.append(p.reshape(-1))
        z.append(draws)
        if runs and runs[-1][0] == n:
            runs[-1] = (n, runs[-1][1] + K)
        else:
            runs.append((n, K))
    return PackedViews(ids=torch.from_numpy(np.concatenate(ids)), pos=torch.from_numpy(np.concatenate(pos)),
                       runs=runs, z=torch.from_numpy(np.stack(z).astype(np.float32)))
