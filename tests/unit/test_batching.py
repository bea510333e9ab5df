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


async def test_admission_refuses_by_expected_wait_not_count(predictor) -> None:
    gated = Gated(predictor)

    def slow(texts, with_reasoning):  # about 20 ms a text: a throughput near 40 texts/s
        time.sleep(0.02 * len(texts))
        return gated.predict(texts, with_reasoning=with_reasoning)

    metrics = Metrics(CollectorRegistry())
    batcher = Batcher(slow, metrics, max_batch_size=1, max_delay_s=0, max_queue=300, retry_after_s=1,
                      admission_budget_s=0.1)
    batcher.start()
    assert batcher.expected_wait_s() is None  # nothing measured yet: admission by count alone
    await batcher.submit(["measure"], with_reasoning=False, deadline=_far())
    assert batcher.expected_wait_s() == 0  # idle
    # An idle server admits a request larger than the budget's worth: nothing waits ahead of it.
    assert len(await batcher.submit([f"big {i}" for i in range(12)], with_reasoning=False,
                                    deadline=_far())) == 12
    gated.gate.clear()
    held = asyncio.ensure_future(batcher.submit(["held"], with_reasoning=False, deadline=_far()))
    await asyncio.to_thread(gated.entered.wait, 10)
    queued = asyncio.ensure_future(batcher.submit([f"q{i}" for i in range(10)], with_reasoning=False,
                                                  deadline=_far()))
    await asyncio.sleep(0)
    wait_s = batcher.expected_wait_s()
    assert wait_s is not None and wait_s > 0.1  # 11 texts ahead at about 40 texts/s
    began = time.monotonic()
    with pytest.raises(Overloaded, match="expected wait") as refused:
        await batcher.submit(["one more"], with_reasoning=False, deadline=_far())
    assert time.monotonic() - began < 0.01 and refused.value.retry_after_s == 1  # at once, with advice
    assert metrics.registry.get_sample_value("bet_dropped_total", {"reason": "expected_wait"}) == 1
    gated.gate.set()
    assert len(await queued) == 10 and (await held)[0].label
    await batcher.drain(5)


async def test_admission_budget_zero_admits_by_count_alone(predictor) -> None:
    gated = Gated(predictor)
    gated.gate.clear()
    batcher, _ = _batcher(gated, max_batch_size=1, admission_budget_s=0.0)
    batcher._throughput = 1.0  # one text a second: any queue would be over a budget
    held = asyncio.ensure_future(batcher.submit(["held"], with_reasoning=False, deadline=_far()))
    await asyncio.to_thread(gated.entered.wait, 10)
    queued = asyncio.ensure_future(batcher.submit([f"q{i}" for i in range(5)], with_reasoning=False,
                                                  deadline=_far()))
    await asyncio.sleep(0)
    assert batcher.expected_wait_s() == 6.0
    last = asyncio.ensure_future(batcher.submit(["admitted"], with_reasoning=False, deadline=_far()))
    gated.gate.set()
    assert len(await queued) == 5 and (await last)[0].label and (await held)[0].label
    await batcher.drain(5)


async def test_forward_worker_uses_the_configured_torch_threads(predictor) -> None:
    import torch

    seen: list[int] = []

    def record(texts, with_reasoning):
        seen.append(torch.get_num_threads())
        return predictor.predict(texts, with_reasoning=with_reasoning)

    batcher = Batcher(record, Metrics(CollectorRegistry()), max_batch_size=8, max_delay_s=0, max_queue=300,
                      retry_after_s=1, torch_threads=1)
    batcher.start()
    [answer] = await batcher.submit(["one thread"], with_reasoning=False, deadline=_far())
    assert seen == [1]
    alone = predictor.predict(["one thread"])[0]  # the caller's threads: the same answer, to 1e-6
    assert answer.label == alone.label and answer.confidence == pytest.approx(alone.confidence, abs=1e-6)
    assert answer.uncertainty.epistemic == pytest.approx(alone.uncertainty.epistemic, abs=1e-6)
    await batcher.drain(5)


async def test_a_long_text_counts_by_its_windows_in_the_queue_and_the_wait(predictor) -> None:
    from tests.model.test_windows import FILLER

    long_text = FILLER * 3
    [windows] = predictor.windows([long_text])
    assert windows > 4
    gated = Gated(predictor)
    gated.gate.clear()
    batcher, _ = _batcher(gated, max_batch_size=1, max_queue=256, cost=predictor.windows)
    first = asyncio.ensure_future(batcher.submit(["held"], with_reasoning=False, deadline=_far()))
    await asyncio.to_thread(gated.entered.wait, 10)
    queued = asyncio.ensure_future(batcher.submit([long_text] * (256 // windows), with_reasoning=False,
                                                  deadline=_far()))
    await asyncio.sleep(0)
    # the queue holds 256 // windows texts, but nearly 256 windows of them: a few more windows are refused
    with pytest.raises(Overloaded, match="windows"):
        await batcher.submit([long_text], with_reasoning=False, deadline=_far())
    assert batcher.expected_wait_s() is None or batcher.expected_wait_s() > 0
    gated.gate.set()
    await asyncio.gather(first, queued)
    await batcher.drain(5)


async def test_a_text_past_the_most_windows_is_invalid_input(predictor) -> None:
    from model.windows import TooLong
    from server.errors import InvalidInput

    def cost(texts):
        raise TooLong("the text is 40000 word pieces; the model reads at most 256 windows of 126")

    batcher, _ = _batcher(Gated(predictor), cost=cost)
    with pytest.raises(InvalidInput, match="40000 word pieces"):
        await batcher.submit(["x"], with_reasoning=False, deadline=_far())
    await batcher.drain(5)
