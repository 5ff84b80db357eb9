-- init returns {epoch, head offset, id of the newest epoch announcement},
-- creating the epoch if needed: where a listener starts.
-- KEYS: meta, epochs. ARGV: candidate epoch.
local epoch = current_epoch(KEYS[1], KEYS[2], ARGV[1])
local head = num(redis.call('HGET', KEYS[1], 'seq'))
-- A log written before topics counted their bytes: what it holds is evicted
-- oldest first by the byte bound (see enforce_bytes).
redis.call('HSETNX', KEYS[1], 'legacy', head)
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
return {epoch, head, last and last[1] or '0-0'}
