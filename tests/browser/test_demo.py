"""The demo page at GET / in a real browser, against real servers: labels, probabilities,
the uncertainty split, evidence words, and every refusal read as a sentence."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.core.schemas import MAX_BATCH_TEXTS, MAX_TEXT_CHARS
from tests import security as sec
from tests.browser.conftest import Browser
from tests.harness import Gated, ServerThread

POSITIVE = "What a wonderful film, I loved every minute of it!"
NEGATIVE = "Dull, boring and far too long. A complete waste of time."
UNFAMILIAR = "Der Zug nach München fährt um acht Uhr vom Hauptbahnhof ab."
UNCLEAR = "The film was fine."


def open_demo(browser: Browser, server: ServerThread) -> None:
    browser.get(server.rest_url + "/")
    browser.wait(lambda: browser.css("#texts") and browser.text("#ready"), what="the demo page")


def runs_of(browser: Browser) -> str:
    """How many tries the page has finished (it counts them on <body data-runs>)."""
    return browser.driver.execute_script("return document.body.dataset.runs || '0'")


def predict(browser: Browser, text: str, threshold: float | None = None) -> str:
    """Types `text` (lines: a batch), predicts, waits for the answer; returns the status line."""
    driver = browser.driver
    runs = runs_of(browser)
    area = browser.css("#texts")[0]
    if len(text) > 200:  # typing ten thousand characters is slow; paste it
        driver.execute_script("arguments[0].value = arguments[1]", area, text)
    else:
        area.clear()
        area.send_keys(text)
    if threshold is not None:
        field = browser.css("#threshold")[0]
        field.clear()
        field.send_keys(str(threshold))
    browser.css("#predict")[0].click()
    browser.wait(lambda: runs_of(browser) != runs, what="an answer")
    return browser.text("#status")


def cards(browser: Browser) -> list[dict[str, Any]]:
    out = []
    for card in browser.css(".result"):
        numbers = [float(n.text) for n in card.find_elements("css selector", ".unc .num")]
        out.append({
            "label": card.find_element("css selector", ".label").text,
            "below": bool(card.find_elements("css selector", ".badge")),
            "uncertainty": dict(zip(("total", "aleatoric", "epistemic"), numbers, strict=True)),
            "marks": [(m.text, m.get_attribute("class")) for m in card.find_elements("css selector", "mark")],
            "bars": len(card.find_elements("css selector", ".grid .bar")),
            "meta": card.find_element("css selector", ".meta").text,
        })
    return out


def test_positive_and_negative_with_uncertainty_and_evidence(served: ServerThread, browser: Browser) -> None:
    version = served.http.get("/v1/model").json()["version"]
    browser.console_errors()  # read: only this test's from here on
    browser.requests()
    open_demo(browser, served)
    assert "ready" in browser.text("#ready")
    for text, label in ((POSITIVE, "positive"), (NEGATIVE, "negative")):
        status = predict(browser, text)
        assert status == "Answered.", status
        [answer] = cards(browser)
        assert answer["label"] == label and not answer["below"], answer
        u = answer["uncertainty"]
        assert set(u) == {"total", "aleatoric", "epistemic"}
        assert abs(u["total"] - u["aleatoric"] - u["epistemic"]) <= 0.002 and min(u.values()) >= 0
        assert answer["marks"], "no evidence word highlighted"
        assert {cls for _, cls in answer["marks"]} <= {"up", "down", "flat"}
        assert answer["bars"] == 2
        assert re.search(rf"model version {re.escape(version)} · answered in \d+ ms", answer["meta"]), answer["meta"]
        for part in ("aleatoric", "epistemic"):
            assert part in browser.text(".unc")
        assert "the text is ambiguous" in browser.text(".unc")
        assert "unlike anything the model learned from" in browser.text(".unc")
        browser.shot(label, keep=label == "positive")
    assert not browser.console_errors()  # the page's own script ran under its CSP
    browser.assert_only_loopback()


def test_several_lines_are_one_batch(served: ServerThread, browser: Browser) -> None:
    open_demo(browser, served)
    status = predict(browser, f"{POSITIVE}\n\n{NEGATIVE}\n")
    assert status == "2 answers.", status
    assert [c["label"] for c in cards(browser)] == ["positive", "negative"]
    assert "for 2 texts" in cards(browser)[0]["meta"]


def test_unfamiliar_text(served: ServerThread, browser: Browser) -> None:
    expected = served.http.post("/v1/predict", json={"text": UNFAMILIAR, "confidence_threshold": 0}).json()
    open_demo(browser, served)
    predict(browser, UNFAMILIAR, threshold=0)
    [answer] = cards(browser)
    assert answer["label"] == expected["prediction"]
    assert answer["uncertainty"]["epistemic"] == pytest.approx(expected["uncertainty"]["epistemic"], abs=0.0005)
    browser.shot("unfamiliar", keep=True)


def test_below_the_threshold_is_shown_marked(served: ServerThread, browser: Browser) -> None:
    confidence = served.http.post("/v1/predict", json={"text": UNCLEAR, "confidence_threshold": 0}).json()["confidence"]
    assert confidence < 0.99
    open_demo(browser, served)
    status = predict(browser, UNCLEAR, threshold=0.99)
    assert status.startswith("The answer is below your threshold of 0.99"), status
    [answer] = cards(browser)
    assert answer["below"] and answer["label"] in ("positive", "negative")
    assert "below your threshold of 0.99" in browser.text(".badge")
    browser.shot("below-threshold", keep=True)
    # a batch: only the answers under the threshold are marked
    predict(browser, f"{UNCLEAR}\n{POSITIVE}", threshold=0.99)
    assert any(c["below"] for c in cards(browser))


def test_too_long_is_a_sentence(served: ServerThread, browser: Browser) -> None:
    open_demo(browser, served)
    status = predict(browser, "a" * (MAX_TEXT_CHARS + 1))
    assert status.startswith("That text is too long for the model"), status
    assert not browser.css(".result")


def test_rate_limited_says_how_long_to_wait(predictor: Any, browser: Browser) -> None:
    with ServerThread(predictor, rate_limit_per_second=1, rate_limit_burst=1) as server:
        open_demo(browser, server)  # the page and its readiness check are free
        assert predict(browser, POSITIVE) == "Answered."
        status = predict(browser, NEGATIVE)
        assert re.fullmatch(r"You are over this server's rate limit: wait [1-9]\d* s, then try again\.", status), status
        browser.shot("rate-limited")


def test_not_ready(predictor: Any, browser: Browser) -> None:
    with ServerThread(predictor, warm=False) as server:
        open_demo(browser, server)
        assert "not ready" in browser.text("#ready")
        status = predict(browser, POSITIVE)
        assert status.startswith("The model is not ready yet"), status


def test_overloaded_says_how_long_to_wait(predictor: Any, browser: Browser) -> None:
    gated = Gated(predictor)
    with ServerThread(gated, max_batch_size=1, max_queue=MAX_BATCH_TEXTS) as server:
        open_demo(browser, server)
        gated.gate.clear()
        gated.entered.clear()
        body = {"texts": [f"t{i}" for i in range(MAX_BATCH_TEXTS)], "confidence_threshold": 0}
        filler = threading.Thread(target=server.http.post, args=("/v1/predict/batch",), kwargs={"json": body})
        last = threading.Thread(target=httpx.post, args=(server.rest_url + "/v1/predict",),
                                kwargs={"json": {"text": "last", "confidence_threshold": 0}, "timeout": 60})
        try:
            filler.start()
            assert gated.entered.wait(10)  # one text computing (held), 255 queued
            last.start()
            deadline = time.monotonic() + 10
            while "bet_queue_depth 256.0" not in server.http.get("/metrics").text:
                assert time.monotonic() < deadline, "the queue never filled"
                time.sleep(0.01)
            status = predict(browser, POSITIVE)
            assert status == "The server is overloaded just now: wait 1 s, then try again.", status
        finally:
            gated.gate.set()
            filler.join(30)
            if last.is_alive():
                last.join(30)


def test_credentials_asked_for_and_kept_in_memory(predictor: Any, browser: Browser, tmp_path: Path) -> None:
    keys = tmp_path / "keys.jsonl"
    key = "a-demo-page-key-0123456789"
    sec.write_keys(keys, {"demo": (key, ["predict"])})
    with ServerThread(predictor, auth_api_keys_file=keys, auth_jwt_secret=sec.SECRET, auth_jwt_issuer=sec.ISSUER,
                      auth_jwt_audience=sec.AUDIENCE) as server:
        open_demo(browser, server)  # the page itself needs no credentials
        status = predict(browser, POSITIVE)
        assert status.startswith("This server needs an API key or a token"), status
        assert browser.css("#auth")[0].is_displayed()
        for kind, secret in (("key", key), ("token", sec.hs256())):
            runs = runs_of(browser)
            browser.driver.execute_script("document.getElementById('auth-kind').value = arguments[0]", kind)
            browser.css("#auth-value")[0].send_keys(secret)
            browser.css("#auth-use")[0].click()  # predicts again, with the credential
            browser.wait(lambda runs=runs: runs_of(browser) != runs, what="the answer with credentials")
            assert browser.text("#status") == "Answered." and len(cards(browser)) == 1
            assert predict(browser, NEGATIVE) == "Answered."
            browser.css("#auth-forget")[0].click()
            assert predict(browser, NEGATIVE).startswith("This server needs an API key or a token")
        # nothing stored where it outlives the page
        assert browser.driver.execute_script(
            "return [localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]
        browser.css("#auth-value")[0].send_keys("not-a-key")
        browser.css("#auth-use")[0].click()
        browser.wait(lambda: browser.text("#status").startswith("Refused:"), what="the refusal")
