#!lua flags=no-writes
-- sale_snapshot.lua: one SKU's whole Redis state, read atomically with Redis server time.
--
-- The reconciler compares this with PostgreSQL and Kafka; the time lets it count only orders
-- admitted before the snapshot, so admissions racing with it never look like drift.
--
-- KEYS[1] sale:{sku}    KEYS[2] stock:{sku}    KEYS[3] bought:{sku}    KEYS[4] outbox:{sku}
-- ARGV: none
--
-- Returns {now_us, sale_hash_flat, stock, bought_hash_flat, outbox_entries}
--   now_us          Redis TIME in µs
--   sale_hash_flat  HGETALL of the sale config ({} when Redis has no sale)
--   stock           the stock value as a string, '' when the key is missing
--   bought_flat     HGETALL of user → units admitted
--   outbox_entries  XRANGE - + of the outbox (orders not yet known to be in Kafka)
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stock = redis.call('GET', KEYS[2])
if not stock then stock = '' end
return {
  now_us,
  redis.call('HGETALL', KEYS[1]),
  stock,
  redis.call('HGETALL', KEYS[3]),
  redis.call('XRANGE', KEYS[4], '-', '+'),
}
