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
--       remembered, 9 the batch's encoded messages for the live stream,
--       10 the condition: '' for none, else the offset the tail of the
--       first message's only topic must be at (0: the topic has no
--       message); PublishIf sends it with a batch of one, 11 how many
--       topics the batch names (t), 12 .. 11+t the topics, then for each
--       message either its topic number (1 .. t) and its encoded message
--       (a message of one topic, no ID, neither retained nor final), or
--       minus its head (flags + 4 × its number of topics k; flags: 1
--       retain, 2 final), its ID ('' for none), its encoded message, and
--       k topic numbers
-- Returns {status, n, detail, first, ms, hits} where n is how many
-- messages (in order) were published; the stored ones have the offsets
-- first, first+1, ... and the time ms, except those whose ID was
-- published within the window (before, or earlier in the batch): they are
-- not stored again, and hits holds {message number, offset, ms} for each.
-- status is 'ok'; 'finished' (detail: the topic) when message n+1 goes to
-- a finished topic; 'conflict' (detail: the topic's tail, n 0) when the
-- condition does not hold; or 'epoch' (detail: the current epoch, n 0)
-- when the caller's epoch is stale.
local meta, epochs, live, wm, topics, ret, fin, pend = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local m0 = redis.call('HMGET', meta, 'epoch', 'seq', 'bytes', 'forgotten', 'lb')
if not m0[1] then
  current_epoch(meta, epochs, ARGV[2])
  m0 = redis.call('HMGET', meta, 'epoch', 'seq', 'bytes', 'forgotten', 'lb')
end
if m0[1] ~= ARGV[1] then
  return {'epoch', 0, m0[1] or '', 0, 0, {}}
end
local max_events, max_bytes, prefix, idprefix = num(ARGV[3]), num(ARGV[4]), ARGV[6], ARGV[7]
local cond = ARGV[10] ~= '' and tonumber(ARGV[10]) or nil
local t = tonumber(ARGV[11])
local names = {}
for i = 1, t do
  names[i] = ARGV[11 + i]
end
local closed = {}
if redis.call('EXISTS', fin) == 1 then
  closed = multi('HMGET', fin, names)
end
for i = 1, t do
  closed[i] = closed[i] and true or false
end
local ms = now()
local seq0 = num(m0[2])
local seq = seq0
local status, detail, n = 'ok', '', 0
local items, added = {}, {} -- per topic number: the items to push, their bytes
local bytes = num(m0[3])
local retset, finset = {}, {}
local seen, hits = {}, {}
local msprefix = string.format(' %d ', ms)
-- An item's offset is written as its hundreds and its last two digits,
-- each formatted once a call (formatting numbers is most of what building
-- an item costs).
local hi0, histr, lo2 = -1, '', {}
local one = {0} -- the topic number of a message of one topic

-- One pass: each message is stored (its items gathered per topic) or,
-- its ID seen within the window, answered with the first one's position,
-- until one goes to a finished topic.
local p = 12 + t
while p <= #ARGV do
  local head = tonumber(ARGV[p])
  local flags, id, blob, tns, first, last = 0, '', nil, ARGV, 0, 0
  if head > 0 then
    one[1] = head
    blob, tns, first, last = ARGV[p + 1], one, 1, 1
    p = p + 2
  else
    local k = math.floor(-head / 4)
    flags, id, blob = -head % 4, ARGV[p + 1], ARGV[p + 2]
    first, last = p + 3, p + 2 + k
    p = last + 1
  end
  local hit
  if id ~= '' then
    hit = seen[id]
    if not hit then
      local v = redis.call('GET', idprefix .. id)
      if v then
        local s, vms = string.match(v, '^(%d+) (%d+)$')
        hit = {tonumber(s), tonumber(vms)}
      end
    end
  end
  if hit then
    hits[#hits + 1] = n + 1
    hits[#hits + 1] = hit[1]
    hits[#hits + 1] = hit[2]
  else
    for j = first, last do
      local tn = tonumber(tns[j])
      if closed[tn] then
        status, detail = 'finished', names[tn]
        break
      end
    end
    if status == 'ok' and cond then
      -- Before anything is written (a batch of one).
      local tail = topic_tail(prefix .. names[1])
      if tail ~= cond then
        status, detail = 'conflict', tail
      end
    end
    if status ~= 'ok' then
      break
    end
    seq = seq + 1
    local hi, lo = math.floor(seq / 100), seq % 100
    local item
    if hi == 0 then
      item = string.format('%d', seq) .. msprefix .. blob
    else
      if hi ~= hi0 then
        hi0, histr = hi, string.format('%d', hi)
      end
      local l = lo2[lo]
      if not l then
        l = string.format('%02d', lo)
        lo2[lo] = l
      end
      item = histr .. l .. msprefix .. blob
    end
    local size = #item
    for j = first, last do
      local tn = tonumber(tns[j])
      local list = items[tn]
      if list then
        list[#list + 1] = item
        added[tn] = added[tn] + size
      else
        items[tn], added[tn] = {item}, size
      end
      bytes = bytes + size
      if flags % 2 == 1 then
        retset[tn] = item
      end
      if flags >= 2 then
        finset[tn] = seq
        closed[tn] = true
      end
    end
    if id ~= '' then
      seen[id] = {seq, ms}
      redis.call('SET', idprefix .. id, string.format('%d %d', seq, ms), 'EX', ARGV[8])
    end
  end
  n = n + 1
end
if seq == seq0 then
  return {status, n, detail, 0, 0, hits}
end

-- Each topic's items, pushed with one RPUSH (in chunks: Lua's unpack has a
-- limit), then its count limit.
local slack = math.max(1, math.floor(max_events / 10))
local wmset, pendset = {}, {}
for tn = 1, t do
  local list = items[tn]
  if list then
    local name = names[tn]
    local key = prefix .. name
    -- In chunks: unpack() spreads at most about 8000 values.
    local len = 0
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
    local delta = added[tn]
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
for tn, v in pairs(retset) do
  rs[#rs + 1] = names[tn]
  rs[#rs + 1] = v
end
for tn, v in pairs(finset) do
  fs[#fs + 1] = names[tn]
  fs[#fs + 1] = v
end
multi('HSET', ret, rs)
multi('HSET', fin, fs)

-- Announce the batch to the nodes' listeners: one entry, its id the live
-- stream's bytes so far, so that trimming it to the window is by bytes.
local mask = ''
if #hits > 0 then
  local f, h = {}, 1
  for i = 1, n do
    if hits[h] == i then
      f[i] = '0'
      h = h + 3
    else
      f[i] = '1'
    end
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
return {status, n, detail, seq0 + 1, ms, hits}
