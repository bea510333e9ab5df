"""Splits a CPU forward pass by texts across threads that run one torch thread each.

torch's intra-op threads split every op between the cores. The encoder over many short
sequences is thousands of small ops (one attention call per sequence length and layer), and
on two cores their fork and join cost more than the split saves. Giving each core its own
texts keeps every op on one thread: the encoder ran 1.3-1.6x faster on a 2-core machine
(docs/model-history.md, "Measured"). A text's arithmetic is its own either way (texts are
packed without padding), so the answers do not depend on the shard count.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

_pools: dict[int, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def shard_count(device: torch.device, n_items: int) -> int:
    """As many shards as the calling thread may use torch threads, on CPU; one on CUDA, whose
    kernels are few and large."""
    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), n_items))


def split(order: Sequence[int], cost: Callable[[int], float], shards: int) -> list[list[int]]:
    """Items in `order` (ascending length) cut into at most `shards` consecutive parts of
    near-equal total cost. Consecutive, so that each length is one attention call in one
    shard (dealt round-robin, every shard made one call per length: 3% slower)."""
    costs = [cost(i) for i in order]
    total = sum(costs) or 1.0
    parts: list[list[int]] = [[] for _ in range(shards)]
    done = 0.0
    for i, c in zip(order, costs, strict=True):
        parts[min(shards - 1, int(done * shards / total))].append(i)
        done += c
    return [p for p in parts if p]


def run(fn: Callable[[T], R], parts: Sequence[T]) -> list[R]:
    """fn over parts: inline for one part, else on a pool of single-torch-thread workers.
    Each worker enters inference mode itself (it is thread-local)."""
    if len(parts) == 1:
        return [fn(parts[0])]
    return list(_pool(len(parts)).map(lambda p: _inference(fn, p), parts))


def _inference(fn: Callable[[T], R], part: T) -> R:
    with torch.inference_mode():
        return fn(part)


def _pool(size: int) -> ThreadPoolExecutor:
    with _lock:
        if size not in _pools:
            _pools[size] = ThreadPoolExecutor(
                max_workers=size, thread_name_prefix="bet-shard", initializer=torch.set_num_threads, initargs=(1,)
            )
        return _pools[size]
