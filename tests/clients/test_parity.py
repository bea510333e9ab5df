"""The Python client gives the same answers over gRPC and REST, sync and async."""
from __future__ import annotations

import asyncio
from typing import Any

from bet_client import AsyncClient, Client, Health
from tests.clients.conftest import TRANSPORTS, address_of
from tests.compare import assert_close
from tests.contract.texts import FRAGMENTS

TEXTS = [*FRAGMENTS[:6], "😀", "x" * 10_000]
OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"return_uncertainty": False, "confidence_threshold": 0.0},
    {"return_cot": True, "confidence_threshold": 0.0},
]


def _dump(answer: Any) -> Any:
    if isinstance(answer, list):
        return [_dump(a) for a in answer]
    return answer.model_dump() if hasattr(answer, "model_dump") else answer


def _sync_answers(client: Client) -> list[Any]:
    answers: list[Any] = []
    for opts in OPTION_SETS:
        answers += [client.predict(text, **opts) for text in TEXTS]
        answers.append(client.predict_batch(TEXTS, **opts))
        answers.append(list(client.stream(TEXTS, **opts)))
    return [*answers, client.model_info(), client.health()]


async def _async_answers(client: AsyncClient) -> list[Any]:
    answers: list[Any] = []
    for opts in OPTION_SETS:
        answers += await asyncio.gather(*(client.predict(text, **opts) for text in TEXTS))
        answers.append(await client.predict_batch(TEXTS, **opts))
        answers.append([a async for a in client.stream(TEXTS, **opts)])
    return [*answers, await client.model_info(), await client.health()]


def test_sync_answers_match_across_transports(served) -> None:
    by_transport = {}
    for transport in TRANSPORTS:
        with Client(address_of(served, transport), transport) as client:
            by_transport[transport] = _sync_answers(client)
    grpc_answers, rest_answers = by_transport["grpc"], by_transport["rest"]
    assert [type(a) for a in grpc_answers] == [type(a) for a in rest_answers]
    assert_close(_dump(grpc_answers), _dump(rest_answers))
    assert grpc_answers[-1] == Health(live=True, ready=True)
    with_cot = grpc_answers[2 * (len(TEXTS) + 2)]
    assert with_cot.cot_length is not None and with_cot.reasoning
    assert grpc_answers[0].reasoning is None and grpc_answers[0].uncertainty is not None
    assert grpc_answers[len(TEXTS) + 2].uncertainty is None


async def test_async_answers_match_sync_and_each_other(served) -> None:
    by_transport = {}
    for transport in TRANSPORTS:
        async with AsyncClient(address_of(served, transport), transport) as client:
            by_transport[transport] = await _async_answers(client)
    assert_close(_dump(by_transport["grpc"]), _dump(by_transport["rest"]))
    with Client(served.grpc_target) as client:
        assert_close(_dump(by_transport["rest"]), _dump(_sync_answers(client)))


async def test_async_stream_takes_an_async_iterable(served, transport: str) -> None:
    async def texts():
        for text in TEXTS[:3]:
            yield text

    async with AsyncClient(address_of(served, transport), transport) as client:
        streamed = [a async for a in client.stream(texts())]
        assert_close(_dump(streamed), _dump((await client.predict_batch(TEXTS[:3])).predictions))
