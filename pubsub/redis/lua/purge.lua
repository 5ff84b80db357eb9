-- purge drops a topic's history, retained and final state. Subscribers
-- from before are told their history was truncated.
-- KEYS: 1 meta, 2 wm, 3 topics, 4 ret, 5 fin, 6 the topic's list,
--       7 sizes, 8 fair, 9 pend
-- ARGV: 1 expected epoch, 2 topic name, 3 prefix of the topics' list keys
local meta, wm, topics, ret, fin, key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local sizes, fair, pend = KEYS[7], KEYS[8], KEYS[9]
local cur = redis.call('HGET', meta, 'epoch')
if cur ~= ARGV[1] then
  return {'epoch', cur or ''}
end
local name = ARGV[2]
if redis.call('ZSCORE', topics, name) or redis.call('HEXISTS', ret, name) == 1 then
  -- The topic's pending size changes first, so that none is left for it.
  while fold(pend, sizes, fair, ARGV[3], 1000) do
  end
  local head = num(redis.call('HGET', meta, 'seq'))
  local freed = 0
  local len = redis.call('LLEN', key)
  for i = 0, len - 1, 1000 do
    for _, it in ipairs(redis.call('LRANGE', key, i, i + 999)) do
      freed = freed + #it
    end
  end
  if freed > 0 then
    redis.call('HINCRBY', meta, 'bytes', -freed)
  end
  redis.call('DEL', key)
  redis.call('HDEL', sizes, name)
  redis.call('ZREM', fair, name)
  redis.call('HSET', wm, name, head)
  redis.call('ZADD', topics, now(), name)
  redis.call('HDEL', ret, name)
  redis.call('HDEL', fin, name)
end
return {'ok'}
