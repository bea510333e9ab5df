"""The prediction routes (server/rest/fast_path.py, plain ASGI) by their written rules: the
body rules (converters.BODY_RULES) case by case, methods other than POST, the OpenAPI
document that states them, and a client that goes away."""
from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest

from server.core.schemas import MAX_BATCH_TEXTS, MAX_TEXT_CHARS
from server.rest.converters import BODY_RULES
from tests.harness import Gated, ServerThread

BODY_LIMIT = 64 * 1024
J = {"content-type": "application/json"}
P, B = "/v1/predict", "/v1/predict/batch"
NOT_JSON = "the body is not valid JSON"

# (path, body, headers, status, a part of the detail)
CASES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    (P, b"{}", J, 422, "text: Field required"),
    (P, b'{"text": ""}', J, 422, "text: String should have at least 1 character"),
    (P, b'{"text": " \\n\\t "}', J, 422, "text: Value error, the text holds only whitespace"),
    (P, json.dumps({"text": "x" * (MAX_TEXT_CHARS + 1)}).encode(), J, 422, "at most 10000 characters"),
    (P, json.dumps({"text": " " + "x" * MAX_TEXT_CHARS}).encode(), J, 422, "at most 10000 characters"),
    (P, b'{"text": 123}', J, 422, "text: Input should be a valid string"),
    (P, b'{"text": ["a"]}', J, 422, "text: Input should be a valid string"),
    (P, b'{"text": "ok", "return_cot": "yes"}', J, 422, "return_cot: Input should be a valid boolean"),
    (P, b'{"text": "ok", "confidence_threshold": "0.5"}', J, 422, "confidence_threshold"),
    (P, b'{"text": "ok", "colour": "blue"}', J, 422, "colour: Extra inputs are not permitted"),
    (P, b'{"text": "ok", "confidence_threshold": 1.01}', J, 422, "confidence_threshold"),
    (B, json.dumps({"texts": ["a"] * (MAX_BATCH_TEXTS + 1)}).encode(), J, 422, "at most 256 items"),
    (B, b'{"texts": []}', J, 422, "texts"),
    (B, b'{"texts": ["fine", " ", 3]}', J, 422, "texts.1"),
    (P, b"\xff\xfe", J, 400, NOT_JSON),
    (P, b'{"text": "\xff"}', J, 400, NOT_JSON),
    (P, b"not json", J, 400, NOT_JSON),
    (P, b'{"text": "a",}', J, 400, NOT_JSON),
    (P, b'{"text": ', J, 400, NOT_JSON),
    (P, b'{"text": "ok", "confidence_threshold": NaN}', J, 400, NOT_JSON),
    (P, b'{"text": "ok", "confidence_threshold": Infinity}', J, 400, NOT_JSON),
    (P, b'\xef\xbb\xbf{"text": "byte order mark"}', J, 400, NOT_JSON),
    (P, '{"text": "sixteen bits"}'.encode("utf-16"), J, 400, NOT_JSON),
    (P, b"[" * 5000 + b"]" * 5000, J, 400, NOT_JSON),
    (P, b'[{"text": "ok"}]', J, 422, "valid dictionary"),
    (P, b"null", J, 422, "valid dictionary"),
    (P, b"", J, 422, "the request has no body"),
    (P, b"", {}, 422, "the request has no body"),
    (P, b'{"text": "ok"}', {"content-type": "text/plain"}, 415, "must be JSON"),
    (P, b'{"text": "ok"}', {}, 415, "not none"),
    (P, b'{"text": "ok"}', {"content-type": "application/json-patch"}, 415, "must be JSON"),
    (B, b'{"texts": ["one"]}', {"content-type": "text/plain"}, 415, "must be JSON"),
    (P, b'{"text": "A fine film.", "confidence_threshold": 1.0}', J, 422, "below the threshold"),
    (P, b"x" * (BODY_LIMIT + 1), J, 413, "exceeds"),
]
ANSWERED: list[tuple[str, bytes, dict[str, str]]] = [
    (P, b'{"text": "ok"}', {"content-type": "Application/JSON; charset=utf-8"}),
    (P, b'{"text": "ok"}', {"content-type": "application/vnd.bet+json"}),
    (P, b'{"text": "ok", "text": "A fine film."}', J),  # duplicate keys: the last one counts
    (P, json.dumps({"text": " " * 5 + "x" * (MAX_TEXT_CHARS - 5)}).encode(), J),
    (B, b'{"texts": ["one", "two"], "confidence_threshold": 0}', J),
]


@pytest.fixture(scope="module")
def server(predictor: Any):
    with ServerThread(predictor, max_request_bytes=BODY_LIMIT) as served:
        yield served


@pytest.mark.parametrize(("path", "body", "headers", "status", "detail"), CASES, ids=range(len(CASES)))
def test_each_body_rule(server: ServerThread, path: str, body: bytes, headers: dict[str, str], status: int,
                        detail: str) -> None:
    reply = server.http.post(path, content=body, headers=headers)
    assert reply.status_code == status and detail in reply.json()["detail"], reply.text


@pytest.mark.parametrize(("path", "body", "headers"), ANSWERED, ids=range(len(ANSWERED)))
def test_bodies_the_rules_allow_are_answered(server: ServerThread, path: str, body: bytes,
                                             headers: dict[str, str]) -> None:
    assert server.http.post(path, content=body, headers=headers).status_code in (200, 422)


def test_other_methods_are_405_and_the_document_states_the_rules(server: ServerThread) -> None:
    for method, path in (("GET", P), ("PUT", B), ("GET", "/v2/models/bet/infer")):
        reply = server.http.request(method, path)
        assert reply.status_code == 405 and reply.headers["allow"] == "POST", (method, path)
    document = server.http.get("/openapi.json").json()
    for path in (P, B):
        operation = document["paths"][path]["post"]
        assert operation["description"] == BODY_RULES
        assert {"200", "400", "415", "422", "503"} <= set(operation["responses"])
    text = document["components"]["schemas"]["PredictRequest"]["properties"]["text"]
    assert (text["maxLength"], text["minLength"], text["pattern"]) == (MAX_TEXT_CHARS, 1, "\\S")
    assert "post" in document["paths"]["/v2/models/{model}/infer"]


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
