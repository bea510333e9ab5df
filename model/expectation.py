"""The expectation over views: one batched forward pass for all K views of many texts."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import ModelConfig
from .network import Encoder
from .uncertainty import Decomposition, FeatureDensity, decompose, view_probabilities
from .views import make_views

# Texts are grouped by length so that short texts are not padded to a long neighbour's
# length; a group holds at most this many (view x token) positions.
GROUP_TOKENS = 64 * 4 * 48


@dataclass
class Expectation:
    encoder: Encoder
    density: FeatureDensity | None
    cfg: ModelConfig
    device: torch.device

    @torch.inference_mode()
    def raw(self, seqs: list[list[int]], seeds: list[int]):
        """Per-view logits (N, K, C), features (N, K, D) and draws z (N, K, C), input order."""
        K = self.cfg.views.n_views
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        logits = [None] * len(seqs)
        feats = [None] * len(seqs)
        zs = [None] * len(seqs)
        start = 0
        while start < len(order):
            # grow the group while its padded size stays within the budget
            end = start + 1
            while end < len(order) and (end + 1 - start) * K * len(seqs[order[end]]) <= GROUP_TOKENS:
                end += 1
            idx = order[start:end]
            vb = make_views([seqs[i] for i in idx], [seeds[i] for i in idx], self.cfg.views, self.cfg.network)
            lg, h = self.encoder(vb.ids.to(self.device), vb.pos.to(self.device), vb.mask.to(self.device))
            lg = lg.float().cpu().view(len(idx), K, -1)
            h = h.float().cpu().view(len(idx), K, -1)
            for j, i in enumerate(idx):
                logits[i], feats[i], zs[i] = lg[j], h[j], vb.z[j]
            start = end
        return torch.stack(logits), torch.stack(feats), torch.stack(zs)

    def d2(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, K, D) -> (N, K) distances; zeros when no density was fitted yet."""
        if self.density is None:
            return torch.zeros(feats.shape[:2])
        N, K, D = feats.shape
        return self.density.d2(feats.reshape(N * K, D)).view(N, K)

    def combine(self, logits, feats, z) -> Decomposition:
        vp = view_probabilities(logits, self.d2(feats), z, self.cfg.head)
        return decompose(vp)

    def __call__(self, seqs: list[list[int]], seeds: list[int]) -> Decomposition:
        return self.combine(*self.raw(seqs, seeds))
