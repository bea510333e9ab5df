"""Continuous load on both doors of a real `bet serve --workers 2`, for the fault tests: each
call's door, time, outcome and the version that answered."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx

from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from tests.integration.test_workers import Workers, json_lines

CALL_TIMEOUT_S = 15.0  # a call that takes longer is a hang
TEXTS = ("A warm, funny and well acted film.", "Dull and far too long.", "It was fine, I guess.")


@dataclass
class Call:
    door: str
    start: float
    end: float
    outcome: str  # ok | retriable (503, UNAVAILABLE, a reset) | cancelled (gRPC CANCELLED) | hang | failed
    version: str = ""
    detail: str = ""


class Load:
    """`per_door` callers on each door until stop(): REST callers on keep-alive connections
    (a new one after an error), gRPC callers on a channel each."""

    def __init__(self, server: Workers, per_door: int = 2) -> None:
        self.server = server
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._rest, daemon=True) for _ in range(per_door)]
        self._threads += [threading.Thread(target=self._grpc, daemon=True) for _ in range(per_door)]

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> list[Call]:
        self._stop.set()
        for t in self._threads:
            t.join(CALL_TIMEOUT_S + 5)
        return self.calls

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _rest(self) -> None:
        client = httpx.Client(base_url=self.server.rest, timeout=CALL_TIMEOUT_S)
        i = 0
        while not self._stop.is_set():
            i += 1
            start = time.monotonic()
            try:
                reply = client.post("/v1/predict", json={"text": TEXTS[i % 3], "confidence_threshold": 0})
            except httpx.TimeoutException as exc:
                self._record(Call("rest", start, time.monotonic(), "hang", detail=repr(exc)))
                continue
            except httpx.TransportError as exc:  # the worker went away under the connection
                self._record(Call("rest", start, time.monotonic(), "retriable", detail=repr(exc)))
                client.close()
                client = httpx.Client(base_url=self.server.rest, timeout=CALL_TIMEOUT_S)
                time.sleep(0.05)
                continue
            end = time.monotonic()
            if reply.status_code == 200:
                self._record(Call("rest", start, end, "ok", reply.json()["model_version"]))
            else:
                outcome = "retriable" if reply.status_code == 503 else "failed"
                self._record(Call("rest", start, end, outcome, detail=f"{reply.status_code} {reply.text[:200]}"))
        client.close()

    def _grpc(self) -> None:
        with grpc.insecure_channel(self.server.target) as channel:
            stub = pb_grpc.InferenceStub(channel)
            i = 0
            while not self._stop.is_set():
                i += 1
                start = time.monotonic()
                try:
                    answer = stub.Predict(pb.PredictRequest(text=TEXTS[i % 3], confidence_threshold=0),
                                          timeout=CALL_TIMEOUT_S)
                except grpc.RpcError as exc:
                    code = exc.code()
                    outcome = {grpc.StatusCode.UNAVAILABLE: "retriable", grpc.StatusCode.CANCELLED: "cancelled",
                               grpc.StatusCode.DEADLINE_EXCEEDED: "hang"}.get(code, "failed")
                    self._record(Call("grpc", start, time.monotonic(), outcome, detail=f"{code} {exc.details()}"))
                    time.sleep(0.05)
                    continue
                self._record(Call("grpc", start, time.monotonic(), "ok", answer.model_version))


def count(calls: list[Call]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for c in calls:
        key = f"{c.door} {c.outcome}"
        totals[key] = totals.get(key, 0) + 1
    return totals


def children(pid: int) -> set[int]:
    """The worker processes of the supervisor `pid`."""
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def wait_for(check, timeout: float, step: float = 0.05) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds until check() is true, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    return None


def ready_workers(server: Workers) -> set[int]:
    """Pids of the workers that reported serving (bet's "serving" log line, after warm-up)."""
    return {e["pid"] for e in log_lines(server) if e.get("msg") == "serving"}


def log_lines(server: Workers) -> list[dict]:
    return json_lines(server.log)


def start(log: Path, extra: dict[str, str], args: list[str]) -> Workers:
    """Two workers whose heartbeat limit is 3 s and drain limit 10 s."""
    return Workers(log, {"BET_HEARTBEAT_TIMEOUT_S": "3", "BET_DRAIN_TIMEOUT_S": "10", **extra}, args)
