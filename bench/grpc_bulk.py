"""Texts/s through gRPC's bulk calls, to set against the raw limit: `PredictBatch` with
`--batch` test sentences a call and `--calls` calls in flight (over as many channels, so
that they spread over the workers), and `PredictStream` with `--calls` streams, each keeping
`--batch` requests in flight (it sends ahead and reads answers in order). Closed loop, for
`--seconds` after a short warm-up.

    python -m bench.grpc_bulk --target 127.0.0.1:50051 --method PredictBatch --seconds 10 [--batch 32] [--calls 4]
Prints one JSON object."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import grpc

from bench.load import load_texts
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc


async def batch_calls(stubs: list, texts: list[str], batch: int, seconds: float) -> int:
    end = time.monotonic() + seconds
    done = 0

    async def caller(k: int) -> None:
        nonlocal done
        i = k * batch
        while time.monotonic() < end:
            chunk = [texts[(i + j) % len(texts)] for j in range(batch)]
            i += batch * len(stubs)
            reply = await stubs[k].PredictBatch(pb.PredictBatchRequest(texts=chunk, confidence_threshold=0),
                                                timeout=60)
            done += len(reply.predictions)

    await asyncio.gather(*(caller(k) for k in range(len(stubs))))
    return done


async def stream_calls(stubs: list, texts: list[str], ahead: int, seconds: float) -> int:
    end = time.monotonic() + seconds
    done = 0

    async def streamer(k: int) -> None:
        nonlocal done
        window = asyncio.Semaphore(ahead)
        call = stubs[k].PredictStream(timeout=seconds + 60)

        async def send() -> None:
            i = k
            while time.monotonic() < end:
                await window.acquire()
                await call.write(pb.PredictRequest(text=texts[i % len(texts)], confidence_threshold=0))
                i += len(stubs)
            await call.done_writing()

        sender = asyncio.create_task(send())
        async for _ in call:
            done += 1
            window.release()
        await sender

    await asyncio.gather(*(streamer(k) for k in range(len(stubs))))
    return done


METHODS = {"PredictBatch": batch_calls, "PredictStream": stream_calls}


async def run(target: str, method: str, seconds: float, batch: int, calls: int) -> dict:
    texts = load_texts()
    # a subchannel pool each, so that every channel is its own connection (channels to one
    # target otherwise share one, and the kernel spreads connections over the workers)
    channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(calls)]
    stubs = [pb_grpc.InferenceStub(c) for c in channels]
    try:
        await METHODS[method](stubs, texts, batch, min(2.0, seconds))  # warm-up
        start = time.monotonic()
        n = await METHODS[method](stubs, texts, batch, seconds)
        elapsed = time.monotonic() - start
    finally:
        for c in channels:
            await c.close()
    return {"method": method, "texts": n, "seconds": round(elapsed, 2), "texts_per_s": round(n / elapsed, 1),
            "batch": batch, "calls": calls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True, help="127.0.0.1:PORT")
    ap.add_argument("--method", choices=tuple(METHODS), required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=32, help="texts a PredictBatch call; requests ahead a stream")
    ap.add_argument("--calls", type=int, default=4, help="calls (channels) in flight")
    args = ap.parse_args()
    if not args.target.startswith("127.0.0.1:"):
        sys.exit("bench.grpc_bulk: loopback targets only (127.0.0.1)")
    print(json.dumps(asyncio.run(run(args.target, args.method, args.seconds, args.batch, args.calls))))


if __name__ == "__main__":
    main()
