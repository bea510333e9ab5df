"""Batches of texts of like length. A batch is padded to its longest text, and attention
costs the square of that length: random batches of short texts pad to several times their
pieces, so training computes mostly padding. Cutting batches from a sorted pool of a few
batches' worth of shuffled texts keeps the randomness of the order and wastes little."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Shuffler(Protocol):
    def shuffle(self, x: list, /) -> None: ...


def by_length(order: Sequence[int], lengths: Sequence[int], batch_size: int, rng: Shuffler,
              pool: int) -> list[list[int]]:
    """The items of `order` (shuffled already) in batches of batch_size: each pool of
    pool * batch_size consecutive items sorted by length and cut into batches, the batches
    then shuffled. pool 0: the batches in `order` as they come."""
    if pool <= 0:
        return [list(order[b : b + batch_size]) for b in range(0, len(order), batch_size)]
    batches = []
    span = pool * batch_size
    for start in range(0, len(order), span):
        part = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches
