"""`make soak`: `bet serve` under 256 connections for 10 minutes (half REST with wrk, half gRPC
with bench/load.py, at once), default settings. Records errors (load generators and the
server's own counters) and the server's resident memory (VmRSS summed over its processes,
workers included) every 10 s; growth is measured from the end of the warm-up to the end.
Writes bench/results/soak.json and soak.md.

Environment: SOAK_SECONDS (600), SOAK_WARMUP (60, counted in SOAK_SECONDS), SOAK_CONNECTIONS
(256), BENCH_OUT; `BET_*` settings pass through to `bet serve` (e.g. BET_WORKERS)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

from bench.cpu import group_rss_kib
from bench.run import OUT, PY, ROOT, bet, default_workers, log

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
WARMUP = float(os.environ.get("SOAK_WARMUP", "60"))
CONNECTIONS = int(os.environ.get("SOAK_CONNECTIONS", "256"))


def _outcomes(rest: str) -> dict[str, float]:
    """The server's bet_requests_total of predictions, by protocol and outcome."""
    with urllib.request.urlopen(rest + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found: dict[str, float] = {}
    for m in re.finditer(r'^bet_requests_total\{method="(POST /v1/predict|Predict)",outcome="(\w+)",'
                         r'protocol="(\w+)"\} (\S+)$', text, re.M):
        key = f"{m.group(3)} {m.group(2)}"
        found[key] = found.get(key, 0.0) + float(m.group(4))
    return found


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    from bench.load import load_texts

    bodies = OUT / "soak-bodies.jsonl"
    bodies.write_text("".join(json.dumps({"text": t, "confidence_threshold": 0}) + "\n" for t in load_texts()))
    workers = default_workers()
    server, rest, grpc = bet({})
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": SECONDS,
                    "warmup": WARMUP, "connections": CONNECTIONS, "workers": workers,
                    "load_before": round(os.getloadavg()[0], 2), "rss_kib": []}
    half = CONNECTIONS // 2
    with server:
        pgid = server.proc.pid
        began = time.monotonic()
        wrk_cmd = ["wrk", "-t", "2", "-c", str(CONNECTIONS - half), "-d", f"{round(SECONDS)}s", "--timeout", "60s",
                   "-s", str(ROOT / "bench" / "wrk_predict.lua"), rest]
        load_cmd = [PY, "-m", "bench.load", "--proto", "grpc", "--target", grpc, "--seconds", str(SECONDS),
                    "--connections", str(half), "--procs", "2"]
        results: dict[str, subprocess.CompletedProcess] = {}

        def run(name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
            results[name] = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 300,
                                           env={**os.environ, **(env or {})})

        threads = [threading.Thread(target=run, args=("wrk", wrk_cmd, {"BENCH_BODIES": str(bodies)})),
                   threading.Thread(target=run, args=("grpc", load_cmd))]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            at = time.monotonic() - began
            report["rss_kib"].append([round(at, 1), group_rss_kib(pgid)])
            if len(report["rss_kib"]) % 6 == 1:
                log(f"soak {at:.0f} s: server RSS {report['rss_kib'][-1][1] / 1024:.0f} MiB")
            for t in threads:
                t.join(timeout=10.0 / len(threads))
        report["rss_kib"].append([round(time.monotonic() - began, 1), group_rss_kib(pgid)])
        report["server_outcomes"] = _outcomes(rest)
    wrk_out = re.search(r"WRKJSON (\{.*\})", results["wrk"].stdout)
    report["rest"] = json.loads(wrk_out.group(1)) if wrk_out else {"failed": results["wrk"].stderr[-500:]}
    lines = results["grpc"].stdout.strip().splitlines()
    report["grpc"] = json.loads(lines[-1]) if lines else {"failed": results["grpc"].stderr[-500:]}
    after_warmup = next(kib for at, kib in report["rss_kib"] if at >= WARMUP)
    end = report["rss_kib"][-1][1]
    report["rss_after_warmup_mib"] = round(after_warmup / 1024, 1)
    report["rss_end_mib"] = round(end / 1024, 1)
    report["rss_growth_pct"] = round(100 * (end - after_warmup) / after_warmup, 2)
    errors = report["rest"].get("errors", 1) + report["grpc"].get("errors", 1) + sum(
        n for k, n in report["server_outcomes"].items() if not k.endswith((" ok", " cancelled")))
    report["errors"] = errors
    bodies.unlink()
    (OUT / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (OUT / "soak.md").write_text(md)
    print(md)
    return 0 if errors == 0 and report["rss_growth_pct"] < 10 else 1


def markdown(r: dict) -> str:
    rest, grpc = r["rest"], r["grpc"]
    return "\n".join([
        f"Soak: {r['connections']} connections ({r['connections'] - r['connections'] // 2} REST with wrk, "
        f"{r['connections'] // 2} gRPC with bench/load.py) for {r['seconds']:g} s, {r['workers']} worker(s), "
        f"started {r['started']}, load average before {r['load_before']}.", "",
        "| | answers | req/s | p95 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|",
        f"| REST | {rest.get('ok')} | {round(rest.get('ok', 0) / max(rest.get('seconds', 1), 1), 1)} | "
        f"{rest.get('p95_ms')} | {rest.get('p99_ms')} | {rest.get('errors')} |",
        f"| gRPC | {grpc.get('ok')} | {grpc.get('ok_rps')} | {grpc.get('p95_ms')} | {grpc.get('p99_ms')} | "
        f"{grpc.get('errors')} |", "",
        f"Server outcomes (its own counters): {json.dumps(r['server_outcomes'])}. Errors in all: {r['errors']}.",
        f"Resident memory (all server processes): {r['rss_after_warmup_mib']} MiB after the {r['warmup']:g} s "
        f"warm-up, {r['rss_end_mib']} MiB at the end: {r['rss_growth_pct']:+.2f}% (target under 10%).", "",
    ])


if __name__ == "__main__":
    sys.exit(main())
