-- common.lua is prepended to every other script.
--
-- Keys (all share one hash tag, so that Redis Cluster keeps them in one
-- slot and a script may touch them all):
--   meta    hash: epoch, seq (last offset), floor (no offset below it is
--           in the log), forgotten (highest offset of a forgotten topic),
--           bytes (approximate size of the log), legacy (offsets up to it
--           were written before topics counted their bytes), dead (1 when
--           the dead list may hold offsets)
--   epochs  stream announcing every new epoch (nodes block on it)
--   log     stream of every message of the epoch, id "<offset>-0", fields
--           t (ms), n (size), m (encoded message)
--   clock   stream "<ms>-<n>" -> s (offset): when each offset was written
--           (only with age-based retention)
--   wm      hash topic -> highest offset evicted from the topic's index
--   topics  sorted set topic -> offset of its newest message
--   ret     hash topic -> "<offset> <ms> <encoded message>" (retained)
--   fin     hash topic -> offset of its final message
--   t:<topic> stream, id "<offset>-0", field n (size): the topic's index
--           into log
--   sizes   hash topic -> "<bytes> <newest>": the size of the topic's
--           messages in history, and of its newest one
--   fair    sorted set topic -> bytes the byte bound may evict from it
--           (all but its newest message); only topics with some
--   refs    hash offset -> how many topics' indexes still hold the message
--           (messages of several topics only)
--   id:<id> string "<offset> <ms>": a message published with that ID
--           (Message.ID), for idempotent publishing; expires after
--           pubsub.DedupeWindow
--   dead    list of offsets: messages that a batch evicted from every
--           topic's index while it published them; they leave the log at
--           the next publish (see release), their bytes are counted out
--           already

-- defer, when set (by publish), holds the first offset of the batch being
-- published (from) and the dead list's key (key): release keeps such a
-- message in the log.
local defer = nil

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

-- sid returns the stream id of offset n.
local function sid(n)
  return string.format('%d-0', n)
end

-- seq_of returns the offset in a stream id.
local function seq_of(id)
  return tonumber(string.match(id, '^(%d+)'))
end

-- field returns the value of name in a flat field list.
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then
      return fields[i + 1]
    end
  end
  return nil
end

local function num(v)
  return tonumber(v) or 0
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
  redis.call('HSET', meta, 'epoch', candidate, 'seq', 0, 'floor', 1, 'forgotten', 0, 'bytes', 0, 'legacy', 0)
  redis.call('XADD', epochs, 'MAXLEN', '~', 64, '*', 'epoch', candidate)
  return candidate
end

-- sizes_of returns the bytes of a topic's history and of its newest message.
local function sizes_of(sizes, name)
  local v = redis.call('HGET', sizes, name)
  if not v then
    return 0, 0
  end
  local b, l = string.match(v, '^(%d+) (%d+)$')
  return num(b), num(l)
end

-- set_sizes records a topic's sizes and its place in the fair set.
local function set_sizes(sizes, fair, name, b, l)
  if b <= 0 then
    redis.call('HDEL', sizes, name)
    redis.call('ZREM', fair, name)
    return
  end
  redis.call('HSET', sizes, name, string.format('%d %d', b, l))
  if b > l then
    redis.call('ZADD', fair, b - l, name)
  else
    redis.call('ZREM', fair, name)
  end
end

-- release drops one topic's hold on the message at offset s. Once no
-- topic holds it, it leaves the log; returns the bytes that frees.
local function release(log, refs, s)
  if redis.call('HEXISTS', refs, s) == 1 then
    if redis.call('HINCRBY', refs, s, -1) > 0 then
      return 0
    end
    redis.call('HDEL', refs, s)
  end
  local e = redis.call('XRANGE', log, sid(s), sid(s))[1]
  if not e then
    return 0 -- it left the log already (age, or the oldest-first bound)
  end
  if defer and s >= defer.from then
    -- A message of the batch being published: the nodes' listeners have
    -- not read it yet, and would take its absence for a gap.
    redis.call('RPUSH', defer.key, s)
    defer.used = true
  else
    redis.call('XDEL', log, e[1])
  end
  return num(field(e[2], 'n'))
end

-- release_all drops one topic's hold on each message of evicted ({offset,
-- size} pairs, as the topics' index entries give them; an offset twice
-- when two topics let go of it), as release does one by one, in a few
-- calls: the messages no topic holds any more leave the log in one XDEL
-- (or go to the dead list, when of the batch being published). Every
-- offset is at or above the floor (publish trimmed the indexes below it),
-- so its message is in the log. Messages written before index entries
-- carried sizes (offsets up to legacy) go through release. Returns the
-- bytes freed.
local function release_all(log, refs, dead, evicted, legacy)
  local offs = {}
  for i, e in ipairs(evicted) do
    offs[i] = e[1]
  end
  local counts = multi('HMGET', refs, offs)
  local held, setrefs, delrefs, gone, late = {}, {}, {}, {}, {}
  local freed = 0
  for i, e in ipairs(evicted) do
    local s, size = e[1], e[2]
    if s <= legacy then
      freed = freed + release(log, refs, s)
    else
      local c = held[s]
      if c == nil and counts[i] then
        c = num(counts[i])
      end
      if c ~= nil and c > 1 then
        held[s] = c - 1
      else
        if c ~= nil then
          held[s] = 0
        end
        freed = freed + size
        if defer and s >= defer.from then
          late[#late + 1] = s
        else
          gone[#gone + 1] = sid(s)
        end
      end
    end
  end
  for s, c in pairs(held) do
    if c > 0 then
      setrefs[#setrefs + 1] = s
      setrefs[#setrefs + 1] = c
    else
      delrefs[#delrefs + 1] = s
    end
  end
  multi('HSET', refs, setrefs)
  multi('HDEL', refs, delrefs)
  multi('XDEL', log, gone)
  if #late > 0 then
    multi('RPUSH', dead, late)
    defer.used = true
  end
  return freed
end

-- reap removes from the log the messages a previous batch evicted.
local function reap(log, dead)
  local d = redis.call('LRANGE', dead, 0, -1)
  if #d == 0 then
    return
  end
  for i = 1, #d do
    d[i] = sid(d[i])
  end
  multi('XDEL', log, d)
  redis.call('DEL', dead)
end

-- drop_front removes the oldest message of a topic's history: from its
-- index (key), its sizes, and the log once no topic holds it. It records
-- the offset in the topic's eviction mark, and returns the bytes freed from
-- the log (false when the topic's index is empty).
local function drop_front(log, refs, sizes, fair, wm, name, key)
  local e = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1]
  if not e then
    return false
  end
  local s = seq_of(e[1])
  redis.call('XDEL', key, e[1])
  if s > num(redis.call('HGET', wm, name)) then
    redis.call('HSET', wm, name, s)
  end
  local b, l = sizes_of(sizes, name)
  b = b - num(field(e[2], 'n'))
  if redis.call('XLEN', key) == 0 then
    b, l = 0, 0
  end
  set_sizes(sizes, fair, name, b, l)
  return release(log, refs, s)
end

-- enforce_bytes evicts until the log fits max_bytes: the oldest messages
-- of the log while some of it predates byte counting per topic (legacy),
-- then fairly: the oldest message of the topic with the most evictable
-- bytes, never a topic's newest. It starts from the log's bytes, floor and
-- legacy mark (the meta hash's fields), and returns the bytes and the
-- floor, for the caller to store.
local function enforce_bytes(log, refs, sizes, fair, wm, prefix, max_bytes, seq, bytes, floor, legacy)
  while bytes > max_bytes do
    if floor <= legacy then
      local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
      local fseq = first and seq_of(first[1])
      if not fseq or fseq >= seq then
        break
      end
      if fseq > legacy then
        floor = legacy + 1 -- the legacy messages have all left
      else
        bytes = bytes - num(field(first[2], 'n'))
        floor = fseq + 1
        redis.call('XTRIM', log, 'MINID', sid(floor))
        redis.call('HDEL', refs, fseq)
      end
    else
      local top = redis.call('ZREVRANGE', fair, 0, 0)[1]
      if not top then
        break -- only the topics' newest messages are left
      end
      local freed = drop_front(log, refs, sizes, fair, wm, top, prefix .. top)
      if freed == false then
        redis.call('ZREM', fair, top) -- stale
      else
        bytes = bytes - freed
      end
    end
  end
  return bytes, floor
end

-- topic_tail returns the offset of a topic's newest message in the log (the
-- last entry of its index stream, key), 0 when it has none: entries below
-- floor (the meta hash's) are of messages that left the log (trimmed
-- lazily). Messages in the dead list are in no index, so never a tail.
local function topic_tail(key, floor)
  local e = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  if not e then
    return 0
  end
  local s = seq_of(e[1])
  if s < floor then
    return 0
  end
  return s
end
