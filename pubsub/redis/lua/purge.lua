-- purge drops a topic's history, retained and final state. Subscribers
-- from before are told their history was truncated.
-- KEYS: 1 meta, 2 wm, 3 topics, 4 ret, 5 fin, 6 the topic's index stream,
--       7 log, 8 sizes, 9 fair, 10 refs
-- ARGV: 1 expected epoch, 2 topic name
local meta, wm, topics, ret, fin, key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local log, sizes, fair, refs = KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local cur = redis.call('HGET', meta, 'epoch')
if cur ~= ARGV[1] then
  return {'epoch', cur or ''}
end
local name = ARGV[2]
if redis.call('ZSCORE', topics, name) or redis.call('HEXISTS', ret, name) == 1 then
  local head = num(redis.call('HGET', meta, 'seq'))
  local freed = 0
  for _, e in ipairs(redis.call('XRANGE', key, '-', '+')) do
    freed = freed + release(log, refs, seq_of(e[1]))
  end
  if freed > 0 then
    redis.call('HINCRBY', meta, 'bytes', -freed)
  end
  redis.call('DEL', key)
  set_sizes(sizes, fair, name, 0, 0)
  redis.call('HSET', wm, name, head)
  redis.call('ZADD', topics, head, name)
  redis.call('HDEL', ret, name)
  redis.call('HDEL', fin, name)
end
return {'ok'}
