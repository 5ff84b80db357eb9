-- publish appends a message to the log and to each topic's index.
-- KEYS: 1 meta, 2 epochs, 3 log, 4 clock, 5 wm, 6 topics, 7 ret, 8 fin,
--       9.. the topics' index streams (in the order of the names in ARGV)
-- ARGV: 1 expected epoch, 2 candidate epoch, 3 max events per topic,
--       4 max bytes, 5 keep a clock (1/0), 6 size, 7 retain (1/0),
--       8 final (1/0), 9 encoded message, 10.. topic names
-- Returns {'ok', offset, ms}, {'epoch', current} when the caller's epoch is
-- stale, or {'finished', topic}.
local meta, epochs, log, clock, wm, topics, ret, fin = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local cur = current_epoch(meta, epochs, ARGV[2])
if cur ~= ARGV[1] then
  return {'epoch', cur}
end
local names = {}
for i = 10, #ARGV do
  names[#names + 1] = ARGV[i]
end
for _, name in ipairs(names) do
  if redis.call('HEXISTS', fin, name) == 1 then
    return {'finished', name}
  end
end

local max_events, max_bytes, size = num(ARGV[3]), num(ARGV[4]), num(ARGV[6])
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local id = sid(seq)
local ms
if ARGV[5] == '1' then
  -- The clock entry's id gives the message's time: Redis keeps stream ids
  -- increasing even if its clock goes back.
  local cid = redis.call('XADD', clock, '*', 's', seq)
  ms = tonumber(string.match(cid, '^(%d+)'))
else
  local t = redis.call('TIME')
  ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('XADD', log, id, 't', ms, 'n', size, 'm', ARGV[9])

-- Total size: evict the oldest messages of the log (never the new one).
local floor = num(redis.call('HGET', meta, 'floor'))
local bytes = redis.call('HINCRBY', meta, 'bytes', size)
if max_bytes > 0 and bytes > max_bytes then
  while bytes > max_bytes do
    local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
    local fseq = seq_of(first[1])
    if fseq >= seq then
      break
    end
    bytes = bytes - num(field(first[2], 'n'))
    floor = fseq + 1
    redis.call('XTRIM', log, 'MINID', sid(floor))
  end
  redis.call('HSET', meta, 'bytes', bytes, 'floor', floor)
end

local forgotten = num(redis.call('HGET', meta, 'forgotten'))
for i, name in ipairs(names) do
  local key = KEYS[8 + i]
  local mark = num(redis.call('HGET', wm, name))
  if not redis.call('ZSCORE', topics, name) and forgotten > mark then
    -- A new (or forgotten) topic: what was forgotten may have been its.
    mark = forgotten
  end
  if floor > 1 then
    local below = redis.call('XREVRANGE', key, '(' .. sid(floor), '-', 'COUNT', 1)
    if #below > 0 then
      mark = math.max(mark, seq_of(below[1][1]))
      redis.call('XTRIM', key, 'MINID', sid(floor))
    end
  end
  if max_events > 0 then
    local n = redis.call('XLEN', key)
    if n >= max_events then
      local drop = redis.call('XRANGE', key, '-', '+', 'COUNT', n - max_events + 1)
      local last = seq_of(drop[#drop][1])
      mark = math.max(mark, last)
      redis.call('XTRIM', key, 'MINID', sid(last + 1))
    end
  end
  redis.call('XADD', key, id, 'x', '')
  if mark > 0 then
    redis.call('HSET', wm, name, mark)
  end
  redis.call('ZADD', topics, seq, name)
  if ARGV[7] == '1' then
    redis.call('HSET', ret, name, string.format('%d %d ', seq, ms) .. ARGV[9])
  end
  if ARGV[8] == '1' then
    redis.call('HSET', fin, name, seq)
  end
end
return {'ok', seq, ms}
