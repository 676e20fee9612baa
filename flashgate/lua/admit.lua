#!lua
-- admit.lua: admit a batch of orders for one SKU in one atomic call, one decision per order.
--
-- Orders are judged one by one, in ARGV order, exactly as if each had its own call: idempotency
-- replay / fingerprint mismatch, unknown SKU and sale window, GCRA rate limit (a limited request
-- writes nothing), per-user cap, stock check (stock never goes below 0), append to the outbox
-- stream, store the answer under the idempotency key. The state a batch reads is read once for
-- the whole batch (one HMGET per hash) and what it writes is written once (one HSET per hash,
-- one XADD), so an order costs Redis no command of its own; judging an order sees the writes of
-- the orders before it in the same batch (the tables below), so a key or a user twice in one
-- batch is judged as if in two calls. Every order of a call has the same accepted_at (one Redis
-- TIME) and the same outbox entry: the call's admitted orders go into ONE stream entry (one XADD
-- per call, and one XDEL once all of them are in Kafka), so each order's stored answer and reply
-- name that entry's id; so does the call's one order-index entry, which lists its admitted
-- orders. Relays find stale outbox entries by their ids (Redis time), so an admission writes
-- nothing for them. The shebang makes Redis refuse the whole call before it runs (OOM, MISCONF,
-- READONLY), so an error reply never leaves half a batch written.
--
-- Time-bucketed hashes. Stored answers and GCRA states expire, and Redis 7.0 hash fields cannot:
-- so they live in hashes per bucket of Redis time, `<prefix>:<bucket>`, written in the current
-- bucket, read from the current and the previous one, and expiring when the bucket stops being
-- the previous one. The bucket keys are derived here from the declared prefix (Redis TIME picks
-- the bucket, so gates with skewed clocks still agree); they carry the SKU's hash tag, so every
-- key the script touches is in the slot of its declared keys.
--   - answers: bucket = idempotency TTL, so an answer is replayed for at least the TTL (at most
--     twice it);
--   - GCRA: bucket = the smallest power of two ms >= max(1 s, burst interval), in the key name.
--     A state older than that is in the past (tat < now) and means the same as no state.
--     Changing rate or burst mid-sale can change the bucket width, which forgets the states.
--
-- KEYS[1] sale:{sku}       hash: units, starts_at_ms, ends_at_ms, per_user_limit, rate_per_s, burst
-- KEYS[2] stock:{sku}      integer units left
-- KEYS[3] bought:{sku}     hash: user id → units admitted to that user
-- KEYS[4] outbox:{sku}     stream, one entry per call that admitted orders: t accepted_at µs, b the
--                          orders, "o␟u␟q␟k␟p" each (order id, user, qty, idempotency key,
--                          traceparent or ''), joined by ␞ (flashgate/outbox.py)
-- KEYS[5] oidx:{tag}:<day> hash: call field → "sku␟stream id", then "␞pos␟user␟qty" per admitted
--                          order (tag in the SKU's slot): the order ids of one call share all but
--                          their last 3 hex digits, pos; the rest is the field (flashgate/orderindex.py)
-- KEYS[6] idem:{sku}       prefix of the answer buckets idem:{sku}:<bucket>, hash: answer field
--                          (flashgate.names.idem_field) → "f␟c␟o␟t␟x": fingerprint, code, order
--                          id, accepted_at µs, stream id (flashgate/fingerprint.py)
-- KEYS[7] rl:{sku}         prefix of the GCRA buckets rl:{sku}:<width ms>:<bucket>, hash: user id →
--                          theoretical arrival time, µs
--
-- ARGV[1] idempotency TTL, s   ARGV[2] order-index TTL, s   ARGV[3] SKU
-- ARGV[7i-3..7i+3] of order i (i = 1..n): fingerprint, qty (>= 1), order id (uuid7, new, one call
--                  field for the whole call), user id, idempotency key, answer field, traceparent
--                  ('' for none)
--
-- Returns a flat array, 5 slots per order, in ARGV order:
--   0 ACCEPTED     accepted_at_us, stream_id, stock_left, allowance (answer stored); allowance is 0
--                  without a rate limit, else "remaining,reset_s,rate,burst": orders this user may
--                  still send now, seconds until the full burst is back, the sale's policy
--   1 REPLAY       stored_code, order_id, accepted_at_us, pending (pending=1 while in the outbox)
--   2 MISMATCH     same key, different request fingerprint
--   3 UNKNOWN_SKU  no sale config (not stored)
--   4 NOT_STARTED  starts_in_ms (not stored: a retry may succeed once the sale opens)
--   5 ENDED        (stored)
--   6 RATE_LIMITED wait_ms (nothing consumed, nothing stored)
--   7 USER_LIMIT   bought (per-user cap would be passed; stored)
--   8 SOLD_OUT     stock_left, buyers (fewer units left than asked; stored; buyers = HLEN bought)
-- Unused slots are 0.

local idem_ttl, index_ttl, sku = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local WIDTH = 7
local n = (#ARGV - 3) / WIDTH
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

-- One bucketed hash: its current and previous key, and when the current one expires (ms).
local function buckets(prefix, width_ms)
  local b = math.floor(now_ms / width_ms)
  return string.format('%s:%d', prefix, b), string.format('%s:%d', prefix, b - 1), (b + 2) * width_ms
end

-- What the batch reads, once: the answers, per-user units and GCRA states of its orders.
local users, fields = {}, {}
for i = 1, n do
  local a = WIDTH * i - 3
  users[i], fields[i] = ARGV[a + 3], ARGV[a + 5]
end
local idem_cur, idem_prev, idem_expiry = buckets(KEYS[6], idem_ttl * 1000)
local answers_cur = redis.call('HMGET', idem_cur, unpack(fields))
local answers_prev = redis.call('HMGET', idem_prev, unpack(fields))
local units_before = redis.call('HMGET', KEYS[3], unpack(users))
local interval = 0
local rl_cur, rl_prev, rl_expiry
local tats_cur, tats_prev = {}, {}
if rate > 0 then
  interval = 1000000 / rate
  local width = 1024
  while width < burst * interval / 1000 do width = width * 2 end
  rl_cur, rl_prev, rl_expiry = buckets(string.format('%s:%d', KEYS[7], width), width)
  tats_cur = redis.call('HMGET', rl_cur, unpack(users))
  tats_prev = redis.call('HMGET', rl_prev, unpack(users))
end

-- What the batch writes, once at the end; judging reads these first.
local answers = {}      -- answer field → stored answer
local answer_args = {}  -- HSET arguments for the answer bucket
local tats = {}         -- user → new GCRA state
local tat_users = {}    -- their users, in first-write order
local units = {}        -- user → units admitted after this batch
local unit_users = {}   -- their users, in first-write order
local new_buyers = 0
local buyers_before = nil
local taken = 0
-- The call's outbox entry is written after the last order is judged, so what names its id (the
-- admitted orders' stored answers, the index entry and replies) is written then, each string built once.
local packed = {}       -- the admitted orders, as in the entry's `b` field
local admitted = {}     -- the admitted orders' positions in ARGV

local function reply(a, b, c, d, e)
  local k = #out
  out[k + 1], out[k + 2], out[k + 3], out[k + 4], out[k + 5] = a, b or 0, c or 0, d or 0, e or 0
end

local function store(field, value)
  answers[field] = value
  answer_args[#answer_args + 1] = field
  answer_args[#answer_args + 1] = value
end

local function refuse(field, fingerprint, code, a, b)
  store(field, fingerprint .. '\31' .. code .. '\31\31\31')
  return reply(code, a, b)
end

-- Judge order i; every return path adds exactly one reply.
local function judge(i)
  local a = WIDTH * i - 3
  local fingerprint, qty, order_id, user, key, field =
    ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]

  local earlier = answers[field]
  if type(earlier) == 'number' then  -- admitted earlier in this call: replayed as pending
    if ARGV[WIDTH * earlier - 3] ~= fingerprint then return reply(2) end
    return reply(1, 0, ARGV[WIDTH * earlier - 1], now_us, 1)
  end
  local stored = earlier or answers_cur[i] or answers_prev[i]
  if stored then
    local f, c, o, at, x = string.match(stored, '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)$')
    if f ~= fingerprint then return reply(2) end
    local pending = 0
    if x ~= '' and #redis.call('XRANGE', KEYS[4], x, x) > 0 then pending = 1 end
    return reply(1, tonumber(c), o, tonumber(at) or 0, pending)
  end

  if not sale[1] then return reply(3) end
  if starts_at > 0 and now_ms < starts_at then return reply(4, starts_at - now_ms) end
  if ends_at > 0 and now_ms >= ends_at then return refuse(field, fingerprint, 5) end

  if rate > 0 then
    local tat = tats[user]
    if not tat then tat = math.max(tonumber(tats_cur[i]) or 0, tonumber(tats_prev[i]) or 0) end
    if tat < now_us then tat = now_us end
    local new_tat = tat + interval
    local allow_at = new_tat - burst * interval
    if now_us < allow_at then return reply(6, math.ceil((allow_at - now_us) / 1000)) end
    if not tats[user] then tat_users[#tat_users + 1] = user end
    tats[user] = math.floor(new_tat)
  end

  local bought = units[user]
  if not bought then bought = tonumber(units_before[i]) or 0 end
  if limit > 0 and bought + qty > limit then return refuse(field, fingerprint, 7, bought) end

  local left = stock - taken
  if left < qty then
    if not buyers_before then buyers_before = redis.call('HLEN', KEYS[3]) end
    return refuse(field, fingerprint, 8, left, buyers_before + new_buyers)
  end

  packed[#packed + 1] = order_id .. '\31' .. user .. '\31' .. ARGV[a + 1] .. '\31' .. key .. '\31' .. ARGV[a + 6]
  taken = taken + qty
  if not units[user] then
    unit_users[#unit_users + 1] = user
    if not units_before[i] then new_buyers = new_buyers + 1 end
  end
  units[user] = bought + qty
  answers[field] = i  -- its answer is stored once the entry id is known
  admitted[#admitted + 1] = i
  local allowance = 0
  if rate > 0 then
    local tat = tats[user]
    allowance = string.format('%d,%d,%s,%d', math.floor((now_us + burst * interval - tat) / interval),
      math.ceil((tat - now_us) / 1000000), sale[5], burst)
  end
  return reply(0, now_us, '', left - qty, allowance)
end

for i = 1, n do judge(i) end

if #packed > 0 then
  local id = redis.call('XADD', KEYS[4], '*', 't', now_text, 'b', table.concat(packed, '\30'))
  local tail = '\31' .. now_text .. '\31' .. id
  local index = {sku .. '\31' .. id}
  for _, i in ipairs(admitted) do
    local a = WIDTH * i - 3
    local order_id = ARGV[a + 2]
    store(ARGV[a + 5], ARGV[a] .. '\31' .. '0\31' .. order_id .. tail)
    index[#index + 1] = string.sub(order_id, 34) .. '\31' .. ARGV[a + 3] .. '\31' .. ARGV[a + 1]
    out[5 * i - 2] = id
  end
  redis.call('HSET', KEYS[5], string.sub(ARGV[6], 1, 33), table.concat(index, '\30'))
  redis.call('EXPIRE', KEYS[5], index_ttl)
end

if #answer_args > 0 then
  redis.call('HSET', idem_cur, unpack(answer_args))
  redis.call('PEXPIREAT', idem_cur, idem_expiry)
end
if #tat_users > 0 then
  local tat_args = {}
  for _, user in ipairs(tat_users) do
    tat_args[#tat_args + 1] = user
    tat_args[#tat_args + 1] = string.format('%d', tats[user])
  end
  redis.call('HSET', rl_cur, unpack(tat_args))
  redis.call('PEXPIREAT', rl_cur, rl_expiry)
end
if taken > 0 then
  local unit_args = {}
  for _, user in ipairs(unit_users) do
    unit_args[#unit_args + 1] = user
    unit_args[#unit_args + 1] = units[user]
  end
  redis.call('HSET', KEYS[3], unpack(unit_args))
  redis.call('DECRBY', KEYS[2], taken)
end
return out
