"""500 concurrent requests split across both doors, all answered correctly."""
from __future__ import annotations

import asyncio

import grpc
import httpx

from server.grpc import converters
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from tests.compare import assert_close

N = 500
TEXTS = [f"concurrent review {i}: {'great' if i % 3 else 'awful'} stuff" for i in range(50)]


async def test_500_concurrent_requests_across_both_protocols(served) -> None:
    expected = served.http.post(
        "/v1/predict/batch", json={"texts": TEXTS, "confidence_threshold": 0}).json()["predictions"]
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=served.rest_url, timeout=120, limits=limits) as client, \
            grpc.aio.insecure_channel(served.grpc_target) as channel:
        stub = pb_grpc.InferenceStub(channel)

        async def one(i: int) -> dict:
            text = TEXTS[i % len(TEXTS)]
            if i % 2:
                reply = await client.post("/v1/predict", json={"text": text, "confidence_threshold": 0})
                assert reply.status_code == 200, reply.text
                return reply.json()
            answer = await stub.Predict(pb.PredictRequest(text=text, confidence_threshold=0), timeout=120)
            return converters.from_pb_response(answer).model_dump(exclude_none=True)

        answers = await asyncio.gather(*(one(i) for i in range(N)))
    assert len(answers) == N
    for i, answer in enumerate(answers):
        assert_close(answer, expected[i % len(TEXTS)], where=f"request {i}")
    # they were batched, not run one by one
    metrics = served.http.get("/metrics").text
    assert any(line.startswith("bet_batch_size_bucket") and 'le="1.0"' not in line
               for line in metrics.splitlines())
