"""Closed-loop load with h2load (a C generator, so that it is not the limit): C connections,
each sending its next request as soon as its answer arrives (a refusal included: it retries
at once, as wrk does). gRPC: HTTP/2 with the pre-encoded frame of bench/h2open.py, one call
in flight a connection unless --streams; REST: HTTP/1.1, one request a connection.
--api oip sends the Open Inference Protocol's request instead of bet's own (`ModelInfer`, or
`POST /v2/models/bet/infer` with a BYTES input "text" of one text), which any OIP server
answers: bet and the MLServer peer are driven alike.

h2load reads HTTP statuses only, and gRPC answers every call with HTTP 200 and the outcome in
a grpc-status trailer. Every call sends the same text, so every answer is the same message:
answers are the DATA bytes h2load received divided by the size of that one answer (asked of
the server once before the run), and the rest of the 200s are refusals (UNAVAILABLE, which
carry no message). The latencies are over answers and refusals together.

    python -m bench.h2closed --proto grpc --target 127.0.0.1:50051 --connections 256 --seconds 20 [--api oip]
"""
from __future__ import annotations

import argparse
import json
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.h2open import grpc_frame, median_text
from bench.load import percentiles

MODEL = "bet"  # the OIP model name, bet's and the peer's


def oip_request(text: str):  # type: ignore[no-untyped-def]
    from server.grpc.gen.inference import open_inference_grpc_pb2 as pb

    req = pb.ModelInferRequest(model_name=MODEL)
    req.inputs.add(name="text", datatype="BYTES", shape=[1]).contents.bytes_contents.append(text.encode())
    return req


def answer_bytes(target: str, text: str, api: str) -> int:
    """The DATA bytes of one gRPC answer to `text`: its message, framed (5 bytes)."""
    import grpc

    with grpc.insecure_channel(target) as channel:
        if api == "oip":
            from server.grpc.gen.inference import open_inference_grpc_pb2_grpc as oip_grpc

            reply = oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(oip_request(text), timeout=60)
        else:
            from server.grpc.gen.bet.v1 import inference_pb2 as pb
            from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc

            reply = pb_grpc.InferenceStub(channel).Predict(pb.PredictRequest(text=text, confidence_threshold=0),
                                                           timeout=60)
    return 5 + reply.ByteSize()


def request(proto: str, api: str, text: str) -> tuple[bytes, str]:
    """(body, path) of the one request the run repeats."""
    if proto == "grpc" and api == "oip":
        msg = oip_request(text).SerializeToString()
        return struct.pack(">BI", 0, len(msg)) + msg, "/inference.GRPCInferenceService/ModelInfer"
    if proto == "grpc":
        return grpc_frame(text), "/bet.v1.Inference/Predict"
    if api == "oip":
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]}
        return json.dumps(body).encode(), f"/v2/models/{MODEL}/infer"
    return json.dumps({"text": text, "confidence_threshold": 0}).encode(), "/v1/predict"


def h2load_request(proto: str, target: str, route: str, streams: int = 1) -> list[str]:
    """h2load's arguments that say what each call is: gRPC over HTTP/2 with `streams` calls in
    flight a connection, or REST over HTTP/1.1, one request a connection; then the URL."""
    if proto == "grpc":
        return ["-H", "content-type: application/grpc", "-H", "te: trailers", "-m", str(streams),
                f"http://{target}{route}"]
    return ["--h1", "-H", "content-type: application/json", "-m", "1", f"{target}{route}"]


def run(proto: str, target: str, seconds: float, connections: int, streams: int = 1, api: str = "bet") -> dict:
    text = median_text()
    payload, route = request(proto, api, text)
    with tempfile.TemporaryDirectory() as tmp:
        body, log = Path(tmp, "body"), Path(tmp, "log.tsv")
        body.write_bytes(payload)
        if proto == "grpc":
            size = answer_bytes(target, text, api)
        cmd = ["h2load", "-c", str(connections), "-t", "2", "-D", str(max(1, round(seconds))), "-d", str(body),
               "--log-file", str(log), "-T", "30", *h2load_request(proto, target, route, streams)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        if out.returncode != 0 or not log.exists():
            raise RuntimeError(f"h2load failed: {out.stdout[-600:]} {out.stderr[-600:]}")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    span = (max(int(r[0]) + int(r[2]) for r in rows) - min(int(r[0]) for r in rows)) / 1e6 if rows else seconds
    latencies = [int(r[2]) / 1e6 for r in rows]  # microseconds -> s
    status_200 = sum(r[1] == "200" for r in rows)
    if proto == "grpc":
        data = re.search(r"\((\d+)\) data", out.stdout)
        ok = min(status_200, int(data.group(1)) // size) if data else 0
        refused = status_200 - ok
    else:
        ok, refused = status_200, sum(r[1] == "503" for r in rows)
    errors = len(rows) - ok - refused
    p = percentiles(latencies)  # answers and refusals together
    return {"proto": proto, "api": api, "generator": "h2load", "connections": connections, "seconds": round(span, 2),
            "requests": len(rows), "ok": ok, "ok_rps": round(ok / span, 1), "rps": round(len(rows) / span, 1),
            "refused": refused, "errors": errors, **p}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proto", choices=("rest", "grpc"), required=True)
    ap.add_argument("--target", required=True, help="http://127.0.0.1:PORT (rest) or 127.0.0.1:PORT (grpc)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--streams", type=int, default=1, help="gRPC calls in flight a connection")
    ap.add_argument("--api", choices=("bet", "oip"), default="bet", help="bet's own request or the OIP's")
    args = ap.parse_args()
    if not args.target.removeprefix("http://").startswith("127.0.0.1:"):
        sys.exit("bench.h2closed: loopback targets only (127.0.0.1)")
    print(json.dumps(run(args.proto, args.target, args.seconds, args.connections, args.streams, args.api)))


if __name__ == "__main__":
    main()
