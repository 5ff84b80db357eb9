package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/sse"
)

// Scenarios are the named presets of `herald bench`, matching the
// performance targets in docs/benchmarks.md.
var Scenarios = map[string]Config{
	// 1,000 SSE subscribers on one topic, 100 events/s of 100 bytes.
	"fanout": {Subscribers: 1000, Topics: 1, Publishers: 1, Rate: 100, Size: 100, Duration: 30 * time.Second},
	// 8 publishers as fast as they can, 10 subscribers.
	"throughput": {Subscribers: 10, Topics: 1, Publishers: 8, Rate: 0, Size: 100, Duration: 10 * time.Second},
	// The same with 100 events per publish request.
	"throughput-batch": {Subscribers: 10, Topics: 1, Publishers: 8, Rate: 0, Size: 100, Duration: 10 * time.Second, Batch: 100},
	// 10,000 idle SSE connections: memory per connection.
	"idle": {Subscribers: 10000, Topics: 1, Duration: 5 * time.Second, ConnRate: 5000},
	// 5,000 clients reconnecting at once, each 100 events behind.
	"resume-storm": {Subscribers: 5000, Topics: 1, Size: 100, ConnRate: 5000},
	// One stalled subscriber among 1,000.
	"slow-consumer": {Subscribers: 1000, Topics: 1, Publishers: 1, Rate: 100, Size: 1000, Duration: 20 * time.Second, Stalled: 1},
	// 50 concurrent AI chat generations with the built-in demo model.
	"chat": {Subscribers: 50, Duration: 60 * time.Second},
}

// ScenarioNames returns the preset names, sorted.
func ScenarioNames() []string {
	names := make([]string, 0, len(Scenarios))
	for n := range Scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// RunScenario runs the named scenario with cfg (already holding the preset's
// values, possibly overridden).
func RunScenario(ctx context.Context, name string, cfg Config) (Result, error) {
	var (
		res Result
		err error
	)
	switch name {
	case "idle":
		res, err = Idle(ctx, cfg)
	case "resume-storm":
		res, err = ResumeStorm(ctx, cfg, 100)
	case "chat":
		res, err = Chat(ctx, cfg)
	default:
		res, err = Run(ctx, cfg)
	}
	res.Scenario = name
	return res, err
}

// Idle opens cfg.Subscribers connections that receive nothing, holds them
// for cfg.Duration, and reports the server's memory per connection.
func Idle(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	client := newHTTPClient(cfg.Subscribers)
	defer client.CloseIdleConnections()
	before := readServerUsage(ctx, &cfg, client)
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	ctr := &counters{}
	hs := newHistograms()
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	ready := make(chan struct{}, cfg.Subscribers)
	pace := pacer(cfg.ConnRate)
	for i := 0; i < cfg.Subscribers; i++ {
		if err := pace(ctx); err != nil {
			return Result{}, err
		}
		s := &subscriber{idx: i, topic: topicName(run, i%cfg.Topics), last: map[int]int64{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			follow(subCtx, &cfg, client, s, hs, ctr, ready)
		}()
	}
	err := waitReady(ctx, ready, cfg.Subscribers, 2*time.Minute)
	if err == nil {
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Duration):
		}
	}
	after := readServerUsage(ctx, &cfg, client)
	cancel()
	wg.Wait()
	if err != nil {
		return Result{}, err
	}
	res := Result{Server: cfg.Server, Transport: cfg.Transport, Face: cfg.Face, Subscribers: cfg.Subscribers, Topics: cfg.Topics,
		Seconds: cfg.Duration.Seconds(), ConnectErrors: ctr.connectErrs.Load(), Disconnects: ctr.disconnects.Load()}
	if before.ok && after.ok {
		res.ServerRSSBytes = after.rss
		res.RSSPerConnBytes = float64(after.rss-before.rss) / float64(cfg.Subscribers)
		res.Extra = map[string]float64{"serverRssBeforeBytes": float64(before.rss)}
	}
	return res, nil
}

// ResumeStorm connects cfg.Subscribers clients to one topic, disconnects
// them all, publishes behind events, reconnects them all at once with their
// Last-Event-ID and measures how long until every one has caught up, checking
// that each received exactly the events it missed, in order.
func ResumeStorm(ctx context.Context, cfg Config, behind int) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	client := newHTTPClient(cfg.Subscribers + 1)
	defer client.CloseIdleConnections()
	topic := "bench/storm/" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)

	// Phase 1: connect everyone and learn their position.
	ids := make([]string, cfg.Subscribers)
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Subscribers)
	pace := pacer(cfg.ConnRate)
	for i := range ids {
		if err := pace(ctx); err != nil {
			return Result{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := position(ctx, client, cfg.Server, topic)
			ids[i] = id
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return Result{}, fmt.Errorf("connecting: %w", err)
	default:
	}

	// Phase 2: publish what they miss.
	buf := make([]byte, 0, cfg.Size)
	for seq := 1; seq <= behind; seq++ {
		buf = payload(buf, 0, int64(seq), cfg.Size)
		resp, err := client.PostForm(cfg.Server+"/publish", url.Values{"topic": {topic}, "data": {string(buf)}})
		if err != nil {
			return Result{}, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return Result{}, fmt.Errorf("publish: %s", resp.Status)
		}
	}

	// Phase 3: everyone reconnects at once.
	hs := newHistograms()
	var mu sync.Mutex
	var res Result
	start := time.Now()
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, dup, order, err := catchUp(ctx, client, cfg.Server, topic, ids[i], behind)
			took := time.Since(start)
			hs.record(i, took.Microseconds())
			mu.Lock()
			defer mu.Unlock()
			res.Received += int64(got)
			res.Duplicated += int64(dup)
			res.OutOfOrder += int64(order)
			if err != nil {
				res.ConnectErrors++
			}
		}()
	}
	wg.Wait()
	total := time.Since(start)
	res.Server, res.Transport, res.Subscribers, res.Topics = cfg.Server, "sse", cfg.Subscribers, 1
	res.Published = int64(behind)
	res.Expected = int64(behind * cfg.Subscribers)
	res.Lost = max(0, res.Expected-res.Received)
	res.Seconds = total.Seconds()
	res.DeliveryRate = float64(res.Received) / total.Seconds()
	h := hs.merged()
	res.LatencyP50 = float64(h.ValueAtQuantile(50)) / 1000
	res.LatencyP90 = float64(h.ValueAtQuantile(90)) / 1000
	res.LatencyP99 = float64(h.ValueAtQuantile(99)) / 1000
	res.LatencyMax = float64(h.Max()) / 1000
	res.Extra = map[string]float64{"catchUpSeconds": total.Seconds(), "behind": float64(behind)}
	return res, nil
}

// position subscribes, reads the stream's position (the id of its prelude),
// and disconnects.
func position(ctx context.Context, client *http.Client, server, topic string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/events?topic="+url.QueryEscape(topic), nil)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("subscribe: %s", resp.Status)
	}
	// The prelude ends with an id-only block, which dispatches no event:
	// read lines until a blank line follows an id field.
	sc := bufio.NewScanner(resp.Body)
	id := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "id:"); ok {
			id = strings.TrimPrefix(v, " ")
		}
		if line == "" && id != "" {
			return id, nil
		}
	}
	return "", fmt.Errorf("no position in the stream's prelude: %v", sc.Err())
}

// catchUp resumes from lastID and reads until it has want events.
func catchUp(ctx context.Context, client *http.Client, server, topic, lastID string, want int) (got, dup, order int, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/events?topic="+url.QueryEscape(topic), nil)
	req.Header.Set("Last-Event-ID", lastID)
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("resume: %s", resp.Status)
	}
	var last int64
	for ev, err := range sse.Read(resp.Body) {
		if err != nil {
			return got, dup, order, err
		}
		if ev.Type != "message" {
			continue
		}
		_, seq, _, ok := parsePayload(ev.Data)
		switch {
		case !ok:
			continue
		case seq == last+1:
			got++
			last = seq
		case seq <= last:
			dup++
		default:
			order++
			last = seq
		}
		if got+order >= want {
			return got, dup, order, nil
		}
	}
	return got, dup, order, fmt.Errorf("stream ended after %d of %d events", got, want)
}

// Chat starts cfg.Subscribers concurrent AI chat generations (POST /chat)
// and follows each stream, measuring time to first token and checking that
// the tokens add up to the final text.
func Chat(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	client := newHTTPClient(cfg.Subscribers)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	hs := newHistograms()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		res = Result{Server: cfg.Server, Transport: "sse", Subscribers: cfg.Subscribers}
	)
	start := time.Now()
	for i := 0; i < cfg.Subscribers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tokens, ok, err := chatOnce(ctx, client, cfg.Server, i, hs)
			mu.Lock()
			defer mu.Unlock()
			res.Received += int64(tokens)
			res.Published++
			switch {
			case err != nil:
				res.ConnectErrors++
			case !ok:
				res.Lost++ // tokens did not add up to the final text
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.DeliveryRate = float64(res.Received) / res.Seconds
	h := hs.merged()
	res.LatencyP50 = float64(h.ValueAtQuantile(50)) / 1000
	res.LatencyP90 = float64(h.ValueAtQuantile(90)) / 1000
	res.LatencyP99 = float64(h.ValueAtQuantile(99)) / 1000
	res.LatencyMax = float64(h.Max()) / 1000
	res.Extra = map[string]float64{"chats": float64(cfg.Subscribers)}
	return res, nil
}

// chatOnce runs one chat; the latency recorded is the time to first token.
func chatOnce(ctx context.Context, client *http.Client, server string, i int, hs *histograms) (tokens int, ok bool, err error) {
	body := fmt.Sprintf(`{"messages":[{"role":"user","content":"Benchmark question %d: what is Herald?"}]}`, i)
	start := time.Now()
	resp, err := client.Post(server+"/chat", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	var created struct{ Stream string }
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		return 0, false, fmt.Errorf("POST /chat: %s %v", resp.Status, err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+created.Stream, nil)
	resp, err = client.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	var text strings.Builder
	for ev, err := range sse.Read(resp.Body) {
		if err != nil {
			return tokens, false, err
		}
		switch ev.Type {
		case "token":
			if tokens == 0 {
				hs.record(i, time.Since(start).Microseconds())
			}
			tokens++
			text.WriteString(ev.Data)
		case "done":
			var done struct{ Text string }
			if json.Unmarshal([]byte(ev.Data), &done) != nil {
				return tokens, false, nil
			}
			return tokens, done.Text == text.String(), nil
		case "error":
			return tokens, false, fmt.Errorf("chat error: %s", ev.Data)
		}
	}
	return tokens, false, fmt.Errorf("stream ended before done")
}
