"""From K views' logits and familiarity to calibrated probabilities and the uncertainty split.

Each view's logits are drawn M times from a posterior whose spread grows as the text gets
unlike the training data. Over all K * M draws: total = H(mean p), aleatoric = mean H(p),
epistemic = total - aleatoric (the mutual information between the label and the draw,
>= 0 by Jensen), all in nats.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from .config import SCORES, HeadConfig


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
    # (PAIR_BUCKETS,) p(piece | the piece before it), hashed by the pair; 0 for a pair the
    # in-domain text never holds. With it the score is the NLL of each piece after the first
    # given the one before, interpolated with its frequency (PAIR_WEIGHT): random strings,
    # scrambled and foreign text are made of pairs the domain never holds, even where each
    # piece is common in it (punctuation and single letters in tweets).
    pairs: torch.Tensor | None = None

    @classmethod
    def fit(cls, seqs: list[list[int]], vocab_size: int, general: dict[str, float] | None = None,
            tokenizer=None, pairs: bool = False) -> UnigramDensity:
        """seqs: [CLS] pieces [SEP] of each in-domain text."""
        counts = torch.full((vocab_size,), 0.5, dtype=torch.float64)
        for s in seqs:
            counts.index_add_(0, torch.tensor(s[1:-1], dtype=torch.long), torch.ones(len(s) - 2, dtype=torch.float64))
        nll = -torch.log(counts / counts.sum())
        pair_p = None
        if pairs:
            first = np.concatenate([np.asarray(s[1:-2], dtype=np.int64) for s in seqs])
            second = np.concatenate([np.asarray(s[2:-1], dtype=np.int64) for s in seqs])
            bucket = _pair_bucket(first, second, vocab_size)
            joint = np.bincount(bucket, minlength=PAIR_BUCKETS)
            before = np.bincount(first, minlength=vocab_size)
            # a bucket's pair count over its first piece's count (a collision merges pairs)
            owner = np.zeros(PAIR_BUCKETS, dtype=np.int64)
            owner[bucket] = first
            pair_p = torch.from_numpy(np.where(joint > 0, joint / np.maximum(before[owner], 1), 0.0)).float()
        ratio = None
        if general and tokenizer is not None:
            words = list(general)
            gen = torch.full((vocab_size,), 0.5, dtype=torch.float64)
            for word, enc in zip(words, tokenizer.encode(words), strict=True):
                ids = torch.tensor(enc.ids[1:-1], dtype=torch.long)
                gen.index_add_(0, ids, torch.full((len(ids),), float(general[word]), dtype=torch.float64))
            # Punctuation and digits are left out: the general counts have none, so they
            # would make any punctuated text look like a review.
            word_piece = torch.tensor([bool(_WORD_PIECE.fullmatch(t)) for t in tokenizer.tokens(range(vocab_size))])
            ratio = torch.where(word_piece, nll + torch.log(gen / gen.sum()), torch.nan)
        return cls(nll.float(), None if ratio is None else ratio.float(), pair_p)

    def scores(self, bodies: list[list[int]]) -> torch.Tensor:
        """(N, 2) per text, over all of its word pieces: the mean NLL per word piece, and the
        mean general-to-in-domain log ratio over its word pieces (0 without any, or without
        general counts). One pass over the texts; numpy costs a third of torch per small
        text. A text of no pieces reads as [PAD], which in-domain text never holds."""
        nll = self.nll.numpy()
        ratio = self.ratio.numpy() if self.ratio is not None else None
        pairs = self.pairs.numpy() if self.pairs is not None else None
        out = np.zeros((len(bodies), 2))
        for i, s in enumerate(bodies):
            body = s or [0]
            if pairs is None:
                out[i, 0] = nll[body].mean(dtype=np.float64)
            else:
                seq = np.asarray(body, dtype=np.int64)
                p = np.exp(-nll[seq].astype(np.float64))  # each piece alone; after the first, with its pair
                p[1:] = PAIR_WEIGHT * pairs[_pair_bucket(seq[:-1], seq[1:], len(nll))] + (1 - PAIR_WEIGHT) * p[1:]
                out[i, 0] = -np.log(p).mean()
            if ratio is not None:
                r = ratio[body]
                r = r[~np.isnan(r)]
                if len(r):
                    out[i, 1] = r.mean(dtype=np.float64)
        return torch.from_numpy(out)


# Characters of code, markup and formulas rather than of sentences: a word piece that is one
# of them is a symbol piece (PieceShape).
SYMBOLS = frozenset("()[]{}<>=_/\\|#$%^&*~`+@")


@dataclass
class PieceShape:
    """What a text is made of, read off its word pieces whatever their domain: the share of
    symbol pieces (SYMBOLS: code, markup, random strings) and the share of pieces that
    continue a word ("##": words the vocabulary does not hold whole, as in other languages,
    identifiers and random strings). English of any kind holds few of either, so unlike the
    other scores these tell text the model cannot read from English it was not trained on
    (docs/adr/0011-text-shape-scores.md). A pure function of the vocabulary: nothing stored."""

    symbol: np.ndarray  # (vocab,) bool
    fragment: np.ndarray  # (vocab,) bool

    @classmethod
    def of(cls, tokenizer) -> PieceShape:
        tokens = tokenizer.tokens(range(tokenizer.vocab_size))
        return cls(np.array([t in SYMBOLS for t in tokens]), np.array([t.startswith("##") for t in tokens]))

    def scores(self, bodies: list[list[int]]) -> torch.Tensor:
        """(N, 2) per text: the share of its pieces that are symbols, and that continue a
        word; 0 for a text of no pieces."""
        lengths = np.array([len(b) for b in bodies], dtype=np.int64)
        out = np.zeros((len(bodies), 2))
        if lengths.sum():
            flat = np.concatenate([np.asarray(b, dtype=np.int64) for b in bodies])
            starts = np.r_[0, np.cumsum(lengths)[:-1]]
            has = lengths > 0
            for j, mask in enumerate((self.symbol, self.fragment)):
                out[has, j] = np.add.reduceat(mask[flat].astype(np.float64), starts[has]) / lengths[has]
        return torch.from_numpy(out)


_WORD_PIECE = re.compile(r"(##)?[a-z]+")
PAIR_BUCKETS = 1 << 20
PAIR_WEIGHT = 0.8  # of p(piece | piece before) against p(piece), in UnigramDensity's pair score


def _pair_bucket(first: np.ndarray, second: np.ndarray, vocab_size: int) -> np.ndarray:
    return (first * vocab_size + second) % PAIR_BUCKETS


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats over the last axis, 0 log 0 = 0."""
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1)


def length_bucket(pieces: torch.Tensor, head: HeadConfig) -> torch.Tensor:
    """(N,) word-piece counts -> (N,) index of their length bucket."""
    return torch.bucketize(pieces, torch.tensor(head.length_edges, dtype=pieces.dtype), right=True)


def _table(rows: list[dict[str, float]], dtype: torch.dtype) -> torch.Tensor:
    """Per-bucket named values -> (buckets, S) in SCORES order."""
    return torch.tensor([[row[name] for name in SCORES] for row in rows], dtype=dtype)


def scaled(scores: torch.Tensor, pieces: torch.Tensor, head: HeadConfig) -> torch.Tensor:
    """(N, K, S) scores -> the same on each text's length bucket's scale (z = 1 at its
    validation 95th percentile)."""
    b = length_bucket(pieces, head)
    med = _table(head.score_median, scores.dtype)[b].unsqueeze(1)  # (N, 1, S)
    spread = _table(head.score_spread, scores.dtype)[b].unsqueeze(1)
    return (scores - med) / spread


def worst_z(scores: torch.Tensor, pieces: torch.Tensor, head: HeadConfig) -> torch.Tensor:
    """(N, K, S) scores -> (N, K) the largest of each view's weighted scores on its bucket's
    scale, max_j (score_weight_j * z_j)."""
    weight = _table([head.score_weight], scores.dtype)[0]  # (S,)
    return (scaled(scores, pieces, head) * weight).max(dim=-1).values


def similarity(scores: torch.Tensor, pieces: torch.Tensor, head: HeadConfig) -> torch.Tensor:
    """(N, K, S) unfamiliarity scores, (N,) word pieces per text -> (N, K) similarity to the
    training data in (0, 1]."""
    b = length_bucket(pieces, head)
    threshold = torch.tensor(head.score_threshold, dtype=scores.dtype)[b].unsqueeze(1)  # (N, 1)
    worst = worst_z(scores, pieces, head)
    fall = head.decay * torch.relu(worst - threshold)
    if head.gentle:
        gentle_threshold = torch.tensor(head.gentle_threshold, dtype=scores.dtype)[b].unsqueeze(1)
        fall = fall + head.gentle * torch.relu(worst - gentle_threshold)
    return torch.exp(-fall)


def view_probabilities(logits: torch.Tensor, r: torch.Tensor, z: torch.Tensor, head: HeadConfig) -> torch.Tensor:
    """logits (N, K, C), similarity r (N, K), draws z (N, K, M, C) -> (N, K, M, C) the
    probabilities of every draw of every view.

    A view's calibrated logits are drawn from N(r * logits / T, sigma0^2 (1 - r^2)): near
    the data the network's own calibrated answer, with no spread; far from it the prior,
    whose draws are confident and disagree, so their mean turns uniform while each stays
    sharp: the uncertainty is then epistemic, not aleatoric."""
    r = r.unsqueeze(-1)  # (N, K, 1)
    mean = (r * logits / head.temperature).unsqueeze(2)  # (N, K, 1, C)
    std = (head.sigma0 * torch.sqrt((1 - r * r).clamp_min(0.0))).unsqueeze(2)  # (N, K, 1, 1)
    return torch.softmax(mean + std * z.to(logits.dtype), dim=-1)


@dataclass
class Decomposition:
    probs: torch.Tensor  # (N, C) mean over views and draws
    total: torch.Tensor  # (N,)
    aleatoric: torch.Tensor  # (N,)
    epistemic: torch.Tensor  # (N,)


def decompose(draw_probs: torch.Tensor) -> Decomposition:
    """(N, K, M, C) probabilities of every draw -> mean distribution and the uncertainty
    split: total = H(mean), aleatoric = mean H(draw), epistemic = total - aleatoric."""
    flat = draw_probs.flatten(1, 2)  # (N, K * M, C)
    probs = flat.mean(1)
    total = entropy(probs)
    aleatoric = entropy(flat).mean(1)
    # Jensen makes this >= 0; clamp only float round-off and keep total = sum of parts.
    epistemic = (total - aleatoric).clamp_min(0.0)
    aleatoric = total - epistemic
    return Decomposition(probs, total, aleatoric, epistemic)
