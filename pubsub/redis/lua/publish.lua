-- publish appends a message to the log and to each topic's index.
-- KEYS: 1 meta, 2 epochs, 3 log, 4 clock, 5 wm, 6 topics, 7 ret, 8 fin,
--       9 sizes, 10 fair, 11 refs, 12 the message ID's key (idempotent
--       publishing; unused without an ID),
--       13.. the topics' index streams (in the order of the names in ARGV)
-- ARGV: 1 expected epoch, 2 candidate epoch, 3 max events per topic,
--       4 max bytes, 5 keep a clock (1/0), 6 size, 7 retain (1/0),
--       8 final (1/0), 9 encoded message, 10 prefix of the topics' index
--       keys, 11 the message's ID ('' for none) and how many seconds the
--       broker remembers it, as "<seconds> <id>", 12 the condition: ''
--       for none, else the offset the tail of the only topic must be at
--       (0: the topic has no message), 13.. topic names
-- Returns {'ok', offset, ms}, {'epoch', current} when the caller's epoch is
-- stale, {'finished', topic}, or {'conflict', tail} when the condition
-- does not hold. A message whose ID was published within
-- the window is not stored again: {'ok', offset, ms} of the first.
local meta, epochs, log, clock, wm, topics, ret, fin = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local sizes, fair, refs = KEYS[9], KEYS[10], KEYS[11]
local cur = current_epoch(meta, epochs, ARGV[2])
if cur ~= ARGV[1] then
  return {'epoch', cur}
end
local idkey = ARGV[11] ~= '' and KEYS[12] or nil
if idkey then
  local first = redis.call('GET', idkey)
  if first then
    local s, ms = string.match(first, '^(%d+) (%d+)$')
    return {'ok', tonumber(s), tonumber(ms)}
  end
end
local names = {}
for i = 13, #ARGV do
  names[#names + 1] = ARGV[i]
end
for _, name in ipairs(names) do
  if redis.call('HEXISTS', fin, name) == 1 then
    return {'finished', name}
  end
end
if ARGV[12] ~= '' then
  local tail = topic_tail(meta, KEYS[13])
  if tail ~= tonumber(ARGV[12]) then
    return {'conflict', tail}
  end
end

local max_events, max_bytes, size, prefix = num(ARGV[3]), num(ARGV[4]), num(ARGV[6]), ARGV[10]
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
redis.call('HINCRBY', meta, 'bytes', size)
if #names > 1 then
  redis.call('HSET', refs, seq, #names)
end

local floor = num(redis.call('HGET', meta, 'floor'))
local forgotten = num(redis.call('HGET', meta, 'forgotten'))
for i, name in ipairs(names) do
  local key = KEYS[12 + i]
  local mark = num(redis.call('HGET', wm, name))
  if not redis.call('ZSCORE', topics, name) and forgotten > mark then
    -- A new (or forgotten) topic: what was forgotten may have been its.
    mark = forgotten
  end
  local b, l = sizes_of(sizes, name)
  if floor > 1 then
    -- Entries whose message left the log (by age) are trimmed lazily.
    local below = redis.call('XRANGE', key, '-', '(' .. sid(floor))
    if #below > 0 then
      mark = math.max(mark, seq_of(below[#below][1]))
      for _, e in ipairs(below) do
        b = b - num(field(e[2], 'n'))
      end
      redis.call('XTRIM', key, 'MINID', sid(floor))
    end
  end
  if mark > 0 then
    redis.call('HSET', wm, name, mark)
  end
  redis.call('XADD', key, id, 'n', size)
  set_sizes(sizes, fair, name, b + size, size)
  if max_events > 0 then
    local n = redis.call('XLEN', key)
    for _ = 1, n - max_events do
      local freed = drop_front(log, refs, sizes, fair, wm, name, key)
      if freed and freed > 0 then
        redis.call('HINCRBY', meta, 'bytes', -freed)
      end
    end
  end
  redis.call('ZADD', topics, seq, name)
  if ARGV[7] == '1' then
    redis.call('HSET', ret, name, string.format('%d %d ', seq, ms) .. ARGV[9])
  end
  if ARGV[8] == '1' then
    redis.call('HSET', fin, name, seq)
  end
end
if max_bytes > 0 then
  enforce_bytes(meta, log, refs, sizes, fair, wm, prefix, max_bytes, seq)
end
if idkey then
  local window = tonumber(string.match(ARGV[11], '^(%d+) '))
  redis.call('SET', idkey, string.format('%d %d', seq, ms), 'EX', window)
end
return {'ok', seq, ms}
