"""Health, model info, metrics, request ids, reflection and the OpenAPI document."""
from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server.grpc import converters
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from tests.compare import assert_close


def test_rest_health(served) -> None:
    assert served.http.get("/health/live").json() == {"status": "live"}
    assert served.http.get("/health/ready").json() == {"status": "ready"}


def test_grpc_health(served) -> None:
    stub = health_pb2_grpc.HealthStub(served.channel)
    for service in ("", "bet.v1.Inference"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(served) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    reply = next(stub.ServerReflectionInfo(iter([request])))
    names = {s.name for s in reply.list_services_response.service}
    assert {"bet.v1.Inference", "grpc.health.v1.Health"} <= names


def test_model_info_same_on_both(served, predictor) -> None:
    rest = served.http.get("/v1/model").json()
    rpc = converters.from_pb_model_info(served.stub.GetModelInfo(pb.GetModelInfoRequest()))
    assert_close(rest, rpc.model_dump())
    assert rest["version"] == predictor.version and rest["labels"] == predictor.labels
    assert rest["n_views"] >= 1 and rest["digest"]
    views = predictor.ckpt.cfg.views
    assert (rest["n_draws"], rest["max_windows"]) == (views.n_draws, views.max_windows) and rest["n_draws"] > 1
    assert rest["window_pieces"] == predictor.ckpt.cfg.network.max_len - 2


def test_a_long_text_is_answered_whole_and_alike_on_both(served) -> None:
    from tests.model.test_windows import BAD, FILLER, GOOD

    answers = served.http.post("/v1/predict/batch", json={"texts": [FILLER + GOOD, FILLER + BAD],
                                                          "confidence_threshold": 0}).json()["predictions"]
    assert answers[0]["probabilities"]["positive"] > answers[1]["probabilities"]["positive"]
    rpc = served.stub.Predict(pb.PredictRequest(text=FILLER + GOOD, confidence_threshold=0))
    assert abs(rpc.confidence - answers[0]["confidence"]) < 1e-6  # alone on gRPC, in a batch on REST


def test_request_id_is_returned_on_both(served) -> None:
    reply = served.http.post("/v1/predict", json={"text": "hi", "confidence_threshold": 0},
                             headers={"x-request-id": "rest-abc-1"})
    assert reply.headers["x-request-id"] == "rest-abc-1"
    generated = served.http.get("/health/live").headers["x-request-id"]
    assert len(generated) == 32
    _, call = served.stub.Predict.with_call(pb.PredictRequest(text="hi", confidence_threshold=0),
                                            metadata=[("x-request-id", "grpc-abc-2")])
    assert dict(call.initial_metadata())["x-request-id"] == "grpc-abc-2"
    try:
        served.stub.Predict(pb.PredictRequest(text=""), metadata=[("x-request-id", "grpc-err-3")])
    except grpc.RpcError as error:
        assert dict(error.initial_metadata())["x-request-id"] == "grpc-err-3"


def test_metrics(served) -> None:
    served.http.post("/v1/predict", json={"text": "count me", "confidence_threshold": 0})
    served.stub.Predict(pb.PredictRequest(text="count me too", confidence_threshold=0))
    text = served.http.get("/metrics").text
    for name in ("bet_requests_total", "bet_request_latency_seconds_bucket", "bet_queue_wait_seconds",
                 "bet_batch_size_bucket", "bet_queue_depth", "bet_model_info", "bet_forward_seconds"):
        assert name in text, name
    assert 'protocol="grpc"' in text and 'protocol="rest"' in text and 'outcome="ok"' in text


def test_openapi_documents_every_endpoint(served) -> None:
    schema = served.http.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/v1/predict", "/v1/predict/batch", "/v1/model", "/health/live", "/health/ready", "/metrics"):
        assert path in paths, path
    predict_422 = paths["/v1/predict"]["post"]["responses"]["422"]
    assert "LowConfidenceBody" in str(predict_422)
    assert "examples" in str(schema["components"]["schemas"]["PredictRequest"])
    assert served.http.get("/docs").status_code == 200
