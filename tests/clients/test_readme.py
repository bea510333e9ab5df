"""The client examples run as written, against the shared live server (its addresses put in
place of the default ports): each Python block of the README's client libraries and of
clients/python/README.md in a fresh interpreter, and the JavaScript block of clients/typescript/README.md in a fresh npm project
that installs clients/typescript."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import npm

ROOT = Path(__file__).resolve().parents[2]


def _blocks(language: str) -> list[str]:
    if language == "js":
        section = (ROOT / "clients" / "typescript" / "README.md").read_text()
    else:  # the README's first example, then the Python client's own page
        text = (ROOT / "README.md").read_text()
        section = text[text.index("## Client libraries"):]
        section = section[:section.index("\n## ", 1)] + (ROOT / "clients" / "python" / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def _at(code: str, served) -> str:
    rest = served.rest_url.removeprefix("http://")
    return code.replace("127.0.0.1:50051", served.grpc_target).replace("127.0.0.1:8000", rest)


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_example(served, index: int) -> None:
    code = _at(_blocks("python")[index], served)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "positive" in done.stdout or "negative" in done.stdout


def test_javascript_example(served, built_ts_client: Path, tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"name": "example", "private": true}\n')
    done = npm("install", "--no-audit", "--no-fund", str(built_ts_client), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    [code] = _blocks("js")
    (tmp_path / "example.mjs").write_text(_at(code, served))
    done = subprocess.run(["node", "example.mjs"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "positive" in done.stdout or "negative" in done.stdout
