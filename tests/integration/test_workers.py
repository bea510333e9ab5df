"""`bet serve --workers 2`: two processes on the same ports answer alike (and as one process
does), metrics add up over both, a reload asked of one worker reaches the other, and SIGTERM
drains both and exits 0."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from tests.harness import BET, ServerThread
from tests.integration.test_reload import add_version

TEXTS = ["A warm, funny and well acted film.", "Dull and far too long.", "It was fine, I guess.",
         "The plot made no sense at all."]


def json_lines(log: Path) -> list[dict[str, Any]]:
    """A JSON log's whole lines: the last one may still be being written."""
    *whole, _ = log.read_text().split("\n")
    return [json.loads(x) for x in whole if x.startswith("{")]


class Workers:
    """`bet serve --workers 2` on free ports, its log (stderr) in a file."""

    def __init__(self, log: Path, extra: dict[str, str], args: list[str]) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [BET, "serve", "--workers", "2", "--rest-port", "0", "--grpc-port", "0", *args],
            stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
            env={**os.environ, "BET_ADMISSION_BUDGET_MS": "0", **extra})  # as tests/harness.py
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:  # the parent prints the addresses once both workers serve
            lines.append(line)
            if "gRPC" in line:
                break
        text = "".join(lines)
        assert "with 2 workers" in text, text
        self.rest = re.search(r"REST\s+(\S+)", text).group(1)
        self.target = re.search(r"gRPC\s+(\S+)", text).group(1)

    def requests(self, after: float = 0.0) -> list[dict[str, Any]]:
        """The request log lines of predictions, each with the worker that answered."""
        return [e for e in json_lines(self.log) if e.get("msg") == "request"
                and e.get("method") in ("POST /v1/predict", "Predict") and _ts(e) >= after]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def _eventually(check: Any, timeout: float = 5.0) -> bool:
    """Log lines reach the file within the server's flush interval (server/logs.py)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _ts(entry: dict[str, Any]) -> float:
    stamp = time.strptime(entry["ts"][:19], "%Y-%m-%dT%H:%M:%S")
    return time.mktime(stamp) + int(entry["ts"][20:]) / 1000


def _rest(workers: Workers, text: str) -> dict[str, Any]:
    """One prediction on a connection of its own, so that the kernel picks a worker each time."""
    reply = httpx.post(workers.rest + "/v1/predict", json={"text": text, "confidence_threshold": 0}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _grpc(workers: Workers, text: str) -> pb.PredictResponse:
    with grpc.insecure_channel(workers.target) as channel:
        return pb_grpc.InferenceStub(channel).Predict(pb.PredictRequest(text=text, confidence_threshold=0), timeout=60)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    root = tmp_path_factory.mktemp("workers")
    store = root / "store"
    store.mkdir()
    for name in ("1", "2"):
        add_version(store, name)
    served = Workers(root / "serve.log", {}, ["--model-store", str(store)])
    try:
        yield served
    finally:
        assert served.stop() == 0


def test_both_workers_answer_and_answer_as_one_process(workers: Workers, served: ServerThread) -> None:
    began = time.time() - 1
    answers = [(text, _rest(workers, text)) for _ in range(6) for text in TEXTS]
    assert _eventually(lambda: {e["worker"] for e in workers.requests(after=began)} == {0, 1})  # both took some
    for text, answer in answers:
        alone = served.http.post("/v1/predict", json={"text": text, "confidence_threshold": 0}).json()
        assert {**answer, "model_version": None} == {**alone, "model_version": None}
    for text in TEXTS:
        assert _grpc(workers, text).confidence == next(a for t, a in answers if t == text)["confidence"]
    metrics = httpx.get(workers.rest + "/metrics").text  # summed over the workers, whichever answers
    counted = re.search(r'^bet_requests_total\{method="POST /v1/predict",outcome="ok",protocol="rest"\} (\S+)$',
                        metrics, re.M)
    assert counted is not None and float(counted.group(1)) >= len(answers)


@pytest.mark.parametrize("door", ["rest", "grpc"])
def test_a_reload_asked_of_one_worker_reaches_the_other(workers: Workers, door: str) -> None:
    current = _rest(workers, TEXTS[0])["model_version"]
    wanted = "1" if current == "2" else "2"
    if door == "rest":
        reply = httpx.post(workers.rest + "/v1/admin/reload", json={"version": wanted}, timeout=60)
        assert reply.status_code == 200 and reply.json()["model"]["version"] == wanted
    else:
        with grpc.insecure_channel(workers.target) as channel:
            answer = pb_grpc.InferenceStub(channel).ReloadModel(pb.ReloadModelRequest(version=wanted), timeout=60)
        assert answer.model.version == wanted
    began = time.time()
    deadline = time.monotonic() + 30
    while True:  # the other worker loads it a moment later; then every answer is the new version
        versions = {_rest(workers, text)["model_version"] for text in TEXTS * 3}
        if versions == {wanted}:
            break
        assert time.monotonic() < deadline, f"still answering {versions} after a reload to {wanted}"
        time.sleep(0.2)
    time.sleep(0.2)
    answered = [_rest(workers, text)["model_version"] for text in TEXTS * 4]
    assert set(answered) == {wanted}
    assert _eventually(lambda: {e["worker"] for e in workers.requests(after=began)
                                if e.get("model_version") == wanted} == {0, 1})


def test_sigterm_drains_both_workers_and_exits_0(tmp_path: Path) -> None:
    # A long batching delay keeps the requests queued when the signal arrives.
    served = Workers(tmp_path / "serve.log", {"BET_MAX_DELAY_MS": "1500", "BET_MAX_BATCH_SIZE": "64"}, [])
    try:
        results: list[int] = []
        threads = [threading.Thread(target=lambda i=i: results.append(
            200 if _rest(served, f"in flight {i}") else 0)) for i in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while not re.search(r"^bet_queue_depth [1-9]", httpx.get(served.rest + "/metrics").text, re.M):
            assert time.monotonic() < deadline, "requests never queued"
            time.sleep(0.02)
        time.sleep(0.2)  # the rest of the requests reach their worker
        assert served.stop() == 0
        for t in threads:
            t.join(60)
        assert results == [200] * len(threads)
        stopped = [e for e in (json.loads(x) for x in served.log.read_text().splitlines() if x.startswith("{"))
                   if e.get("msg") == "stopped"]  # written at exit
        assert {e["worker"] for e in stopped} == {0, 1}
    finally:
        served.stop()
