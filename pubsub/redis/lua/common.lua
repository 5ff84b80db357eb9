-- common.lua is prepended to every other script.
--
-- Keys (all share one hash tag, so that Redis Cluster keeps them in one
-- slot and a script may touch them all). The layout is version 2: meta
-- and epochs are "{prefix}:v2:..." (a log of layout 1 at "{prefix}:meta"
-- is not read), every other key is "{prefix}:<epoch>:...":
--   meta    hash: epoch, seq (last offset), bytes (size of history: the
--           length of its items), forgotten (highest offset of a forgotten
--           topic), lb (bytes ever written to the live stream: the id of
--           its newest entry)
--   epochs  stream announcing every new epoch (nodes block on it)
--   live    stream of published batches, id "<lb>-0", fields s (the
--           offset before the batch's first stored message), t (ms), n
--           (how many of the plan's messages were published), f (which
--           of them were stored: '' for all, else a '1'/'0' per message),
--           p (the plan, as publish received it); trimmed to the live
--           window's bytes: only the nodes' listeners read it
--   t:<topic> list of the topic's messages, oldest first, each
--           "<offset> <ms> <encoded message>" (a message of several topics
--           is in each one's list, and counts in each one's bytes). With a count limit a list may
--           hold up to a tenth more than the limit: the oldest extra
--           items count as evicted (see window)
--   wm      hash topic -> highest offset evicted from the topic's list
--   topics  sorted set topic -> ms of the topic's oldest message or less
--           (a lower bound: the age sweep looks at topics from it)
--   ret     hash topic -> "<offset> <ms> <encoded message>" (retained)
--   fin     hash topic -> offset of its final message
--   sizes   hash topic -> bytes of the topic's messages in history (only
--           with a byte bound), folded in from pend by the sweep
--   fair    sorted set topic -> bytes the byte bound may evict from it (all
--           but its newest message)
--   pend    list of MessagePack arrays {topic, bytes added, ...}: the
--           changes of each publish to the topics' sizes, not folded yet
--   id:<id> string "<offset> <ms>": a message published with that ID
--           (Message.ID), for idempotent publishing; expires after
--           pubsub.DedupeWindow

-- multi runs a variadic command (key, then the list's items; no key when
-- key is nil) in chunks of at most 1000 items, and returns the replies'
-- items in order. An empty list runs nothing.
local function multi(cmd, key, list)
  local out = {}
  for i = 1, #list, 1000 do
    local last = math.min(i + 999, #list)
    local r
    if key then
      r = redis.call(cmd, key, unpack(list, i, last))
    else
      r = redis.call(cmd, unpack(list, i, last))
    end
    if type(r) == 'table' then
      for k = 1, #r do
        out[#out + 1] = r[k] -- false (a missing field) included
      end
    end
  end
  return out
end

local function num(v)
  return tonumber(v) or 0
end

-- offset_of returns the offset of a list item.
local function offset_of(item)
  return tonumber(string.match(item, '^(%d+)'))
end

-- parse returns a list item's offset and ms.
local function parse(item)
  local s, ms = string.match(item, '^(%d+) (%d+) ')
  return tonumber(s), tonumber(ms)
end

-- now returns Redis's time in ms.
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- current_epoch returns the log's epoch. When the meta hash is missing
-- (a new deployment, or Redis lost its data) and candidate is not empty,
-- it starts a new epoch named candidate and announces it.
local function current_epoch(meta, epochs, candidate)
  local cur = redis.call('HGET', meta, 'epoch')
  if cur then
    return cur
  end
  if candidate == nil or candidate == '' then
    return ''
  end
  redis.call('HSET', meta, 'epoch', candidate, 'seq', 0, 'bytes', 0, 'forgotten', 0, 'lb', 0)
  redis.call('XADD', epochs, 'MAXLEN', '~', 64, '*', 'epoch', candidate)
  return candidate
end

-- window returns where the count limit puts a topic's history in its list
-- (key) of len items: the index (0-based) of its oldest message held, and
-- the offset of the newest one the limit evicted that is still in the list
-- (0 when none): a list may hold up to a tenth more than the limit.
local function window(key, len, max_events)
  if max_events <= 0 or len <= max_events then
    return 0, 0
  end
  local first = len - max_events
  return first, offset_of(redis.call('LINDEX', key, first - 1))
end

-- search returns the index (0-based) of the first item of a list (key) of
-- len items from index lo whose offset is above after (len when none):
-- a binary search, the items being in offset order.
local function search(key, lo, len, after)
  local hi = len
  -- Most reads resume near the tail: look there first.
  if hi > lo and offset_of(redis.call('LINDEX', key, hi - 1)) <= after then
    return hi
  end
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if offset_of(redis.call('LINDEX', key, mid)) <= after then
      lo = mid + 1
    else
      hi = mid
    end
  end
  return lo
end

-- fold applies the pending changes of the topics' sizes (the pend list,
-- at most limit entries of it) to the sizes hash and the fair set; it
-- returns true when pend holds more. prefix is the topics' lists' prefix.
local function fold(pend, sizes, fair, prefix, limit)
  local batches = redis.call('LRANGE', pend, 0, limit - 1)
  if #batches == 0 then
    return false
  end
  local delta, names = {}, {}
  for _, p in ipairs(batches) do
    local d = cmsgpack.unpack(p)
    for i = 1, #d, 2 do
      local name = d[i]
      if not delta[name] then
        names[#names + 1] = name
        delta[name] = 0
      end
      delta[name] = delta[name] + d[i + 1]
    end
  end
  redis.call('LTRIM', pend, #batches, -1)
  local held = multi('HMGET', sizes, names)
  local set, del, fairset = {}, {}, {}
  for i, name in ipairs(names) do
    local b = num(held[i]) + delta[name]
    local last = b > 0 and redis.call('LINDEX', prefix .. name, -1)
    if last then
      set[#set + 1] = name
      set[#set + 1] = b
      fairset[#fairset + 1] = b - #last
      fairset[#fairset + 1] = name
    else
      del[#del + 1] = name
    end
  end
  multi('HSET', sizes, set)
  multi('HDEL', sizes, del)
  multi('ZADD', fair, fairset)
  multi('ZREM', fair, del)
  return #batches == limit
end

-- max_drop bounds how many items one script pops from lists by retention
-- (beyond the items a publish brings): a backlog of millions (MaxAge or
-- MaxEvents set or lowered on a long history) goes over several calls, not
-- in one LPOP that blocks Redis and copies them all into the script.
local max_drop = 10000

-- drop removes the count oldest items of a topic's list (key), which
-- holds count items or more, and returns the highest offset among them
-- (the topic's new eviction mark: items leave a list from its front, so it
-- is above the old one) and their bytes.
local function drop(key, count)
  local items = redis.call('LPOP', key, count)
  local freed = 0
  for _, it in ipairs(items) do
    freed = freed + #it
  end
  return offset_of(items[#items]), freed
end

-- topic_tail returns the offset of a topic's newest message (the last item
-- of its list, key), 0 when it has none.
local function topic_tail(key)
  local last = redis.call('LINDEX', key, -1)
  if not last then
    return 0
  end
  return offset_of(last)
end
