"""The compact transformer encoder classifier (whole model in one file, no training code)."""
from __future__ import annotations

from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import NetworkConfig

# The precisions the transformer blocks can run in at inference (Encoder.compute_in).
COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def split_runs(x: torch.Tensor, runs: list[tuple[int, int]]) -> list[torch.Tensor]:
    """(N, F) packed sequences -> one (count, length, F) view per run of equal length."""
    parts = torch.split(x, [length * count for length, count in runs])
    return [p.view(count, length, -1) for p, (length, count) in zip(parts, runs, strict=True)]


class SelfAttention(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        return self.proj(self._attend(self.qkv(x), attn_mask))

    def packed(self, x: torch.Tensor, runs: list[tuple[int, int]]) -> torch.Tensor:
        """x: (N, C), sequences laid end to end; runs: (length, count) of consecutive
        sequences of one length. Attention runs per run, so it needs no mask."""
        # attention itself in float32 whatever the blocks' precision: on CPU float32
        # attention over these short runs is faster than bfloat16, and exact
        qkv = self.qkv(x).float()  # (N, 3C)
        y = [self._attend(run, None).flatten(0, 1) for run in split_runs(qkv, runs)]
        return self.proj(torch.cat(y).to(x.dtype))  # (N, C)

    def _attend(self, qkv: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, T, 3C) -> (B, T, C)"""
        B, T, C3 = qkv.shape
        C = C3 // 3
        q, k, v = qkv.split(C, dim=2)
        # (B, T, C) -> (B, H, T, C/H)
        q = q.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        k = k.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        v = v.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        return y.transpose(1, 2).reshape(B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc_out = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x), attn_mask))
        return x + self.drop(self._mlp(x))

    def packed(self, x: torch.Tensor, runs: list[tuple[int, int]]) -> torch.Tensor:
        """The same on (N, C) packed sequences (SelfAttention.packed)."""
        x = x + self.drop(self.attn.packed(self.ln_1(x), runs))
        return x + self.drop(self._mlp(x))

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc(self.ln_2(x))))


class Encoder(nn.Module):
    """Token ids and per-view position ids -> pooled features and class logits."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id)
        self.emb_proj = nn.Linear(cfg.embed_dim, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_len + cfg.max_offset, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.classifier = nn.Linear(cfg.d_model, cfg.n_labels)
        # In-domain vs background text (outlier exposure): a log density ratio estimate.
        self.domain = nn.Linear(cfg.d_model, 1)
        # Training-only head: regress a teacher's sentence embedding so the features keep
        # what a text is about (topic, language), which the density head relies on.
        self.distill = nn.Linear(cfg.d_model, cfg.distill_dim) if cfg.distill_dim else None
        self.compute_dtype = torch.float32

    def compute_in(self, dtype: torch.dtype) -> None:
        """Inference only: the transformer blocks, weights and activations, in `dtype`.
        Embeddings, the final norm and the heads stay float32, so the pooled features leave
        the blocks in float32. bfloat16 rounds each element on its own (no scale shared by a
        batch), so a text's answer still depends on that text alone."""
        self.blocks.to(dtype)
        self.compute_dtype = dtype

    def features(self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, pos: (B, T) long; mask: (B, T) bool, True on real tokens -> (B, C) features."""
        x = self.emb_proj(self.tok_emb(ids)) + self.pos_emb(pos)  # (B, T, C)
        x = self.drop(x)
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, T): keys that may be attended to
        for block in self.blocks:
            x = block(x, attn_mask)
        x = self.ln_f(x)
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        return (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # masked mean pool, (B, C)

    def packed_features(self, ids: torch.Tensor, pos: torch.Tensor, runs: list[tuple[int, int]]) -> torch.Tensor:
        """ids, pos: (N,) long, sequences laid end to end without padding; runs: (length,
        count) of consecutive sequences of one length -> (sequences, C) features. Inference
        uses it: no layer computes a padded position (12% of a padded batch's rows)."""
        x = self.drop(self.emb_proj(self.tok_emb(ids)) + self.pos_emb(pos))  # (N, C)
        x = x.to(self.compute_dtype)
        for block in cast("list[Block]", self.blocks):  # a ModuleList's items are typed Module
            x = block.packed(x, runs)
        x = self.ln_f(x.float())
        return torch.cat([run.mean(1) for run in split_runs(x, runs)])

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor):
        """-> class logits (B, n_labels), features (B, C), in-domain logit (B,)."""
        return self.head(self.features(ids, pos, mask))

    def packed(self, ids: torch.Tensor, pos: torch.Tensor, runs: list[tuple[int, int]]):
        """forward() on packed sequences (packed_features)."""
        return self.head(self.packed_features(ids, pos, runs))

    def head(self, h: torch.Tensor):
        """(B, C) features -> class logits (B, n_labels), features, in-domain logit (B,)."""
        return self.classifier(h), h, self.domain(h).squeeze(-1)
