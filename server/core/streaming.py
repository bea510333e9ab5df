"""Answers a stream of requests in order while letting several wait in the batcher at once."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

from server.errors import DeadlineExceeded, ServiceError

T = TypeVar("T")
R = TypeVar("R")


async def ordered(
    source: AsyncIterable[T], handle: Callable[[T], Awaitable[R]], window: int
) -> AsyncIterator[R | ServiceError]:
    """Yields handle(x) for each x of `source`, in order; a ServiceError is yielded in its
    place, any other error propagates. At most `window` requests are in flight."""
    pending: asyncio.Queue[asyncio.Future | None] = asyncio.Queue(window)

    async def feed() -> None:
        try:
            async for request in source:
                await pending.put(asyncio.ensure_future(handle(request)))
        finally:
            await pending.put(None)

    feeder = asyncio.create_task(feed())
    # read here too, so that an error after the consumer left (the call ended) is not
    # logged as never retrieved; `await feeder` below still raises it
    feeder.add_done_callback(lambda task: task.cancelled() or task.exception())
    try:
        while (task := await pending.get()) is not None:
            try:
                yield await task
            except ServiceError as error:
                yield error
        await feeder  # raises what ended the source, if anything did
    finally:
        feeder.cancel()
        while not pending.empty():
            if (task := pending.get_nowait()) is not None:
                task.cancel()


async def idle_limited(source: AsyncIterable[T], idle_timeout_s: float | None) -> AsyncIterator[T]:
    """`source`, ended with DeadlineExceeded when no message arrives for `idle_timeout_s`
    (None: no limit), so an idle stream does not hold its connection forever."""
    iterator = aiter(source)
    while True:
        try:
            item = await asyncio.wait_for(anext(iterator), idle_timeout_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise DeadlineExceeded(f"the stream was idle for {idle_timeout_s:g} s") from None
        yield item
