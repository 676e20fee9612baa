-- admit.lua: admit one order in one atomic call, with Redis server time.
--
-- Steps, in order: idempotency replay / fingerprint mismatch, unknown SKU and sale window,
-- GCRA rate limit (a limited request writes nothing), per-user cap, stock check and
-- decrement (stock never goes below 0), append to the outbox stream (parked as pending under
-- the gate consumer so relays can claim it once stale), store the answer under the
-- idempotency key. All KEYS share the SKU's hash tag.
--
-- KEYS[1] sale:{sku}          hash: units, starts_at_ms, ends_at_ms, per_user_limit, rate_per_s, burst
-- KEYS[2] stock:{sku}         integer units left
-- KEYS[3] rl:{sku}:<user>     GCRA theoretical arrival time, µs (PX expiry)
-- KEYS[4] idem:{sku}:<user>:<key>  hash: f fingerprint, c code, o order id, t accepted_at µs, x stream id
-- KEYS[5] bought:{sku}         hash: user id → units admitted to that user
-- KEYS[6] outbox:{sku}        stream: o order id, u user, q qty, k idempotency key, t accepted_at µs
--
-- ARGV[1] request fingerprint   ARGV[2] qty (>= 1)        ARGV[3] order id (uuid7, new)
-- ARGV[4] idempotency TTL, s    ARGV[5] user id           ARGV[6] idempotency key
-- ARGV[7] outbox consumer group ARGV[8] gate consumer name
--
-- Returns {code, ...}:
--   {0, order_id, accepted_at_us, stream_id, stock_left}  ACCEPTED (answer stored)
--   {1, stored_code, order_id, accepted_at_us, pending}   REPLAY of a stored answer; pending=1
--                                                         while the order is still in the outbox
--   {2}              MISMATCH      same key, different request fingerprint
--   {3}              UNKNOWN_SKU   no sale config (not stored)
--   {4, starts_in_ms} NOT_STARTED  (not stored: a retry may succeed once the sale opens)
--   {5}              ENDED         (stored)
--   {6, wait_ms}     RATE_LIMITED  nothing consumed, nothing stored
--   {7, bought}      USER_LIMIT    per-user cap would be passed (stored)
--   {8, stock_left}  SOLD_OUT      fewer units left than asked (stored)

local fingerprint = ARGV[1]
local qty = tonumber(ARGV[2])

local stored = redis.call('HMGET', KEYS[4], 'f', 'c', 'o', 't', 'x')
if stored[1] then
  if stored[1] ~= fingerprint then return {2} end
  local pending = 0
  if stored[5] and stored[5] ~= '' and #redis.call('XRANGE', KEYS[6], stored[5], stored[5]) > 0 then
    pending = 1
  end
  return {1, tonumber(stored[2]), stored[3] or '', tonumber(stored[4] or '0'), pending}
end

local function store(code)
  redis.call('HSET', KEYS[4], 'f', fingerprint, 'c', code)
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end

local sale = redis.call('HMGET', KEYS[1], 'units', 'starts_at_ms', 'ends_at_ms', 'per_user_limit', 'rate_per_s', 'burst')
if not sale[1] then return {3} end

local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)

local starts_at = tonumber(sale[2] or '0') or 0
local ends_at = tonumber(sale[3] or '0') or 0
if starts_at > 0 and now_ms < starts_at then return {4, starts_at - now_ms} end
if ends_at > 0 and now_ms >= ends_at then store(5); return {5} end

local rate = tonumber(sale[5] or '0') or 0
if rate > 0 then
  local interval = 1000000 / rate
  local burst = tonumber(sale[6] or '1') or 1
  local tat = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
  if tat < now_us then tat = now_us end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now_us < allow_at then return {6, math.ceil((allow_at - now_us) / 1000)} end
  redis.call('SET', KEYS[3], string.format('%d', math.floor(new_tat)), 'PX', math.ceil((new_tat - now_us) / 1000) + 1)
end

local limit = tonumber(sale[4] or '0') or 0
local bought = tonumber(redis.call('HGET', KEYS[5], ARGV[5]) or '0') or 0
if limit > 0 and bought + qty > limit then store(7); return {7, bought} end

local stock = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if stock < qty then store(8); return {8, stock} end

-- The outbox append goes first: if it fails, nothing else has been written.
local id = redis.call('XADD', KEYS[6], '*', 'o', ARGV[3], 'u', ARGV[5], 'q', qty, 'k', ARGV[6], 't', string.format('%d', now_us))
local function park()
  -- '>' hands out undelivered entries oldest first; read until ours is pending.
  for _ = 1, 100 do
    local got = redis.pcall('XREADGROUP', 'GROUP', ARGV[7], ARGV[8], 'COUNT', 100, 'STREAMS', KEYS[6], '>')
    if type(got) == 'table' and got.err then return got end
    if not got or not got[1] then return nil end
    local entries = got[1][2]
    if entries[#entries][1] == id then return nil end
  end
  return nil
end
if park() then
  -- No group (the stream was recreated): make it from the start, so every entry is claimable.
  redis.call('XGROUP', 'CREATE', KEYS[6], ARGV[7], '0')
  park()
end

redis.call('DECRBY', KEYS[2], qty)
redis.call('HINCRBY', KEYS[5], ARGV[5], qty)
redis.call('HSET', KEYS[4], 'f', fingerprint, 'c', 0, 'o', ARGV[3], 't', string.format('%d', now_us), 'x', id)
redis.call('EXPIRE', KEYS[4], ARGV[4])
return {0, ARGV[3], now_us, id, stock - qty}
