-- publish appends a batch of messages, in order, with the effect of
-- publishing each on its own: every message gets the next offset, goes to
-- its topics' lists, and makes them retained or finished. It is one
-- script call however many messages; what a message costs is its item in
-- each of its topics' lists (one RPUSH a topic a batch) and its ID's key.
-- The batch is announced once, on the live stream; the count limit pops a
-- topic's oldest items a tenth of the limit at a time; a byte bound's
-- bookkeeping is one pend entry a batch (the sweep folds it in). A single
-- Publish is a batch of one.
-- KEYS: 1 meta, 2 epochs, 3 live, 4 wm, 5 topics, 6 ret, 7 fin, 8 pend
-- ARGV: 1 expected epoch, 2 candidate epoch, 3 max events per topic,
--       4 max bytes, 5 the live window (bytes), 6 prefix of the topics'
--       list keys, 7 prefix of the ID keys, 8 how many seconds an ID is
--       remembered, 9 the plan: a MessagePack array with one array per
--       message: {flags (1 retain, 2 final), size, ID ('' for none),
--       encoded message, topic, topic...}, 10 the condition: '' for
--       none, else the offset the tail of the first message's only topic
--       must be at (0: the topic has no message); PublishIf sends it with
--       a batch of one
-- Returns {status, n, detail, positions} where n is how many messages (in
-- order) were published, positions holds {offset, ms} for each of them,
-- and status is 'ok'; 'finished' (detail: the topic) when message n+1
-- goes to a finished topic; 'conflict' (detail: the topic's tail, n 0)
-- when the condition does not hold; or 'epoch' (detail: the current
-- epoch, n 0) when the caller's epoch is stale. A message whose ID was
-- published within the window (before, or earlier in the batch) is not
-- stored again: its position is the first one's.
local meta, epochs, live, wm, topics, ret, fin, pend = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local m0 = redis.call('HMGET', meta, 'epoch', 'seq', 'bytes', 'forgotten', 'lb')
if not m0[1] then
  current_epoch(meta, epochs, ARGV[2])
  m0 = redis.call('HMGET', meta, 'epoch', 'seq', 'bytes', 'forgotten', 'lb')
end
if m0[1] ~= ARGV[1] then
  return {'epoch', 0, m0[1] or '', {}}
end
local max_events, max_bytes, prefix, idprefix = num(ARGV[3]), num(ARGV[4]), ARGV[6], ARGV[7]
local plan = cmsgpack.unpack(ARGV[9])
local cond = ARGV[10] ~= nil and ARGV[10] ~= '' and tonumber(ARGV[10]) or nil

-- The batch's topics, and the IDs it names.
local names, index, idkeys = {}, {}, {}
for _, m in ipairs(plan) do
  for j = 5, #m do
    local name = m[j]
    if not index[name] then
      names[#names + 1] = name
      index[name] = #names
    end
  end
  if m[3] ~= '' then
    idkeys[#idkeys + 1] = idprefix .. m[3]
  end
end
local closed = {}
if redis.call('EXISTS', fin) == 1 then
  closed = multi('HMGET', fin, names)
end
for i = 1, #names do
  closed[i] = closed[i] and closed[i] ~= false or false
end
local firsts = multi('MGET', nil, idkeys)

-- Decide: which messages are stored, at which offset; where the batch stops.
local seq0 = num(m0[2])
local seq = seq0
local status, detail, n = 'ok', '', 0
local offsets, mss, fresh = {}, {}, {} -- per message of the plan (mss false: this batch's time)
local seen, idn, hits = {}, 0, 0
for i, m in ipairs(plan) do
  local hit
  if m[3] ~= '' then
    idn = idn + 1
    hit = seen[m[3]]
    if not hit and firsts[idn] then
      local s, ms = string.match(firsts[idn], '^(%d+) (%d+)$')
      hit = {tonumber(s), tonumber(ms)}
    end
  end
  if hit then
    offsets[i], mss[i] = hit[1], hit[2]
    hits = hits + 1
  else
    for j = 5, #m do
      if closed[index[m[j]]] then
        status, detail = 'finished', m[j]
        break
      end
    end
    if status == 'ok' and cond and i == 1 then
      -- Before anything is written.
      local tail = topic_tail(prefix .. m[5])
      if tail ~= cond then
        status, detail = 'conflict', tail
      end
    end
    if status ~= 'ok' then
      break
    end
    seq = seq + 1
    offsets[i], mss[i], fresh[i] = seq, false, true
    if m[1] >= 2 then
      for j = 5, #m do
        closed[index[m[j]]] = true
      end
    end
    if m[3] ~= '' then
      seen[m[3]] = {seq, false}
    end
  end
  n = i
end

local positions = {}
if seq == seq0 then
  for i = 1, n do
    positions[#positions + 1] = offsets[i]
    positions[#positions + 1] = mss[i]
  end
  return {status, n, detail, positions}
end

-- Write: each topic's items, gathered, then pushed with one RPUSH a topic.
local ms = now()
local items = {} -- per topic index: the items to push
local added = {} -- per topic index: their bytes
local bytes = num(m0[3])
local retset, finset = {}, {}
for i = 1, n do
  local m = plan[i]
  local s = offsets[i]
  positions[#positions + 1] = s
  positions[#positions + 1] = mss[i] or ms
  if fresh[i] then
    local blob = m[4]
    local item = string.format('%d %d ', s, ms) .. blob
    local size = #item
    for j = 5, #m do
      local t = index[m[j]]
      local list = items[t]
      if list then
        list[#list + 1] = item
        added[t] = added[t] + size
      else
        items[t], added[t] = {item}, size
      end
      bytes = bytes + size
      if m[1] % 2 == 1 then
        retset[m[j]] = item
      end
      if m[1] >= 2 then
        finset[m[j]] = s
      end
    end
    if m[3] ~= '' then
      redis.call('SET', idprefix .. m[3], string.format('%d %d', s, ms), 'EX', ARGV[8])
    end
  end
end

local slack = math.max(1, math.floor(max_events / 10))
local wmset, pendset = {}, {}
for t, name in ipairs(names) do
  local list = items[t]
  if list then
    local key = prefix .. name
    -- In chunks: unpack() spreads at most about 8000 values.
    local len
    for i = 1, #list, 1000 do
      len = redis.call('RPUSH', key, unpack(list, i, math.min(i + 999, #list)))
    end
    if len == #list then
      -- A new topic (or one purged or forgotten): it starts to count for
      -- the age sweep, and what was forgotten may have been its.
      local known = redis.call('ZSCORE', topics, name)
      redis.call('ZADD', topics, ms, name)
      local forgotten = num(m0[4])
      if not known and forgotten > 0 and forgotten > num(redis.call('HGET', wm, name)) then
        wmset[#wmset + 1] = name
        wmset[#wmset + 1] = forgotten
      end
    end
    local delta = added[t]
    if max_events > 0 and len - max_events >= slack then
      -- Back to the limit (a long excess a part at a time: reads skip
      -- what is left of it); the newest item stays (max_events >= 1).
      local top, freed = drop(key, math.min(len - max_events, math.max(#list, max_drop)))
      wmset[#wmset + 1] = name
      wmset[#wmset + 1] = top
      bytes = bytes - freed
      delta = delta - freed
    end
    if max_bytes > 0 then
      pendset[#pendset + 1] = name
      pendset[#pendset + 1] = delta
    end
  end
end
multi('HSET', wm, wmset)
if #pendset > 0 then
  redis.call('RPUSH', pend, cmsgpack.pack(pendset))
end
local rs, fs = {}, {}
for name, v in pairs(retset) do
  rs[#rs + 1] = name
  rs[#rs + 1] = v
end
for name, v in pairs(finset) do
  fs[#fs + 1] = name
  fs[#fs + 1] = v
end
multi('HSET', ret, rs)
multi('HSET', fin, fs)

-- Announce the batch to the nodes' listeners: one entry, its id the live
-- stream's bytes so far, so that trimming it to the window is by bytes.
local mask = ''
if hits > 0 or n < #plan then
  local f = {}
  for i = 1, n do
    f[i] = fresh[i] and '1' or '0'
  end
  mask = table.concat(f)
end
-- (string.format, not '..': Lua writes a number of 15 digits or more as
-- "1e+14", which no stream id is.)
local lb = num(m0[5]) + #ARGV[9] + 64
local id = string.format('%d-0', lb)
local window = num(ARGV[5])
if window > 0 and lb > window then
  redis.call('XADD', live, 'MINID', '~', string.format('%d', lb - window), id, 's', seq0, 't', ms, 'n', n, 'f', mask, 'p', ARGV[9])
else
  redis.call('XADD', live, id, 's', seq0, 't', ms, 'n', n, 'f', mask, 'p', ARGV[9])
end
redis.call('HSET', meta, 'seq', seq, 'bytes', math.max(bytes, 0), 'lb', lb)
return {status, n, detail, positions}
