"""The Open Inference Protocol beside the native doors, in one run on one `bet serve`
(default workers): closed loop at `--connections` (default 256), each of bet.v1 REST
(`POST /v1/predict`), OIP REST (`POST /v2/models/bet/infer`, JSON), bet.v1 gRPC (`Predict`)
and OIP gRPC (`ModelInfer`), one text a request, with bench/load.py's generator; `--rounds`
rounds interleaved. Loopback only; prints a Markdown table and one JSON line.

    python -m bench.oip_rows --seconds 10 --rounds 2"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

from bench import load
from bench.run import free_port

ROWS = (("bet.v1 REST", "rest", False), ("OIP REST", "rest", True),
        ("bet.v1 gRPC", "grpc", False), ("OIP gRPC", "grpc", True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    rest_port, grpc_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--rest-port", str(rest_port),
                               "--grpc-port", str(grpc_port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, start_new_session=True)
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if re.search(r"gRPC\s", line):
                break
        results: dict[str, list[dict]] = {name: [] for name, _, _ in ROWS}
        for _ in range(args.rounds):
            for name, proto, oip in ROWS:
                target = f"http://127.0.0.1:{rest_port}" if proto == "rest" else f"127.0.0.1:{grpc_port}"
                run = SimpleNamespace(proto=proto, target=target, connections=args.connections, rate=None,
                                      seconds=args.seconds, procs=2, timeout=60.0, honor_retry_after=False,
                                      texts=None, oip=oip)
                results[name].append(load.run(run))  # type: ignore[arg-type]
                time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    print(f"| door | req/s at {args.connections} connections, each round | p95 ms | errors |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        print(f"| {name} | {', '.join(str(r['ok_rps']) for r in runs)} | "
              f"{', '.join(str(r['p95_ms']) for r in runs)} | {sum(r['errors'] for r in runs)} |")
    print(json.dumps({"connections": args.connections, "seconds": args.seconds, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
