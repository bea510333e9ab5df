"""Streaming through the same core: gRPC PredictStream and WS /v1/stream."""
from __future__ import annotations

import asyncio
import json

import grpc
import pytest
import websockets

from server.grpc import converters
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from tests.compare import assert_close

TEXTS = [f"stream text number {i}, {'good' if i % 2 else 'bad'}" for i in range(40)]


def _rest_answers(served) -> list[dict]:
    reply = served.http.post("/v1/predict/batch", json={"texts": TEXTS, "confidence_threshold": 0})
    return reply.json()["predictions"]


def test_grpc_stream_answers_in_order(served) -> None:
    requests = [pb.PredictRequest(text=t, confidence_threshold=0) for t in TEXTS]
    answers = [converters.from_pb_response(r).model_dump(exclude_none=True)
               for r in served.stub.PredictStream(iter(requests))]
    assert_close(answers, _rest_answers(served))


def test_grpc_stream_error_ends_it_after_earlier_answers(served) -> None:
    requests = [pb.PredictRequest(text="fine", confidence_threshold=0), pb.PredictRequest(text=" "),
                pb.PredictRequest(text="never answered")]
    received = []
    with pytest.raises(grpc.RpcError) as caught:
        for reply in served.stub.PredictStream(iter(requests)):
            received.append(reply)
    assert len(received) == 1
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_grpc_stream_interleaved(served) -> None:
    async with grpc.aio.insecure_channel(served.grpc_target) as channel:
        call = pb_grpc.InferenceStub(channel).PredictStream()
        for text in TEXTS[:5]:
            await call.write(pb.PredictRequest(text=text, confidence_threshold=0))
            reply = await call.read()
            assert reply.prediction
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF


async def test_websocket_stream_in_order_with_error_frames(served) -> None:
    url = served.rest_url.replace("http", "ws") + "/v1/stream"
    expected = _rest_answers(served)
    async with websockets.connect(url) as ws:
        for text in TEXTS:  # pipelined: all sent before any is read
            await ws.send(json.dumps({"text": text, "confidence_threshold": 0}))
        answers = [json.loads(await ws.recv()) for _ in TEXTS]
        assert_close(answers, expected)
        await ws.send(json.dumps({"text": ""}))
        frame = json.loads(await ws.recv())
        assert frame["status"] == 422 and "text" in frame["detail"]
        await ws.send("{not json")
        assert json.loads(await ws.recv())["status"] == 400
        await ws.send(json.dumps({"text": "ok then", "confidence_threshold": 1.0}))
        frame = json.loads(await ws.recv())
        assert frame["status"] == 422 and frame["prediction"]["confidence"] < 1.0
        await ws.send(json.dumps({"text": TEXTS[0], "confidence_threshold": 0}))  # still open
        assert_close(json.loads(await asyncio.wait_for(ws.recv(), 30)), expected[0])
