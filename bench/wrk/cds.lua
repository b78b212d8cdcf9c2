-- wrk script for CDS Hooks calls: POST one request body, each call with its own JWT.
-- wrk -t1 -c32 -d15s -s bench/wrk/cds.lua URL -- <path> <body file> <token file> [new-patient] [pause ms]
-- Without a body file (argument "-") it sends GETs (the /healthz floor).
-- "new-patient": every call is another patient (the patient id, which every resource of the
-- record references, is rewritten per call), so nothing the service remembers by content
-- (its validation cache) can be reused: the cold path. Without it the same chart is sent again
-- and again, as an EHR does across the hooks of one visit.
-- "pause ms" > 0: each connection waits a random 0..2x that long before its next call, so the
-- connections together offer a set rate instead of as many calls as the server can take
-- (with 32 connections always busy, latency is just 32 / throughput: queueing, not service).
-- Tokens are single use (the service keeps a jti replay cache): when the file is used up the
-- thread stops rather than replaying one, and the run's duration ends there.
-- done() prints one JSON line that bench/run.py reads.

local path, body, tokens, next_token = "/", nil, {}, 0
local new_patient, calls, pause = false, 0, 0

local function read_file(name)
  local f = assert(io.open(name, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  path = args[1] or "/"
  if args[2] and args[2] ~= "-" then body = read_file(args[2]) end
  if args[3] and args[3] ~= "-" then
    for line in io.lines(args[3]) do
      if #line > 0 then tokens[#tokens + 1] = line end
    end
  end
  new_patient = args[4] == "new-patient"
  pause = tonumber(args[5] or "0") or 0
  math.randomseed(os.time())
end

function delay()
  if pause <= 0 then return 0 end
  return math.random() * 2 * pause
end

function request()
  if body == nil then
    return wrk.format("GET", path)
  end
  next_token = next_token + 1
  if next_token > #tokens then
    wrk.thread:stop()
    next_token = 1
  end
  local payload = body
  if new_patient then
    calls = calls + 1
    payload = body:gsub("bench%-patient", "bench-p" .. calls)
  end
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[next_token],
  }, payload)
end

function done(summary, latency, requests)
  local out = string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "latency_us": {"min": %d, "mean": %.1f, ' ..
    '"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d}}',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, latency.min, latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max)
  io.write("BENCH_JSON " .. out .. "\n")
end
