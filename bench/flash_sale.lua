-- flash_sale.lua: wrk script for `flashgate bench flash-sale` (POST /v1/orders, auth off).
--
-- Arguments (after `--`): SKU USERS [KEYS].  Every request carries a unique Idempotency-Key
-- (KEYS<thread>-<n>; KEYS defaults to "k", and a warm-up on the same SKU passes another, or its
-- orders would come back as replays in the measured run) and one of USERS buyers (X-User-Id),
-- spread round-robin across threads. 202s with Idempotent-Replayed are counted apart (replayed_202).
-- Per thread it counts answers by status per wall-clock second (CLOCK_REALTIME via LuaJIT
-- FFI; keys "<second>:<status>") and remembers the time of the first request and of the last 202. done() prints one
-- JSON line on stdout, prefixed "FLASHSALE_JSON ", with wrk's own latency histogram (µs).

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } fg_timespec;
  int clock_gettime(int clk_id, fg_timespec *tp);
]]
local ts = ffi.new("fg_timespec")
local function now()
  ffi.C.clock_gettime(0, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

-- thread-local state (each wrk thread has its own Lua state)
tid = 0
n = 0
users = 1000
nthreads = 1
body = ""
keys = "k"
replayed = 0
buckets = {}
problems = {}  -- 5xx answers by problem code
first_t = 0
last_202 = 0

function init(args)
  body = '{"sku":"' .. args[1] .. '","qty":1}'
  users = tonumber(args[2])
  keys = args[3] or "k"
  nthreads = counter
  if nthreads == 0 then nthreads = 1 end
end

function request()
  n = n + 1
  if first_t == 0 then first_t = now() end
  local user = ((n * 7919) + tid) % users
  return wrk.format("POST", "/v1/orders", {
    ["Content-Type"] = "application/json",
    ["X-User-Id"] = "u" .. user,
    ["Idempotency-Key"] = keys .. tid .. "-" .. n,
  }, body)
end

-- Flat "<second>:<status>" keys: wrk's thread:get() cannot copy nested tables (it crashes).
function response(status, headers, resp_body)
  local t = now()
  local key = math.floor(t) .. ":" .. status
  buckets[key] = (buckets[key] or 0) + 1
  if status == 202 then
    last_202 = t
    if headers["idempotent-replayed"] then replayed = replayed + 1 end
  elseif status >= 500 then
    local code = string.match(resp_body, '"code":"([%w_]+)"') or "none"
    problems[code] = (problems[code] or 0) + 1
  end
end

local function json_buckets(all)
  local parts = {}
  for key, c in pairs(all) do table.insert(parts, '"' .. key .. '":' .. c) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local all, probs, first, last, replays = {}, {}, nil, 0, 0
  for _, thread in ipairs(threads) do
    replays = replays + thread:get("replayed")
    for key, c in pairs(thread:get("buckets")) do all[key] = (all[key] or 0) + c end
    for key, c in pairs(thread:get("problems")) do probs[key] = (probs[key] or 0) + c end
    local f = thread:get("first_t")
    if f > 0 and (first == nil or f < first) then first = f end
    local l = thread:get("last_202")
    if l > last then last = l end
  end
  local e = summary.errors
  io.write(string.format(
    'FLASHSALE_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},' ..
    '"first_request_t":%.6f,"last_202_t":%.6f,"replayed_202":%d,"per_second":%s,"server_errors":%s}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean, first or 0, last, replays, json_buckets(all), json_buckets(probs)))
end
