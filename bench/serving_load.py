"""A short, bounded load run against a running `bet serve` on this machine: N concurrent
closed-loop clients per protocol for a fixed time; prints RPS and latency percentiles.

    python bench/serving_load.py --rest http://127.0.0.1:8000 --grpc 127.0.0.1:50051 --seconds 10
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import grpc
import httpx

from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc

TEXTS = [f"review {i}: the film was {'great' if i % 2 else 'dull'}, and the cast {'shone' if i % 3 else 'tried'}."
         for i in range(64)]


async def run(args: argparse.Namespace) -> dict:
    stop_at = time.monotonic() + args.seconds
    latencies: dict[str, list[float]] = {"rest": [], "grpc": []}
    errors = 0

    async def rest_client(client: httpx.AsyncClient, k: int) -> None:
        nonlocal errors
        i = k
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            reply = await client.post("/v1/predict", json={"text": TEXTS[i % len(TEXTS)], "confidence_threshold": 0})
            latencies["rest"].append(time.perf_counter() - start)
            errors += reply.status_code != 200
            i += 1

    async def grpc_client(stub: pb_grpc.InferenceStub, k: int) -> None:
        nonlocal errors
        i = k
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            try:
                await stub.Predict(pb.PredictRequest(text=TEXTS[i % len(TEXTS)], confidence_threshold=0), timeout=30)
            except grpc.aio.AioRpcError:
                errors += 1
            latencies["grpc"].append(time.perf_counter() - start)
            i += 1

    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.rest, timeout=30, limits=limits) as client, \
            grpc.aio.insecure_channel(args.grpc) as channel:
        stub = pb_grpc.InferenceStub(channel)
        began = time.monotonic()
        await asyncio.gather(*(rest_client(client, k) for k in range(args.concurrency)),
                             *(grpc_client(stub, k) for k in range(args.concurrency)))
        elapsed = time.monotonic() - began

    def summary(values: list[float]) -> dict:
        if not values:
            return {}
        q = statistics.quantiles(values, n=100)
        return {"requests": len(values), "rps": round(len(values) / elapsed, 1),
                "p50_ms": round(q[49] * 1000, 1), "p95_ms": round(q[94] * 1000, 1), "p99_ms": round(q[98] * 1000, 1)}

    return {"seconds": round(elapsed, 1), "clients_per_protocol": args.concurrency, "errors": errors,
            "rest": summary(latencies["rest"]), "grpc": summary(latencies["grpc"]),
            "total_rps": round(sum(map(len, latencies.values())) / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest", default="http://127.0.0.1:8000")
    parser.add_argument("--grpc", default="127.0.0.1:50051")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients per protocol")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
