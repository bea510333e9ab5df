"""The encoder's packed inference path against its padded training path."""
from __future__ import annotations

import torch

from model.config import NetworkConfig, ViewConfig
from model.network import Encoder
from model.views import draw_views, positions


def test_packed_sequences_give_the_padded_forward_answers():
    torch.manual_seed(0)
    ncfg = NetworkConfig(vocab_size=50, d_model=32, d_ff=64, embed_dim=16, n_heads=4, max_len=16, max_offset=8)
    enc = Encoder(ncfg).eval()
    seqs = [[1, 7, 2], [1, 5, 6, 2], [1, 12, 13, 2], [1, 8, 9, 10, 11, 2]]  # sorted by length
    offsets = [int(draw_views(seed, ViewConfig(n_views=1), ncfg).offsets[0]) for seed in (11, 12, 13, 14)]
    pos_list = [torch.from_numpy(positions(len(s), o)) for s, o in zip(seqs, offsets)]
    flat_pos = torch.cat(pos_list)
    assert flat_pos.tolist() != torch.cat([torch.arange(len(s)) for s in seqs]).tolist()  # offsets drawn
    T = max(map(len, seqs))
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    pos = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    for i, p in enumerate(pos_list):
        ids[i, : len(p)] = torch.tensor(seqs[i])
        pos[i, : len(p)] = p  # the same seeded offsets
        mask[i, : len(p)] = True
    runs = [(3, 1), (4, 2), (6, 1)]
    with torch.no_grad():
        packed = enc.packed(torch.tensor([t for s in seqs for t in s]), flat_pos, runs)
        padded = enc(ids, pos, mask)
    for got, want in zip(packed, padded):
        assert torch.allclose(got, want, atol=1e-5)
