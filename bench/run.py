"""`make bench`: the load benchmark, end to end, on this machine (loopback only).

Measures the raw limit (bench/model_limit.py at the serving batch size), then starts each
server on free loopback ports and drives it closed-loop at each connection count: `bet serve`
(REST with wrk, gRPC with bench/load.py over several processes) with 1 and 2 workers, the per-request FastAPI peer
and LitServe (when bench/.venv-peers exists); both doors of the default configuration also
under h2load at 64 and 256 connections (bench/h2closed.py). Then, on `bet serve` with its
defaults (admission on): the overload check at 1,000 connections on each door, with
generators that retry at once and that wait Retry-After, and the open-loop latency at 70% of
capacity (h2load, bench/h2open.py); then overload with admission off, for comparison.
Writes bench/results/report.{md,json} and latency_vs_throughput.png.

Each load row also says who used the CPU (bench/cpu.py): the server's processes, the load
generator and the whole machine, in cores, and the load average before it started.

Environment: BENCH_SECONDS (20), BENCH_WARMUP (5), BENCH_CONNECTIONS ("64 256 512 1000"),
BENCH_WORKERS ("1 2", `bet serve --workers` counts of the capacity sweep), BENCH_PEERS
("per_request litserve"), BENCH_PROCS (2, gRPC load processes), BENCH_OUT."""
from __future__ import annotations

import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.cpu import Meter
from server.settings import DEFAULT_WORKERS

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PEERS_PY = ROOT / "bench" / ".venv-peers" / "bin" / "python"
MLSERVER = ROOT / "bench" / ".venv-mlserver" / "bin" / "mlserver"
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "5"))
LEVELS = [int(x) for x in os.environ.get("BENCH_CONNECTIONS", "64 256 512 1000").split()]
PEERS = os.environ.get("BENCH_PEERS", "per_request litserve mlserver").split()
WORKERS = [int(x) for x in os.environ.get("BENCH_WORKERS", "1 2").split()]
PROCS = int(os.environ.get("BENCH_PROCS", "2"))
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results"))
BATCH = int(os.environ.get("BET_MAX_BATCH_SIZE", "32"))
THREADS = int(os.environ.get("BET_TORCH_THREADS", "1"))
H2_LEVELS = (64, 256)  # the doors side by side under one C generator (bench/h2closed.py)
# The capacity sweep: a queue that sheds nothing at 1,000 connections, admission off.
SWEEP_ENV = {"BET_MAX_QUEUE": "4096", "BET_ADMISSION_BUDGET_MS": "0", "BET_REQUEST_TIMEOUT_S": "120"}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Server:
    """A server process in its own process group, stopped by pid when done."""

    def __init__(self, name: str, cmd: list[str], ready_url: str, env: dict[str, str] | None = None,
                 announce: str | None = None) -> None:
        # announce: a line the server prints once all of it is ready; `bet serve --workers N`
        # prints it when every worker is, while /health/ready answers from the first one up
        # (connections made before the others listen all stay on that one)
        self.name, self.ready_url, self.announce = name, ready_url, announce
        self.log_path = OUT / f"{name}.log"
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, start_new_session=True,
                                     stdout=self.log_path.open("w"), stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as r:
                    if r.status == 200 and (self.announce is None or self.announce in self.log_path.read_text()):
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready in {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Children that outlive the main process (LitServe's inference worker went on with
        # its backlog and took 0.9 of the 2 cores from the next row) go with it: the group
        # is this server's alone (its own session).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and group_alive(self.proc.pid):
            time.sleep(0.1)

    def __enter__(self) -> Server:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wrk(url: str, connections: int, seconds: float, server: Server | None = None) -> dict:
    threads = min(2, connections)
    meter = Meter(server.proc.pid if server else None)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
           "--timeout", "60s", "-s", str(ROOT / "bench" / "wrk_predict.lua"), url]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120,
                         env={**os.environ, "BENCH_BODIES": str(OUT / "bodies.jsonl")})
    m = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if not m:
        raise RuntimeError(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(m.group(1)) | meter.read()
    r["rps"] = round(r["requests"] / r["seconds"], 1)
    r["ok_rps"] = round(r["ok"] / r["seconds"], 1)
    return r


def load(proto: str, target: str, seconds: float, *, connections: int = 64, rate: float | None = None,
         honor: bool = False, server: Server | None = None) -> dict:
    args = ["--proto", proto, "--target", target, "--seconds", str(seconds), "--connections", str(connections),
            "--procs", str(PROCS)]
    if rate is not None:
        args += ["--rate", str(rate)]
    if honor:
        args += ["--honor-retry-after"]
    return _generator("bench.load", args, seconds, server)


def h2closed(proto: str, target: str, seconds: float, connections: int, server: Server | None = None,
             api: str = "bet") -> dict:
    """Closed loop with h2load, retrying at once (bench/h2closed.py); api "oip": the Open
    Inference Protocol's request, which bet and MLServer both answer."""
    return _generator("bench.h2closed", ["--proto", proto, "--target", target, "--seconds", str(seconds),
                                         "--connections", str(connections), "--api", api], seconds, server)


def h2open(proto: str, target: str, seconds: float, rate: float, clients: int, server: Server | None = None) -> dict:
    """Open loop at `rate` requests/s with h2load (bench/h2open.py)."""
    return _generator("bench.h2open", ["--proto", proto, "--target", target, "--rate", str(rate),
                                       "--seconds", str(seconds), "--clients", str(clients)], seconds, server)


def _generator(module: str, args: list[str], seconds: float, server: Server | None) -> dict:
    """Runs a load generator module that prints one JSON line; its result with the CPU columns."""
    meter = Meter(server.proc.pid if server else None)
    out = subprocess.run([PY, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=seconds + 180)
    if out.returncode != 0:
        raise RuntimeError(f"{module} failed: {out.stderr[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) | meter.read()


def raw_limit(threads: int = THREADS) -> dict:
    secs = str(max(3.0, min(SECONDS, 10.0)))
    out = subprocess.run([PY, "-m", "bench.model_limit", "--json", "--batch", str(BATCH), "--seconds", secs,
                          "--threads", str(threads)],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bet(env: dict[str, str], workers: int | None = None) -> tuple[Server, str, str]:
    """`bet serve` on free ports; `workers` None: its default (or BET_WORKERS)."""
    rest, grpc = free_port(), free_port()
    flags = [] if workers is None else ["--workers", str(workers)]
    name = bet_name(workers if workers is not None else default_workers())
    server = Server(name, [str(ROOT / ".venv" / "bin" / "bet"), "serve", "--rest-port", str(rest),
                           "--grpc-port", str(grpc), *flags],
                    f"http://127.0.0.1:{rest}/health/ready", env, announce="bet serving model")
    return server, f"http://127.0.0.1:{rest}", f"127.0.0.1:{grpc}"


def default_workers() -> int:
    """What `bet serve` runs without --workers: BET_WORKERS, else the settings' default."""
    return int(os.environ.get("BET_WORKERS", DEFAULT_WORKERS))


def bet_name(workers: int) -> str:
    return "bet" if workers == 1 else f"bet {workers}w"


def sweep_rest(name: str, url: str, rows: list[dict], server: Server) -> None:
    wrk(url, 64, WARMUP)
    for c in LEVELS:
        r = wrk(url, c, SECONDS, server)
        rows.append({"server": name, "proto": "rest", "connections": c, **r})
        log(f"{name} rest c={c}: {r['rps']} req/s p95 {r['p95_ms']} ms errors {r['errors']} "
            f"cpu server {r['server_cores']} generator {r['generator_cores']}")


def h2_row(name: str, proto: str, api: str, target: str, c: int, rows: list[dict], server: Server) -> None:
    r = h2closed(proto, target, SECONDS, c, server, api)
    label = f"{proto}{' oip' if api == 'oip' else ''} h2load"
    rows.append({"server": name, **r, "proto": label})
    log(f"{name} {label} c={c}: {r['ok_rps']} ok/s p95 {r['p95_ms']} ms errors {r['errors']}")


def mlserver(rows: list[dict]) -> None:
    """MLServer 1.7.1 (bench/peers/mlserver_runtime.py), both of its doors under h2load with
    the OIP request, as bet's "oip h2load" rows."""
    rest, grpc = free_port(), free_port()
    env = {"MLSERVER_HTTP_PORT": str(rest), "MLSERVER_GRPC_PORT": str(grpc), "MLSERVER_METRICS_PORT": str(free_port())}
    cmd = [str(MLSERVER), "start", "bench/peers/mlserver"]
    with Server("mlserver", cmd, f"http://127.0.0.1:{rest}/v2/models/bet/ready", env) as server:
        h2closed("rest", f"http://127.0.0.1:{rest}", WARMUP, 64, api="oip")
        for c in LEVELS:
            for proto, target in (("rest", f"http://127.0.0.1:{rest}"), ("grpc", f"127.0.0.1:{grpc}")):
                h2_row("mlserver", proto, "oip", target, c, rows, server)


def write_bodies() -> None:
    """The request bodies wrk sends (bench/wrk_predict.lua), under OUT."""
    from bench.load import load_texts

    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "bodies.jsonl").open("w") as f:
        for t in load_texts():
            f.write(json.dumps({"text": t, "confidence_threshold": 0}) + "\n")


def main() -> int:
    write_bodies()
    report: dict = {"machine": f"{os.cpu_count()} cores, {platform.machine()}, shared with the load generators "
                               "and with other engineers' test runs", "seconds": SECONDS, "warmup": WARMUP,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    log("raw limit")
    report["raw"] = raw = raw_limit()
    report["raw_other_threads"] = other = raw_limit(2 if THREADS == 1 else 1)
    log(f"raw: {raw['texts_per_s']:.1f} texts/s ({THREADS} torch threads); "
        f"{other['texts_per_s']:.1f} with {other['torch_threads']}")
    rows: list[dict] = []

    for workers in WORKERS:
        server, rest, grpc = bet(SWEEP_ENV, workers)
        name = bet_name(workers)
        with server:
            sweep_rest(name, rest, rows, server)
            load("grpc", grpc, WARMUP, connections=64)
            for c in LEVELS:
                r = load("grpc", grpc, SECONDS, connections=c, server=server)
                rows.append({"server": name, **r})
                log(f"{name} grpc c={c}: {r['rps']} req/s p95 {r['p95_ms']} ms errors {r['errors']} "
                    f"cpu server {r['server_cores']} generator {r['generator_cores']}")
            if workers == default_workers():  # both doors under h2load, interleaved by level
                for c in H2_LEVELS:
                    for api in ("bet", "oip"):
                        for proto, target in (("rest", rest), ("grpc", grpc)):
                            h2_row(name, proto, api, target, c, rows, server)
                report["bulk"] = {}
                for method in ("PredictBatch", "PredictStream"):
                    r = _generator("bench.grpc_bulk", ["--target", grpc, "--method", method, "--seconds",
                                                       str(SECONDS), "--batch", str(BATCH)], SECONDS, server)
                    r["served_raw"] = round(r["texts_per_s"] / raw["texts_per_s"], 3)
                    report["bulk"][method] = r
                    log(f"{name} {method}: {r['texts_per_s']} texts/s ({r['served_raw']} of raw)")

    for peer in PEERS:
        port = free_port()
        if peer == "per_request":
            cmd = [PY, "-m", "bench.peers.per_request", "--port", str(port)]
        elif peer == "litserve" and PEERS_PY.exists():
            cmd = [str(PEERS_PY), "bench/peers/litserve_app.py", "--port", str(port), "--max-batch-size", str(BATCH)]
        elif peer == "mlserver" and MLSERVER.exists():
            mlserver(rows)
            continue
        else:
            log(f"skipping peer {peer} (bench/.venv-peers or bench/.venv-mlserver missing?)")
            continue
        with Server(peer, cmd, f"http://127.0.0.1:{port}/health/ready") as server:
            sweep_rest(peer, f"http://127.0.0.1:{port}", rows, server)

    for r in rows:
        r["served_raw"] = round(r["ok_rps"] / raw["texts_per_s"], 3)
    report["rows"] = rows

    # Overload at 1,000 connections with the default settings (admission on) on each door,
    # with generators that retry at once (wrk, h2load) and that wait Retry-After
    # (bench/load.py); then the open loop at 70% of the default configuration's capacity on
    # the same server; then overload with admission off, for comparison.
    default = bet_name(default_workers())
    report["default_server"] = default
    server, rest, grpc = bet({})
    with server:
        load("grpc", grpc, WARMUP, connections=64)
        report["overload"] = over = {
            "rest_wrk": wrk(rest, 1000, SECONDS, server),
            "rest": load("rest", rest, SECONDS, connections=1000, honor=True, server=server),
            "grpc": load("grpc", grpc, SECONDS, connections=1000, honor=True, server=server),
            "grpc_h2load": h2closed("grpc", grpc, SECONDS, 1000, server),
        }
        log(f"overload: {json.dumps(over)}")
        report["open_loop"] = {}
        for proto, target in (("rest", rest), ("grpc", grpc)):
            cap = capacity_row(rows, default, proto, "h2load")["ok_rps"]
            # h2load: a C generator leaves the cores to the server (the Python one took a
            # sixth of them); 64 gRPC connections, as the kernel spreads connections, not
            # calls, over the workers and a few connections split unevenly
            clients = 256 if proto == "rest" else 64
            h2open(proto, target, WARMUP, round(0.7 * cap, 1), clients)
            r = h2open(proto, target, SECONDS, round(0.7 * cap, 1), clients, server)
            report["open_loop"][proto] = {"capacity_rps": cap, **r}
            log(f"open loop {proto} at {r['rate']}/s: p95 {r['p95_ms']} ms errors {r['errors']}")
    server, rest, grpc = bet({"BET_ADMISSION_BUDGET_MS": "0"})
    with server:
        load("grpc", grpc, WARMUP, connections=64)
        over["rest_wrk admission off"] = wrk(rest, 1000, SECONDS, server)
        over["grpc_h2load admission off"] = h2closed("grpc", grpc, SECONDS, 1000, server)
        log(f"overload, admission off: {json.dumps(over)}")
    for k, r in over.items():
        # against the same generator's capacity row (h2load's are higher: it leaves the cores to the server)
        cap = capacity_row(rows, default, "grpc" if k.startswith("grpc") else "rest", "h2load" if "h2load" in k else "")
        if cap:
            r["goodput"] = round(r["ok_rps"] / cap["ok_rps"], 2)
            # the server's CPU left after answering at the capacity row's cost per answer
            answer_s = cap["server_cores"] / cap["ok_rps"]
            seconds = r.get("seconds") or SECONDS
            if r["refused"]:
                r["cpu_ms_per_refusal"] = round(
                    max(0.0, r["server_cores"] * seconds - r["ok_rps"] * seconds * answer_s) / r["refused"] * 1000, 3)

    (OUT / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (OUT / "report.md").write_text(markdown(report))
    plot(report, OUT / "latency_vs_throughput.png")
    (OUT / "bodies.jsonl").unlink()
    print(markdown(report))
    return 0


def capacity_row(rows: list[dict], server: str, proto: str, generator: str) -> dict:
    """The server's row for this door at 256 connections (its best when there is none),
    driven by `generator` ("h2load", or "" for wrk and bench/load.py), else by the other."""
    for label in (f"{proto} {generator}".strip(), proto):
        mine = [r for r in rows if r["server"] == server and r["proto"] == label]
        if mine:
            return next((r for r in mine if r["connections"] == 256), None) or max(mine, key=lambda r: r["ok_rps"])
    raise LookupError(f"no {proto} rows for {server}")


def markdown(rep: dict) -> str:
    raw = rep["raw"]
    lines = [f"Raw limit: **{raw['texts_per_s']:.1f} texts/s** (batch {raw['batch']}, {raw['n_views']} views, "
             f"{raw['torch_threads']} torch threads, {raw['device']}). Machine: {rep['machine']}. "
             f"{rep['seconds']:g} s per row after {rep['warmup']:g} s warm-up; started {rep['started']}. "
             f"With {rep['raw_other_threads']['torch_threads']} torch threads: "
             f"{rep['raw_other_threads']['texts_per_s']:.1f} texts/s. Capacity rows: admission off, queue 4096.", "",
             "CPU columns: cores used during the row by the server's processes, the load generator and the "
             "whole machine (the rest is other work on the machine); load: the 1-minute load average before it.", "",
             "| server | proto | conns | req/s | ok/s | p50 ms | p95 ms | p99 ms | errors | refused | served/raw "
             "| server CPU | generator CPU | machine CPU | load |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rep["rows"]:
        lines.append(f"| {r['server']} | {r['proto']} | {r['connections']} | {r['rps']} | {r['ok_rps']} | "
                     f"{r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['errors']} | {r['refused']} | "
                     f"{r['served_raw']:.2f} | {_cpu(r)} |")
    if rep.get("bulk"):
        lines += ["", f"gRPC bulk calls ({rep.get('default_server', 'bet')}, capacity settings; bench/grpc_bulk.py: "
                  "PredictBatch of a full batch a call, PredictStream keeping a batch of requests ahead a stream, "
                  "4 in flight, each its own connection):", "",
                  "| method | texts/s | served/raw | "
                  f"÷ raw at {rep['raw_other_threads']['torch_threads']} torch threads "
                  "| server CPU | generator CPU | machine CPU | load |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m, r in rep["bulk"].items():
            other = r["texts_per_s"] / rep["raw_other_threads"]["texts_per_s"]
            lines.append(f"| {m} | {r['texts_per_s']} | {r['served_raw']:.2f} | {other:.2f} | {_cpu(r)} |")
    if "overload" in rep:
        lines += ["", f"Overload, 1,000 connections, default settings ({rep.get('default_server', 'bet')}, admission "
                  "on) unless admission is off (refused = 503 + Retry-After / UNAVAILABLE; the Python clients wait "
                  "Retry-After after a refusal, wrk and h2load retry at once and time answers and refusals together; "
                  "goodput: ok/s over the door's 256-connection capacity row with the same generator (h2load's for "
                  "h2load); CPU per refusal: the server's CPU left after the answers at that row's cost per answer):",
                  "",
                  "| client | ok/s | goodput | p95 ms (accepted, or all) | refused | refused p50 ms | refused p99 ms "
                  "| errors | CPU ms/refusal | server CPU | generator CPU | machine CPU | load |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for k, r in rep["overload"].items():
            refused = r.get("refused_latency", {})
            p50, p99 = (refused.get("p50_ms") or "–", refused.get("p99_ms") or "–") if refused else (
                "n/a (mixed)",) * 2
            lines.append(f"| {k} | {r['ok_rps']} | {r.get('goodput', '–')} | {r['p95_ms']} | {r['refused']} | {p50} "
                         f"| {p99} | {r['errors']} | {r.get('cpu_ms_per_refusal', '–')} | {_cpu(r)} |")
    if "open_loop" in rep:
        lines += ["", f"Open loop at 70% of capacity (capacity = {rep.get('default_server', 'bet')} "
                  "at 256 connections under h2load), "
                  "default settings, h2load (bench/h2open.py; one text, the median-length test sentence):", "",
                  "| proto | rate/s | ok/s | p50 ms | p95 ms | p99 ms | refused | errors "
                  "| server CPU | generator CPU | machine CPU | load |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for proto, r in rep["open_loop"].items():
            lines.append(f"| {proto} | {r['rate']} | {r['ok_rps']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
                         f"{r['refused']} | {r['errors']} | {_cpu(r)} |")
    kinds = [f"{name} {r['proto'] if 'proto' in r else ''}: {r['error_kinds']}"
             for name, r in [*rep.get("overload", {}).items(),
                             *(("open loop", r) for r in rep.get("open_loop", {}).values())]
             if r.get("error_kinds")]
    if kinds:
        lines += ["", "Errors by kind (bench/load.py): " + "; ".join(kinds) + "."]
    return "\n".join(lines) + "\n"


def _cpu(r: dict) -> str:
    return " | ".join(str(r.get(k, "")) for k in ("server_cores", "generator_cores", "machine_cores", "load_before"))


def plot(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    series: dict[tuple[str, str], list[dict]] = {}
    for r in rep["rows"]:
        series.setdefault((r["server"], r["proto"]), []).append(r)
    for (server, proto), rs in series.items():
        ax.plot([r["ok_rps"] for r in rs], [r["p95_ms"] for r in rs], marker="o", label=f"{server} {proto} (p95)")
        for r in rs:
            ax.annotate(str(r["connections"]), (r["ok_rps"], r["p95_ms"]), fontsize=7)
    ax.axvline(rep["raw"]["texts_per_s"], color="grey", linestyle="--", label="raw model limit")
    ax.set_xlabel("answered requests/s")
    ax.set_ylabel("p95 latency (ms, log)")
    ax.set_yscale("log")
    ax.set_title("Latency vs throughput (labels: connections)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
