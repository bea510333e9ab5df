"""The encoder's packed inference path against its padded training path."""
from __future__ import annotations

import torch

from model.config import NetworkConfig
from model.network import Encoder


def test_packed_sequences_give_the_padded_forward_answers():
    torch.manual_seed(0)
    enc = Encoder(NetworkConfig(vocab_size=50, d_model=32, d_ff=64, embed_dim=16, n_heads=4, max_len=16)).eval()
    seqs = [[1, 5, 6, 2], [1, 7, 2], [1, 8, 9, 10, 11, 2], [1, 12, 13, 2]]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    runs: list[tuple[int, int]] = []
    for i in order:
        n = len(seqs[i])
        if runs and runs[-1][0] == n:
            runs[-1] = (n, runs[-1][1] + 1)
        else:
            runs.append((n, 1))
    ids = torch.tensor([t for i in order for t in seqs[i]])
    pos = torch.cat([torch.arange(len(seqs[i])) + i for i in order])  # offsets, as the views shift them
    T = max(map(len, seqs))
    pad_ids = torch.zeros(len(seqs), T, dtype=torch.long)
    pad_pos = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        pad_ids[i, : len(s)] = torch.tensor(s)
        pad_pos[i, : len(s)] = torch.arange(len(s)) + i
        mask[i, : len(s)] = True
    with torch.no_grad():
        packed = enc.packed(ids, pos, runs)
        padded = enc(pad_ids, pad_pos, mask)
    assert runs == [(3, 1), (4, 2), (6, 1)]
    for got, want in zip(packed, padded):
        assert torch.allclose(got, want[order], atol=1e-5)
