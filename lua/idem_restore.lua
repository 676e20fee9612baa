-- idem_restore.lua: put back the stored answers of admitted orders after Redis lost its data,
-- so a buyer retrying an order that is already recorded gets it replayed instead of buying again.
-- Existing answers are never overwritten.
--
-- KEYS[i]  idem:{sku}:<user>:<key> of order i (all KEYS share the SKU's hash tag)
-- ARGV[4i-3] fingerprint  ARGV[4i-2] order id  ARGV[4i-1] accepted_at µs  ARGV[4i] TTL s
--
-- Returns the number of answers restored.
local restored = 0
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('HSET', KEYS[i], 'f', ARGV[4 * i - 3], 'c', 0, 'o', ARGV[4 * i - 2], 't', ARGV[4 * i - 1], 'x', '')
    redis.call('EXPIRE', KEYS[i], ARGV[4 * i])
    restored = restored + 1
  end
end
return restored
