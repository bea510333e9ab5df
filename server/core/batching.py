"""The dynamic batcher: texts from every protocol wait in one bounded queue and run together
when a batch is full or the oldest text has waited the maximum delay. The forward pass runs
on one worker thread, so the event loop keeps serving while the model computes.

Admission: a text is refused at once (Overloaded: 503 / UNAVAILABLE with Retry-After) when
the queue is full, or when its expected wait, the work ahead of it divided by the measured
throughput, is over the admission budget: a caller gets an answer in time or a fast no.
Work is counted in windows (model/windows.py): a long text is read as several, and costs as
many forward passes per view."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from model.types import Prediction
from model.windows import TooLong
from server.core.metrics import Metrics
from server.errors import DeadlineExceeded, Internal, InvalidInput, Overloaded

log = logging.getLogger(__name__)

# The model's entry point: texts in, one Prediction per text in order.
PredictFn = Callable[[Sequence[str], bool], list[Prediction]]
# Each text's cost in windows; raises windows.TooLong for a text the model will not read.
CostFn = Callable[[Sequence[str]], list[int]]


@dataclass(eq=False)
class _Item:
    text: str
    with_reasoning: bool
    deadline: float  # time.monotonic() after which the text is dropped, not computed
    windows: int  # its cost
    enqueued: float = field(default_factory=time.monotonic)
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Batcher:
    def __init__(
        self,
        predict: PredictFn,
        metrics: Metrics,
        *,
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int,
        retry_after_s: int,
        admission_budget_s: float = 0.0,
        torch_threads: int = 0,
        cost: CostFn | None = None,
    ) -> None:
        self._predict = predict
        self._cost = cost  # None: every text is one window
        self._metrics = metrics
        self._max_batch_size = max_batch_size
        self._max_delay_s = max_delay_s
        self._max_queue = max_queue
        self._retry_after_s = retry_after_s
        self._admission_budget_s = admission_budget_s  # 0: admit by queue length alone
        self._throughput: float | None = None  # windows/s of recent full forward passes (moving average)
        self._in_flight = 0  # windows in the forward pass now
        self._queued = 0  # windows in the queue
        self._queue: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        # One thread: the model is called from one thread only, one batch at a time.
        # torch_threads > 0 sets the worker's torch threads, over which the model splits a
        # batch's texts (model/shards.py); the answers are the same for any count.
        init = (lambda: torch.set_num_threads(torch_threads)) if torch_threads > 0 else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bet-forward", initializer=init)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bet-batcher")

    async def submit(
        self, texts: Sequence[str], *, with_reasoning: bool, deadline: float
    ) -> list[Prediction]:
        """Queues `texts` together (all or none) and waits for their predictions. A text of
        more word pieces than the model reads is InvalidInput."""
        try:
            costs = self._cost(texts) if self._cost is not None else [1] * len(texts)
        except TooLong as exc:
            raise InvalidInput(str(exc)) from None
        self.admit(sum(costs))
        items = [_Item(text, with_reasoning, deadline, c) for text, c in zip(texts, costs, strict=True)]
        self._queue.extend(items)
        self._queued += sum(costs)
        self._metrics.queue_depth.set(len(self._queue))
        self._arrived.set()
        try:
            return list(await asyncio.gather(*(item.future for item in items)))
        finally:
            # The caller has gone or one text failed: the rest need not be computed.
            for item in items:
                item.future.cancel()

    def admit(self, count: int) -> None:
        """Raises Overloaded when `count` windows would be refused now: shutting down, the
        queue full, or their expected wait over the admission budget. The doors ask before
        reading a request (a refusal costs little), submit() again when queueing."""
        if self._closing:
            raise Overloaded("the server is shutting down", retry_after_s=self._retry_after_s)
        if self._queued + count > self._max_queue:
            self._metrics.child(self._metrics.dropped, "queue_full").inc(count)
            raise Overloaded(
                f"the queue is full ({self._max_queue} windows of text); retry later",
                retry_after_s=self._retry_after_s,
            )
        wait_s = self.expected_wait_s()
        if wait_s is not None and wait_s > self._admission_budget_s > 0:
            self._metrics.child(self._metrics.dropped, "expected_wait").inc(count)
            raise Overloaded(
                f"the expected wait ({round(wait_s * 100) * 10} ms) is over the admission budget "
                f"({self._admission_budget_s * 1000:.0f} ms); retry later",
                retry_after_s=self._retry_after_s,
            )

    def expected_wait_s(self) -> float | None:
        """Seconds before a text queued now starts computing at the measured throughput: the
        queue's windows and the pass in flight go first (so an idle server admits any
        request). None until a forward pass was measured."""
        if self._throughput is None:
            return None
        return (self._queued + self._in_flight) / self._throughput

    async def drain(self, timeout_s: float) -> None:
        """Refuses new texts, computes the queued ones, then stops (within `timeout_s`)."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                self._task.cancel()
                for item in self._queue:
                    item.future.cancel()
        self._executor.shutdown(wait=False)

    async def _run(self) -> None:
        while self._queue or not self._closing:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self._wait_for_batch()
            batch = self._take()
            self._metrics.queue_depth.set(len(self._queue))
            if batch:
                await self._compute(batch)

    async def _wait_for_batch(self) -> None:
        """Returns when a batch is full, the oldest text waited max delay, or we drain."""
        close_at = self._queue[0].enqueued + self._max_delay_s
        while not self._closing and self._queued < self._max_batch_size:
            remaining = close_at - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Item]:
        """Pops live texts that share the first one's reasoning flag, up to max_batch_size
        windows (a longer text alone); drops those whose caller has gone and answers those
        past their deadline."""
        now = time.monotonic()
        batch: list[_Item] = []
        windows = 0
        keep: deque[_Item] = deque()
        while self._queue:
            item = self._queue.popleft()
            if item.future.done():
                self._metrics.dropped.labels("cancelled").inc()
            elif now > item.deadline:
                self._metrics.dropped.labels("deadline").inc()
                item.future.set_exception(
                    DeadlineExceeded("the request waited past its deadline and was not computed")
                )
            elif not batch or (windows + item.windows <= self._max_batch_size
                               and item.with_reasoning == batch[0].with_reasoning):
                batch.append(item)
                windows += item.windows
            else:
                keep.append(item)
        self._queue = keep
        self._queued = sum(item.windows for item in keep)
        return batch

    async def _compute(self, batch: list[_Item]) -> None:
        start = time.monotonic()
        for item in batch:
            self._metrics.queue_wait.observe(start - item.enqueued)
        self._metrics.batch_size.observe(len(batch))
        texts = [item.text for item in batch]
        loop = asyncio.get_running_loop()
        windows = sum(item.windows for item in batch)
        self._in_flight = windows
        predictions: Sequence[Prediction | Exception]  # an exception answers its text
        try:
            predictions = await loop.run_in_executor(
                self._executor, self._forward, texts, batch[0].with_reasoning
            )
        except Exception:
            log.exception("forward pass failed for a batch of %d", len(batch))
            if len(batch) > 1:  # one bad text must not fail the others: retry one by one
                for item in batch:
                    await self._compute([item])
                return
            predictions = [Internal("the model failed on this input")]
        finally:
            self._in_flight = 0
        elapsed = time.monotonic() - start
        self._metrics.forward.observe(elapsed)
        rate = windows / max(elapsed, 1e-6)
        # A batch short of full computes fewer texts per second than the model can: trusted
        # only to raise the estimate. Otherwise, under overload, refusals would keep batches
        # short, lower the estimate and refuse still more (goodput spiralling down).
        if self._throughput is None or rate > self._throughput or windows >= self._max_batch_size:
            self._throughput = rate if self._throughput is None else 0.8 * self._throughput + 0.2 * rate
        for item, prediction in zip(batch, predictions, strict=True):
            if item.future.done():
                continue
            if isinstance(prediction, Exception):
                item.future.set_exception(prediction)
            else:
                item.future.set_result(prediction)

    def _forward(self, texts: list[str], with_reasoning: bool) -> list[Prediction]:
        predictions = self._predict(texts, with_reasoning)
        if len(predictions) != len(texts):
            raise RuntimeError(f"model returned {len(predictions)} answers for {len(texts)} texts")
        return predictions
