"""`bet serve` with BET_COMPUTE_DTYPE=bfloat16: both doors answer from the bfloat16 blocks,
alike, say so in the model's description, and a precision it does not know is refused."""
from __future__ import annotations

import logging
import os
import subprocess

import grpc
import httpx
import pytest

import model.predictor
from server.app import checkpoint_loader
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from tests.harness import BET, start_bet_serve

TEXT = "a gorgeous , witty , seductive movie ."


def test_bfloat16_is_served_alike_on_both_doors(predictor) -> None:
    proc, rest, target = start_bet_serve({"BET_COMPUTE_DTYPE": "bfloat16"})
    try:
        info = httpx.get(rest + "/v1/model", timeout=30).json()
        assert info["config"]["compute_dtype"] == "bfloat16"
        answer = httpx.post(rest + "/v1/predict", json={"text": TEXT, "confidence_threshold": 0}, timeout=60).json()
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.InferenceStub(channel)
            rpc = stub.Predict(pb.PredictRequest(text=TEXT, confidence_threshold=0), timeout=60)
            assert stub.GetModelInfo(pb.GetModelInfoRequest()).config["compute_dtype"] == "bfloat16"
        assert rpc.confidence == pytest.approx(answer["confidence"], abs=1e-6)
        assert rpc.uncertainty.epistemic == pytest.approx(answer["uncertainty"]["epistemic"], abs=1e-6)
        exact = predictor.predict([TEXT])[0]  # float32
        assert answer["prediction"] == exact.label
        assert answer["confidence"] == pytest.approx(exact.confidence, abs=1e-2)
        assert answer["confidence"] != exact.confidence
    finally:
        proc.terminate()
        proc.wait(30)


def test_an_unknown_compute_dtype_is_refused_at_startup() -> None:
    done = subprocess.run([BET, "serve", "--rest-port", "0", "--grpc-port", "0"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "BET_COMPUTE_DTYPE": "float16"})
    assert done.returncode == 2
    assert "compute_dtype" in done.stderr and "bfloat16" in done.stderr


def test_bfloat16_without_native_support_is_served_with_a_warning(monkeypatch, caplog) -> None:
    monkeypatch.setattr(model.predictor, "native_bfloat16", lambda device: False)
    with caplog.at_level(logging.WARNING, logger="model.predictor"):
        predictor = checkpoint_loader(None, "bfloat16")(None, None)
    assert predictor.info().config["compute_dtype"] == "bfloat16"
    assert any("without native bfloat16" in r.getMessage() for r in caplog.records)
    caplog.clear()
    monkeypatch.setattr(model.predictor, "native_bfloat16", lambda device: True)
    with caplog.at_level(logging.WARNING, logger="model.predictor"):
        checkpoint_loader(None, "bfloat16")(None, None)
        checkpoint_loader(None, "float32")(None, None)
    assert not any("bfloat16" in r.getMessage() for r in caplog.records)
