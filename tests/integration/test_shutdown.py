"""`bet serve` as a real process: prints its addresses, and on SIGTERM finishes the requests
in flight before it exits 0."""
from __future__ import annotations

import re
import signal
import subprocess
import threading
import time

import grpc
import httpx

from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from tests.harness import BET, start_bet_serve


def _queue_depth(rest: str) -> float:
    text = httpx.get(rest + "/metrics").text
    return float(re.search(r"^bet_queue_depth (\S+)$", text, re.M).group(1))


def test_sigterm_drains_requests_in_flight_and_exits_0() -> None:
    # A long batching delay keeps the requests queued when the signal arrives.
    proc, rest, target = start_bet_serve({"BET_MAX_DELAY_MS": "1500", "BET_MAX_BATCH_SIZE": "64"})
    try:
        results: list[object] = []

        def rest_call(i: int) -> None:
            reply = httpx.post(rest + "/v1/predict", json={"text": f"in flight {i}", "confidence_threshold": 0},
                               timeout=60)
            results.append(reply.status_code)

        def grpc_call(i: int) -> None:
            with grpc.insecure_channel(target) as channel:
                reply = pb_grpc.InferenceStub(channel).Predict(
                    pb.PredictRequest(text=f"in flight {i}", confidence_threshold=0), timeout=60)
                results.append(200 if reply.prediction else 0)

        threads = [threading.Thread(target=f, args=(i,)) for i in range(4) for f in (rest_call, grpc_call)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while _queue_depth(rest) < len(threads):
            assert time.monotonic() < deadline, "requests never queued"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert proc.wait(60) == 0
        assert results == [200] * len(threads)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigint_with_nothing_in_flight_exits_0() -> None:
    proc, rest, _ = start_bet_serve({})
    try:
        assert httpx.post(rest + "/v1/predict", json={"text": "hello", "confidence_threshold": 0}).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_port_in_use_is_a_message_not_a_traceback() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        for flag in ("--rest-port", "--grpc-port"):
            other = "--grpc-port" if flag == "--rest-port" else "--rest-port"
            done = subprocess.run([BET, "serve", flag, str(port), other, "0"], capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 2, done.stderr
            assert "bet serve:" in done.stderr and "Traceback" not in done.stderr
