"""Throughput of two checkouts, interleaved in one run: `bet serve --workers 2` of each in
turn (this checkout's venv, the checkout's code first on PYTHONPATH, admission off as in the
capacity rows), then each row of --rows, ROUNDS times; prints a JSON line a server and the
means with new ÷ old. A row is GENERATOR-CONNECTIONS: grpc and rest are h2load closed loops
(bench/h2closed.py), wrk is REST with wrk.

    python -m bench.ab OLD_CHECKOUT NEW_CHECKOUT [--rows grpc-64,grpc-256,rest-64] [--rounds 3] [--seconds 15]
                       [--new-env NAME=VALUE ...]

OLD and NEW are any checkouts of the project, e.g. a `git worktree` of an older commit, or
the same checkout twice with --new-env setting what differs (BET_COMPUTE_DTYPE=bfloat16)."""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bench import run


def measure(checkout: Path, rows: list[tuple[str, int]], seconds: float, env: dict[str, str]) -> dict[str, float]:
    server, rest, grpc = run.bet(run.SWEEP_ENV | {"PYTHONPATH": str(checkout)} | env, workers=2)
    with server:
        for generator in dict.fromkeys(g for g, _ in rows):  # warm-up: each generator the rows use
            if generator == "wrk":
                run.wrk(rest, 64, run.WARMUP)
            else:
                run.h2closed(generator, grpc if generator == "grpc" else rest, run.WARMUP, 64)
        got: dict[str, float] = {}
        for generator, connections in rows:
            label = f"{generator}-{connections}"
            if generator == "wrk":
                r = run.wrk(rest, connections, seconds, server)
                got[label], got[label + " p95 ms"] = r["rps"], r["p95_ms"]
            else:
                target = grpc if generator == "grpc" else rest
                r = run.h2closed(generator, target, seconds, connections, server)
                got[label], got[label + " p95 ms"] = r["ok_rps"], r["p95_ms"]
            got[label + " errors"] = r["errors"]
        return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--rows", default="grpc-64,grpc-256,rest-64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--new-env", nargs="*", default=[], metavar="NAME=VALUE", help="environment of NEW's server only")
    args = ap.parse_args()
    if any("=" not in item for item in args.new_env):
        ap.error("--new-env takes NAME=VALUE")
    envs = {"old": {}, "new": dict(item.split("=", 1) for item in args.new_env)}
    rows = [(g, int(c)) for g, c in (row.rsplit("-", 1) for row in args.rows.split(","))]
    if any(g not in ("grpc", "rest", "wrk") for g, _ in rows):
        ap.error("a row's generator is grpc, rest or wrk")
    run.write_bodies()
    results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for round_ in range(1, args.rounds + 1):
        for which in ("old", "new"):
            got = measure(getattr(args, which).resolve(), rows, args.seconds, envs[which])
            results[which].append(got)
            print(json.dumps({"round": round_, "checkout": which, **got}), flush=True)
    means = {which: {k: round(statistics.fmean(r[k] for r in runs), 1) for k in runs[0]}
             for which, runs in results.items()}
    print(json.dumps({"mean": means, "new/old": {f"{g}-{c}": round(means["new"][f"{g}-{c}"] /
                                                                    means["old"][f"{g}-{c}"], 3) for g, c in rows}}))


if __name__ == "__main__":
    main()
