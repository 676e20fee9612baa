#!lua
-- admit.lua: admit a batch of orders for one SKU in one atomic call, one decision per order.
--
-- Orders are judged one by one, in ARGV order, exactly as if each had its own call: idempotency
-- replay / fingerprint mismatch, unknown SKU and sale window, GCRA rate limit (a limited request
-- writes nothing), per-user cap, stock check (stock never goes below 0), append to the outbox
-- stream, store the answer under the idempotency key. What the batch shares is paid once: the
-- sale config, Redis TIME (every order of a call has the same accepted_at), the stock write
-- and the order-index write. Relays find stale outbox entries by their ids (Redis time), so an
-- admission writes nothing for them. The shebang makes Redis refuse the whole call before it
-- runs (OOM, MISCONF, READONLY), so an error reply never leaves half a batch written.
--
-- KEYS[1] sale:{sku}       hash: units, starts_at_ms, ends_at_ms, per_user_limit, rate_per_s, burst
-- KEYS[2] stock:{sku}      integer units left
-- KEYS[3] bought:{sku}     hash: user id → units admitted to that user
-- KEYS[4] outbox:{sku}     stream: o order id, u user, q qty, k idempotency key, t accepted_at µs
-- KEYS[5] oidx:{tag}:<day> hash: order id → "sku␟user␟qty␟stream id" (tag in the SKU's slot)
-- KEYS[4+2i] rl:{sku}:<user>             GCRA theoretical arrival time of order i, µs (PX expiry)
-- KEYS[5+2i] idem:{sku}:<user>:<key>     string "f␟c␟o␟t␟x" (EX TTL): fingerprint, code, order id,
--                                        accepted_at µs, stream id (flashgate/fingerprint.py; i = 1..n)
--
-- ARGV[1] idempotency TTL, s   ARGV[2] order-index TTL, s   ARGV[3] SKU
-- ARGV[5i-1..5i+3] of order i: fingerprint, qty (>= 1), order id (uuid7, new), user id, idempotency key
--
-- Returns a flat array, 5 slots per order, in ARGV order:
--   0 ACCEPTED     accepted_at_us, stream_id, stock_left, 0      (answer stored)
--   1 REPLAY       stored_code, order_id, accepted_at_us, pending (pending=1 while in the outbox)
--   2 MISMATCH     same key, different request fingerprint
--   3 UNKNOWN_SKU  no sale config (not stored)
--   4 NOT_STARTED  starts_in_ms (not stored: a retry may succeed once the sale opens)
--   5 ENDED        (stored)
--   6 RATE_LIMITED wait_ms (nothing consumed, nothing stored)
--   7 USER_LIMIT   bought (per-user cap would be passed; stored)
--   8 SOLD_OUT     stock_left, buyers (fewer units left than asked; stored; buyers = HLEN bought)
-- Unused slots are 0.

local idem_ttl, index_ttl, sku = ARGV[1], ARGV[2], ARGV[3]
local n = (#KEYS - 5) / 2
local out = {}

local sale = redis.call('HMGET', KEYS[1], 'units', 'starts_at_ms', 'ends_at_ms', 'per_user_limit', 'rate_per_s', 'burst')
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local now_text = string.format('%d', now_us)
local starts_at = tonumber(sale[2] or '0') or 0
local ends_at = tonumber(sale[3] or '0') or 0
local limit = tonumber(sale[4] or '0') or 0
local rate = tonumber(sale[5] or '0') or 0
local burst = tonumber(sale[6] or '1') or 1
local stock = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local taken = 0
local index = {}

local function reply(a, b, c, d, e)
  local k = #out
  out[k + 1], out[k + 2], out[k + 3], out[k + 4], out[k + 5] = a, b or 0, c or 0, d or 0, e or 0
end

local function store(idem, fingerprint, code)
  redis.call('SET', idem, fingerprint .. '\31' .. code .. '\31\31\31', 'EX', idem_ttl)
end

-- Judge one order; every return path adds exactly one reply.
local function judge(i)
  local rl, idem = KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  local a = 5 * i - 2
  local fingerprint, qty, order_id, user, key = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]

  local stored = redis.call('GET', idem)
  if stored then
    local f, c, o, t, x = string.match(stored, '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)$')
    if f ~= fingerprint then return reply(2) end
    local pending = 0
    if x ~= '' and #redis.call('XRANGE', KEYS[4], x, x) > 0 then pending = 1 end
    return reply(1, tonumber(c), o, tonumber(t) or 0, pending)
  end

  if not sale[1] then return reply(3) end
  if starts_at > 0 and now_ms < starts_at then return reply(4, starts_at - now_ms) end
  if ends_at > 0 and now_ms >= ends_at then store(idem, fingerprint, 5); return reply(5) end

  if rate > 0 then
    local interval = 1000000 / rate
    local tat = tonumber(redis.call('GET', rl) or '0') or 0
    if tat < now_us then tat = now_us end
    local new_tat = tat + interval
    local allow_at = new_tat - burst * interval
    if now_us < allow_at then return reply(6, math.ceil((allow_at - now_us) / 1000)) end
    redis.call('SET', rl, string.format('%d', math.floor(new_tat)), 'PX', math.ceil((new_tat - now_us) / 1000) + 1)
  end

  local bought = tonumber(redis.call('HGET', KEYS[3], user) or '0') or 0
  if limit > 0 and bought + qty > limit then store(idem, fingerprint, 7); return reply(7, bought) end

  local left = stock - taken
  if left < qty then store(idem, fingerprint, 8); return reply(8, left, redis.call('HLEN', KEYS[3])) end

  local id = redis.call('XADD', KEYS[4], '*', 'o', order_id, 'u', user, 'q', qty, 'k', key, 't', now_text)
  taken = taken + qty
  redis.call('HINCRBY', KEYS[3], user, qty)
  redis.call('SET', idem, fingerprint .. '\31' .. '0\31' .. order_id .. '\31' .. now_text .. '\31' .. id, 'EX', idem_ttl)
  index[#index + 1] = order_id
  index[#index + 1] = sku .. '\31' .. user .. '\31' .. qty .. '\31' .. id
  return reply(0, now_us, id, left - qty)
end

for i = 1, n do judge(i) end

if taken > 0 then
  redis.call('DECRBY', KEYS[2], taken)
  redis.call('HSET', KEYS[5], unpack(index))
  redis.call('EXPIRE', KEYS[5], index_ttl)
end
return out
