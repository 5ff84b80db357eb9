-- read returns a consistent snapshot for a subscriber.
-- KEYS: 1 meta, 2 epochs, 3 log, 4 wm, 5 topics, 6 ret, 7 fin,
--       8.. the topics' index streams (in the order of the names in ARGV)
-- ARGV: 1 expected epoch, 2 candidate epoch, 3 'new', 'resume' or
--       'reset' (a resume from another epoch), 4 offset to resume after,
--       5.. topic names
-- Returns {'epoch', current} when the caller's epoch is stale, else
-- {'ok', head, truncated (0/1), finals {name, offset, ...},
--  items {offset, ms, encoded message, ...}, retained {same}} where items
-- are the retained messages ('new') or the history after the offset, and
-- retained, after a reset (another epoch, or truncated history), the
-- retained messages.
local meta, epochs, log, wm, topics, ret, fin = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local cur = current_epoch(meta, epochs, ARGV[2])
if cur ~= ARGV[1] then
  return {'epoch', cur}
end
local head = num(redis.call('HGET', meta, 'seq'))
local names = {}
for i = 5, #ARGV do
  names[#names + 1] = ARGV[i]
end
local finals = {}
for _, name in ipairs(names) do
  local f = redis.call('HGET', fin, name)
  if f then
    finals[#finals + 1] = name
    finals[#finals + 1] = f
  end
end

-- retained_of returns the retained messages of the topics.
local function retained_of()
  local out = {}
  for _, name in ipairs(names) do
    local r = redis.call('HGET', ret, name)
    if r then
      local s, ms, m = string.match(r, '^(%d+) (%d+) (.*)$')
      out[#out + 1] = s
      out[#out + 1] = ms
      out[#out + 1] = m
    end
  end
  return out
end

local items = {}
if ARGV[3] == 'new' then
  return {'ok', head, 0, finals, retained_of(), {}}
end

local after = num(ARGV[4])
local floor = num(redis.call('HGET', meta, 'floor'))
local forgotten = num(redis.call('HGET', meta, 'forgotten'))
local truncated = 0
local wanted, seqs = {}, {}
for i, name in ipairs(names) do
  if redis.call('ZSCORE', topics, name) then
    if after < num(redis.call('HGET', wm, name)) then
      truncated = 1
    end
  elseif after < forgotten then
    truncated = 1
  end
  local ids = redis.call('XRANGE', KEYS[7 + i], '(' .. sid(after), '+')
  for _, e in ipairs(ids) do
    local s = seq_of(e[1])
    if s < floor then
      -- Its message left the log; the index is trimmed lazily.
      truncated = 1
    elseif not wanted[s] then
      wanted[s] = true
      seqs[#seqs + 1] = s
    end
  end
end
table.sort(seqs)
for _, s in ipairs(seqs) do
  local e = redis.call('XRANGE', log, sid(s), sid(s))[1]
  if e then
    items[#items + 1] = s
    items[#items + 1] = field(e[2], 't')
    items[#items + 1] = field(e[2], 'm')
  else
    truncated = 1
  end
end
local retained = {}
if truncated == 1 or ARGV[3] == 'reset' then
  retained = retained_of()
end
return {'ok', head, truncated, finals, items, retained}
