-- init returns {epoch, head offset, id of the newest epoch announcement,
-- bytes written to the live stream so far}, creating the epoch if needed:
-- where a listener starts.
-- KEYS: meta, epochs. ARGV: candidate epoch.
local epoch = current_epoch(KEYS[1], KEYS[2], ARGV[1])
local m = redis.call('HMGET', KEYS[1], 'seq', 'lb')
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
return {epoch, num(m[1]), last and last[1] or '0-0', num(m[2])}
