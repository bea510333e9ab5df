"""Same input, same answer, through both doors and on every call."""
from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import pytest

from server.grpc import converters
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from tests.compare import assert_close
from tests.contract.texts import varied_texts

TEXTS = varied_texts()
OPTION_SETS = [
    {},
    {"return_uncertainty": False, "confidence_threshold": 0.0},
    {"return_cot": True, "confidence_threshold": 0.0},
]


async def _rest(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[int, dict]:
    response = await client.post("/v1/predict", json=body)
    return response.status_code, response.json()


async def _grpc(stub: pb_grpc.InferenceStub, body: dict[str, Any]) -> tuple[str, dict]:
    """(code name, answer as REST would write it), the answer from the details on error."""
    try:
        reply = await stub.Predict(pb.PredictRequest(**body))
        return "OK", converters.from_pb_response(reply).model_dump(exclude_none=True)
    except grpc.aio.AioRpcError as error:
        from grpc_status import rpc_status

        status = rpc_status.from_call(error)
        answer = pb.PredictResponse()
        assert status is not None and status.details[0].Unpack(answer)
        return error.code().name, converters.from_pb_response(answer).model_dump(exclude_none=True)


def _bodies() -> list[dict[str, Any]]:
    """Each text once, with the options cycling; reasoning (an extra forward pass per token,
    about a second for a long text on two cores) for every 10th text up to 300 characters."""
    bodies = []
    for i, text in enumerate(TEXTS):
        cot = i % 10 == 3 and len(text) <= 300
        options = OPTION_SETS[2] if cot else OPTION_SETS[i % 2]
        bodies.append({"text": text, **options})
    return bodies


async def test_rest_and_grpc_answer_alike_and_repeatably(served) -> None:
    bodies = _bodies()
    assert len(bodies) >= 200
    async with httpx.AsyncClient(base_url=served.rest_url, timeout=120) as client, \
            grpc.aio.insecure_channel(served.grpc_target) as channel:
        stub = pb_grpc.InferenceStub(channel)
        for start in range(0, len(bodies), 16):  # 16 at a time keeps batches mixed
            chunk = bodies[start:start + 16]
            rest = await asyncio.gather(*(_rest(client, b) for b in chunk))
            rpc = await asyncio.gather(*(_grpc(stub, b) for b in chunk))
            again = await asyncio.gather(*(_rest(client, b) for b in chunk))
            for body, (status, answer), (code, rpc_answer), repeat in zip(chunk, rest, rpc, again):
                where = f"text {body['text'][:30]!r} ({len(body['text'])} chars)"
                expected_code = {200: "OK", 422: "FAILED_PRECONDITION"}[status]
                assert code == expected_code, where
                rest_answer = answer if status == 200 else answer["prediction"]
                assert_close(rest_answer, rpc_answer, where=where)
                assert repeat[0] == status, f"{where}: a repeat answered differently"
                assert_close(repeat[1], answer, where=f"{where} (repeat)")
                assert ("uncertainty" in rest_answer) == body.get("return_uncertainty", True)
                assert ("cot_length" in rest_answer) == ("reasoning" in rest_answer) == \
                    body.get("return_cot", False)


def test_answer_does_not_depend_on_batch_company(served) -> None:
    target = "The plot was thin but the acting saved it."
    alone = served.http.post("/v1/predict", json={"text": target, "confidence_threshold": 0}).json()
    for company in (["short"], TEXTS[:31], TEXTS[100:131] + ["x" * 10_000]):
        texts = [*company[: len(company) // 2], target, *company[len(company) // 2:]]
        reply = served.http.post("/v1/predict/batch", json={"texts": texts, "confidence_threshold": 0})
        assert reply.status_code == 200
        assert_close(alone, reply.json()["predictions"][len(company) // 2])
    rpc = served.stub.PredictBatch(pb.PredictBatchRequest(texts=[target, *TEXTS[:9]], confidence_threshold=0))
    assert_close(alone, converters.from_pb_response(rpc.predictions[0]).model_dump(exclude_none=True))


@pytest.mark.parametrize("text", ["  padded  ", "padded"])
def test_surrounding_whitespace_is_stripped(served, text: str) -> None:
    a = served.http.post("/v1/predict", json={"text": text, "confidence_threshold": 0}).json()
    b = served.http.post("/v1/predict", json={"text": "padded", "confidence_threshold": 0}).json()
    assert_close(a, b)
