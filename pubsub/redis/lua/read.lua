-- read returns a consistent snapshot for a subscriber.
-- KEYS: 1 meta, 2 epochs, 3 wm, 4 topics, 5 ret, 6 fin,
--       7.. the topics' lists (in the order of the names in ARGV)
-- ARGV: 1 expected epoch, 2 candidate epoch, 3 'new', 'resume' or
--       'reset' (a resume from another epoch), 4 offset to resume after,
--       5 max events per topic (0: no limit), 6.. topic names
-- Returns {'epoch', current} when the caller's epoch is stale, else
-- {'ok', head, truncated (0/1), finals {name, offset, ...}, items,
-- retained} where items ("<offset> <ms> <encoded message>" each) are the
-- retained messages ('new') or the history after the offset (in offset
-- order), and retained, after a reset (another epoch, or truncated
-- history), the retained messages.
local meta, epochs, wm, topics, ret, fin = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local cur = current_epoch(meta, epochs, ARGV[2])
if cur ~= ARGV[1] then
  return {'epoch', cur}
end
local head = num(redis.call('HGET', meta, 'seq'))
local names = {}
for i = 6, #ARGV do
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
      out[#out + 1] = r
    end
  end
  return out
end

if ARGV[3] == 'new' then
  return {'ok', head, 0, finals, retained_of(), {}}
end

local after, max_events = num(ARGV[4]), num(ARGV[5])
local forgotten = num(redis.call('HGET', meta, 'forgotten'))
local truncated = 0
local lists = {}
for i, name in ipairs(names) do
  local key = KEYS[6 + i]
  local mark
  if redis.call('ZSCORE', topics, name) then
    mark = num(redis.call('HGET', wm, name))
  else
    mark = forgotten
  end
  local len = redis.call('LLEN', key)
  local first, over = window(key, len, max_events)
  if after < math.max(mark, over) then
    truncated = 1
  end
  local from = search(key, first, len, after)
  if from < len then
    lists[#lists + 1] = redis.call('LRANGE', key, from, -1)
  end
end

local items = {}
if #lists == 1 then
  items = lists[1]
elseif #lists > 1 then
  -- Merge by offset; a message of several topics is in each one's list.
  local seen, all = {}, {}
  for _, l in ipairs(lists) do
    for _, it in ipairs(l) do
      local s = offset_of(it)
      if not seen[s] then
        seen[s] = true
        all[#all + 1] = {s, it}
      end
    end
  end
  table.sort(all, function(a, b) return a[1] < b[1] end)
  for k, e in ipairs(all) do
    items[k] = e[2]
  end
end
local retained = {}
if truncated == 1 or ARGV[3] == 'reset' then
  retained = retained_of()
end
return {'ok', head, truncated, finals, items, retained}
