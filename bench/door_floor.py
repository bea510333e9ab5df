"""The floor of each door's library, with no model and no application code: a bare gRPC
server (grpc.aio, one unary method that answers fixed bytes, no (de)serializer) and a bare
HTTP/1.1 server (uvicorn with httptools, a raw ASGI app that answers fixed bytes), each one
process on uvloop as bet's doors are, under the same h2load closed loop. It prints calls a
second and the server's CPU milliseconds per call for each, and gRPC ÷ REST: how much of
bet's gRPC-against-REST gap is the library's own per-call cost.

    python -m bench.door_floor [--connections 64] [--seconds 10] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cpu import group_cpu_s
from bench.h2closed import h2load_request, request
from bench.h2open import median_text
from bench.run import free_port

ANSWER = b"x" * 600  # about the size of one of bet's answers


def serve_grpc(port: int) -> None:
    import grpc
    import uvloop

    async def predict(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return ANSWER

    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        handler = grpc.unary_unary_rpc_method_handler(predict)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bet.v1.Inference",
                                                                              {"Predict": handler}),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(main())


def serve_rest(port: int) -> None:
    import uvicorn

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": ANSWER})

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning", lifespan="off")


def measure(proto: str, connections: int, seconds: int) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.door_floor", "--serve", proto, str(port)],
                              start_new_session=True)
    try:
        _wait_listening(port, server)
        # bet's own request, as the h2load rows send it: neither server reads it
        payload, route = request(proto, "bet", median_text())
        target = f"127.0.0.1:{port}" if proto == "grpc" else f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as tmp:
            body = Path(tmp, "body")
            body.write_bytes(payload)
            cpu0, wall0 = group_cpu_s(server.pid), time.monotonic()
            out = subprocess.run(["h2load", "-c", str(connections), "-t", "1", "-D", str(seconds), "-d", str(body),
                                  *h2load_request(proto, target, route)],
                                 capture_output=True, text=True, timeout=seconds + 60)
            cpu, wall = group_cpu_s(server.pid) - cpu0, time.monotonic() - wall0
        done = _field(out.stdout, "succeeded")
        if out.returncode != 0 or done == 0:
            raise RuntimeError(f"h2load failed: {out.stdout[-600:]} {out.stderr[-600:]}")
        return {"calls/s": round(done / seconds, 1), "cpu ms/call": round(1000 * cpu / done, 4),
                "server cores": round(cpu / wall, 2), "failed": _field(out.stdout, "failed")}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _wait_listening(port: int, server: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the bare server exited with {server.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout_s} s")


def _field(h2load_out: str, name: str) -> int:
    """A count from h2load's `requests: N total, ..., N succeeded, N failed, ...` line."""
    found = re.search(rf"^requests:.* (\d+) {name}\b", h2load_out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no '{name}' count in h2load's output: {h2load_out[-600:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--serve", nargs=2, metavar=("PROTO", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        proto, port = args.serve
        (serve_grpc if proto == "grpc" else serve_rest)(int(port))
        return
    runs: dict[str, list[dict[str, float]]] = {"grpc": [], "rest": []}
    for round_ in range(1, args.rounds + 1):  # interleaved, so that a phase of the machine hits both
        for proto in runs:
            runs[proto].append(measure(proto, args.connections, args.seconds))
            print(json.dumps({"round": round_, "proto": proto, **runs[proto][-1]}), flush=True)
    means = {proto: {key: round(statistics.mean(r[key] for r in rs), 4) for key in rs[0]} for proto, rs in runs.items()}
    print(json.dumps({"mean": means, "grpc/rest calls/s": round(means["grpc"]["calls/s"] / means["rest"]["calls/s"], 3),
                      "grpc/rest cpu/call": round(means["grpc"]["cpu ms/call"] / means["rest"]["cpu ms/call"], 3)}))


if __name__ == "__main__":
    main()
