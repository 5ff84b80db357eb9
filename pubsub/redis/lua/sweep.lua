-- sweep folds the pending changes of the topics' sizes in, applies
-- age-based retention and the byte bound, and forgets topics whose every
-- message has left history. It does at most limit items of each kind of
-- work and returns 1 when there is more to do.
-- KEYS: 1 meta, 2 wm, 3 topics, 4 ret, 5 fin, 6 sizes, 7 fair, 8 pend
-- ARGV: 1 expected epoch, 2 max age in ms (0: no age limit), 3 max bytes
--       (0: no bound), 4 limit, 5 prefix of the topics' list keys
local meta, wm, topics, ret, fin, sizes, fair, pend = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
if redis.call('HGET', meta, 'epoch') ~= ARGV[1] then
  return -1
end
local max_age, max_bytes, limit, prefix = num(ARGV[2]), num(ARGV[3]), num(ARGV[4]), ARGV[5]
local bytes = num(redis.call('HGET', meta, 'bytes'))
local forgotten = num(redis.call('HGET', meta, 'forgotten'))
local more = 0
local bounded = max_bytes > 0 or redis.call('EXISTS', pend) == 1
if bounded and fold(pend, sizes, fair, prefix, limit) then
  more = 1
end

-- forget drops what is left of a topic whose list is empty.
local function forget(name, last)
  forgotten = math.max(forgotten, last, num(redis.call('HGET', wm, name)))
  redis.call('HDEL', wm, name)
  redis.call('ZREM', topics, name)
  redis.call('HDEL', sizes, name)
  redis.call('ZREM', fair, name)
  if redis.call('HDEL', fin, name) == 1 then
    redis.call('HDEL', ret, name)
  end
end

-- resize records a topic's bytes after freed left it (sizes and fair
-- set, when they are kept).
local function resize(name, key, freed)
  if not bounded then
    return
  end
  local b = num(redis.call('HGET', sizes, name)) - freed
  local last = redis.call('LINDEX', key, -1)
  if b > 0 and last then
    redis.call('HSET', sizes, name, b)
    redis.call('ZADD', fair, b - #last, name)
  else
    redis.call('HDEL', sizes, name)
    redis.call('ZREM', fair, name)
  end
end

if max_age > 0 then
  local cutoff = now() - max_age
  -- Topics whose oldest message may be older than the cutoff.
  local old = redis.call('ZRANGEBYSCORE', topics, '-inf', '(' .. cutoff, 'LIMIT', 0, limit)
  local budget = max_drop
  for _, name in ipairs(old) do
    if budget == 0 then
      more = 1
      break
    end
    local key = prefix .. name
    local len = redis.call('LLEN', key)
    -- How many of its oldest items are older than the cutoff.
    local lo, hi = 0, len
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      local _, ms = parse(redis.call('LINDEX', key, mid))
      if ms < cutoff then
        lo = mid + 1
      else
        hi = mid
      end
    end
    if lo > budget then
      lo, more = budget, 1 -- the rest in the next call
    end
    budget = budget - lo
    if lo > 0 then
      local top, freed = drop(key, lo)
      bytes = bytes - freed
      redis.call('HSET', wm, name, top)
      if lo == len then
        forget(name, top)
      else
        resize(name, key, freed)
      end
    elseif len == 0 then
      forget(name, 0)
    end
    if lo < len then
      local _, ms = parse(redis.call('LINDEX', key, 0))
      redis.call('ZADD', topics, ms, name)
    end
  end
  if #old == limit then
    more = 1
  end
end

if max_bytes > 0 and more == 0 then
  -- Fairly: the oldest message of the topic with the most evictable bytes,
  -- one after the other. The topic in the lead loses its oldest messages
  -- in one LTRIM, up to 64 of them, until the bound holds or another topic
  -- leads (what one eviction at a time would do, in fewer calls); its
  -- fair score goes down at once, its eviction mark and size once at the
  -- end.
  local n = 0
  local marks, freedof, names = {}, {}, {}
  while bytes > max_bytes and n < limit do
    local top = redis.call('ZREVRANGE', fair, 0, 1, 'WITHSCORES')
    if #top == 0 or num(top[2]) <= 0 then
      break -- only the topics' newest messages are left
    end
    local name, score = top[1], num(top[2])
    local lead = score - num(top[4])
    local key = prefix .. name
    -- Its 64 oldest items and one more: the list's last item is its
    -- newest, which stays (of 65 items read, 64 may go, of fewer all but
    -- the last).
    local old = redis.call('LRANGE', key, 0, 64)
    local avail = #old - 1
    if avail < 1 then
      redis.call('ZREM', fair, name) -- stale
      n = n + 1
    else
      local k, freed = 0, 0
      while k < avail do
        k = k + 1
        freed = freed + #old[k]
        if freed >= bytes - max_bytes or freed > lead then
          break
        end
      end
      redis.call('LTRIM', key, k, -1)
      bytes = bytes - freed
      if not freedof[name] then
        names[#names + 1] = name
        freedof[name] = 0
      end
      marks[name] = offset_of(old[k])
      freedof[name] = freedof[name] + freed
      if score - freed > 0 then
        redis.call('ZADD', fair, score - freed, name)
      else
        redis.call('ZREM', fair, name)
      end
      n = n + k
    end
  end
  if #names > 0 then
    local held = multi('HMGET', sizes, names)
    local wmset, sizeset = {}, {}
    for i, name in ipairs(names) do
      wmset[#wmset + 1] = name
      wmset[#wmset + 1] = marks[name]
      sizeset[#sizeset + 1] = name
      sizeset[#sizeset + 1] = math.max(num(held[i]) - freedof[name], 0)
    end
    multi('HSET', wm, wmset)
    multi('HSET', sizes, sizeset)
  end
  if bytes > max_bytes and n >= limit then
    more = 1
  end
end
redis.call('HSET', meta, 'bytes', math.max(bytes, 0), 'forgotten', forgotten)
return more
