-- read_topic returns one topic's messages after an offset, and its tail.
-- KEYS: 1 meta, 2 epochs, 3 log, 4 the topic's index stream
-- ARGV: 1 expected epoch, 2 candidate epoch, 3 offset to read after,
--       4 at most this many messages (0: all)
-- Returns {'epoch', current} when the caller's epoch is stale, else
-- {'ok', tail, items {offset, ms, encoded message, ...}}.
local meta, epochs, log, key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cur = current_epoch(meta, epochs, ARGV[2])
if cur ~= ARGV[1] then
  return {'epoch', cur}
end
local floor = num(redis.call('HGET', meta, 'floor'))
local tail = topic_tail(key, floor)
local after, limit = num(ARGV[3]), num(ARGV[4])
local items = {}
if tail > after then
  -- Index entries below the floor are of messages that left the log.
  local start = math.max(after, floor - 1)
  local ids
  if limit > 0 then
    ids = redis.call('XRANGE', key, '(' .. sid(start), '+', 'COUNT', limit)
  else
    ids = redis.call('XRANGE', key, '(' .. sid(start), '+')
  end
  for _, e in ipairs(ids) do
    local s = seq_of(e[1])
    local m = redis.call('XRANGE', log, sid(s), sid(s))[1]
    if m then
      items[#items + 1] = s
      items[#items + 1] = field(m[2], 't')
      items[#items + 1] = field(m[2], 'm')
    end
  end
end
return {'ok', tail, items}
