-- outbox_claim.lua: claim outbox entries pending longer than a threshold, for republishing.
--
-- Claiming resets an entry's idle time, so other relays leave it alone for another threshold;
-- a relay that dies mid-way loses nothing (the entry becomes claimable again). Entries already
-- deleted (acked) are dropped from the pending list by XAUTOCLAIM and reported apart.
--
-- KEYS[1] outbox:{sku}   stream
-- ARGV[1] consumer group ARGV[2] relay consumer name ARGV[3] min idle, ms
-- ARGV[4] start cursor (stream id, "0-0" for the beginning) ARGV[5] max entries
--
-- Returns: {next_cursor, {{id, {field, value, ...}}, ...}, {deleted_id, ...}}
--          next_cursor "0-0" when the pending list has been scanned to the end;
--          {"0-0", {}, {}} when the stream or its group does not exist.

if redis.call('EXISTS', KEYS[1]) == 0 then return {'0-0', {}, {}} end
local got = redis.pcall('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
if type(got) == 'table' and got.err then return {'0-0', {}, {}} end
return {got[1], got[2], got[3] or {}}
