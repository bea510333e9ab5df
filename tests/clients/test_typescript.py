"""The TypeScript client's own tests (clients/typescript/test, Node's test runner) against
the shared live server; npm ci first when node_modules is missing."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def test_typescript_client_against_bet_serve(served, built_ts_client: Path) -> None:
    done = subprocess.run(["node", "--test", "dist/test/client.test.js"], cwd=built_ts_client,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "BET_REST_URL": served.rest_url})
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "# fail 0" in report and "# skipped 0" in report and "# pass 7" in report, report
