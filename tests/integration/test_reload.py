"""Model versions from a store: listing, reload and rollback on both doors and by SIGHUP,
under continuous load with nothing lost, and failed loads that leave the old version
serving. The versions are copies of the embedded checkpoint under other folder names."""
from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from model.checkpoint import DEFAULT_DIR, MANIFEST, sha256_file
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from tests import security as sec
from tests.harness import BET, Gated, ServerThread, start_bet_serve

PHASE = 40  # answers each load client gets from each version before the next reload
TEXT = {"text": "A warm, funny and well acted film.", "confidence_threshold": 0.0}


def add_version(store: Path, name: str) -> Path:
    """Copies the embedded checkpoint in as `name`, atomically (hidden until renamed)."""
    incoming = store / f".incoming-{name}"
    shutil.copytree(DEFAULT_DIR, incoming)
    return incoming.rename(store / name)


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    for name in ("1", "2"):
        add_version(root, name)
    return root


def as_version(predictor: Any, version: str) -> Gated:
    """The session's predictor (a copy of every version here) serving as `version`."""
    gated = Gated(predictor)
    gated.version = version
    return gated


def rest_reload(server: ServerThread, version: str | None = None) -> httpx.Response:
    return server.http.post("/v1/admin/reload", json={} if version is None else {"version": version})


def grpc_reload(server: ServerThread, version: str | None = None) -> pb.ReloadModelResponse:
    request = pb.ReloadModelRequest() if version is None else pb.ReloadModelRequest(version=version)
    return server.stub.ReloadModel(request, timeout=60)


def test_lists_versions_newest_first_on_both_doors(predictor: Any, store: Path) -> None:
    add_version(store, "10")  # natural order: 10 is newer than 2
    with ServerThread(as_version(predictor, "10"), model_store=store) as server:
        rest = server.http.get("/v1/model").json()
        assert rest["version"] == "10"
        assert [(v["version"], v["serving"]) for v in rest["versions"]] == [
            ("10", True), ("2", False), ("1", False)]
        info = server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        assert [(v.version, v.serving) for v in info.versions] == [("10", True), ("2", False), ("1", False)]
        assert all(v.created_at for v in info.versions)


@dataclass
class Client:
    """One caller sending requests back to back; records (start, end, model_version)."""

    name: str
    call: Callable[[], list[str]]  # the model_version of each answer
    answers: list[tuple[float, float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                versions = self.call()
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and fails the test
                self.failures.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            end = time.monotonic()
            self.answers.extend((start, end, v) for v in versions)

    def seen(self, version: str, after: float) -> bool:
        return any(v == version and start > after for start, _, v in self.answers)


def _clients(server: ServerThread) -> list[Client]:
    http = httpx.Client(base_url=server.rest_url, timeout=60)

    def rest_one() -> list[str]:
        reply = http.post("/v1/predict", json=TEXT)
        assert reply.status_code == 200, reply.text
        return [reply.json()["model_version"]]

    def rest_batch() -> list[str]:
        reply = http.post("/v1/predict/batch", json={"texts": ["Dull.", "Great fun.", "Fine."],
                                                     "confidence_threshold": 0.0})
        assert reply.status_code == 200, reply.text
        versions = [p["model_version"] for p in reply.json()["predictions"]]
        assert len(set(versions)) == 1, f"one batch answered by several versions: {versions}"
        return versions

    def grpc_one() -> list[str]:
        return [server.stub.Predict(pb.PredictRequest(**TEXT), timeout=60).model_version]

    def grpc_stream() -> list[str]:
        requests = (pb.PredictRequest(text=f"stream message {i}", confidence_threshold=0.0) for i in range(4))
        return [r.model_version for r in server.stub.PredictStream(requests, timeout=60)]

    kinds = {"rest": rest_one, "rest-batch": rest_batch, "grpc": grpc_one, "grpc-stream": grpc_stream}
    return [Client(f"{name}-{i}", call) for name, call in kinds.items() for i in range(2)]


def test_reload_and_rollback_under_load_lose_nothing(
    predictor: Any, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ServerThread(as_version(predictor, "1"), model_store=store, model_version="1") as server:
        clients = _clients(server)
        stop = threading.Event()
        threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in clients]
        for t in threads:
            t.start()
        reloads: list[tuple[float, float, str]] = []  # (sent, answered, version)
        try:
            for version, reload in (("2", rest_reload), ("1", grpc_reload)):  # then roll back
                _wait_all_seen(clients, reloads[-1][2] if reloads else "1", reloads[-1][1] if reloads else 0)
                sent = time.monotonic()
                reply = reload(server, version)
                answered = time.monotonic()
                served = reply.json()["model"]["version"] if isinstance(reply, httpx.Response) else reply.model.version
                assert served == version
                reloads.append((sent, answered, version))
            _wait_all_seen(clients, "1", reloads[-1][1])
        finally:
            stop.set()
            for t in threads:
                t.join(60)

    total = sum(len(c.answers) for c in clients)
    failures = [f for c in clients for f in c.failures]
    with capsys.disabled():
        counts = ", ".join(f"{c.name} {len(c.answers)}" for c in clients)
        print(f"\n[reload under load] {total} answers to {len(clients)} callers ({counts}), "
              f"{len(failures)} failed; 2 reloads: REST 1->2, gRPC rollback 2->1")
    assert not failures, failures[:5]
    for c in clients:
        # A clean switch: each caller sees 1, then 2, then 1 again, never back and forth ...
        runs = [v for i, (_, _, v) in enumerate(c.answers) if i == 0 or c.answers[i - 1][2] != v]
        assert runs == ["1", "2", "1"], (c.name, runs)
        # ... and every request sent after a reload answered is answered by the new version.
        for (sent, answered, version), later in zip(reloads, [*reloads[1:], None]):
            until = later[0] if later else float("inf")
            wrong = [v for start, _, v in c.answers if answered < start < until and v != version]
            assert not wrong, (c.name, version, wrong[:3])


def _wait_all_seen(clients: list[Client], version: str, after: float, timeout: float = 30) -> None:
    """Until every client has had PHASE answers from `version` to requests sent after `after`."""
    deadline = time.monotonic() + timeout
    while not all(sum(1 for s, _, v in c.answers if v == version and s > after) >= PHASE for c in clients):
        assert time.monotonic() < deadline, f"not every client saw version {version}"
        assert not any(c.failures for c in clients), [c.failures[:2] for c in clients]
        time.sleep(0.05)


def test_requests_in_flight_finish_on_the_version_they_started_on(predictor: Any, store: Path) -> None:
    gated = as_version(predictor, "1")
    with ServerThread(gated, model_store=store, model_version="1") as server:
        gated.gate.clear()
        gated.entered.clear()
        held: list[httpx.Response] = []
        callers = [threading.Thread(target=lambda: held.append(
            httpx.post(server.rest_url + "/v1/predict", json=TEXT, timeout=60))) for _ in range(2)]
        callers[0].start()
        assert gated.entered.wait(10)  # the first is in its forward pass on version 1 ...
        callers[1].start()
        time.sleep(0.2)  # ... and the second waits in version 1's queue
        try:
            reply = rest_reload(server, "2")  # does not wait for the held requests
            assert reply.status_code == 200, reply.text
            assert reply.json()["previous_version"] == "1"
            assert server.http.post("/v1/predict", json=TEXT).json()["model_version"] == "2"
            assert not held
        finally:
            gated.gate.set()
        for t in callers:
            t.join(30)
        assert [r.status_code for r in held] == [200, 200]
        assert [r.json()["model_version"] for r in held] == ["1", "1"]


def _truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def _edit_metadata(folder: Path) -> None:  # changed after the manifest was written
    meta = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**meta, "name": "altered"}))


def _incompatible_config(folder: Path) -> None:  # consistent digests, weights of another shape
    config = json.loads((folder / "config.json").read_text())
    config["network"]["d_model"] *= 2
    (folder / "config.json").write_text(json.dumps(config))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["config.json"] = sha256_file(folder / "config.json")
    (folder / MANIFEST).write_text(json.dumps(manifest))


CORRUPTIONS = {
    "truncated weights": (_truncate_weights, "3/model.safetensors: sha256 differs"),
    "missing file": (lambda f: (f / "tokenizer.json").unlink(), "3/tokenizer.json: missing"),
    "digest mismatch": (_edit_metadata, "3/metadata.json: sha256 differs"),
    "incompatible config": (_incompatible_config, "3/model.safetensors: weights do not match config.json"),
}


def test_a_version_that_fails_to_load_keeps_the_old_one_serving(predictor: Any, store: Path) -> None:
    with ServerThread(as_version(predictor, "2"), model_store=store) as server:
        for i, (corrupt, message) in enumerate(CORRUPTIONS.values()):
            shutil.rmtree(store / "3", ignore_errors=True)
            corrupt(add_version(store, "3"))
            if i % 2 == 0:
                reply = rest_reload(server)  # the newest, "3"
                assert reply.status_code == 409, reply.text
                detail = reply.json()["detail"]
            else:
                with pytest.raises(grpc.RpcError) as caught:
                    grpc_reload(server, "3")
                assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                detail = caught.value.details()
            assert message in detail and str(store) not in detail
            assert server.http.post("/v1/predict", json=TEXT).json()["model_version"] == "2"

        reply = rest_reload(server, "9")
        assert reply.status_code == 404 and "'9' is not in the model store" in reply.json()["detail"]
        with pytest.raises(grpc.RpcError) as caught:
            grpc_reload(server, "9")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert rest_reload(server, "").status_code == 422  # an empty version is invalid input

        info = server.http.get("/v1/model").json()
        assert info["version"] == "2" and [v["version"] for v in info["versions"]] == ["3", "2", "1"]
        metrics = server.http.get("/metrics").text
        assert 'bet_model_reloads_total{outcome="model_load_failed"} 4.0' in metrics
        assert 'bet_model_info{digest=' in metrics and 'version="2"' in metrics


class Broken:
    """A predictor that loads but fails every forward pass."""

    version = "3"
    labels = ["negative", "positive"]

    def __init__(self, info: Any) -> None:
        self._info = info

    def predict(self, texts: Any, *, with_reasoning: bool = False) -> Any:
        raise RuntimeError("the forward pass failed")

    def windows(self, texts: Any) -> list[int]:
        return [1] * len(texts)

    def info(self) -> Any:
        return self._info


def test_a_version_that_fails_its_warm_up_or_its_loader_keeps_the_old_one(predictor: Any, store: Path) -> None:
    def loader(path: Path | None, version: str | None) -> Any:
        if version == "1":
            raise MemoryError("no room for another model")
        return Broken(predictor.info())

    with ServerThread(as_version(predictor, "2"), model_store=store, loader=loader) as server:
        reply = rest_reload(server, "1")
        assert reply.status_code == 409
        assert reply.json()["detail"] == "version 1 cannot be loaded: MemoryError while loading (see the server log)"
        add_version(store, "3")
        reply = rest_reload(server, "3")
        assert reply.status_code == 409 and "version 3 failed its warm-up" in reply.json()["detail"]
        assert server.http.post("/v1/predict", json=TEXT).json()["model_version"] == "2"


def test_rollback_then_reload_without_a_version_serves_the_newest(predictor: Any, store: Path) -> None:
    with ServerThread(as_version(predictor, "2"), model_store=store) as server:
        back = grpc_reload(server, "1")
        assert (back.previous_version, back.model.version) == ("2", "1")
        assert [(v.version, v.serving) for v in back.model.versions] == [("2", False), ("1", True)]
        assert server.stub.Predict(pb.PredictRequest(**TEXT), timeout=10).model_version == "1"
        reply = server.http.post("/v1/admin/reload")  # no body: the newest
        assert reply.status_code == 200 and reply.json()["model"]["version"] == "2"
        metrics = server.http.get("/metrics").text
        assert 'bet_model_requests_total{model_version="1",outcome="ok"} 1.0' in metrics


def test_concurrent_reloads_run_one_after_another(predictor: Any, store: Path) -> None:
    with ServerThread(as_version(predictor, "2"), model_store=store) as server:
        replies: list[tuple[str, str]] = []

        def reload(version: str) -> None:
            body = httpx.post(server.rest_url + "/v1/admin/reload", json={"version": version}, timeout=60).json()
            replies.append((body["previous_version"], body["model"]["version"]))

        threads = [threading.Thread(target=reload, args=(v,)) for v in ("1", "2", "1")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # one after another: in some order, each reload's previous version is the last one's new
        serving = server.http.get("/v1/model").json()["version"]
        assert any(
            [p for p, _ in order] == ["2", *(n for _, n in order[:-1])] and order[-1][1] == serving
            for order in itertools.permutations(replies)), replies


def test_reload_with_authentication_needs_the_admin_scope(predictor: Any, store: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.jsonl"
    sec.write_keys(keys, {"ops": ("ops-key", ["admin"]), "app": ("app-key", ["predict"])})
    with ServerThread(as_version(predictor, "2"), model_store=store, auth_api_keys_file=keys) as server:
        assert server.http.post("/v1/admin/reload", json={"version": "1"}).status_code == 401
        refused = server.http.post("/v1/admin/reload", json={"version": "1"}, headers={"x-api-key": "app-key"})
        assert refused.status_code == 403
        reply = server.http.post("/v1/admin/reload", json={"version": "1"}, headers={"x-api-key": "ops-key"})
        assert reply.status_code == 200 and reply.json()["model"]["version"] == "1"
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.ReloadModel(pb.ReloadModelRequest(version="2"), timeout=60, metadata=(("x-api-key", "app-key"),))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        back = server.stub.ReloadModel(pb.ReloadModelRequest(version="2"), timeout=60,
                                       metadata=(("x-api-key", "ops-key"),))
        assert (back.previous_version, back.model.version) == ("1", "2")


def test_bet_serve_exits_2_for_a_pinned_version_the_store_lacks(store: Path) -> None:
    done = subprocess.run([BET, "serve", "--rest-port", "0", "--grpc-port", "0", "--model-store", str(store),
                           "--model-version", "9"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "version '9' is not in the model store (available: 2, 1)" in done.stderr


def test_sighup_reloads_the_newest_version(store: Path) -> None:
    shutil.rmtree(store / "2")
    proc, rest, _ = start_bet_serve({}, ["--model-store", str(store)])
    try:
        assert httpx.get(rest + "/v1/model").json()["version"] == "1"
        add_version(store, "2")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while httpx.get(rest + "/v1/model").json()["version"] != "2":
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.1)
        assert httpx.post(rest + "/v1/predict", json=TEXT).json()["model_version"] == "2"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_tracing_spans_carry_the_model_version_and_join_the_callers_trace(predictor: Any, store: Path) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the tracing extra is not installed")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from server.core.tracing import Tracing

    exporter = InMemorySpanExporter()
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    with ServerThread(as_version(predictor, "2"), model_store=store,
                      tracing=Tracing.with_exporter(exporter)) as server:
        parent = f"00-{trace_id}-b7ad6b7169203331-01"
        server.http.post("/v1/predict", json=TEXT, headers={"traceparent": parent})
        server.stub.Predict(pb.PredictRequest(**TEXT), timeout=10, metadata=(("traceparent", parent),))
        assert rest_reload(server, "1").status_code == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    rest = spans["bet rest POST /v1/predict"]
    assert rest.attributes["bet.model_version"] == "2" and rest.attributes["bet.outcome"] == "ok"
    assert format(rest.context.trace_id, "032x") == trace_id
    grpc_span = spans["bet grpc Predict"]
    assert grpc_span.attributes["bet.model_version"] == "2"
    assert format(grpc_span.context.trace_id, "032x") == trace_id
    reload = spans["bet reload"]
    assert (reload.attributes["bet.previous_version"], reload.attributes["bet.model_version"]) == ("2", "1")
