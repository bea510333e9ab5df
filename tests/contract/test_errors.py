"""Every row of the contract's error table, on both protocols, from real servers."""
from __future__ import annotations

import math
import threading
import time
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from server.core.schemas import MAX_BATCH_TEXTS, MAX_TEXT_CHARS
from server.grpc import converters
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from tests import security
from tests.harness import Gated, ServerThread

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _rpc_error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def _no_trace(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text


BAD_SINGLE = [
    ({"text": ""}, "text"),
    ({"text": "   \n\t "}, "text"),
    ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text"),
    ({"text": "ok", "confidence_threshold": -0.01}, "confidence_threshold"),
    ({"text": "ok", "confidence_threshold": 1.01}, "confidence_threshold"),
]


@pytest.mark.parametrize(("body", "field"), BAD_SINGLE)
def test_bad_single_input(served, body: dict, field: str) -> None:
    reply = served.http.post("/v1/predict", content=httpx_json(body),
                             headers={"content-type": "application/json"})
    assert reply.status_code == 422 and field in reply.json()["detail"]
    error = _rpc_error(served.stub.Predict, pb.PredictRequest(**body))
    assert error.code() == INVALID and field in error.details()
    assert error.details() == reply.json()["detail"]  # one message, both doors


def httpx_json(body: dict) -> bytes:
    import json

    return json.dumps(body).encode()  # allows NaN, which a client may well send


def test_nan_is_not_json_on_rest_and_not_finite_on_grpc(served) -> None:
    body = {"text": "ok", "confidence_threshold": math.nan}
    reply = served.http.post("/v1/predict", content=httpx_json(body), headers={"content-type": "application/json"})
    assert reply.status_code == 400 and reply.json()["detail"] == "the body is not valid JSON"
    error = _rpc_error(served.stub.Predict, pb.PredictRequest(**body))
    assert error.code() == INVALID and "confidence_threshold" in error.details()


BAD_BATCH = [
    ({"texts": []}, "texts"),
    ({"texts": ["fine"] * (MAX_BATCH_TEXTS + 1)}, "texts"),
    ({"texts": ["fine", " "]}, "texts.1"),
    ({"texts": ["fine"], "confidence_threshold": 2}, "confidence_threshold"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BATCH)
def test_bad_batch_input(served, body: dict, field: str) -> None:
    reply = served.http.post("/v1/predict/batch", json=body)
    assert reply.status_code == 422 and field in reply.json()["detail"]
    error = _rpc_error(served.stub.PredictBatch, pb.PredictBatchRequest(**body))
    assert error.code() == INVALID and error.details() == reply.json()["detail"]


@pytest.mark.parametrize("body", [
    {"text": 123}, {"text": ["a"]}, {"text": "ok", "return_cot": "yes"},
    {"text": "ok", "confidence_threshold": "0.5"}, {"text": "ok", "return_uncertainty": 1},
    {"text": "ok", "colour": "blue"}, [{"text": "ok"}], "just a string", {},
])
def test_rest_wrong_types_and_unknown_fields(served, body: Any) -> None:
    reply = served.http.post("/v1/predict", json=body)
    assert reply.status_code == 422, reply.text
    assert set(reply.json()) == {"detail"}


@pytest.mark.parametrize("raw", [b'{"text": ', b"not json", b'{"text": "a",}', b"\xff\xfe"])
def test_rest_unparsable_json_is_400(served, raw: bytes) -> None:
    reply = served.http.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 400 and "JSON" in reply.json()["detail"]


@pytest.mark.parametrize("raw", [b"\xff\xff\xff", b"\x0a\x05ab"])
def test_grpc_undecodable_message_is_invalid_argument(served, raw: bytes) -> None:
    call = served.channel.unary_unary("/bet.v1.Inference/Predict")
    error = _rpc_error(call, raw)
    assert error.code() == INVALID and "decoded" in error.details()


def test_oversized_message_both(served) -> None:
    limit = served.settings.max_request_bytes
    reply = served.http.post("/v1/predict", content=b"x" * (limit + 1),
                             headers={"content-type": "application/json"})
    assert reply.status_code == 413 and "exceeds" in reply.json()["detail"]
    big = pb.PredictRequest(text="x" * (limit + 10))
    error = _rpc_error(served.stub.Predict, big)
    assert error.code() == INVALID and "limit" in error.details()


def test_below_threshold_carries_the_prediction_both(served) -> None:
    body = {"text": "An ordinary sentence.", "confidence_threshold": 1.0}
    reply = served.http.post("/v1/predict", json=body)
    assert reply.status_code == 422
    payload = reply.json()
    assert payload["prediction"]["confidence"] < 1.0 and "threshold" in payload["detail"]
    error = _rpc_error(served.stub.Predict, pb.PredictRequest(**body))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == payload["detail"]
    answer = pb.PredictResponse()
    assert rpc_status.from_call(error).details[0].Unpack(answer)
    assert converters.from_pb_response(answer).model_dump(exclude_none=True) == payload["prediction"]


def test_the_default_threshold_never_refuses_a_two_label_answer_both(served) -> None:
    # confidence over two labels is at least 0.5; a uniform answer (text unlike the training
    # data) lands on 0.5 up to float round-off, which must not read as below 0.5
    texts = ["このレストランは最悪でした。二度と行きません。", "qwz xkcd vbnm plok", "def f(x):\n    return x"]
    for text in texts:
        reply = served.http.post("/v1/predict", json={"text": text})
        assert reply.status_code == 200, reply.text
        assert reply.json()["confidence"] >= 0.5 - 1e-6
        assert served.stub.Predict(pb.PredictRequest(text=text)).confidence >= 0.5 - 1e-6
    reply = served.http.post("/v1/predict/batch", json={"texts": texts})
    assert reply.status_code == 200, reply.text


def test_batch_below_threshold_carries_every_prediction_both(served) -> None:
    body = {"texts": ["one", "two", "three"], "confidence_threshold": 1.0}
    reply = served.http.post("/v1/predict/batch", json=body)
    assert reply.status_code == 422 and len(reply.json()["predictions"]) == 3
    error = _rpc_error(served.stub.PredictBatch, pb.PredictBatchRequest(**body))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    answer = pb.PredictBatchResponse()
    assert rpc_status.from_call(error).details[0].Unpack(answer)
    assert len(answer.predictions) == 3


def test_not_ready_both(predictor) -> None:
    with ServerThread(predictor, warm=False) as server:
        assert server.http.get("/health/live").status_code == 200
        assert server.http.get("/health/ready").status_code == 503
        reply = server.http.post("/v1/predict", json={"text": "hello"})
        assert reply.status_code == 503 and "not ready" in reply.json()["detail"]
        error = _rpc_error(server.stub.Predict, pb.PredictRequest(text="hello"))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        health = health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_overload_is_refused_at_once_both(predictor) -> None:
    gated = Gated(predictor)
    # the queue's own limit (no admission budget, which would refuse the filler's followers first)
    with ServerThread(gated, max_batch_size=1, max_queue=MAX_BATCH_TEXTS, admission_budget_ms=0) as server:
        gated.gate.clear()
        gated.entered.clear()
        filler = threading.Thread(target=server.http.post, args=("/v1/predict/batch",),
                                  kwargs={"json": {"texts": [f"t{i}" for i in range(MAX_BATCH_TEXTS)],
                                                   "confidence_threshold": 0}})
        filler.start()
        assert gated.entered.wait(10)  # one text computing (held), 255 queued
        time.sleep(0.1)
        last = threading.Thread(target=httpx.post, args=(server.rest_url + "/v1/predict",),
                                kwargs={"json": {"text": "last", "confidence_threshold": 0}, "timeout": 60})
        try:
            reply = server.http.post("/v1/predict/batch", json={"texts": ["a", "b"]})
            assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
            assert "full" in reply.json()["detail"]
            error = _rpc_error(server.stub.PredictBatch, pb.PredictBatchRequest(texts=["a", "b"]))
            assert error.code() == grpc.StatusCode.UNAVAILABLE and "full" in error.details()
            retry = error_details_pb2.RetryInfo()
            assert any(d.Unpack(retry) for d in rpc_status.from_call(error).details)
            assert retry.retry_delay.seconds == 1
            # The queue full to the last text: a prediction is refused before its body is read
            # (this one is not even JSON) or its message converted.
            last.start()
            deadline = time.monotonic() + 10
            while "bet_queue_depth 256.0" not in server.http.get("/metrics").text:
                assert time.monotonic() < deadline, "the queue never filled"
                time.sleep(0.01)
            reply = server.http.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
            assert reply.status_code == 503 and "full" in reply.json()["detail"]
            error = _rpc_error(server.stub.Predict, pb.PredictRequest(text=""))
            assert error.code() == grpc.StatusCode.UNAVAILABLE and "full" in error.details()
        finally:
            gated.gate.set()
            filler.join(30)
            if last.is_alive():
                last.join(30)


def _hold_the_worker(server: ServerThread, gated: Gated) -> threading.Thread:
    """Starts a request whose forward pass waits at the closed gate; later texts queue."""
    gated.gate.clear()
    gated.entered.clear()
    holder = threading.Thread(target=server.http.post, args=("/v1/predict",),
                              kwargs={"json": {"text": "holder", "confidence_threshold": 0}})
    holder.start()
    assert gated.entered.wait(10)
    return holder


def test_waiting_past_the_deadline_is_dropped_not_computed_both(predictor) -> None:
    gated = Gated(predictor)
    with ServerThread(gated, max_batch_size=1, request_timeout_s=0.5) as server:
        holder = _hold_the_worker(server, gated)
        results: dict[str, Any] = {}
        rest = threading.Thread(target=lambda: results.update(
            rest=server.http.post("/v1/predict", json={"text": "late rest"})))
        rest.start()
        error = _rpc_error(server.stub.Predict, pb.PredictRequest(text="late grpc"), timeout=0.3)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(0.5)  # the REST one is now past the server's request timeout
        gated.gate.set()
        rest.join(30)
        holder.join(30)
        assert results["rest"].status_code == 504
        assert "deadline" in results["rest"].json()["detail"]
        assert "late rest" not in gated.computed and "late grpc" not in gated.computed
        assert "holder" in gated.computed


def test_a_client_that_leaves_is_dropped_not_computed(predictor) -> None:
    gated = Gated(predictor)
    with ServerThread(gated, max_batch_size=1) as server:
        holder = _hold_the_worker(server, gated)
        with pytest.raises(httpx.TimeoutException):
            httpx.post(server.rest_url + "/v1/predict", json={"text": "gone"}, timeout=0.3)
        time.sleep(0.3)
        gated.gate.set()
        holder.join(30)
        time.sleep(0.2)
        assert "gone" not in gated.computed
        metrics = server.http.get("/metrics").text
        assert 'bet_dropped_total{reason="cancelled"} 1.0' in metrics


def test_unknown_paths_and_methods_answer_json_without_traces(served) -> None:
    for reply in (served.http.get("/v1/nope"), served.http.get("/v1/predict")):
        assert reply.status_code in (404, 405)
        _no_trace(reply.text)
        assert "detail" in reply.json()


@pytest.fixture(scope="module")
def guarded(predictor) -> Any:
    """Authentication and a rate limit of one request a second (burst 1) per caller."""
    with ServerThread(predictor, auth_jwt_secret=security.SECRET, rate_limit_per_second=1) as server:
        yield server


def _refusals(server: ServerThread, headers: dict[str, str]) -> tuple[httpx.Response, grpc.RpcError]:
    reply = server.http.post("/v1/predict", json={"text": "hello"}, headers=headers)
    return reply, _rpc_error(server.stub.Predict, pb.PredictRequest(text="hello"), metadata=tuple(headers.items()))


def test_credentials_rows(guarded) -> None:
    """Each refusal on both doors; every case of it is in tests/integration/test_security.py."""
    for headers, status, code in (
        ({}, 401, grpc.StatusCode.UNAUTHENTICATED),
        (security.bearer(security.hs256(iss=None, aud=None, exp=1)), 401, grpc.StatusCode.UNAUTHENTICATED),
        (security.bearer(security.hs256(iss=None, aud=None, scope="admin")), 403, grpc.StatusCode.PERMISSION_DENIED),
    ):
        reply, error = _refusals(guarded, headers)
        assert reply.status_code == status and error.code() == code
        assert set(reply.json()) == {"detail"} and error.details() == reply.json()["detail"]


def test_rate_limit_row(guarded) -> None:
    headers = security.bearer(security.hs256(iss=None, aud=None, sub="row-test"))
    assert guarded.http.get("/v1/model", headers=headers).status_code == 200  # the one token
    reply, error = _refusals(guarded, headers)
    assert reply.status_code == 429 and reply.headers["retry-after"] == "1"
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and error.details() == reply.json()["detail"]
    assert dict(error.trailing_metadata())[converters.RETRY_AFTER] == "1"
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in rpc_status.from_call(error).details)
    assert retry.retry_delay.seconds == 1


def test_oversized_chunked_body_is_refused(predictor) -> None:
    with ServerThread(predictor, max_request_bytes=4096) as server:
        def chunks():
            yield b'{"text": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        reply = server.http.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert reply.status_code == 413 and "exceeds 4096" in reply.json()["detail"]
