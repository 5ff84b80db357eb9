-- sweep applies age-based retention to the log, and forgets topics whose
-- every message has left the log. It does at most limit items of each kind
-- of work and returns 1 when there is more to do.
-- KEYS: 1 meta, 2 log, 3 clock, 4 wm, 5 topics, 6 ret, 7 fin, 8 sizes,
--       9 fair, 10 refs, 11 dead
-- ARGV: 1 expected epoch, 2 max age in ms (0: no age limit), 3 limit,
--       4 prefix of the topics' index keys
local meta, log, clock, wm, topics, ret, fin = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local sizes, fair, refs = KEYS[8], KEYS[9], KEYS[10]
if redis.call('HGET', meta, 'epoch') ~= ARGV[1] then
  return -1
end
reap(log, KEYS[11])
local max_age, limit = num(ARGV[2]), num(ARGV[3])
local floor = num(redis.call('HGET', meta, 'floor'))
local bytes = num(redis.call('HGET', meta, 'bytes'))
local forgotten = num(redis.call('HGET', meta, 'forgotten'))
local more = 0

if max_age > 0 then
  local t = redis.call('TIME')
  local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - max_age
  -- The newest offset written before the cutoff.
  local c = redis.call('XREVRANGE', clock, '(' .. string.format('%d-0', cutoff), '-', 'COUNT', 1)[1]
  if c then
    local upto = num(field(c[2], 's'))
    if upto >= floor then
      local old = redis.call('XRANGE', log, sid(floor), sid(upto), 'COUNT', limit)
      for _, e in ipairs(old) do
        bytes = bytes - num(field(e[2], 'n'))
        redis.call('HDEL', refs, seq_of(e[1]))
      end
      if #old > 0 then
        floor = seq_of(old[#old][1]) + 1
      end
      if #old == limit then
        more = 1
      else
        floor = math.max(floor, upto + 1)
      end
      redis.call('XTRIM', log, 'MINID', sid(floor))
    end
    if more == 0 then
      redis.call('XTRIM', clock, 'MINID', c[1])
    end
  end
end

local gone = redis.call('ZRANGEBYSCORE', topics, '-inf', '(' .. floor, 'LIMIT', 0, limit)
for _, name in ipairs(gone) do
  forgotten = math.max(forgotten, num(redis.call('ZSCORE', topics, name)), num(redis.call('HGET', wm, name)))
  redis.call('DEL', ARGV[4] .. name)
  redis.call('HDEL', wm, name)
  redis.call('ZREM', topics, name)
  set_sizes(sizes, fair, name, 0, 0)
  if redis.call('HDEL', fin, name) == 1 then
    redis.call('HDEL', ret, name)
  end
end
if #gone == limit then
  more = 1
end
redis.call('HSET', meta, 'floor', floor, 'bytes', math.max(bytes, 0), 'forgotten', forgotten)
return more
