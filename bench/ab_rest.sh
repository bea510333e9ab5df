#!/usr/bin/env bash
# REST throughput of two checkouts, interleaved in one run: `bet serve --workers 2` of each,
# wrk at 64 and 256 connections, ROUNDS rounds (default 2) of SECONDS (default 8) a row.
# Usage: bench/ab_rest.sh OLD_CHECKOUT NEW_CHECKOUT   (e.g. a `git worktree` of main)
set -euo pipefail
old=$(realpath "$1"); new=$(realpath "$2")
root=$(cd "$(dirname "$0")/.." && pwd)
py="$root/.venv/bin/python"
rounds=${ROUNDS:-2}; seconds=${SECONDS_PER_ROW:-8}
bodies=$(mktemp); out=$(mktemp)
trap 'rm -f "$bodies" "$out"' EXIT
"$py" -c "
import json, sys
from bench.load import load_texts
with open(sys.argv[1], 'w') as f:
    for t in load_texts(): f.write(json.dumps({'text': t, 'confidence_threshold': 0}) + '\n')
" "$bodies"
free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for round in $(seq "$rounds"); do
  for which in old new; do
    dir=$old; [ "$which" = new ] && dir=$new
    port=$(free_port); gport=$(free_port)
    (cd "$dir" && PYTHONPATH="$dir" exec "$py" -m server.cli serve --workers 2 --rest-port "$port" \
        --grpc-port "$gport" > "$out" 2>/dev/null) &
    pid=$!
    for _ in $(seq 120); do grep -q gRPC "$out" && break; sleep 0.5; done
    BENCH_BODIES=$bodies wrk -t 2 -c 64 -d 3s -s "$root/bench/wrk_predict.lua" "http://127.0.0.1:$port/v1/predict" >/dev/null
    for c in 64 256; do
      rps=$(BENCH_BODIES=$bodies wrk -t 2 -c "$c" -d "${seconds}s" --timeout 60s -s "$root/bench/wrk_predict.lua" \
            "http://127.0.0.1:$port/v1/predict" | awk '/Requests\/sec/ {print $2}')
      echo "round $round $which c=$c $rps req/s"
    done
    kill -TERM "$pid"; wait "$pid" || true
  done
done
