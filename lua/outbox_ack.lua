-- outbox_ack.lua: forget outbox entries whose order Kafka has acknowledged.
--
-- Idempotent: acking an entry twice (gate and relay both delivered it) deletes it once.
--
-- KEYS[1] outbox:{sku}   stream
-- ARGV[1] consumer group ARGV[2..n] stream entry ids
--
-- Returns: the number of entries deleted by this call (0 for ids already gone).

local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))
