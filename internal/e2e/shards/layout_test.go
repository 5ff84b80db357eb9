package shards_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/pubsub"
	redisbroker "github.com/heraldpush/herald/pubsub/redis"
)

// The candidate layouts of TestMeasureRedisLayouts: Lua scripts that do
// only the writes a publish of a batch would do in each layout (no
// dedupe, retained or final state, age or byte bound), on the keys
// KEYS[1] log, 2 meta, 3 topics, 4 wm, 5 fin, 6 refs, 7 sizes, 8 fair,
// with ARGV 1 the prefix of the topics' index keys, 2 the count limit per
// topic, 3 the batch as publish.lua's plan (MessagePack). They are
// throwaway prototypes (issue 22 item 5, docs/scaling.md): none keeps all
// of the broker's guarantees on its own (the reads, the sweep and the byte
// bound would have to change with them), they only tell what the writes
// of each would cost.

// layoutPrologue and layoutEpilogue are what every candidate shares with
// publish.lua: the meta hash read and written once, the plan unpacked,
// the batch's topics' final state read, the time, and the evicted
// messages released (refs read, one XDEL of the log).
const layoutPrologue = `
local log, meta, topics, wm, fin, refs, sizes, fair = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local prefix, max_events = ARGV[1], tonumber(ARGV[2])
local m0 = redis.call('HMGET', meta, 'epoch', 'seq', 'floor', 'forgotten', 'bytes', 'legacy', 'dead')
local seq = tonumber(m0[2]) or 0
local bytes = tonumber(m0[5]) or 0
local plan = cmsgpack.unpack(ARGV[3])
local names, index = {}, {}
for _, m in ipairs(plan) do
  for j = 5, #m do
    local n = m[j]
    if not index[n] then
      names[#names + 1] = n
      index[n] = #names
    end
  end
end
local closed = redis.call('HMGET', fin, unpack(names))
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local evicted = {}
local function seq_of(id)
  return tonumber(string.match(id, '^(%d+)'))
end
`

const layoutEpilogue = `
if #evicted > 0 then
  local ids = {}
  for i = 1, #evicted, 1000 do
    local last = math.min(i + 999, #evicted)
    redis.call('HMGET', refs, unpack(evicted, i, last))
    for k = i, last do
      ids[k - i + 1] = string.format('%d-0', evicted[k])
    end
    redis.call('XDEL', log, unpack(ids, 1, last - i + 1))
  end
end
redis.call('HSET', meta, 'seq', seq, 'bytes', bytes, 'floor', 1, 'dead', 0)
return seq
`

// layoutCandidates are the bodies of the candidates, by name.
var layoutCandidates = []struct {
	name, body string
	flat       bool // ARGV 3.. are the messages' size, encoded message and topic (no MessagePack)
}{
	{name: "log entry only, flat arguments", flat: true, body: `
local log, meta, fin = KEYS[1], KEYS[2], KEYS[5]
local m0 = redis.call('HMGET', meta, 'epoch', 'seq', 'floor', 'forgotten', 'bytes', 'legacy', 'dead')
local seq = tonumber(m0[2]) or 0
local bytes = tonumber(m0[5]) or 0
local names, index = {}, {}
for i = 5, #ARGV, 3 do
  local n = ARGV[i]
  if not index[n] then
    names[#names + 1] = n
    index[n] = #names
  end
end
local closed = redis.call('HMGET', fin, unpack(names))
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 3, #ARGV, 3 do
  seq = seq + 1
  redis.call('XADD', log, string.format('%d-0', seq), 't', ms, 'n', ARGV[i], 'm', ARGV[i + 1])
  bytes = bytes + tonumber(ARGV[i])
end
redis.call('HSET', meta, 'seq', seq, 'bytes', bytes, 'floor', 1, 'dead', 0)
return seq
`},
	{name: "no write (the prologue only)", body: `
for _, m in ipairs(plan) do
  seq = seq + 1
  bytes = bytes + m[2]
end
`},
	{name: "no write, ids formatted", body: `
for _, m in ipairs(plan) do
  seq = seq + 1
  local id = string.format('%d-0', seq)
  bytes = bytes + m[2]
end
`},
	{name: "log entry, one field", body: `
for _, m in ipairs(plan) do
  seq = seq + 1
  redis.call('XADD', log, string.format('%d-0', seq), 'm', m[4])
  bytes = bytes + m[2]
end
`},
	{name: "log entry only (the floor)", body: `
for _, m in ipairs(plan) do
  seq = seq + 1
  redis.call('XADD', log, string.format('%d-0', seq), 't', ms, 'n', m[2], 'm', m[4])
  bytes = bytes + m[2]
end
`},
	{name: "1. v1 writes (index streams, zsets)", body: `
local marks = redis.call('HMGET', wm, unpack(names))
local held = redis.call('HMGET', sizes, unpack(names))
local st = {}
for i = 1, #names do
  local b, l = 0, 0
  if held[i] then
    local hb, hl = string.match(held[i], '^(%d+) (%d+)$')
    b, l = tonumber(hb), tonumber(hl)
  end
  st[i] = {b = b, l = l, mark = tonumber(marks[i]) or 0, mark0 = tonumber(marks[i]) or 0}
end
for _, m in ipairs(plan) do
  seq = seq + 1
  local id = string.format('%d-0', seq)
  redis.call('XADD', log, id, 't', ms, 'n', m[2], 'm', m[4])
  bytes = bytes + m[2]
  for j = 5, #m do
    local ts = st[index[m[j]]]
    redis.call('XADD', prefix .. m[j], id, 'n', m[2])
    ts.b, ts.l, ts.last = ts.b + m[2], m[2], seq
  end
end
local wmset, sizeset, fairset, topicset = {}, {}, {}, {}
for i, name in ipairs(names) do
  local ts, key = st[i], prefix .. name
  local over = redis.call('XLEN', key) - max_events
  if over > 0 then
    local es = redis.call('XRANGE', key, '-', '+', 'COUNT', over)
    for _, e in ipairs(es) do
      evicted[#evicted + 1] = seq_of(e[1])
      ts.b = ts.b - tonumber(e[2][2])
    end
    ts.mark = seq_of(es[#es][1])
    redis.call('XTRIM', key, 'MINID', string.format('%d-0', ts.mark + 1))
    wmset[#wmset + 1] = name
    wmset[#wmset + 1] = ts.mark
  end
  sizeset[#sizeset + 1] = name
  sizeset[#sizeset + 1] = string.format('%d %d', ts.b, ts.l)
  fairset[#fairset + 1] = ts.b - ts.l
  fairset[#fairset + 1] = name
  topicset[#topicset + 1] = ts.last
  topicset[#topicset + 1] = name
end
if #wmset > 0 then redis.call('HSET', wm, unpack(wmset)) end
redis.call('HSET', sizes, unpack(sizeset))
redis.call('ZADD', fair, unpack(fairset))
redis.call('ZADD', topics, unpack(topicset))
`},
	{name: "2. index streams, lazy topics, no sizes/fair", body: `
local st = {}
for _, m in ipairs(plan) do
  seq = seq + 1
  local id = string.format('%d-0', seq)
  redis.call('XADD', log, id, 't', ms, 'n', m[2], 'm', m[4])
  bytes = bytes + m[2]
  for j = 5, #m do
    local i = index[m[j]]
    redis.call('XADD', prefix .. m[j], id, 'n', m[2])
    st[i] = (st[i] or 0) + 1
  end
end
local wmset, topicset = {}, {}
for i, name in ipairs(names) do
  local key = prefix .. name
  local len = redis.call('XLEN', key)
  if len == st[i] then
    topicset[#topicset + 1] = seq
    topicset[#topicset + 1] = name
  end
  local over = len - max_events
  if over > 0 then
    local es = redis.call('XRANGE', key, '-', '+', 'COUNT', over)
    for _, e in ipairs(es) do
      evicted[#evicted + 1] = seq_of(e[1])
    end
    local mark = seq_of(es[#es][1])
    redis.call('XTRIM', key, 'MINID', string.format('%d-0', mark + 1))
    wmset[#wmset + 1] = name
    wmset[#wmset + 1] = mark
  end
end
if #wmset > 0 then redis.call('HSET', wm, unpack(wmset)) end
if #topicset > 0 then redis.call('ZADD', topics, unpack(topicset)) end
`},
	{name: "3. index lists, lazy topics, no sizes/fair", body: indexLists("", layoutEntry, "", "over > 0")},
	{name: "4. index lists, mark in the list, lazy topics", body: `
local st = {}
for _, m in ipairs(plan) do
  seq = seq + 1
  redis.call('XADD', log, string.format('%d-0', seq), 't', ms, 'n', m[2], 'm', m[4])
  bytes = bytes + m[2]
  local entry = string.format('%d %d', seq, m[2])
  for j = 5, #m do
    local i = index[m[j]]
    local ts = st[i]
    if not ts then
      ts = {added = 0}
      st[i] = ts
    end
    local len = redis.call('RPUSH', prefix .. m[j], entry)
    if len == 1 then
      -- A new topic: its list starts with its eviction mark.
      redis.call('LPUSH', prefix .. m[j], '0')
      len = 2
      ts.new = true
    end
    ts.added, ts.len = ts.added + 1, len
  end
end
local topicset = {}
for i, name in ipairs(names) do
  local ts = st[i]
  if ts.new then
    topicset[#topicset + 1] = seq
    topicset[#topicset + 1] = name
  end
  local over = ts.len - 1 - max_events
  if over > 0 then
    local es = redis.call('LPOP', prefix .. name, over + 1)
    local mark
    for k = 2, #es do
      mark = tonumber(string.match(es[k], '^(%d+)'))
      evicted[#evicted + 1] = mark
    end
    redis.call('LPUSH', prefix .. name, mark)
  end
end
if #topicset > 0 then redis.call('ZADD', topics, unpack(topicset)) end
`},
	{name: "5. index lists, eviction by tenths, lazy topics", body: indexLists(`
-- A topic's list may hold up to a tenth more than the limit (reads would
-- skip the oldest extra entries as evicted); it is trimmed back to the
-- limit when over that, so that the count limit costs once per topic per
-- limit/10 publishes.`, layoutEntry, layoutSlack, "over >= slack")},
	{name: "6. the cheapest: one-field log entry, index lists, eviction by tenths", body: indexLists("", layoutEntryOneField, layoutSlack, "over >= slack")},
	{name: "7. as 6, the log trimmed at its front (XTRIM MINID ~), no XDEL", body: `
-- Not exact for the count limit: a message evicted from its topics stays
-- in the log until every older one has left (a cold topic holds the log's
-- front). The fronts sorted set holds each topic's oldest offset.
local fronts = KEYS[8] .. ':fronts'
local st = {}
for _, m in ipairs(plan) do
  seq = seq + 1
  redis.call('XADD', log, string.format('%d-0', seq), 'm', string.format('%d %d ', ms, m[2]) .. m[4])
  bytes = bytes + m[2]
  local entry = string.format('%d %d', seq, m[2])
  for j = 5, #m do
    local i = index[m[j]]
    local len = redis.call('RPUSH', prefix .. m[j], entry)
    local ts = st[i]
    if not ts then
      ts = {added = 0, first = seq}
      st[i] = ts
    end
    ts.added, ts.len = ts.added + 1, len
  end
end
local wmset, topicset, frontset = {}, {}, {}
local slack = math.max(1, math.floor(max_events / 10))
for i, name in ipairs(names) do
  local ts = st[i]
  if ts.len == ts.added then
    topicset[#topicset + 1] = seq
    topicset[#topicset + 1] = name
    frontset[#frontset + 1] = ts.first
    frontset[#frontset + 1] = name
  end
  local over = ts.len - max_events
  if over >= slack then
    local es = redis.call('LPOP', prefix .. name, over)
    wmset[#wmset + 1] = name
    wmset[#wmset + 1] = tonumber(string.match(es[#es], '^(%d+)'))
    frontset[#frontset + 1] = tonumber(string.match(redis.call('LINDEX', prefix .. name, 0), '^(%d+)'))
    frontset[#frontset + 1] = name
  end
end
if #wmset > 0 then redis.call('HSET', wm, unpack(wmset)) end
if #topicset > 0 then redis.call('ZADD', topics, unpack(topicset)) end
if #frontset > 0 then
  redis.call('ZADD', fronts, unpack(frontset))
  local low = redis.call('ZRANGE', fronts, 0, 0, 'WITHSCORES')
  redis.call('XTRIM', log, 'MINID', '~', string.format('%d-0', tonumber(low[2])))
end
`},
	{name: "8. no log: topic lists hold the messages, LPOP at the limit, one PUBLISH a batch", body: dataLists("", "", "over > 0", "")},
	{name: "10. as 8, eviction by tenths, the batch XADDed to a live stream", body: dataLists("", layoutSlack, "over >= slack", "live")},
	{name: "9. as 8, with per-topic byte counts (HMGET+HSET sizes a batch)", body: dataLists(`
local held = redis.call('HMGET', sizes, unpack(names))
local sizeset = {}
for i, name in ipairs(names) do
  sizeset[#sizeset + 1] = name
  sizeset[#sizeset + 1] = (tonumber(held[i]) or 0) + st[i].bytes - st[i].freed
end
redis.call('HSET', sizes, unpack(sizeset))`, "", "over > 0", "")},
}

// The log entries of the candidates (the fields after the id): three
// fields as in v1, or one ("<ms> <size> <message>").
const (
	layoutEntry         = `'t', ms, 'n', m[2], 'm', m[4]`
	layoutEntryOneField = `'m', string.format('%d %d ', ms, m[2]) .. m[4]`
)

// dataLists is the body of the candidates without a log: each topic's
// list holds its messages ("<offset> <ms> <message>"), pushed with one
// RPUSH a topic a batch, the oldest over the count limit popped with one
// LPOP (the last popped gives the eviction mark), the batch announced to
// listeners with one PUBLISH of the plan as received; tail is Lua run
// before the PUBLISH (st[i].bytes, st[i].freed: bytes added to and popped
// from topic i), pre Lua run before the topics' loop, evict the condition
// on over for popping, and live not empty to announce the batch with an
// XADD to a short stream instead of a PUBLISH.
func dataLists(tail, pre, evict, live string) string {
	announce := `redis.call('PUBLISH', log, string.format('%d %d ', seq0, ms) .. ARGV[3])`
	if live != "" {
		announce = `redis.call('XADD', log, 'MAXLEN', '~', 1000, '*', 'b', string.format('%d %d ', seq0, ms) .. ARGV[3])`
	}
	return `
local st = {}
local seq0 = seq
for _, m in ipairs(plan) do
  seq = seq + 1
  local entry = string.format('%d %d ', seq, ms) .. m[4]
  bytes = bytes + m[2]
  for j = 5, #m do
    local i = index[m[j]]
    local ts = st[i]
    if not ts then
      ts = {items = {}, bytes = 0, freed = 0}
      st[i] = ts
    end
    ts.items[#ts.items + 1] = entry
    ts.bytes = ts.bytes + m[2]
  end
end
local wmset, topicset = {}, {}` + pre + `
for i, name in ipairs(names) do
  local ts = st[i]
  local len = redis.call('RPUSH', prefix .. name, unpack(ts.items))
  if len == #ts.items then
    topicset[#topicset + 1] = seq
    topicset[#topicset + 1] = name
  end
  local over = len - max_events
  if ` + evict + ` then
    local es = redis.call('LPOP', prefix .. name, over)
    for _, e in ipairs(es) do
      ts.freed = ts.freed + #e
    end
    wmset[#wmset + 1] = name
    wmset[#wmset + 1] = tonumber(string.match(es[#es], '^(%d+)'))
  end
end
if #wmset > 0 then redis.call('HSET', wm, unpack(wmset)) end
if #topicset > 0 then redis.call('ZADD', topics, unpack(topicset)) end` + tail + `
` + announce + `
`
}

// layoutSlack is how far over the count limit a topic's list may go in
// the candidates that evict by tenths.
const layoutSlack = `
local slack = math.max(1, math.floor(max_events / 10))`

// indexLists is the body of the candidates with index lists ("<seq>
// <size>" entries, one list a topic) and lazy topics (a topic's score set
// only when its list is new): head (comment lines) first, entry the log
// entry's fields, slack a line of Lua before the eviction loop and evict
// the condition on over (how many entries a topic's list holds beyond
// the count limit) for trimming it back to the limit.
func indexLists(head, entry, slack, evict string) string {
	return head + `
local st = {}
for _, m in ipairs(plan) do
  seq = seq + 1
  redis.call('XADD', log, string.format('%d-0', seq), ` + entry + `)
  bytes = bytes + m[2]
  local entry = string.format('%d %d', seq, m[2])
  for j = 5, #m do
    local i = index[m[j]]
    local len = redis.call('RPUSH', prefix .. m[j], entry)
    local ts = st[i]
    if not ts then
      ts = {added = 0}
      st[i] = ts
    end
    ts.added, ts.len = ts.added + 1, len
  end
end
local wmset, topicset = {}, {}` + slack + `
for i, name in ipairs(names) do
  local ts = st[i]
  if ts.len == ts.added then
    topicset[#topicset + 1] = seq
    topicset[#topicset + 1] = name
  end
  local over = ts.len - max_events
  if ` + evict + ` then
    local es = redis.call('LPOP', prefix .. name, over)
    local mark
    for _, e in ipairs(es) do
      mark = tonumber(string.match(e, '^(%d+)'))
      evicted[#evicted + 1] = mark
    end
    wmset[#wmset + 1] = name
    wmset[#wmset + 1] = mark
  end
end
if #wmset > 0 then redis.call('HSET', wm, unpack(wmset)) end
if #topicset > 0 then redis.call('ZADD', topics, unpack(topicset)) end
`
}

// TestMeasureRedisLayouts is phase 1 of issue 22 item 5 on Redis: it
// measures what the writes of candidate layouts cost per event (the
// server's main-thread CPU, INFO cpu) against pipelined XADD, on a
// redis-server of its own, rounds interleaved, 100-byte payloads, batches
// of 100 events to 100 topics, below the count limit (fresh keys each
// round) and at it (keys filled to 1,000 per topic first, so that every
// batch evicts one message per topic). Herald's PublishBatch (the layout
// in use, history limits 1,000 events, 1 h, 256 MiB) runs in the same
// rounds (each round also logs the kernel's share of the baseline); then
// single publishes (Herald's Publish, and two candidates with batches of
// one) against XADD pipelined and XADD one a round trip.
// It only reports: run it with HERALD_MEASURE=1 (HERALD_MEASURE_ROUNDS
// rounds, default 5; HERALD_MEASURE_STATS=1 also logs INFO commandstats
// per candidate in the last round of each batch phase).
func TestMeasureRedisLayouts(t *testing.T) {
	if os.Getenv("HERALD_MEASURE") == "" {
		t.Skip("a measurement: set HERALD_MEASURE=1 to run it")
	}
	const events, limit = 20000, 1000
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("HERALD_MEASURE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	ctx := context.Background()
	s := startRedis(t)
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", s.port)
	rdb := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	defer rdb.Close()
	data := strings.Repeat("x", 100)
	scripts := make([]*goredis.Script, len(layoutCandidates))
	for i, c := range layoutCandidates {
		if c.flat {
			scripts[i] = goredis.NewScript(c.body)
		} else {
			scripts[i] = goredis.NewScript(layoutPrologue + c.body + layoutEpilogue)
		}
	}
	// plan encodes n messages (topics t0..t99 in turn) as publish.lua's
	// plan.
	plan := func(from, n int) string {
		p := []byte{0xdc, byte(n >> 8), byte(n)}
		for j := from; j < from+n; j++ {
			msg := data + strconv.Itoa(j)
			topic := fmt.Sprint("t", j%100)
			p = append(p, 0x95, 0, 0xcd, byte(len(msg)>>8), byte(len(msg)), 0xa0, 0xd9, byte(len(msg)))
			p = append(p, msg...)
			p = append(p, 0xa0|byte(len(topic)))
			p = append(p, topic...)
		}
		return string(p)
	}
	keys := func(c int, tag string) []string {
		p := fmt.Sprintf("{c%d%s}:", c, tag)
		return []string{p + "log", p + "meta", p + "topics", p + "wm", p + "fin", p + "refs", p + "sizes", p + "fair", p + "t:"}
	}
	// runScript publishes events messages with candidate c, per in each
	// script call.
	runScript := func(c int, tag string, events, per int) {
		k := keys(c, tag)
		for i := 0; i < events; i += per {
			args := []any{k[8], limit, plan(i, per)}
			if layoutCandidates[c].flat {
				args = args[:2]
				for j := i; j < i+per; j++ {
					msg := data + strconv.Itoa(j)
					args = append(args, len(msg), msg, fmt.Sprint("t", j%100))
				}
			}
			if err := scripts[c].Run(ctx, rdb, k[:8], args...).Err(); err != nil {
				t.Fatalf("%s: %v", layoutCandidates[c].name, err)
			}
		}
	}
	plain := func() {
		for i := 0; i < events; i += 100 {
			p := rdb.Pipeline()
			for j := range 100 {
				p.XAdd(ctx, &goredis.XAddArgs{Stream: "plain", Values: []any{"m", data + strconv.Itoa(i+j)}})
			}
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	defaults := pubsub.Retention{MaxEvents: limit, MaxAge: time.Hour, MaxBytes: 256 << 20}
	countOnly := pubsub.Retention{MaxEvents: limit}
	openWith := func(prefix string, r pubsub.Retention) *redisbroker.Broker {
		b, err := redisbroker.Open(ctx, url, &redisbroker.Options{Prefix: prefix, Retention: r})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	open := func(prefix string) *redisbroker.Broker { return openWith(prefix, defaults) }
	herald := func(b *redisbroker.Broker) func() {
		return func() {
			for i := 0; i < events; i += 100 {
				batch := make([]*pubsub.Message, 100)
				for j := range batch {
					batch[j] = &pubsub.Message{Topics: []string{fmt.Sprint("t", j)}, Data: data}
				}
				if n, err := b.PublishBatch(ctx, batch); err != nil || n != len(batch) {
					t.Fatal(n, err)
				}
			}
		}
	}
	cpu := func(events int, run func()) float64 {
		c0 := mainThreadCPU(t, rdb)
		run()
		return float64((mainThreadCPU(t, rdb) - c0).Nanoseconds()) / 1000 / float64(events)
	}
	type row struct {
		name   string
		per    []float64
		ratios []float64
	}
	report := func(title string, rows []*row) {
		t.Logf("%s (%d rounds; µs of Redis main-thread CPU per event, median [min–max]; ratio to the same round's XADD, median [min–max]):", title, rounds)
		for _, r := range rows {
			sort.Float64s(r.per)
			line := fmt.Sprintf("  %-68s %6.2f [%5.2f–%5.2f] µs", r.name, r.per[len(r.per)/2], r.per[0], r.per[len(r.per)-1])
			if r.ratios != nil {
				sort.Float64s(r.ratios)
				line += fmt.Sprintf("  %4.2f× [%4.2f–%4.2f]", r.ratios[len(r.ratios)/2], r.ratios[0], r.ratios[len(r.ratios)-1])
			}
			t.Log(line)
		}
	}
	phase := func(title string, atLimit bool) {
		rows := []*row{{name: "XADD pipelined (the baseline)"}, {name: "Herald PublishBatch (layout 2)"}, {name: "Herald PublishBatch (layout 2), a count limit only"}}
		for _, c := range layoutCandidates {
			rows = append(rows, &row{name: c.name})
		}
		const herald0 = 3 // rows before the candidates'
		var full, fullCount *redisbroker.Broker
		if atLimit {
			full = open("herald-full")
			fullCount = openWith("herald-full-count", countOnly)
			for range limit * 100 / events {
				herald(full)()
				herald(fullCount)()
				for c := range layoutCandidates {
					runScript(c, "full", events, 100)
				}
			}
		}
		for r := range rounds {
			sys0 := mainThreadSys(t, rdb)
			base := cpu(events, plain)
			rows[0].per = append(rows[0].per, base)
			t.Logf("%s, round %d: XADD pipelined %.2f µs per event, of which system %.2f", title, r+1, base, float64((mainThreadSys(t, rdb)-sys0).Nanoseconds())/1000/events)
			b, bc, tag := full, fullCount, "full"
			if !atLimit {
				b, tag = open(fmt.Sprintf("herald-r%d", r)), fmt.Sprintf("r%d", r)
				bc = openWith(fmt.Sprintf("herald-count-r%d", r), countOnly)
			}
			got := cpu(events, herald(b))
			rows[1].per, rows[1].ratios = append(rows[1].per, got), append(rows[1].ratios, got/base)
			got = cpu(events, herald(bc))
			rows[2].per, rows[2].ratios = append(rows[2].per, got), append(rows[2].ratios, got/base)
			for c := range layoutCandidates {
				st0 := commandStats(t, rdb)
				got := cpu(events, func() { runScript(c, tag, events, 100) })
				if r == rounds-1 && os.Getenv("HERALD_MEASURE_STATS") != "" {
					t.Logf("%s, %s, last round:", title, layoutCandidates[c].name)
					logCommandStats(t, st0, commandStats(t, rdb), events)
				}
				rows[herald0+c].per, rows[herald0+c].ratios = append(rows[herald0+c].per, got), append(rows[herald0+c].ratios, got/base)
			}
		}
		report(title, rows)
	}
	phase("below the count limit", false)
	phase("at the count limit (1,000 per topic: one eviction per topic per batch)", true)
	singles := func() {
		const n = 5000
		rows := []*row{{name: "XADD pipelined (the baseline)"}, {name: "XADD, one a round trip"}, {name: "Herald Publish (layout 2)"}}
		var cands []int
		for c, cand := range layoutCandidates {
			if strings.HasPrefix(cand.name, "log entry only (") || strings.HasPrefix(cand.name, "6. the cheapest") {
				cands = append(cands, c)
				rows = append(rows, &row{name: cand.name + ", batches of one"})
			}
		}
		b := open("herald-singles")
		for range rounds {
			base := cpu(events, plain)
			rows[0].per = append(rows[0].per, base)
			add := func(i int, got float64) {
				rows[i].per, rows[i].ratios = append(rows[i].per, got), append(rows[i].ratios, got/base)
			}
			add(1, cpu(n, func() {
				for i := range n {
					if err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: "plain", Values: []any{"m", data + strconv.Itoa(i)}}).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}))
			add(2, cpu(n, func() {
				for i := range n {
					if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{fmt.Sprint("t", i%100)}, Data: data}); err != nil {
						t.Fatal(err)
					}
				}
			}))
			for k, c := range cands {
				add(3+k, cpu(n, func() { runScript(c, "singles", n, 1) }))
			}
		}
		report("single publishes (5,000 a measurement, below the count limit)", rows)
	}
	singles()
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("load average at the end: %s", strings.TrimSpace(string(load)))
}

// mainThreadSys returns the system CPU time of the server's main thread so
// far (INFO cpu: used_cpu_sys_main_thread): the kernel's share, page
// faults of a growing heap included.
func mainThreadSys(t *testing.T, rdb *goredis.Client) time.Duration {
	t.Helper()
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_cpu_sys_main_thread:"); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("INFO cpu: %s: %v", line, err)
			}
			return time.Duration(f * float64(time.Second))
		}
	}
	t.Fatal("INFO cpu has no used_cpu_sys_main_thread (Redis < 6.2?)")
	return 0
}
