-- read_topic returns one topic's messages after an offset, and its tail.
-- KEYS: 1 meta, 2 epochs, 3 the topic's list
-- ARGV: 1 expected epoch, 2 candidate epoch, 3 offset to read after,
--       4 at most this many messages (0: all), 5 max events per topic
--       (0: no limit)
-- Returns {'epoch', current} when the caller's epoch is stale, else
-- {'ok', tail, items} with the list's items ("<offset> <ms> <encoded
-- message>").
local meta, epochs, key = KEYS[1], KEYS[2], KEYS[3]
local cur = current_epoch(meta, epochs, ARGV[2])
if cur ~= ARGV[1] then
  return {'epoch', cur}
end
local tail = topic_tail(key)
local after, limit = num(ARGV[3]), num(ARGV[4])
local items = {}
if tail > after then
  local len = redis.call('LLEN', key)
  local first = window(key, len, num(ARGV[5]))
  local from = search(key, first, len, after)
  local to = -1
  if limit > 0 then
    to = from + limit - 1
  end
  items = redis.call('LRANGE', key, from, to)
end
return {'ok', tail, items}
