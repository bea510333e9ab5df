"""The plain-ASGI fast path of POST /v1/predict and /v1/predict/batch (server/rest/fast_path.py)
answers exactly as FastAPI's routes for them do: a real server (fast path) and FastAPI's app
for the same core on a second loopback port, the same requests to both, the same status,
headers and bytes back."""
from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from server.core.schemas import MAX_BATCH_TEXTS, MAX_TEXT_CHARS
from server.rest.app import create_rest_app
from server.rest.fast_path import FastPath
from tests.harness import Gated, ServerThread

BODY_LIMIT = 64 * 1024
J = {"content-type": "application/json"}
P, B = "/v1/predict", "/v1/predict/batch"

# (path, body, headers): the brief's bad inputs first, then what FastAPI's reading of a
# body makes of content types and of JSON that only Python's json module reads.
CASES: list[tuple[str, bytes, dict[str, str]]] = [
    (P, b"{}", J),                                                   # missing text
    (P, b'{"text": ""}', J),                                         # empty text
    (P, b'{"text": " \\n\\t "}', J),                                 # empty after stripping
    (P, json.dumps({"text": "x" * (MAX_TEXT_CHARS + 1)}).encode(), J),
    (P, b'{"text": 123}', J),                                        # wrong types
    (P, b'{"text": ["a"]}', J),
    (P, b'{"text": "ok", "return_cot": "yes", "confidence_threshold": "0.5"}', J),
    (P, b'{"text": "ok", "return_uncertainty": 1}', J),
    (P, b'{"text": "ok", "colour": "blue"}', J),                     # extra field (forbidden)
    (P, b'{"text": "ok", "confidence_threshold": 1.01}', J),
    (B, json.dumps({"texts": ["a"] * (MAX_BATCH_TEXTS + 1)}).encode(), J),  # too many texts
    (B, b'{"texts": []}', J),
    (B, b'{"texts": ["fine", " ", 3]}', J),
    (B, b'{"texts": "fine"}', J),
    (B, b'{"text": "fine"}', J),
    (P, b"\xff\xfe", J),                                             # not UTF-8
    (P, b'{"text": "\xff"}', J),
    (P, b"not json", J),                                             # not JSON
    (P, b'{"text": "a",}', J),
    (P, b'{"text": ', J),
    (B, b"not json", J),
    (P, b'[{"text": "ok"}]', J),                                     # a JSON array
    (P, b'"just a string"', J),
    (P, b"null", J),
    (P, b"", J),                                                     # no body
    (P, b"", {}),
    (P, b'{"text": "ok"}', {"content-type": "text/plain"}),          # content types
    (P, b'{"text": "ok"}', {}),
    (P, b'{"text": "ok"}', {"content-type": "application/json-patch"}),
    (P, b'{"text": "ok"}', {"content-type": "Application/JSON; charset=utf-8"}),
    (P, b'{"text": "ok"}', {"content-type": "application/vnd.bet+json"}),
    (B, b'{"texts": ["one"]}', {"content-type": "text/plain"}),
    (P, b'{"text": "ok", "confidence_threshold": NaN}', J),          # json reads, orjson not
    (P, b'{"text": "ok", "confidence_threshold": Infinity}', J),
    (P, b'{"text": "ok", "confidence_threshold": 1e400}', J),
    (P, b'{"text": "ok", "confidence_threshold": 100000000000000000000000000}', J),
    (P, b'\xef\xbb\xbf{"text": "byte order mark"}', J),
    (P, '{"text": "sixteen bits"}'.encode("utf-16"), J),
    (P, b'{"text": "a\\ud800b"}', J),
    (P, b"[" * 5000 + b"]" * 5000, J),
    (P, b'{"text": "ok", "text": ""}', J),                           # duplicate keys
    (P, b'{"text": "A fine film.", "confidence_threshold": 1.0}', J),  # below the threshold
    (B, b'{"texts": ["one", "two"], "confidence_threshold": 1.0}', J),
    (P, b'{"text": "A fine film.", "confidence_threshold": 0, "return_cot": true}', J),  # answers
    (P, b'{"text": "A fine film.", "confidence_threshold": 0, "return_uncertainty": false}', J),
    (B, b'{"texts": ["one", "two"], "confidence_threshold": 0}', J),
    (P, b"x" * (BODY_LIMIT + 1), J),                                 # over the body limit
]


def _listen() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@pytest.fixture(scope="module")
def pair(predictor: Any) -> Iterator[tuple[ServerThread, httpx.Client]]:
    """A real server (fast path) and, on the same loop and core, FastAPI's app alone."""
    with ServerThread(predictor, max_request_bytes=BODY_LIMIT) as server:
        bet = server.server
        rest = create_rest_app(bet.service, bet.metrics, guard=bet.guard, max_request_bytes=BODY_LIMIT,
                               body_timeout_s=server.settings.body_timeout_s)
        assert isinstance(rest, FastPath)
        reference = uvicorn.Server(uvicorn.Config(rest.api, log_config=None, access_log=False, lifespan="off"))
        sock = _listen()
        task = asyncio.run_coroutine_threadsafe(reference.serve(sockets=[sock]), server.loop)
        deadline = time.monotonic() + 10
        while not reference.started:
            assert time.monotonic() < deadline and not task.done(), "the reference did not start"
            time.sleep(0.01)
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=60) as client:
            yield server, client
        reference.should_exit = True
        task.result(10)


def _answer(client: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> tuple:
    reply = client.post(path, content=body, headers={**headers, "x-request-id": "same-id"})
    return reply.status_code, [(k, v) for k, v in reply.headers.multi_items() if k != "date"], reply.content


@pytest.mark.parametrize(("path", "body", "headers"), CASES, ids=range(len(CASES)))
def test_fast_path_answers_as_fastapi(pair, path: str, body: bytes, headers: dict[str, str]) -> None:
    server, reference = pair
    fast = _answer(server.http, path, body, headers)
    assert fast == _answer(reference, path, body, headers)
    assert fast[0] < 500


def test_the_details_are_the_ones_documented(pair) -> None:
    server, _ = pair

    def detail(path: str, body: bytes, headers: dict[str, str] = J) -> tuple[int, str]:
        reply = server.http.post(path, content=body, headers=headers)
        return reply.status_code, reply.json()["detail"]

    assert detail(P, b"{}") == (422, "text: Field required")
    assert detail(P, b'{"text": ""}') == (422, "text: String should have at least 1 character")
    assert detail(P, b'{"text": 1}') == (422, "text: Input should be a valid string")
    assert detail(P, b'{"text": "ok", "x": 1}') == (422, "x: Extra inputs are not permitted")
    assert detail(B, json.dumps({"texts": ["a"] * 257}).encode()) == (
        422, "texts: List should have at most 256 items after validation, not 257")
    assert detail(P, b"\xff\xfe") == (400, "the body is not valid JSON")
    assert detail(P, b"not json") == (400, "the body is not valid JSON")
    shape = "Input should be a valid dictionary or object to extract fields from"
    assert detail(P, b'[{"text": "ok"}]') == (422, shape)
    assert detail(P, b'{"text": "ok"}', {"content-type": "text/plain"}) == (422, shape)
    assert detail(P, b"", {}) == (422, "Field required")
    assert detail(P, json.dumps({"text": "ok", "confidence_threshold": math.nan}).encode()) == (
        422, "confidence_threshold: Input should be a finite number")


def test_other_methods_and_paths_stay_with_fastapi(pair) -> None:
    server, reference = pair
    for method, path in [("GET", P), ("PUT", B), ("POST", P + "/"), ("GET", "/health/live")]:
        fast, ref = server.http.request(method, path), reference.request(method, path)
        assert fast.status_code == ref.status_code and fast.status_code != 200 or path == "/health/live"
        assert fast.content.replace(server.rest_url.encode(), b"") == ref.content.replace(
            str(reference.base_url).rstrip("/").encode(), b"")
    document = server.http.get("/openapi.json").json()
    assert document == reference.get("/openapi.json").json()
    assert {"post"} == set(document["paths"][P]) == set(document["paths"][B])


def test_a_client_that_goes_away_drops_its_queued_texts(predictor: Any) -> None:
    """The fast path's disconnect watcher: the request's texts leave the queue (499)."""
    gated = Gated(predictor)
    with ServerThread(gated, max_batch_size=1) as server:
        gated.gate.clear()
        gated.entered.clear()
        holder = threading.Thread(target=server.http.post, args=(P,),
                                  kwargs={"json": {"text": "holder", "confidence_threshold": 0}})
        holder.start()
        try:
            assert gated.entered.wait(10)
            with socket.create_connection(("127.0.0.1", int(server.rest_url.rsplit(":", 1)[1]))) as conn:
                body = json.dumps({"texts": ["gone 1", "gone 2"]}).encode()
                conn.sendall(b"POST /v1/predict/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
                deadline = time.monotonic() + 10
                while "bet_queue_depth 2.0" not in server.http.get("/metrics").text:
                    assert time.monotonic() < deadline, "the texts never queued"
                    time.sleep(0.01)
            deadline = time.monotonic() + 10
            while 'method="POST /v1/predict/batch",outcome="cancelled"' not in server.http.get("/metrics").text:
                assert time.monotonic() < deadline, "the request was not cancelled when its client left"
                time.sleep(0.01)
        finally:
            gated.gate.set()
            holder.join(30)
        deadline = time.monotonic() + 10
        while 'bet_dropped_total{reason="cancelled"} 2.0' not in server.http.get("/metrics").text:
            assert time.monotonic() < deadline, "the texts of the client that left were not dropped"
            time.sleep(0.01)
        assert "gone 1" not in gated.computed and "holder" in gated.computed
