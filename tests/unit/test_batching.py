"""The batcher on its own, around the real model held at a gate."""
from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from server.core.batching import Batcher
from server.core.metrics import Metrics
from server.errors import Overloaded
from tests.harness import Gated


def _batcher(gated: Gated, **kw) -> tuple[Batcher, Metrics]:
    metrics = Metrics(CollectorRegistry())
    options = {"max_batch_size": 8, "max_delay_s": 0.05, "max_queue": 300, "retry_after_s": 1} | kw
    batcher = Batcher(lambda texts, r: gated.predict(texts, with_reasoning=r), metrics, **options)
    batcher.start()
    return batcher, metrics


def _far() -> float:
    return time.monotonic() + 60


async def test_texts_arriving_together_share_a_batch(predictor) -> None:
    gated = Gated(predictor)
    batcher, metrics = _batcher(gated)
    texts = [f"text {i}" for i in range(20)]
    results = await asyncio.gather(*(batcher.submit([t], with_reasoning=False, deadline=_far()) for t in texts))
    assert [r[0].label for r in results] == [p.label for p in predictor.predict(texts)]
    sizes = metrics.registry.get_sample_value("bet_batch_size_count")
    assert sizes is not None and sizes <= 4  # 20 texts in at most 4 passes of up to 8
    await batcher.drain(5)


async def test_reasoning_and_plain_texts_do_not_mix(predictor) -> None:
    gated = Gated(predictor)
    batcher, _ = _batcher(gated)
    plain, reasoned = await asyncio.gather(
        batcher.submit(["plain"], with_reasoning=False, deadline=_far()),
        batcher.submit(["reasoned"], with_reasoning=True, deadline=_far()),
    )
    assert plain[0].reasoning is None and reasoned[0].reasoning is not None
    await batcher.drain(5)


async def test_full_queue_refuses_at_once_and_drain_finishes_queued(predictor) -> None:
    gated = Gated(predictor)
    gated.gate.clear()
    batcher, _ = _batcher(gated, max_batch_size=1, max_queue=256)
    first = asyncio.ensure_future(batcher.submit(["held"], with_reasoning=False, deadline=_far()))
    await asyncio.to_thread(gated.entered.wait, 10)
    queued = asyncio.ensure_future(batcher.submit([f"q{i}" for i in range(256)], with_reasoning=False,
                                                  deadline=_far()))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        await batcher.submit(["one more"], with_reasoning=False, deadline=_far())
    gated.gate.set()
    drain = asyncio.ensure_future(batcher.drain(30))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded, match="shutting down"):
        await batcher.submit(["late"], with_reasoning=False, deadline=_far())
    await drain
    assert len(await queued) == 256 and (await first)[0].label
