-- wrk script: signed GitHub deliveries with a unique X-GitHub-Delivery per request, a random
-- UUID as GitHub sends: ids in order would each land at the end of the ledger's dedupe index,
-- random ones each dirty a page somewhere in it, which is what a real forge costs.
-- GitHub's signature covers the body only, so one signature serves every request.
-- args: <body file> <sha256=signature> <run id> [delay ms between requests per connection]
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  body = f:read("*a")
  f:close()
  sig = args[2]
  -- The run id seeds the ids, so runs and threads do not repeat each other's.
  local seed = 0
  for i = 1, #args[3] do
    seed = (seed * 31 + args[3]:byte(i)) % 2147483647
  end
  math.randomseed(seed + tid * 7919)
  pace = tonumber(args[4] or "0")
end

local function r16()
  return math.random(0, 65535)
end

-- A version 4 UUID.
local function uuid()
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x", r16(), r16(), r16(),
    r16() % 4096, 32768 + r16() % 16384, r16(), r16(), r16())
end

function request()
  return wrk.format("POST", "/webhook", {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Hook-ID"] = "1",
    ["X-GitHub-Delivery"] = uuid(),
    ["X-Hub-Signature-256"] = sig,
  }, body)
end

function delay()
  return pace
end

function done(summary, latency, requests)
  -- One machine-readable line for the driver script.
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
