"""What `bet predict` sends: one request over REST (standard library only) or gRPC. Each
returns (ok, JSON-ready answer or error body)."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from grpc_status import rpc_status

from server.core import schemas


def credentials(token: str | None, api_key: str | None) -> dict[str, str]:
    """The headers (REST) or metadata (gRPC) that carry a caller's credentials."""
    sent = {"authorization": f"Bearer {token}"} if token else {}
    return sent | ({"x-api-key": api_key} if api_key else {})


def predict_rest(
    base_url: str, request: dict[str, Any], timeout_s: float, *, headers: dict[str, str] | None = None,
    ca_file: str | None = None,
) -> tuple[bool, Any]:
    req = urllib.request.Request(
        base_url.rstrip("/") + "/v1/predict", data=json.dumps(request).encode(),
        headers={"content-type": "application/json", **(headers or {})}, method="POST",
    )
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(req, timeout=timeout_s, context=context) as response:
            return True, json.load(response)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return False, {"status": exc.code, **json.loads(body)}
        except ValueError:
            return False, {"status": exc.code, "detail": body.decode(errors="replace")}
    except OSError as exc:
        return False, {"detail": f"cannot reach {base_url}: {exc}"}


def predict_grpc(
    address: str, request: dict[str, Any], timeout_s: float, *, metadata: dict[str, str] | None = None,
    ca_file: str | None = None,
) -> tuple[bool, Any]:
    """Over TLS when `ca_file` (the PEM of the CA to trust) is given."""
    from server.grpc import converters
    from server.grpc.gen.bet.v1 import inference_pb2 as pb
    from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc

    def as_json(answer: schemas.PredictResponse) -> Any:
        return json.loads(answer.model_dump_json(exclude_none=True))

    if ca_file:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(Path(ca_file).read_bytes()))
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        try:
            reply = pb_grpc.InferenceStub(channel).Predict(
                pb.PredictRequest(**request), timeout=timeout_s, metadata=tuple((metadata or {}).items()))
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
