"""Open-loop load at a fixed arrival rate with h2load (Debian's nghttp2-client), a C load
generator that costs a few percent of a core where a Python one costs a sixth of the two.

Each of C clients sends `rate / C` requests a second on its own schedule (`--rps`), whatever
the server does, on one connection: HTTP/1.1 for REST, HTTP/2 with a pre-encoded gRPC frame
for gRPC. The clients connect one after another across one request interval (`-r`,
`--rate-period`), so their schedules interleave into one steady rate: started together they
would send C requests at once every interval (measured: REST p95 286 ms in bursts against
41 ms steady, same rate and server). h2load's per-request log gives the latencies. Every request carries the same
text, the test sentence of median length (h2load sends one body), so rows compare with the
closed-loop ones by rate, not by text. A REST client whose answer is late sends its next
request late (HTTP/1.1 has one request in flight a connection), so the latency of a
saturated REST server is understated; gRPC clients multiplex and keep the schedule.

    python -m bench.h2open --proto grpc --target 127.0.0.1:50051 --rate 560 --seconds 20
"""
from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.load import load_texts, percentiles


def median_text() -> str:
    texts = sorted(load_texts(), key=len)
    return texts[len(texts) // 2]


def grpc_frame(text: str) -> bytes:
    """One gRPC message frame: uncompressed flag, big-endian length, the protobuf bytes."""
    from server.grpc.gen.bet.v1 import inference_pb2 as pb

    body = pb.PredictRequest(text=text, confidence_threshold=0).SerializeToString()
    return struct.pack(">BI", 0, len(body)) + body


def run(proto: str, target: str, rate: float, seconds: float, clients: int) -> dict:
    text = median_text()
    with tempfile.TemporaryDirectory() as tmp:
        body, log = Path(tmp, "body"), Path(tmp, "log.tsv")
        if proto == "grpc":
            body.write_bytes(grpc_frame(text))
            url = f"http://{target}/bet.v1.Inference/Predict"
            flags = ["-H", "content-type: application/grpc", "-H", "te: trailers", "-m", "64"]
        else:
            body.write_text(json.dumps({"text": text, "confidence_threshold": 0}))
            url = f"{target}/v1/predict"
            flags = ["--h1", "-H", "content-type: application/json", "-m", "1"]
        per_client = rate / clients
        # ramp: `step` clients every `period_ms` (whole milliseconds: h2load's unit) over about
        # one interval 1000 / per_client ms
        interval_ms = 1000 / per_client
        def spread_error(k: int) -> float:
            return abs(max(1, round(interval_ms * k / clients)) * clients / k - interval_ms) / interval_ms

        # the fewest clients at a time whose ramp spans the interval within 5%
        step = next((k for k in range(1, clients + 1) if spread_error(k) <= 0.05), clients)
        period_ms = max(1, round(interval_ms * step / clients))
        cmd = ["h2load", "-c", str(clients), "-t", "1", f"--rps={per_client:.4f}",
               "-n", str(clients * max(1, round(per_client * seconds))), "-r", str(step),
               f"--rate-period={period_ms}ms", "-d", str(body), "--log-file", str(log), "-T", "30", *flags, url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        if out.returncode != 0 or not log.exists():
            raise RuntimeError(f"h2load failed: {out.stdout[-600:]} {out.stderr[-600:]}")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    ok = [int(r[2]) / 1e6 for r in rows if r[1] == "200"]  # microseconds -> s
    # the run's own length, first send to last answer, for the rate achieved
    span = (max(int(r[0]) + int(r[2]) for r in rows) - min(int(r[0]) for r in rows)) / 1e6 if rows else seconds
    refused = sum(r[1] == "503" for r in rows)
    errors = len(rows) - len(ok) - refused
    # gRPC answers errors with HTTP 200 and a grpc-status trailer h2load does not read: the
    # closed-loop rows (bench/load.py) check statuses; here every 200 is counted as answered
    return {"proto": proto, "generator": "h2load", "rate": rate, "clients": clients, "seconds": round(span, 2),
            "requests": len(rows), "ok": len(ok), "ok_rps": round(len(ok) / span, 1),
            "refused": refused, "errors": errors, **percentiles(ok)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proto", choices=("rest", "grpc"), required=True)
    ap.add_argument("--target", required=True, help="http://127.0.0.1:PORT (rest) or 127.0.0.1:PORT (grpc)")
    ap.add_argument("--rate", type=float, required=True, help="requests per second, all clients")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=256, help="connections (REST: also the most in flight)")
    args = ap.parse_args()
    if not args.target.removeprefix("http://").startswith("127.0.0.1:"):
        sys.exit("bench.h2open: loopback targets only (127.0.0.1)")
    print(json.dumps(run(args.proto, args.target, args.rate, args.seconds, args.clients)))


if __name__ == "__main__":
    main()
