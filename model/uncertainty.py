"""From K views' logits and familiarity to calibrated probabilities and the uncertainty split.

total = H(mean_v p_v), aleatoric = mean_v H(p_v), epistemic = total - aleatoric (the mutual
information between the label and the view, >= 0 by Jensen), all in nats.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from .config import HeadConfig


@dataclass
class FeatureDensity:
    """Class-conditional Gaussians with one shared covariance over the pooled features
    (as in Mahalanobis / DDU scoring). `whiten` is a Cholesky factor of the precision, so
    d2 = ||(h - mu_c) @ whiten||^2."""

    means: torch.Tensor  # (C, D)
    whiten: torch.Tensor  # (D, D)

    @classmethod
    def fit(cls, feats: torch.Tensor, labels: torch.Tensor, n_labels: int, shrink: float = 0.05):
        feats = feats.double()
        means = torch.stack([feats[labels == c].mean(0) for c in range(n_labels)])
        centred = feats - means[labels]
        cov = centred.T @ centred / max(len(feats) - n_labels, 1)
        # Shrink toward a scaled identity so a few thousand rows give a stable inverse.
        cov = (1 - shrink) * cov + shrink * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)
        whiten = torch.linalg.cholesky(torch.linalg.inv(cov))
        return cls(means.float(), whiten.float())

    def d2(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) squared distance to the nearest class mean, in whitened units."""
        w = self.whiten.to(feats.dtype)
        y = feats @ w  # (N, D)
        mu = self.means.to(feats.dtype) @ w  # (C, D)
        return torch.cdist(y, mu).pow(2).min(dim=1).values


@dataclass
class UnigramDensity:
    """Word-piece frequencies of the in-domain text: a density of the input itself that
    flags other languages, markup and noise, whose pieces are rare in reviews. With
    general-English counts it also holds, per alphabetic piece, the log ratio of its
    general-English to its in-domain probability: English that is not a review (news,
    science, code comments) is made of words that are common in English, rare in reviews."""

    nll: torch.Tensor  # (vocab,) -log p(piece), add-half smoothed
    ratio: torch.Tensor | None = None  # (vocab,) log p_general - log p_in_domain; NaN: not a word piece

    @classmethod
    def fit(cls, seqs: list[list[int]], vocab_size: int, general: "dict[str, float] | None" = None,
            tokenizer=None) -> "UnigramDensity":
        counts = torch.full((vocab_size,), 0.5, dtype=torch.float64)
        for s in seqs:
            counts.index_add_(0, torch.tensor(s[1:-1], dtype=torch.long), torch.ones(len(s) - 2, dtype=torch.float64))
        nll = -torch.log(counts / counts.sum())
        ratio = None
        if general and tokenizer is not None:
            words = list(general)
            gen = torch.full((vocab_size,), 0.5, dtype=torch.float64)
            for word, enc in zip(words, tokenizer.encode(words)):
                ids = torch.tensor(enc.ids[1:-1], dtype=torch.long)
                gen.index_add_(0, ids, torch.full((len(ids),), float(general[word]), dtype=torch.float64))
            # Punctuation and digits are left out: the general counts have none, so they
            # would make any punctuated text look like a review.
            word_piece = torch.tensor([bool(_WORD_PIECE.fullmatch(t)) for t in tokenizer.tokens(range(vocab_size))])
            ratio = torch.where(word_piece, nll + torch.log(gen / gen.sum()), torch.nan)
        return cls(nll.float(), None if ratio is None else ratio.float())

    def scores(self, seqs: list[list[int]]) -> torch.Tensor:
        """(N, 2) per text, over its body (between [CLS] and [SEP]): the mean NLL per word
        piece, and the mean general-to-in-domain log ratio over its word pieces (0 without
        any, or without general counts). One pass over the texts; numpy costs a third of
        torch per small text."""
        nll = self.nll.numpy()
        ratio = self.ratio.numpy() if self.ratio is not None else None
        out = np.zeros((len(seqs), 2))
        for i, s in enumerate(seqs):
            body = s[1:-1] or s
            out[i, 0] = nll[body].mean(dtype=np.float64)
            if ratio is not None:
                r = ratio[body]
                r = r[~np.isnan(r)]
                if len(r):
                    out[i, 1] = r.mean(dtype=np.float64)
        return torch.from_numpy(out)


_WORD_PIECE = re.compile(r"(##)?[a-z]+")


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats over the last axis, 0 log 0 = 0."""
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1)


def length_bucket(pieces: torch.Tensor, head: HeadConfig) -> torch.Tensor:
    """(N,) word-piece counts -> (N,) index of their length bucket."""
    return torch.bucketize(pieces, torch.tensor(head.length_edges, dtype=pieces.dtype), right=True)


def scaled(scores: torch.Tensor, pieces: torch.Tensor, head: HeadConfig) -> torch.Tensor:
    """(N, K, S) scores -> the same on each text's length bucket's scale (z = 1 at its
    validation 95th percentile)."""
    b = length_bucket(pieces, head)
    med = torch.tensor(head.score_median, dtype=scores.dtype)[b].unsqueeze(1)  # (N, 1, S)
    spread = torch.tensor(head.score_spread, dtype=scores.dtype)[b].unsqueeze(1)
    return (scores - med) / spread


def worst_z(scores: torch.Tensor, pieces: torch.Tensor, head: HeadConfig) -> torch.Tensor:
    """(N, K, S) scores -> (N, K) the largest of each view's weighted scores on its bucket's
    scale, max_j (score_weight_j * z_j)."""
    weight = torch.tensor(head.score_weight, dtype=scores.dtype)  # (S,)
    return (scaled(scores, pieces, head) * weight).max(dim=-1).values


def similarity(scores: torch.Tensor, pieces: torch.Tensor, head: HeadConfig) -> torch.Tensor:
    """(N, K, S) unfamiliarity scores, (N,) word pieces per text -> (N, K) similarity to the
    training data in (0, 1]."""
    b = length_bucket(pieces, head)
    threshold = torch.tensor(head.score_threshold, dtype=scores.dtype)[b].unsqueeze(1)  # (N, 1)
    return torch.exp(-head.decay * torch.relu(worst_z(scores, pieces, head) - threshold))


def view_probabilities(logits: torch.Tensor, r: torch.Tensor, z: torch.Tensor, head: HeadConfig) -> torch.Tensor:
    """logits (B, K, C), similarity r (B, K), draws z (B, K, C) -> per-view probabilities.

    Each view draws its logits from N(r * logits, sigma0^2 (1 - r^2)): near the data the
    network's own logits, far from it the prior, whose antithetic draws average to uniform."""
    r = r.unsqueeze(-1)  # (B, K, 1)
    std = head.sigma0 * torch.sqrt((1 - r * r).clamp_min(0.0))
    sampled = r * logits + std * z.to(logits.dtype)  # (B, K, C)
    return torch.softmax(sampled / head.temperature, dim=-1)


@dataclass
class Decomposition:
    probs: torch.Tensor  # (B, C) mean over views
    total: torch.Tensor  # (B,)
    aleatoric: torch.Tensor  # (B,)
    epistemic: torch.Tensor  # (B,)


def decompose(view_probs: torch.Tensor) -> Decomposition:
    """(B, K, C) per-view probabilities -> mean distribution and the uncertainty split."""
    probs = view_probs.mean(1)
    total = entropy(probs)
    aleatoric = entropy(view_probs).mean(1)
    # Jensen makes this >= 0; clamp only float round-off and keep total = sum of parts.
    epistemic = (total - aleatoric).clamp_min(0.0)
    aleatoric = total - epistemic
    return Decomposition(probs, total, aleatoric, epistemic)
