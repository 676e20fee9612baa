-- idem_restore.lua: put back the stored answers of admitted orders after Redis lost its data,
-- so a buyer retrying an order that is already recorded gets it replayed instead of buying again.
-- Existing answers are never overwritten.
--
-- KEYS[i]  idem:{sku}:<user>:<key> of order i (all KEYS share the SKU's hash tag); the value is
--          the stored answer "f␟0␟o␟t␟" (flashgate/fingerprint.py StoredAnswer, no stream id)
-- ARGV[4i-3] fingerprint  ARGV[4i-2] order id  ARGV[4i-1] accepted_at µs  ARGV[4i] TTL s
--
-- Returns the number of answers restored.
local restored = 0
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local answer = ARGV[4 * i - 3] .. '\31' .. '0\31' .. ARGV[4 * i - 2] .. '\31' .. ARGV[4 * i - 1] .. '\31'
    redis.call('SET', KEYS[i], answer, 'EX', ARGV[4 * i])
    restored = restored + 1
  end
end
return restored
