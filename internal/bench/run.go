package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/heraldpush/herald/sse"
)

// Run runs the fan-out/throughput benchmark cfg describes.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	client := newHTTPClient(cfg.Subscribers + cfg.Publishers)
	defer client.CloseIdleConnections()
	return runWith(ctx, &cfg, client)
}

func topicName(run string, i int) string { return "bench/" + run + "/" + strconv.Itoa(i) }

func runWith(ctx context.Context, cfg *Config, client *http.Client) (Result, error) {
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	ctr := &counters{}
	ctr.perTopic = make([]atomic.Int64, cfg.Topics)
	hs := newHistograms()

	subCtx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	var subWG sync.WaitGroup
	subs := make([]*subscriber, cfg.Subscribers)
	ready := make(chan struct{}, cfg.Subscribers+cfg.Stalled)
	pace := pacer(cfg.ConnRate)
	for i := range subs {
		s := &subscriber{idx: i, topic: topicName(run, i%cfg.Topics), last: make(map[int]int64)}
		subs[i] = s
		if err := pace(ctx); err != nil {
			return Result{}, err
		}
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			follow(subCtx, cfg, client, s, hs, ctr, ready)
		}()
	}
	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for i := 0; i < cfg.Stalled; i++ {
		c, err := stall(ctx, cfg, topicName(run, i%cfg.Topics))
		if err != nil {
			return Result{}, fmt.Errorf("stalled subscriber: %w", err)
		}
		stalled = append(stalled, c)
	}
	if err := waitReady(ctx, ready, cfg.Subscribers, 2*time.Minute); err != nil {
		return Result{}, err
	}
	stopProgress := progress(cfg, ctr, hs)
	defer stopProgress()

	usage0 := readServerUsage(ctx, cfg, client)
	start := time.Now()
	pubCtx, cancelPub := context.WithTimeout(ctx, cfg.Duration)
	var pubWG sync.WaitGroup
	perPub := cfg.Rate / float64(cfg.Publishers)
	for p := 0; p < cfg.Publishers; p++ {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			publishLoop(pubCtx, cfg, client, run, p, perPub, ctr)
		}()
	}
	pubWG.Wait()
	cancelPub()
	pubSecs := time.Since(start).Seconds()

	expected := func() int64 {
		var n int64
		for i := 0; i < cfg.Subscribers; i++ {
			n += ctr.perTopic[i%cfg.Topics].Load()
		}
		return n
	}
	deadline := time.Now().Add(cfg.Drain)
	for ctr.received.Load() < expected() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	usage1 := readServerUsage(ctx, cfg, client)
	cancelSubs()
	subWG.Wait()

	res := Result{
		Server: cfg.Server, Transport: cfg.Transport, Face: cfg.Face, Subscribers: cfg.Subscribers, Topics: cfg.Topics,
		Publishers: cfg.Publishers, Seconds: pubSecs,
		Published: ctr.published.Load(), PublishErrors: ctr.pubErrors.Load(),
		Expected: expected(), ConnectErrors: ctr.connectErrs.Load(), Disconnects: ctr.disconnects.Load(),
	}
	for _, s := range subs {
		res.Received += s.got.Load()
		res.Duplicated += s.dup.Load()
		res.OutOfOrder += s.order.Load()
	}
	res.Lost = max(0, res.Expected-res.Received)
	res.PublishRate = float64(res.Published) / pubSecs
	res.DeliveryRate = float64(res.Received) / pubSecs
	h := hs.merged()
	res.LatencyP50 = float64(h.ValueAtQuantile(50)) / 1000
	res.LatencyP90 = float64(h.ValueAtQuantile(90)) / 1000
	res.LatencyP99 = float64(h.ValueAtQuantile(99)) / 1000
	res.LatencyMax = float64(h.Max()) / 1000
	if usage0.ok && usage1.ok {
		res.ServerCPUSeconds = usage1.cpu - usage0.cpu
		if res.Received > 0 {
			res.CPUPerDeliveryMicros = res.ServerCPUSeconds / float64(res.Received) * 1e6
		}
		res.ServerRSSBytes = usage1.rss
	}
	return res, nil
}

// follow keeps one subscriber connected until ctx ends, resuming with the
// last event id after a disconnect, and checks what it receives.
func follow(ctx context.Context, cfg *Config, client *http.Client, s *subscriber, hs *histograms, ctr *counters, ready chan<- struct{}) {
	lastID := ""
	signalled := false
	for ctx.Err() == nil {
		var err error
		if cfg.Transport == "ws" {
			lastID, err = followWS(ctx, cfg, s, hs, ctr, lastID, func() {
				if !signalled {
					signalled = true
					ready <- struct{}{}
				}
			})
		} else {
			lastID, err = followSSE(ctx, cfg, client, s, hs, ctr, lastID, func() {
				if !signalled {
					signalled = true
					ready <- struct{}{}
				}
			})
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			ctr.connectErrs.Add(1)
		} else {
			ctr.disconnects.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func followSSE(ctx context.Context, cfg *Config, client *http.Client, s *subscriber, hs *histograms, ctr *counters, lastID string, onOpen func()) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Server+faces[cfg.Face](url.QueryEscape(s.topic)), nil)
	if err != nil {
		return lastID, err
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		return lastID, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return lastID, fmt.Errorf("subscribe: %s", resp.Status)
	}
	onOpen()
	dec := sse.NewDecoder(resp.Body)
	for {
		ev, err := dec.Next()
		if id := dec.LastEventID(); id != "" {
			lastID = id
		}
		if err != nil {
			return lastID, nil // the stream ended: a disconnect
		}
		if ev.Type != "message" {
			continue
		}
		ctr.received.Add(1)
		s.check(ev.Data, hs, time.Now().UnixNano())
	}
}

type wsFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data string `json:"data"`
}

// followWS follows s over WebSocket. It reads frames with gobwas/ws's
// header parser into one reused buffer (the server's frames are small and
// unmasked), so that the load generator's cost per event stays near its
// SSE reader's: with coder/websocket's reader (a goroutine and a message
// buffer per connection, allocations per read), the generator's core ran
// out first and the publish rate of WebSocket runs fell to 50–70 ev/s while
// SSE runs held 100, which skewed the servers' cost per delivery. The tests
// keep coder/websocket as an independent client.
func followWS(ctx context.Context, cfg *Config, s *subscriber, hs *histograms, ctr *counters, lastID string, onOpen func()) (string, error) {
	u := "ws" + cfg.Server[len("http"):] + "/ws?topic=" + url.QueryEscape(s.topic)
	if lastID != "" {
		u += "&lastEventID=" + url.QueryEscape(lastID)
	}
	conn, br, _, err := ws.Dial(ctx, u)
	if err != nil {
		return lastID, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	rd := bufio.NewReaderSize(r, 16<<10)
	onOpen()
	var buf []byte
	var f wsFrame
	for {
		h, err := ws.ReadHeader(rd)
		if err != nil || h.Length > 16<<20 {
			return lastID, nil
		}
		if int64(cap(buf)) < h.Length {
			buf = make([]byte, h.Length)
		}
		data := buf[:h.Length]
		if _, err := io.ReadFull(rd, data); err != nil {
			return lastID, nil
		}
		switch h.OpCode {
		case ws.OpPing:
			if wsutil.WriteClientMessage(conn, ws.OpPong, data) != nil {
				return lastID, nil
			}
			continue
		case ws.OpClose:
			return lastID, nil
		case ws.OpText:
		default:
			continue
		}
		f = wsFrame{}
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		if f.ID != "" {
			lastID = f.ID
		}
		if f.Type != "event" {
			continue
		}
		ctr.received.Add(1)
		s.check(f.Data, hs, time.Now().UnixNano())
	}
}

// stall opens a subscription that never reads.
func stall(ctx context.Context, cfg *Config, topic string) (net.Conn, error) {
	u, _ := url.Parse(cfg.Server)
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	fmt.Fprintf(c, "GET /events?topic=%s HTTP/1.1\r\nHost: %s\r\n\r\n", url.QueryEscape(topic), u.Host)
	return c, nil
}

func waitReady(ctx context.Context, ready <-chan struct{}, n int, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-ready:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("only %d of %d subscribers connected within %s", i, n, timeout)
		}
	}
	return nil
}

// pacer returns a function that spaces calls at rate per second.
func pacer(rate float64) func(context.Context) error {
	if rate <= 0 {
		return func(ctx context.Context) error { return ctx.Err() }
	}
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	return func(ctx context.Context) error {
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		return ctx.Err()
	}
}

type batchEvent struct {
	Topic string `json:"topic"`
	Data  string `json:"data"`
}

// publishLoop publishes until ctx ends, at rate events per second (0: as
// fast as possible), spreading events over the topics.
func publishLoop(ctx context.Context, cfg *Config, client *http.Client, run string, pub int, rate float64, ctr *counters) {
	pace := pacer(rate / float64(cfg.Batch))
	var seq int64
	buf := make([]byte, 0, cfg.Size+64)
	var body bytes.Buffer
	batch := make([]batchEvent, 0, cfg.Batch)
	raw, isRaw := newRawPublisher(cfg.Server)
	if isRaw {
		defer raw.close()
	}
	for {
		if pace(ctx) != nil {
			return
		}
		topicIdx := int((seq + int64(pub)) % int64(cfg.Topics))
		ctype := "application/x-www-form-urlencoded"
		body.Reset()
		if cfg.Batch == 1 {
			seq++
			buf = payload(buf, pub, seq, cfg.Size)
			body.WriteString("topic=")
			body.WriteString(url.QueryEscape(topicName(run, topicIdx)))
			body.WriteString("&data=")
			body.WriteString(url.QueryEscape(string(buf)))
		} else {
			batch = batch[:0]
			for i := 0; i < cfg.Batch; i++ {
				seq++
				buf = payload(buf, pub, seq, cfg.Size)
				batch = append(batch, batchEvent{Topic: topicName(run, topicIdx), Data: string(buf)})
			}
			json.NewEncoder(&body).Encode(batch)
			ctype = "application/json"
		}
		var (
			status int
			err    error
		)
		if isRaw {
			status, err = raw.publish(ctx, ctype, body.Bytes())
		} else {
			status, err = clientPublish(ctx, client, cfg.Server, ctype, body.Bytes())
		}
		if err != nil || status != http.StatusOK {
			ctr.pubErrors.Add(int64(cfg.Batch))
			continue
		}
		ctr.published.Add(int64(cfg.Batch))
		ctr.perTopic[topicIdx].Add(int64(cfg.Batch))
	}
}

// clientPublish publishes with net/http's client (https servers).
func clientPublish(ctx context.Context, client *http.Client, server, ctype string, body []byte) (int, error) {
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, server+"/publish", bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// progress prints a status line every second until the returned func is
// called.
func progress(cfg *Config, ctr *counters, hs *histograms) func() {
	if cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastPub, lastRecv int64
		for {
			select {
			case <-done:
				fmt.Fprintln(cfg.Progress)
				return
			case <-t.C:
			}
			pub, recv := ctr.published.Load(), ctr.received.Load()
			p99 := float64(hs.merged().ValueAtQuantile(99)) / 1000
			fmt.Fprintf(cfg.Progress, "\r%4.0fs  publish %7d/s  deliver %8d/s  p99 %7.2f ms  errors %d  disconnects %d   ",
				time.Since(start).Seconds(), pub-lastPub, recv-lastRecv, p99, ctr.pubErrors.Load()+ctr.connectErrs.Load(), ctr.disconnects.Load())
			lastPub, lastRecv = pub, recv
		}
	}()
	return func() { close(done); wg.Wait() }
}

type usage struct {
	cpu float64 // seconds
	rss int64   // bytes
	ok  bool
}

// readServerUsage reads the server's CPU time and RSS from /proc (cfg.PID)
// or from its Prometheus metrics.
func readServerUsage(ctx context.Context, cfg *Config, client *http.Client) usage {
	if cfg.PID > 0 {
		return procUsage(cfg.PID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Server+"/metrics", nil)
	if err != nil {
		return usage{}
	}
	resp, err := client.Do(req)
	if err != nil {
		return usage{}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return usage{}
	}
	var u usage
	sc := bufio.NewScanner(resp.Body)
	var sawCPU, sawRSS bool
	for sc.Scan() {
		line := sc.Text()
		if v, ok := metricValue(line, "process_cpu_seconds_total"); ok {
			u.cpu, sawCPU = v, true
		}
		if v, ok := metricValue(line, "process_resident_memory_bytes"); ok {
			u.rss, sawRSS = int64(v), true
		}
	}
	u.ok = sawCPU && sawRSS
	return u
}

func metricValue(line, name string) (float64, bool) {
	if len(line) <= len(name)+1 || line[:len(name)] != name || line[len(name)] != ' ' {
		return 0, false
	}
	v, err := strconv.ParseFloat(line[len(name)+1:], 64)
	return v, err == nil
}
