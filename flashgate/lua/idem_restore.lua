#!lua
-- idem_restore.lua: put back the stored answers of admitted orders after Redis lost its data,
-- so a buyer retrying an order that is already recorded gets it replayed instead of buying again.
-- Existing answers are never overwritten.
--
-- Answers live in the SKU's time-bucketed hashes (lua/admit.lua's header): an order's answer goes
-- to the bucket of its accepted_at, which expires as admit.lua's would have; an order whose
-- bucket is older than the previous one is past its TTL and skipped.
--
-- KEYS[1] idem:{sku}   prefix of the answer buckets idem:{sku}:<bucket>
-- ARGV[1] idempotency TTL, s
-- ARGV[4i-2..4i+1] of order i: answer field (flashgate.names.idem_field), fingerprint, order id,
--                  accepted_at µs; the answer is "f␟0␟o␟t␟" (flashgate/fingerprint.py, no stream id)
--
-- Returns the number of answers restored.
local width = tonumber(ARGV[1]) * 1000
local t = redis.call('TIME')
local now_ms = math.floor((tonumber(t[1]) * 1000000 + tonumber(t[2])) / 1000)
local b = math.floor(now_ms / width)
local n = (#ARGV - 1) / 4
if n == 0 then return 0 end

local fields = {}
for i = 1, n do fields[i] = ARGV[4 * i - 2] end
local bucket = {[b] = string.format('%s:%d', KEYS[1], b), [b - 1] = string.format('%s:%d', KEYS[1], b - 1)}
local have_cur = redis.call('HMGET', bucket[b], unpack(fields))
local have_prev = redis.call('HMGET', bucket[b - 1], unpack(fields))

local writes = {[b] = {}, [b - 1] = {}}
local seen = {}
local restored = 0
for i = 1, n do
  local a = 4 * i - 2
  local at = tonumber(ARGV[a + 3])
  local ab = math.floor(math.floor(at / 1000) / width)
  if not have_cur[i] and not have_prev[i] and not seen[ARGV[a]] and writes[ab] then
    seen[ARGV[a]] = true
    local w = writes[ab]
    w[#w + 1] = ARGV[a]
    w[#w + 1] = ARGV[a + 1] .. '\31' .. '0\31' .. ARGV[a + 2] .. '\31' .. ARGV[a + 3] .. '\31'
    restored = restored + 1
  end
end
for ab, w in pairs(writes) do
  if #w > 0 then
    redis.call('HSET', bucket[ab], unpack(w))
    redis.call('PEXPIREAT', bucket[ab], (ab + 2) * width)
  end
end
return restored
