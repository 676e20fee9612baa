#!lua flags=allow-oom
-- outbox_ack.lua: forget outbox entries whose order Kafka has acknowledged.
--
-- allow-oom: it only deletes, so a Redis at maxmemory still lets it free memory (admissions are
-- refused then; orders admitted just before still get their ack and their `accepted`).
--
-- Idempotent: acking an entry twice (gate and relay both delivered it) deletes it once.
--
-- KEYS[1] outbox:{sku}   stream
-- ARGV[1..n] stream entry ids
--
-- Returns: the number of entries deleted by this call (0 for ids already gone).

if #ARGV == 0 then return 0 end
return redis.call('XDEL', KEYS[1], unpack(ARGV))
