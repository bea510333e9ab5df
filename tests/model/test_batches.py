"""Batches of like length (model/batches.py): every item once, little padding, still random."""
from __future__ import annotations

import random

from model.batches import by_length


def _padded(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) for b in batches)


def test_every_item_once_in_batches_that_pad_little():
    rng = random.Random(0)
    lengths = [rng.randint(3, 128) for _ in range(1000)]
    order = list(range(1000))
    rng.shuffle(order)
    batches = by_length(order, lengths, 32, random.Random(1), pool=8)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    plain = by_length(order, lengths, 32, random.Random(1), pool=0)
    assert [i for b in plain for i in b] == order  # pool 0: the order as given
    assert _padded(batches, lengths) < 0.7 * _padded(plain, lengths)
    # another seed, other batches: the order stays random
    assert by_length(order, lengths, 32, random.Random(2), pool=8) != batches
