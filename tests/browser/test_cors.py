"""A page on another origin calls the REST door through CORS, in a real browser: a listed
origin gets the answer (credentials sent, request id readable), another is refused by the
browser itself."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests import security as sec
from tests.browser.conftest import Browser, StaticSite
from tests.harness import ServerThread

KEY = "a-cors-page-key-0123456789"

FETCH = """
const [url, init, done] = arguments;
fetch(url, init).then(async (r) => done({status: r.status, body: await r.json(),
    requestId: r.headers.get("x-request-id"), retryAfter: r.headers.get("retry-after")}))
  .catch((e) => done({error: String(e)}));
"""


def _call(browser: Browser, url: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> dict[str, Any]:
    init = {"method": "POST" if body is not None else "GET", "headers": headers}
    if body is not None:
        init["body"] = json.dumps(body)
    return browser.driver.execute_async_script(FETCH, url, init)


def test_a_listed_origin_calls_through_cors_another_is_refused(
        predictor: Any, browser: Browser, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>another origin</title><p>another origin</p>")
    keys = tmp_path / "keys.jsonl"
    sec.write_keys(keys, {"page": (KEY, ["predict"])})
    with StaticSite(tmp_path) as listed, StaticSite(tmp_path) as unlisted, ServerThread(
            predictor, cors_origins=[listed.origin], auth_api_keys_file=keys,
            rate_limit_per_second=1, rate_limit_burst=1) as server:
        json_key = {"content-type": "application/json", "x-api-key": KEY}
        one = {"text": "What a wonderful film!", "confidence_threshold": 0}
        browser.get(listed.origin + "/index.html")
        # JSON and an API key: a preflight first, answered without credentials
        reply = _call(browser, server.rest_url + "/v1/predict", json_key, one)
        assert reply.get("status") == 200, reply
        assert reply["body"]["prediction"] == "positive" and reply["requestId"]
        reply = _call(browser, server.rest_url + "/v1/predict/batch", json_key, {"texts": ["a", "b"]})
        assert reply.get("status") == 429 and reply["retryAfter"], reply  # the exposed Retry-After
        reply = _call(browser, server.rest_url + "/v1/predict", {"content-type": "application/json"}, one)
        assert reply.get("status") == 401, reply  # the refusal is readable too
        reply = _call(browser, server.rest_url + "/v1/model", {"authorization": f"Bearer {'x' * 20}"})
        assert reply.get("status") == 401, reply  # FastAPI's routes: the same CORS layer
        browser.get(unlisted.origin + "/index.html")
        reply = _call(browser, server.rest_url + "/v1/predict", json_key, one)
        assert "error" in reply and "Failed to fetch" in reply["error"], reply
        reply = _call(browser, server.rest_url + "/health/ready", {})
        assert "error" in reply, reply  # no preflight needed, but the answer is not for this page
