"""The expectation over views: one batched forward pass for every window of every view of
many texts, then each view's outputs as the piece-weighted mean of its windows'."""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from . import shards, windows
from .config import SCORES, HeadConfig, ModelConfig
from .network import Encoder
from .ngrams import NgramHead
from .uncertainty import (
    Decomposition,
    FeatureDensity,
    PieceShape,
    UnigramDensity,
    decompose,
    similarity,
    view_probabilities,
)
from .views import draws_from

# Sequences are computed without padding (Encoder.packed): a text's arithmetic then never
# depends on what else shares its batch. A group holds at most GROUP_TOKENS positions,
# which bounds memory: one group at a time in each shard.
GROUP_TOKENS = 64 * 4 * 128
_WIDE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bet-ngrams")


@dataclass
class ViewOutputs:
    logits: torch.Tensor  # (N, K, C) the transformer's, over each view's windows
    feats: torch.Tensor  # (N, K, D) pooled features
    domain: torch.Tensor  # (N, K) in-domain logit
    z: torch.Tensor  # (N, K, M, C) posterior draws
    ngram_logits: torch.Tensor  # (N, C) the wide part's class logits, of the whole text (zeros without it)
    ngram_domain: torch.Tensor  # (N,) its in-domain logit
    pieces: torch.Tensor  # (N,) word pieces of each text

    def view_logits(self, head: HeadConfig, width: int) -> torch.Tensor:
        """(N, K, C) each view's logits: the transformer's plus the weighted n-gram logits
        (a text longer than one window weighs them by head.long_ngram_weight where set),
        scaled by (pieces / width) ** window_gain for a text longer than one window."""
        ratio = self.pieces.to(self.logits.dtype) / width
        gain = torch.clamp(ratio, min=1.0) ** head.window_gain
        weight = torch.full_like(ratio, head.ngram_weight)
        if head.long_ngram_weight is not None:
            weight = torch.where(ratio > 1.0, head.long_ngram_weight, weight)
        return (self.logits + weight[:, None, None] * self.ngram_logits.unsqueeze(1)) * gain[:, None, None]


@dataclass
class Expectation:
    encoder: Encoder
    density: FeatureDensity | None
    unigram: UnigramDensity | None
    cfg: ModelConfig
    device: torch.device
    ngrams: NgramHead | None = None
    shape: PieceShape | None = None

    @torch.inference_mode()
    def raw(self, bodies: list[list[int]], seeds: list[int],
            drops: Sequence[tuple[int, int] | None] | None = None) -> ViewOutputs:
        """Every view's outputs for texts given as word pieces (no [CLS]/[SEP]), in input
        order. drops (occlusion, windows.plan): texts with a span left out; their windows
        that recur (same ids, same offset) are computed once, as the variants of one text
        share all windows but those that held the word."""
        p = windows.plan(bodies, seeds, self.cfg.views, self.cfg.network, drops)
        dedupe = drops is not None
        seqs, pos = p.seqs, p.pos
        N, K = len(bodies), self.cfg.views.n_views
        kept = bodies if drops is None else [windows.dropped(b, d) for b, d in zip(bodies, drops, strict=True)]
        # The n-gram head reads no positions, so it reads each text whole, once. It is
        # Python and scikit-learn work, on a helper thread while the forward passes run in
        # torch, which releases the GIL.
        whole = [[self.cfg.network.cls_id, *b, self.cfg.network.sep_id] for b in kept]
        wide_job = _WIDE.submit(self.ngrams, whole) if self.ngrams is not None else None
        if dedupe:
            index: dict[tuple, int] = {}
            inverse = np.array([index.setdefault((tuple(s), int(q[0])), len(index))
                                for s, q in zip(seqs, pos, strict=True)])
            first = np.unique(inverse, return_index=True)[1]
            seqs, pos = [seqs[i] for i in first], [pos[i] for i in first]
        else:
            inverse = None
        # by length, so that each length is one run of attention; shards of near-equal work
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        split = shards.split(order, lambda i: len(seqs[i]), shards.shard_count(self.device, len(seqs)))
        parts: list = [None] * len(seqs)
        for shard in shards.run(lambda idx: self._forward(seqs, pos, idx), split):
            for i, part in shard:
                parts[i] = part
        logits, feats, domain = (torch.stack(x) for x in zip(*parts, strict=True))  # per unique sequence
        if inverse is not None:
            idx = torch.from_numpy(inverse)
            logits, feats, domain = (x[idx] for x in (logits, feats, domain))
        if wide_job is not None:
            wide, wide_domain = wide_job.result()
        else:
            wide, wide_domain = logits.new_zeros(N, logits.shape[-1]), logits.new_zeros(N)
        mean = _view_mean(p.owner, p.weight, N * K)
        C = self.cfg.network.n_labels
        u = np.stack([v.u for v in p.views]) if p.views else np.zeros((0, K, self.cfg.views.n_draws, C - 1))
        z = torch.from_numpy(draws_from(u, C))
        return ViewOutputs(
            logits=mean(logits).view(N, K, -1), feats=mean(feats).view(N, K, -1), domain=mean(domain).view(N, K),
            z=z, ngram_logits=wide, ngram_domain=wide_domain, pieces=torch.tensor([len(b) for b in kept]),
        )

    def _forward(self, seqs: list[list[int]], pos: list[np.ndarray], order: list[int]) -> list[tuple[int, tuple]]:
        """The encoder over sequences `order` (ascending length), in groups of at most
        GROUP_TOKENS positions -> (sequence index, (logits, features, domain)) each."""
        out: list[tuple[int, tuple]] = []
        start = 0
        while start < len(order):
            end, tokens = start + 1, len(seqs[order[start]])
            while end < len(order) and tokens + len(seqs[order[end]]) <= GROUP_TOKENS:
                tokens += len(seqs[order[end]])
                end += 1
            idx = order[start:end]
            ids = torch.from_numpy(np.concatenate([np.asarray(seqs[i], dtype=np.int64) for i in idx]))
            where = torch.from_numpy(np.concatenate([pos[i] for i in idx]))
            runs: list[tuple[int, int]] = []
            for i in idx:
                n = len(seqs[i])
                if runs and runs[-1][0] == n:
                    runs[-1] = (n, runs[-1][1] + 1)
                else:
                    runs.append((n, 1))
            lg, h, dom = self.encoder.packed(ids.to(self.device), where.to(self.device), runs)
            # the head works in float64 so that its steep similarity does not magnify
            # float32 rounding in the features
            lg, h, dom = lg.double().cpu(), h.double().cpu(), dom.double().cpu()
            out.extend((i, (lg[j], h[j], dom[j])) for j, i in enumerate(idx))
            start = end
        return out

    def scores(self, out: ViewOutputs, bodies: list[list[int]]) -> torch.Tensor:
        """(N, K, S) unfamiliarity, in config.SCORES order (see there)."""
        N, K, D = out.feats.shape
        zeros = out.domain.new_zeros(N, K)
        named = {
            "feature_distance": self.density.d2(out.feats.reshape(N * K, D)).view(N, K) if self.density else zeros,
            "neg_domain_logit": -out.domain,
            "neg_ngram_domain_logit": -out.ngram_domain.to(out.domain.dtype)[:, None].expand(N, K),
        }
        if self.unigram is not None:  # per text, over all of its pieces
            uni = self.unigram.scores(bodies).to(out.domain.dtype)
            named["unigram_nll"] = uni[:, 0, None].expand(N, K)
            named["general_english_ratio"] = uni[:, 1, None].expand(N, K)
        if self.shape is not None:
            shape = self.shape.scores(bodies).to(out.domain.dtype)
            named["symbol_share"] = shape[:, 0, None].expand(N, K)
            named["fragment_share"] = shape[:, 1, None].expand(N, K)
        return torch.stack([named.get(name, zeros) for name in SCORES], dim=-1)

    def similarity(self, out: ViewOutputs, bodies: list[list[int]]) -> torch.Tensor:
        """(N, K) in (0, 1]; all ones until the head is fitted."""
        if self.density is None:
            return torch.ones(out.domain.shape, dtype=out.domain.dtype)
        return similarity(self.scores(out, bodies), out.pieces, self.cfg.head)

    def combine(self, out: ViewOutputs, r: torch.Tensor) -> Decomposition:
        head = self.cfg.head
        logits = out.view_logits(head, windows.window_pieces(self.cfg.network))
        return decompose(view_probabilities(logits, r, out.z, head))

    def __call__(self, bodies: list[list[int]], seeds: list[int],
                 drops: Sequence[tuple[int, int] | None] | None = None) -> Decomposition:
        out = self.raw(bodies, seeds, drops)
        kept = bodies if drops is None else [windows.dropped(b, d) for b, d in zip(bodies, drops, strict=True)]
        return self.combine(out, self.similarity(out, kept))


def _view_mean(owner: np.ndarray, weight: np.ndarray, groups: int):
    """x (S, ...) per window -> (groups, ...) the weight-averaged rows of each owner."""
    w = torch.from_numpy(weight)
    own = torch.from_numpy(owner)
    total = torch.zeros(groups, dtype=torch.float64).index_add_(0, own, w)

    def mean(x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        flat = x.reshape(len(x), -1) * w[:, None]
        acc = torch.zeros(groups, flat.shape[1], dtype=torch.float64).index_add_(0, own, flat)
        return (acc / total[:, None]).view(groups, *x.shape[1:])

    return mean
