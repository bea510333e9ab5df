-- wrk script: POST /v1/predict (or the path in BENCH_PATH) cycling realistic bodies (one JSON
-- body a line in the file named by BENCH_BODIES), counting answers by class; done() prints one
-- JSON line.
local bodies = {}
local path = os.getenv("BENCH_BODIES") or "bench/results/bodies.jsonl"
local route = os.getenv("BENCH_PATH") or "/v1/predict"
for line in io.lines(path) do bodies[#bodies + 1] = line end
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  i = id * 97
  ok, refused, other = 0, 0, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  i = i + 1
  return wrk.format(nil, route, nil, bodies[(i % #bodies) + 1])
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 503 and (headers["retry-after"] or headers["Retry-After"]) then refused = refused + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local o, r, e = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); r = r + t:get("refused"); e = e + t:get("other")
  end
  local s = summary.errors
  local sockerr = s.connect + s.read + s.write + s.timeout
  io.write(string.format(
    'WRKJSON {"requests": %d, "seconds": %.3f, "ok": %d, "refused": %d, "errors": %d, ' ..
    '"p50_ms": %.1f, "p95_ms": %.1f, "p99_ms": %.1f, "max_ms": %.1f}\n',
    summary.requests, summary.duration / 1e6, o, r, e + sockerr,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
