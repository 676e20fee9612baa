#!lua
-- sale_apply.lua: write a sale into Redis, or repair it, in one atomic call.
--
-- Two modes:
--   adjust   the sale exists: stock and per-user counts move by relative deltas, so orders
--            the gate admits between the reconciler's snapshot and this call stay counted.
--            Stock is clamped to [0, cap]: never above what is provably left.
--   rebuild  Redis has no sale config (new sale, or Redis lost its data): stock and per-user
--            counts are set absolutely (no admission can have happened without the config),
--            the outbox consumer group is created, and the config is written last.
--
-- KEYS[1] sale:{sku}    KEYS[2] stock:{sku}    KEYS[3] bought:{sku}    KEYS[4] outbox:{sku}
-- ARGV[1] mode: 'adjust' | 'rebuild'
-- ARGV[2] stock: delta (adjust) or absolute value (rebuild)
-- ARGV[3] cap: the most units provably left (stock never ends above it); -1 = no cap
-- ARGV[4] outbox consumer group
-- ARGV[5] n config fields, then n (field, value) pairs to HSET on the sale config
-- then    m users, then m (user, units) pairs: delta (adjust) or absolute (rebuild)
--
-- Returns {code, stock_after, clamped}
--   {0, stock, clamped}  applied; clamped = 1 when the stock hit 0 or the cap
--   {1}                  adjust, but Redis has no sale config (lost since the snapshot): nothing written
--   {2}                  rebuild, but Redis has a sale config (written since the snapshot): nothing written
local mode = ARGV[1]
local value = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local exists = redis.call('EXISTS', KEYS[1]) == 1
if mode == 'adjust' and not exists then return {1} end
if mode == 'rebuild' and exists then return {2} end

local n = tonumber(ARGV[5])
local config = {}
for i = 1, n do
  config[#config + 1] = ARGV[5 + 2 * i - 1]
  config[#config + 1] = ARGV[5 + 2 * i]
end
local u = 6 + 2 * n
local m = tonumber(ARGV[u])

local stock = value
if mode == 'adjust' then stock = tonumber(redis.call('GET', KEYS[2]) or '0') + value end
local clamped = 0
if cap >= 0 and stock > cap then stock = cap; clamped = 1 end
if stock < 0 then stock = 0; clamped = 1 end
redis.call('SET', KEYS[2], stock)

if mode == 'rebuild' then redis.call('DEL', KEYS[3]) end
for i = 1, m do
  local user = ARGV[u + 2 * i - 1]
  local units = tonumber(ARGV[u + 2 * i])
  local after = units
  if mode == 'adjust' then after = redis.call('HINCRBY', KEYS[3], user, units) end
  if after <= 0 then redis.call('HDEL', KEYS[3], user) else redis.call('HSET', KEYS[3], user, after) end
end

if mode == 'rebuild' then
  local made = redis.pcall('XGROUP', 'CREATE', KEYS[4], ARGV[4], '0', 'MKSTREAM')
  if type(made) == 'table' and made.err and not string.find(made.err, 'BUSYGROUP') then
    return redis.error_reply(made.err)
  end
end
if n > 0 then redis.call('HSET', KEYS[1], unpack(config)) end
return {0, stock, clamped}
