"""What `bet predict` sends: one request over REST (standard library only) or gRPC. Each
returns (ok, JSON-ready answer or error body)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import grpc
from grpc_status import rpc_status

from server.core import schemas


def predict_rest(base_url: str, request: dict[str, Any], timeout_s: float) -> tuple[bool, Any]:
    req = urllib.request.Request(
        base_url.rstrip("/") + "/v1/predict", data=json.dumps(request).encode(),
        headers={"content-type": "application/json"}, method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as response:
            return True, json.load(response)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return False, {"status": exc.code, **json.loads(body)}
        except ValueError:
            return False, {"status": exc.code, "detail": body.decode(errors="replace")}
    except OSError as exc:
        return False, {"detail": f"cannot reach {base_url}: {exc}"}


def predict_grpc(address: str, request: dict[str, Any], timeout_s: float) -> tuple[bool, Any]:
    from server.grpc import converters
    from server.grpc.gen.bet.v1 import inference_pb2 as pb
    from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc

    def as_json(answer: schemas.PredictResponse) -> Any:
        return json.loads(answer.model_dump_json(exclude_none=True))

    with grpc.insecure_channel(address) as channel:
        try:
            reply = pb_grpc.InferenceStub(channel).Predict(pb.PredictRequest(**request), timeout=timeout_s)
            return True, as_json(converters.from_pb_response(reply))
        except grpc.RpcError as exc:
            error: dict[str, Any] = {"code": exc.code().name, "detail": exc.details()}
            status = rpc_status.from_call(exc)
            for detail in status.details if status else ():
                if detail.Is(pb.PredictResponse.DESCRIPTOR):
                    answer = pb.PredictResponse()
                    detail.Unpack(answer)
                    error["prediction"] = as_json(converters.from_pb_response(answer))
            return False, error
