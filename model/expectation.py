"""The expectation over views: one batched forward pass for all K views of many texts."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from . import shards
from .config import ModelConfig
from .network import Encoder
from .ngrams import NgramHead
from .uncertainty import Decomposition, FeatureDensity, UnigramDensity, decompose, similarity, view_probabilities
from .views import pack_views

# Texts are computed without padding (Encoder.packed): a text's arithmetic then never
# depends on what else shares its batch. A group holds at most GROUP_TOKENS (view x token)
# positions, which bounds memory: one group at a time in each shard.
GROUP_TOKENS = 64 * 4 * 128
_WIDE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bet-ngrams")


@dataclass
class ViewOutputs:
    logits: torch.Tensor  # (N, K, C)
    feats: torch.Tensor  # (N, K, D)
    domain: torch.Tensor  # (N, K) in-domain logit
    z: torch.Tensor  # (N, K, C) posterior draws
    ngram_logits: torch.Tensor  # (N, C) the wide part's class logits (zeros without it)
    ngram_domain: torch.Tensor  # (N,) its in-domain logit

    def view_logits(self, ngram_weight: float) -> torch.Tensor:
        """(N, K, C) each view's logits: the transformer's plus the weighted n-gram logits."""
        return self.logits + ngram_weight * self.ngram_logits.unsqueeze(1)


@dataclass
class Expectation:
    encoder: Encoder
    density: FeatureDensity | None
    unigram: UnigramDensity | None
    cfg: ModelConfig
    device: torch.device
    ngrams: NgramHead | None = None

    @torch.inference_mode()
    def raw(self, seqs: list[list[int]], seeds: list[int]) -> ViewOutputs:
        """Every view's outputs, in input order."""
        # The n-gram head is Python and scikit-learn work; it runs on a helper thread while
        # the forward passes run in torch, which releases the GIL.
        wide_job = _WIDE.submit(self.ngrams, seqs) if self.ngrams is not None else None
        # by length, so that each length is one run of attention; shards of near-equal work
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        split = shards.split(order, lambda i: len(seqs[i]), shards.shard_count(self.device, len(seqs)))
        parts: list = [None] * len(seqs)
        for shard in shards.run(lambda idx: self._forward(seqs, seeds, idx), split):
            for i, part in shard:
                parts[i] = part
        logits, feats, domain, z = (torch.stack(x) for x in zip(*parts))
        if wide_job is not None:
            wide, wide_domain = wide_job.result()
        else:
            wide, wide_domain = logits.new_zeros(len(seqs), logits.shape[-1]), logits.new_zeros(len(seqs))
        return ViewOutputs(logits, feats, domain, z, wide, wide_domain)

    def _forward(self, seqs: list[list[int]], seeds: list[int], order: list[int]) -> list[tuple[int, tuple]]:
        """The encoder over texts `order` (ascending length), in groups of at most
        GROUP_TOKENS positions -> (text index, (logits, features, domain, z)) per text."""
        K = self.cfg.views.n_views
        out = []
        start = 0
        while start < len(order):
            end, tokens = start + 1, K * len(seqs[order[start]])
            while end < len(order) and tokens + K * len(seqs[order[end]]) <= GROUP_TOKENS:
                tokens += K * len(seqs[order[end]])
                end += 1
            idx = order[start:end]
            pv = pack_views([seqs[i] for i in idx], [seeds[i] for i in idx], self.cfg.views, self.cfg.network)
            lg, h, dom = self.encoder.packed(pv.ids.to(self.device), pv.pos.to(self.device), pv.runs)
            # the head works in float64 so that its steep similarity does not magnify
            # float32 rounding in the features
            lg = lg.double().cpu().view(len(idx), K, -1)
            h = h.double().cpu().view(len(idx), K, -1)
            dom = dom.double().cpu().view(len(idx), K)
            out.extend((i, (lg[j], h[j], dom[j], pv.z[j])) for j, i in enumerate(idx))
            start = end
        return out

    def scores(self, out: ViewOutputs, seqs: list[list[int]]) -> torch.Tensor:
        """(N, K, 5) unfamiliarity, config.SCORES: feature distance, minus the in-domain
        logit, unigram NLL, minus the n-gram in-domain logit, general-English ratio."""
        N, K, D = out.feats.shape
        d2 = self.density.d2(out.feats.reshape(N * K, D)).view(N, K) if self.density else out.domain.new_zeros(N, K)
        # unigram NLL and general-English ratio, (N, 2)
        uni = self.unigram.scores(seqs).to(out.domain.dtype) if self.unigram else out.domain.new_zeros(N, 2)
        per_text = torch.stack([uni[:, 0], -out.ngram_domain.to(out.domain.dtype), uni[:, 1]], dim=-1)  # (N, 3)
        return torch.cat([torch.stack([d2, -out.domain], dim=-1), per_text.unsqueeze(1).expand(N, K, 3)], dim=-1)

    def similarity(self, out: ViewOutputs, seqs: list[list[int]]) -> torch.Tensor:
        """(N, K) in (0, 1]; all ones until the head is fitted."""
        if self.density is None:
            return torch.ones(out.domain.shape, dtype=out.domain.dtype)
        return similarity(self.scores(out, seqs), pieces(seqs), self.cfg.head)

    def combine(self, out: ViewOutputs, r: torch.Tensor) -> Decomposition:
        return decompose(view_probabilities(out.view_logits(self.cfg.head.ngram_weight), r, out.z, self.cfg.head))

    def __call__(self, seqs: list[list[int]], seeds: list[int]) -> Decomposition:
        out = self.raw(seqs, seeds)
        return self.combine(out, self.similarity(out, seqs))


def pieces(seqs: list[list[int]]) -> torch.Tensor:
    """(N,) word pieces each text contributes (between [CLS] and [SEP])."""
    return torch.tensor([len(s) - 2 for s in seqs])
