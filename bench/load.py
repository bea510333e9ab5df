"""A bounded load generator for one server on this machine (loopback only), closed or open loop,
REST or gRPC, spread over several processes so that it is not itself the bottleneck.

Closed loop: `--connections N` callers each send, wait, send again for `--seconds`.
Open loop: `--rate R` requests/s arrive on a fixed schedule whatever the server does; latency
is measured from the scheduled send time, so a slow server cannot hide its queue.

Each request is classed as ok (200), refused (REST 503 with Retry-After, gRPC UNAVAILABLE) or
error (anything else, timeouts included). With `--honor-retry-after` a refused caller sleeps
the advised time before its next request, as a well-behaved client does.

    python -m bench.load --proto grpc --target 127.0.0.1:50051 --connections 256 --seconds 20
    python -m bench.load --proto rest --target http://127.0.0.1:8000 --rate 70 --seconds 20
Prints one JSON object."""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time
from pathlib import Path

MAX_OPEN_IN_FLIGHT = 4000  # open loop: arrivals past this many unanswered count as errors


def load_texts(path: str | None = None, limit: int = 400) -> list[str]:
    """Realistic inputs: the test sentences of the default data set (fetched if missing)."""
    from model.data import cache_dir, fetch, read_rows

    test = Path(path) if path else cache_dir() / "test.csv"
    if not test.exists():
        fetch()
    return [r.text for r in read_rows(test)][:limit]


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    v = sorted(values)

    def q(p: float) -> float:
        return round(v[min(len(v) - 1, int(p * len(v)))] * 1000, 1)

    return {"p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99), "max_ms": round(v[-1] * 1000, 1)}


async def _worker(args: argparse.Namespace, texts: list[str], index: int) -> dict:
    import grpc

    from server.grpc.gen.bet.v1 import inference_pb2 as pb
    from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc

    connections = max(1, args.connections // args.procs + (index < args.connections % args.procs))
    lat: dict[str, list[float]] = {"ok": [], "refused": [], "error": []}
    kinds: dict[str, int] = {}  # what the errors were
    closers = []
    if args.proto == "rest":
        # A lean keep-alive HTTP/1.1 client (httpx cost more CPU per request than the server):
        # a pool of connections, pre-encoded requests, responses read by Content-Length.
        host, port = args.target.split("//")[-1].rsplit(":", 1)
        if args.oip:  # the Open Inference Protocol's infer, one text a request
            bodies = {t: json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [t]}]})
                      .encode() for t in set(texts)}
            path = "/v2/models/bet/infer"
        else:
            bodies = {t: json.dumps({"text": t, "confidence_threshold": 0}).encode() for t in set(texts)}
            path = "/v1/predict"
        requests = {t: (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(b)}\r\n\r\n").encode() + b for t, b in bodies.items()}
        # closed loop: each caller its own connection, as wrk's (a shared pool would hand a
        # connection the server just refused, and paces, to another caller); open loop: a pool
        pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        own: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

        async def exchange(k: int, text: str) -> tuple[int, dict[str, str], bool]:
            held = own.pop(k, None) if args.rate is None else (pool.pop() if pool else None)
            reader, writer = held or await asyncio.open_connection(host, int(port))
            writer.write(requests[text])
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                # a kept-alive connection the server closed while idle (its keep-alive timeout):
                # sent again on a new one, as HTTP clients do
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(requests[text])
                raw = await reader.readuntil(b"\r\n\r\n")
            head = raw.decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
            await reader.readexactly(int(headers.get("content-length", 0)))
            if headers.get("connection", "").lower() == "close":
                writer.close()
            elif args.rate is None:
                own[k] = (reader, writer)
            else:
                pool.append((reader, writer))
            return int(head[0].split()[1]), headers, True

        def close_pool() -> asyncio.Future:
            for _, w in [*pool, *own.values()]:
                w.close()
            return asyncio.sleep(0)

        closers = [close_pool]

        async def call(k: int, text: str) -> tuple[str, float]:
            status, headers, _ = await asyncio.wait_for(exchange(k, text), args.timeout)
            if status == 200:
                return "ok", 0.0
            if status == 503:
                ra = headers.get("retry-after")
                if ra is not None:
                    return "refused", float(ra)
            kinds[f"status {status}"] = kinds.get(f"status {status}", 0) + 1
            return "error", 0.0
    else:
        # gRPC multiplexes: one channel (one HTTP/2 connection) per 16 in-flight calls, at least
        # 4, so that the kernel spreads them over `bet serve --workers` (it does so by connection)
        channels = [grpc.aio.insecure_channel(args.target, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(max(4, connections // 16))]
        closers = [c.close for c in channels]
        if args.oip:
            from server.grpc.gen.inference import open_inference_grpc_pb2 as oip_pb
            from server.grpc.gen.inference import open_inference_grpc_pb2_grpc as oip_grpc

            infer = [oip_grpc.GRPCInferenceServiceStub(c).ModelInfer for c in channels]

            def send(k: int, text: str):  # type: ignore[no-untyped-def]
                request = oip_pb.ModelInferRequest(model_name="bet")
                request.inputs.add(name="text", datatype="BYTES", shape=[1]).contents.bytes_contents.append(
                    text.encode())
                return infer[k % len(infer)](request, timeout=args.timeout)
        else:
            stubs = [pb_grpc.InferenceStub(c) for c in channels]

            def send(k: int, text: str):  # type: ignore[no-untyped-def]
                return stubs[k % len(stubs)].Predict(pb.PredictRequest(text=text, confidence_threshold=0),
                                                     timeout=args.timeout)

        async def call(k: int, text: str) -> tuple[str, float]:
            try:
                await send(k, text)
                return "ok", 0.0
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    md = dict(exc.trailing_metadata() or ())
                    return "refused", float(md.get("retry-after", 1))
                kinds[exc.code().name] = kinds.get(exc.code().name, 0) + 1
                return "error", 0.0

    async def one(k: int, text: str, sent: float) -> float:
        try:
            outcome, retry_after = await call(k, text)
        except Exception as exc:
            outcome, retry_after = "error", 0.0
            kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
        lat[outcome].append(time.perf_counter() - sent)
        return retry_after if outcome == "refused" else 0.0

    began = time.perf_counter()
    stop_at = began + args.seconds
    if args.rate is None:
        async def caller(k: int) -> None:
            i = k * 7 + index * 1000
            while time.perf_counter() < stop_at:
                pause = await one(k, texts[i % len(texts)], time.perf_counter())
                if pause and args.honor_retry_after:
                    await asyncio.sleep(min(pause, max(0.0, stop_at - time.perf_counter())))
                i += 1

        await asyncio.gather(*(caller(k) for k in range(connections)))
    else:
        rate = args.rate / args.procs
        pending: set[asyncio.Task] = set()
        n = 0
        while True:
            due = began + (n + index / args.procs) / rate
            if due >= stop_at:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if len(pending) >= MAX_OPEN_IN_FLIGHT:
                lat["error"].append(0.0)
                kinds["over MAX_OPEN_IN_FLIGHT"] = kinds.get("over MAX_OPEN_IN_FLIGHT", 0) + 1
            else:
                task = asyncio.create_task(one(n, texts[(n * args.procs + index) % len(texts)], due))
                pending.add(task)
                task.add_done_callback(pending.discard)
            n += 1
        if pending:
            await asyncio.wait(pending, timeout=args.timeout + 1)
    elapsed = time.perf_counter() - began
    for close in closers:
        await close()
    return {"elapsed": elapsed, "lat": lat, "kinds": kinds}


def _proc(args: argparse.Namespace, texts: list[str], index: int, out: mp.Queue) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_worker(args, texts, index)))


def run(args: argparse.Namespace) -> dict:
    texts = load_texts(args.texts)
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_proc, args=(args, texts, i, out), daemon=True) for i in range(args.procs)]
    for p in procs:
        p.start()
    parts = [out.get(timeout=args.seconds + args.timeout + 60) for _ in procs]
    for p in procs:
        p.join(5)
    elapsed = max(p["elapsed"] for p in parts)
    lat = {k: [x for p in parts for x in p["lat"][k]] for k in ("ok", "refused", "error")}
    total = sum(map(len, lat.values()))
    return {
        "proto": args.proto, "connections": args.connections, "rate": args.rate, "seconds": round(elapsed, 2),
        "requests": total, "ok": len(lat["ok"]), "refused": len(lat["refused"]), "errors": len(lat["error"]),
        "rps": round(total / elapsed, 1), "ok_rps": round(len(lat["ok"]) / elapsed, 1),
        **percentiles(lat["ok"]),
        "refused_latency": percentiles(lat["refused"]),
        "error_kinds": {k: sum(p["kinds"].get(k, 0) for p in parts) for k in {k for p in parts for k in p["kinds"]}},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proto", choices=("rest", "grpc"), required=True)
    ap.add_argument("--target", required=True, help="http://127.0.0.1:PORT (rest) or 127.0.0.1:PORT (grpc)")
    ap.add_argument("--connections", type=int, default=64, help="closed-loop callers (all processes)")
    ap.add_argument("--rate", type=float, help="open loop: requests per second (all processes)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--honor-retry-after", action="store_true")
    ap.add_argument("--oip", action="store_true", help="the Open Inference Protocol's infer, not bet.v1's Predict")
    ap.add_argument("--texts", help="CSV with a text column (default: the test set)")
    args = ap.parse_args()
    host = args.target.split("//")[-1].rsplit(":", 1)[0].strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("bench.load targets loopback addresses only")
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
