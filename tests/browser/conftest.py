"""Headless Chromium (Debian's chromium and chromium-driver, `make browser-tools`) driven by
selenium, with every host but 127.0.0.1 unresolvable and every request it made readable
from its performance log. Without the browser the tests skip, and fail under CI."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path(os.environ.get("BET_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("BET_CHROMEDRIVER", "/usr/bin/chromedriver"))
INSTALL = "run `make browser-tools` (as root: Debian packages chromium, chromium-driver)"
# The flags of docs/python.md's probe, and no host but loopback: a page that asks another
# host for anything gets a name-not-resolved error (and the performance log shows it).
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--window-size=1200,1500")
# Copies of the screenshots a person looks at (the positive, the unfamiliar, the below-threshold).
SHOTS = Path(os.environ.get("BET_SHOTS_DIR", "/tmp/bet-shots"))
LOCAL_SCHEMES = ("data", "blob", "about", "chrome", "devtools")


def _missing() -> str | None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return f"headless Chromium is not installed: {INSTALL}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: `make install` (the dev extra), then `make browser-tools`"
    return None


class Browser:
    """One Chromium for the session; each test reads the requests of its own pages."""

    def __init__(self, driver: Any, shots: Path) -> None:
        self.driver = driver
        self.shots = shots

    def get(self, url: str) -> None:
        self.driver.get(url)

    def wait(self, condition: Callable[[], Any], timeout: float = 30, what: str = "the page") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except Exception:  # not there yet (no such element, stale, script error)
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self, selector: str = "body") -> str:
        found = self.css(selector)
        return found[0].text if found else ""

    def requests(self) -> list[dict[str, Any]]:
        """Every request the browser sent, and every load that failed, since the last call
        (the performance log is drained by reading it)."""
        sent: dict[str, dict[str, Any]] = {}
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message["params"]
            if message["method"] == "Network.requestWillBeSent":
                sent[params["requestId"] + params["request"]["url"]] = {"url": params["request"]["url"],
                                                                        "id": params["requestId"]}
            elif message["method"] == "Network.loadingFailed":
                for request in sent.values():
                    if request["id"] == params["requestId"]:
                        request["failed"] = params.get("errorText", "")
                        request["blocked"] = params.get("blockedReason")
        return list(sent.values())

    def assert_only_loopback(self) -> list[str]:
        """Every request sent since the last check went to 127.0.0.1, and none failed to
        load; returns their URLs. One the page's Content-Security-Policy stopped in the
        browser was never sent (and is not counted as a failure)."""
        events = [e for e in self.requests() if e.get("blocked") != "csp"]
        urls = [e["url"] for e in events]
        elsewhere = [u for u in urls if urlsplit(u).scheme not in LOCAL_SCHEMES and urlsplit(u).hostname != "127.0.0.1"]
        assert not elsewhere, f"requests to other hosts: {elsewhere}"
        failed = [(e["url"], e["failed"]) for e in events if e.get("failed") not in (None, "net::ERR_ABORTED")]
        assert not failed, f"loads that failed: {failed}"
        return urls

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def shot(self, name: str, keep: bool = False) -> Path:
        """A PNG of the whole window; with `keep`, a copy in SHOTS too."""
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        if keep:
            SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, SHOTS / path.name)
        return path


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield Browser(driver, tmp_path_factory.mktemp("screenshots"))
    finally:
        driver.quit()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticSite:
    """A folder served over HTTP on a free loopback port, in a thread: another origin."""

    def __init__(self, folder: Path) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StaticSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
