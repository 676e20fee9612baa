#!lua
-- outbox_claim.lua: outbox entries older than a threshold, for the relay that holds the SKU's lease.
--
-- One relay at a time republishes a SKU's outbox: the first to call takes the lease (SET NX PX)
-- and renews it with every call; the others get nothing until it lapses (a relay that dies
-- hands the SKU over after `lease ms`). Entries are read oldest first by stream id, which is
-- Redis time at admission, so "stale" means admitted more than `min age ms` ago and not yet
-- acknowledged (acked entries are deleted). Admission never touches the lease.
--
-- KEYS[1] outbox:{sku}   stream
-- KEYS[2] relay:{sku}    the relay lease: holder name (PX expiry)
-- ARGV[1] relay name (unique per relay process)  ARGV[2] min age, ms  ARGV[3] exclusive start
-- cursor (stream id, "0-0" for the beginning)    ARGV[4] max entries   ARGV[5] lease, ms
--
-- Returns: {next_cursor, {{id, {field, value, ...}}, ...}}
--          next_cursor "0-0" when the stale part of the stream has been read to the end;
--          {"0-0", {}} when another relay holds the lease or there is nothing stale.

local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return {'0-0', {}} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])

local t = redis.call('TIME')
local newest = math.floor((tonumber(t[1]) * 1000000 + tonumber(t[2])) / 1000) - tonumber(ARGV[2])
if newest < 0 then return {'0-0', {}} end
local start = '(' .. ARGV[3]
if ARGV[3] == '0-0' then start = '-' end
local count = tonumber(ARGV[4])
local entries = redis.call('XRANGE', KEYS[1], start, string.format('%d', newest), 'COUNT', count)
local cursor = '0-0'
if #entries == count then cursor = entries[#entries][1] end
return {cursor, entries}
