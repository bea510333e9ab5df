"""The pages for people (the demo page at /, the offline docs) and CORS, over plain HTTP on a
real server: what a browser is sent (tests/browser shows what it does with it)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import security as sec
from tests.harness import ServerThread

ORIGIN = "http://127.0.0.1:8765"
OTHER = "http://127.0.0.1:8766"
KEY = "a-cors-key-0123456789abcdef"


@pytest.fixture(scope="module")
def guarded(predictor: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    keys = tmp_path_factory.mktemp("cors") / "keys.jsonl"
    sec.write_keys(keys, {"page": (KEY, ["predict"])})
    with ServerThread(predictor, auth_api_keys_file=keys, cors_origins=f"{ORIGIN}, https://app.example") as server:
        yield server


def preflight(server: ServerThread, path: str, origin: str = ORIGIN, headers: str = "content-type,x-api-key",
              method: str = "POST") -> httpx.Response:
    return server.http.options(path, headers={"origin": origin, "access-control-request-method": method,
                                              "access-control-request-headers": headers})


def test_the_demo_page_is_served_open_with_a_strict_policy(guarded: ServerThread) -> None:
    reply = httpx.get(guarded.rest_url + "/")  # no credentials, authentication on
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    policy = reply.headers["content-security-policy"]
    assert "connect-src 'self'" in policy and "default-src 'none'" in policy
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/]+=*'$", policy.split(";")[1].strip())
    page = reply.text
    assert '"v1/predict"' in page and '"v1/predict/batch"' in page and "return_cot: true" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page loads something from elsewhere"
    assert not re.search(r"\b(localStorage|sessionStorage)\.|document\.cookie", page)  # credentials: memory only


def test_the_demo_page_can_be_turned_off(predictor: Any) -> None:
    with ServerThread(predictor, demo_page=False) as server:
        assert server.http.get("/").status_code == 404
        assert server.http.get("/docs").status_code == 200


@pytest.mark.parametrize("page, asset", [("/docs", "swagger-ui-bundle.js"), ("/docs", "swagger-ui.css"),
                                         ("/redoc", "redoc.standalone.js")])
def test_the_docs_load_their_assets_from_this_server(guarded: ServerThread, page: str, asset: str) -> None:
    html = httpx.get(guarded.rest_url + page).text
    assert f"/docs/assets/{asset}" in html
    assert not re.search(r"""(src|href)=["']?https?://""", html), html
    assert httpx.get(f"{guarded.rest_url}/docs/assets/{asset}").status_code == 200  # open, as the page is
    assert '"validatorUrl": null' in httpx.get(guarded.rest_url + "/docs").text


def test_no_cors_headers_without_origins(served: ServerThread) -> None:
    reply = served.http.post("/v1/predict", json={"text": "hello", "confidence_threshold": 0},
                             headers={"origin": ORIGIN})
    assert reply.status_code == 200
    assert not [h for h in reply.headers if h.startswith("access-control-")]
    reply = preflight(served, "/v1/predict")
    assert reply.status_code == 405 and "access-control-allow-origin" not in reply.headers


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/predict/batch", "/v2/models/bet/infer", "/v1/model",
                                  "/v1/admin/reload"])
def test_a_preflight_is_answered_before_credentials_and_not_counted(guarded: ServerThread, path: str) -> None:
    reply = preflight(guarded, path, headers="authorization,content-type,x-api-key,x-request-id")
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip().lower() for h in reply.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "x-api-key", "content-type"} <= allowed
    assert "POST" in reply.headers["access-control-allow-methods"]
    metrics = guarded.http.get("/metrics").text
    assert 'method="OPTIONS' not in metrics  # neither a request of the path nor a refusal


def test_a_preflight_from_another_origin_is_refused(guarded: ServerThread) -> None:
    for reply in (preflight(guarded, "/v1/predict", origin=OTHER),
                  preflight(guarded, "/v1/predict", headers="x-not-allowed")):
        assert reply.status_code == 400 and reply.text.startswith("Disallowed CORS")
    assert "access-control-allow-origin" not in preflight(guarded, "/v1/predict", origin=OTHER).headers


def test_answers_carry_cors_headers_on_both_apps(guarded: ServerThread) -> None:
    sent = {"origin": ORIGIN, "x-api-key": KEY}
    answers = [guarded.http.post("/v1/predict", json={"text": "hello", "confidence_threshold": 0}, headers=sent),
               guarded.http.get("/v1/model", headers=sent),  # FastAPI's, not the fast path's
               guarded.http.post("/v1/predict", json={"text": "hello"}, headers={"origin": ORIGIN}),  # 401
               guarded.http.get("/nowhere", headers={"origin": "https://app.example"})]
    assert [a.status_code for a in answers] == [200, 200, 401, 401]
    for reply in answers:
        assert reply.headers["access-control-allow-origin"] in (ORIGIN, "https://app.example")
        exposed = {h.strip().lower() for h in reply.headers["access-control-expose-headers"].split(",")}
        assert exposed == {"x-request-id", "retry-after"}
        assert "origin" in reply.headers["vary"].lower()
    reply = guarded.http.get("/health/ready", headers={"origin": OTHER})
    assert reply.status_code == 200 and "access-control-allow-origin" not in reply.headers


def test_origins_are_checked_as_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from server.settings import Settings

    monkeypatch.setenv("BET_CORS_ORIGINS", " http://127.0.0.1:3000,https://app.example ,")
    assert Settings().cors_origins == ["http://127.0.0.1:3000", "https://app.example"]
    monkeypatch.setenv("BET_CORS_ORIGINS", "")
    assert Settings().cors_origins == []
    monkeypatch.setenv("BET_DEMO_PAGE", "false")
    assert Settings().demo_page is False
    for bad in ("http://app.example/", "app.example", "ftp://app.example", "http://a b"):
        with pytest.raises(ValidationError, match="not an origin"):
            Settings(cors_origins=bad)
