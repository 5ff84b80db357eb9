-- common.lua is prepended to every other script.
--
-- Keys (all share one hash tag, so that Redis Cluster keeps them in one
-- slot and a script may touch them all):
--   meta    hash: epoch, seq (last offset), floor (oldest offset kept in
--           the log), forgotten (highest offset of a forgotten topic),
--           bytes (approximate size of the log)
--   epochs  stream announcing every new epoch (nodes block on it)
--   log     stream of every message of the epoch, id "<offset>-0", fields
--           t (ms), n (size), m (encoded message)
--   clock   stream "<ms>-<n>" -> s (offset): when each offset was written
--           (only with age-based retention)
--   wm      hash topic -> highest offset evicted from the topic's index
--   topics  sorted set topic -> offset of its newest message
--   ret     hash topic -> "<offset> <ms> <encoded message>" (retained)
--   fin     hash topic -> offset of its final message
--   t:<topic> stream, id "<offset>-0": the topic's index into log

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
  redis.call('HSET', meta, 'epoch', candidate, 'seq', 0, 'floor', 1, 'forgotten', 0, 'bytes', 0)
  redis.call('XADD', epochs, 'MAXLEN', '~', 64, '*', 'epoch', candidate)
  return candidate
end
