-- publish appends a batch of messages to the log, in order, with the
-- effect of publishing each on its own: every message gets the next
-- offset, goes to its topics' indexes, and makes them retained or
-- finished. It is one script call however many messages, and does the
-- bookkeeping of a topic (its sizes, eviction mark, place in the topics
-- set, retained and final state, count limit) once per topic per call;
-- what each message costs is its log entry, one index entry per topic and
-- its ID's key. A single Publish is a batch of one.
-- KEYS: 1 meta, 2 epochs, 3 log, 4 clock, 5 wm, 6 topics, 7 ret, 8 fin,
--       9 sizes, 10 fair, 11 refs, 12 dead
-- ARGV: 1 expected epoch, 2 candidate epoch, 3 max events per topic,
--       4 max bytes, 5 keep a clock (1/0), 6 prefix of the topics' index
--       keys, 7 prefix of the ID keys, 8 how many seconds an ID is
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
-- epoch, n 0) when the caller's epoch is stale. A message whose ID was published
-- within the window (before, or earlier in the batch) is not stored
-- again: its position is the first one's.
local meta, epochs, log, clock, wm, topics, ret, fin = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local sizes, fair, refs, dead = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local m0 = redis.call('HMGET', meta, 'epoch', 'seq', 'floor', 'forgotten', 'bytes', 'legacy', 'dead')
if not m0[1] then
  current_epoch(meta, epochs, ARGV[2])
  m0 = redis.call('HMGET', meta, 'epoch', 'seq', 'floor', 'forgotten', 'bytes', 'legacy', 'dead')
end
if m0[1] ~= ARGV[1] then
  return {'epoch', 0, m0[1] or '', {}}
end
if m0[7] == '1' then
  reap(log, dead)
end
local max_events, max_bytes, prefix, idprefix = num(ARGV[3]), num(ARGV[4]), ARGV[6], ARGV[7]
local plan = cmsgpack.unpack(ARGV[9])
local cond = ARGV[10] ~= nil and ARGV[10] ~= '' and tonumber(ARGV[10]) or nil

-- The batch's topics, and the IDs it names, each read in one call.
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
local closed = multi('HMGET', fin, names)
for i = 1, #names do
  closed[i] = closed[i] ~= false
end
local firsts = multi('MGET', nil, idkeys)

-- Decide: which messages are stored, at which offset; where the batch stops.
local seq0, floor, forgotten = num(m0[2]), num(m0[3]), num(m0[4])
local seq = seq0
local status, detail, n = 'ok', '', 0
local offsets, mss, fresh = {}, {}, {} -- per message of the plan (mss false: this batch's time)
local seen, idn = {}, 0
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
  else
    for j = 5, #m do
      if closed[index[m[j]]] then
        status, detail = 'finished', m[j]
        break
      end
    end
    if status == 'ok' and cond and i == 1 then
      -- Before anything is written: the tail is the topic's newest index
      -- entry at or above the floor. A message a previous batch evicted
      -- (in the dead list, still in the log) has left every index, and no
      -- bound evicts a topic's newest, so the dead list never holds it.
      local tail = topic_tail(prefix .. m[5], floor)
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
  if m0[7] == '1' then
    redis.call('HSET', meta, 'dead', 0)
  end
  return {status, n, detail, positions}
end

-- Write.
local ms
if ARGV[5] == '1' then
  -- The clock entry's id gives the messages' time: Redis keeps stream ids
  -- increasing even if its clock goes back.
  local cid = redis.call('XADD', clock, '*', 's', seq)
  ms = tonumber(string.match(cid, '^(%d+)'))
else
  local t = redis.call('TIME')
  ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local marks = multi('HMGET', wm, names)
local held = multi('HMGET', sizes, names)
local state = {} -- per topic index: {key, mark, b, l, last, ret, fin}

-- topic returns the state of the batch's i-th topic, loading it the first
-- time: its eviction mark and sizes, its index trimmed of the entries
-- whose message left the log by age (lazily, here).
local function topic(i)
  local ts = state[i]
  if ts then
    return ts
  end
  local name = names[i]
  local key = prefix .. name
  local mark0 = num(marks[i])
  local mark = mark0
  if forgotten > mark and not redis.call('ZSCORE', topics, name) then
    -- A new (or forgotten) topic: what was forgotten may have been its.
    mark = forgotten
  end
  local b, l = 0, 0
  if held[i] then
    local hb, hl = string.match(held[i], '^(%d+) (%d+)$')
    b, l = num(hb), num(hl)
  end
  if floor > 1 then
    local below = redis.call('XRANGE', key, '-', '(' .. sid(floor))
    if #below > 0 then
      mark = math.max(mark, seq_of(below[#below][1]))
      for _, e in ipairs(below) do
        b = b - num(field(e[2], 'n'))
      end
      redis.call('XTRIM', key, 'MINID', sid(floor))
    end
  end
  ts = {key = key, mark0 = mark0, mark = mark, b = b, l = l}
  state[i] = ts
  return ts
end

local added, refcounts = 0, {}
for i = 1, n do
  local m = plan[i]
  local s = offsets[i]
  positions[#positions + 1] = s
  positions[#positions + 1] = mss[i] or ms
  if fresh[i] then
    local size, blob = m[2], m[4]
    redis.call('XADD', log, sid(s), 't', ms, 'n', size, 'm', blob)
    added = added + size
    if #m > 5 then
      refcounts[#refcounts + 1] = s
      refcounts[#refcounts + 1] = #m - 4
    end
    local r = m[1] % 2 == 1
    for j = 5, #m do
      local ts = topic(index[m[j]])
      redis.call('XADD', ts.key, sid(s), 'n', size)
      ts.b, ts.l, ts.last = ts.b + size, size, s
      if r then
        ts.ret = string.format('%d %d ', s, ms) .. blob
      end
      if m[1] >= 2 then
        ts.fin = s
      end
    end
    if m[3] ~= '' then
      redis.call('SET', idprefix .. m[3], string.format('%d %d', s, ms), 'EX', ARGV[8])
    end
  end
end
if #refcounts > 0 then
  redis.call('HSET', refs, unpack(refcounts))
end

-- The count limit, once per topic: the oldest entries over it leave the
-- topic's index in one read and one trim, before its sizes and eviction
-- mark are written (below, with the other topics'); the messages they
-- held are released together after.
local evicted = {} -- {offset, size}, in the order evicted
if max_events > 0 then
  for i = 1, #names do
    local ts = state[i]
    if ts then
      local over = redis.call('XLEN', ts.key) - max_events
      if over > 0 then
        -- max_events >= 1: the topic's newest (ts.l) stays.
        local es = redis.call('XRANGE', ts.key, '-', '+', 'COUNT', over)
        for _, e in ipairs(es) do
          local s, size = seq_of(e[1]), num(field(e[2], 'n'))
          ts.b = ts.b - size
          evicted[#evicted + 1] = {s, size}
        end
        if #es > 0 then
          local s = seq_of(es[#es][1])
          -- Exactly the entries read: the index's oldest, up to s.
          redis.call('XTRIM', ts.key, 'MINID', sid(s + 1))
          ts.mark = math.max(ts.mark, s)
        end
      end
    end
  end
end

-- Each topic's bookkeeping, once.
local wmset, sizeset, fairset, fairdel, topicset, retset, finset = {}, {}, {}, {}, {}, {}, {}
for i, name in ipairs(names) do
  local ts = state[i]
  if ts then
    if ts.mark > 0 and ts.mark ~= ts.mark0 then
      wmset[#wmset + 1] = name
      wmset[#wmset + 1] = ts.mark
    end
    sizeset[#sizeset + 1] = name
    sizeset[#sizeset + 1] = string.format('%d %d', ts.b, ts.l)
    if ts.b > ts.l then
      fairset[#fairset + 1] = ts.b - ts.l
      fairset[#fairset + 1] = name
    else
      fairdel[#fairdel + 1] = name
    end
    topicset[#topicset + 1] = ts.last
    topicset[#topicset + 1] = name
    if ts.ret then
      retset[#retset + 1] = name
      retset[#retset + 1] = ts.ret
    end
    if ts.fin then
      finset[#finset + 1] = name
      finset[#finset + 1] = ts.fin
    end
  end
end
multi('HSET', wm, wmset)
multi('HSET', sizes, sizeset)
multi('ZADD', fair, fairset)
multi('ZREM', fair, fairdel)
multi('ZADD', topics, topicset)
multi('HSET', ret, retset)
multi('HSET', fin, finset)

-- The bounds. A message of this batch that they evict stays in the log
-- (not in its topics' indexes) until the next call, so that listeners
-- reading the log get it (see release).
defer = {from = seq0 + 1, key = dead}
local bytes = num(m0[5]) + added
if #evicted > 0 then
  bytes = bytes - release_all(log, refs, dead, evicted, num(m0[6]))
end
if max_bytes > 0 then
  bytes, floor = enforce_bytes(log, refs, sizes, fair, wm, prefix, max_bytes, seq, bytes, floor, num(m0[6]))
end
redis.call('HSET', meta, 'seq', seq, 'bytes', math.max(bytes, 0), 'floor', floor, 'dead', defer.used and 1 or 0)
return {status, n, detail, positions}
