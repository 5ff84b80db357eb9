package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
)

// TestExactResumeUnderReconnectStorm is the proof of exact resume: several
// publishers publish concurrently (single events and batches, to one or two
// topics) while hundreds of subscribers drop their connection after a few
// events and reconnect with the last id they saw (by header or by query
// parameter), and the server cuts every stream now and then. Afterwards each
// subscriber's sequence must be exactly the server's log order of its
// topics' events: no gap, no duplicate, no reset.
func TestExactResumeUnderReconnectStorm(t *testing.T) {
	const (
		subscribers = 200
		publishers  = 4
		perPub      = 75 // events per publisher
	)
	srv := start(t, nil)
	pubc := newClient(t)
	subc := newClient(t)
	follows := [][]string{{"x"}, {"y"}, {"x", "y"}}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Every subscriber connects once before anything is published and
	// keeps the position it is given.
	type result struct {
		topics     []string
		got        []string
		reconnects int
		err        error
	}
	results := make([]result, subscribers)
	var ready, wg sync.WaitGroup
	ready.Add(subscribers)
	for n := range subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[n]
			r.topics = follows[n%len(follows)]
			r.got, r.reconnects, r.err = follow(ctx, subc, srv.URL, r.topics, rand.New(rand.NewPCG(uint64(n), 7)), ready.Done)
		}()
	}
	ready.Wait()

	// Publish, recording every event's position.
	type published struct {
		pos    uint64
		data   string
		topics []string
	}
	var (
		mu  sync.Mutex
		log []published
	)
	var pwg sync.WaitGroup
	var stopCuts atomic.Bool
	for p := range publishers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			rnd := rand.New(rand.NewPCG(uint64(p), 99))
			for i := 0; i < perPub; {
				n := 1
				if rnd.IntN(4) == 0 {
					n = min(1+rnd.IntN(5), perPub-i) // a batch
				}
				var reqs []publishReq
				for j := range n {
					reqs = append(reqs, publishReq{Topics: follows[rnd.IntN(3)], Data: jsonString(fmt.Sprintf("p%d-%d", p, i+j))})
				}
				ids, err := publishBatch(ctx, pubc, srv.URL, reqs)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for j, id := range ids {
					pos, err := pubsub.ParsePosition(id)
					if err != nil {
						t.Errorf("publish answered id %q: %v", id, err)
					}
					var d string
					json.Unmarshal(reqs[j].Data, &d)
					log = append(log, published{pos.Offset, d, reqs[j].Topics})
				}
				mu.Unlock()
				i += n
			}
		}()
	}
	// The server cuts every stream from time to time, too.
	cutsDone := make(chan struct{})
	go func() {
		defer close(cutsDone)
		every := time.NewTicker(250 * time.Millisecond)
		defer every.Stop()
		for !stopCuts.Load() {
			<-every.C
			srv.App.Hub().Disconnect("")
		}
	}()
	pubStart := time.Now()
	pwg.Wait()
	t.Logf("published in %v", time.Since(pubStart))
	mt := metrics(t, pubc, srv.URL)
	t.Logf("server publish time sum %s count %s", metricValue(mt, "herald_publish_duration_seconds_sum"), metricValue(mt, "herald_publish_duration_seconds_count"))
	stopCuts.Store(true)
	<-cutsDone
	// The last event goes to both topics: every subscriber stops at it.
	end := publish(t, pubc, srv.URL, "end", "x", "y")
	endPos, _ := pubsub.ParsePosition(end)
	log = append(log, published{endPos.Offset, "end", []string{"x", "y"}})
	endStart := time.Now()
	wg.Wait()
	t.Logf("subscribers done %v after the end", time.Since(endStart))

	slices.SortFunc(log, func(a, b published) int { return int(a.pos) - int(b.pos) })
	for i := range log {
		if log[i].pos != uint64(i+1) {
			t.Fatalf("positions are not 1..n: %d at %d", log[i].pos, i)
		}
	}
	totalReconnects := 0
	for n, r := range results {
		totalReconnects += r.reconnects
		if r.err != nil {
			t.Errorf("subscriber %d %v: %v", n, r.topics, r.err)
			continue
		}
		var want []string
		for _, p := range log {
			if slices.ContainsFunc(p.topics, func(t string) bool { return slices.Contains(r.topics, t) }) {
				want = append(want, p.data)
			}
		}
		if !slices.Equal(r.got, want) {
			t.Errorf("subscriber %d %v (%d reconnects): %s", n, r.topics, r.reconnects, diff(r.got, want))
		}
	}
	t.Logf("%d events, %d subscribers, %d reconnects", len(log), subscribers, totalReconnects)
	if totalReconnects < subscribers*5 {
		t.Errorf("only %d reconnects: the test did not stress the hand-over", totalReconnects)
	}
	noOpenStreams(t, subc, srv, "x", "y")
}

// follow subscribes to topics and reads events until "end", dropping the
// connection after a random number of blocks and resuming from the last id.
// It calls ready once its first position is known.
func follow(ctx context.Context, c *http.Client, base string, topics []string, rnd *rand.Rand, ready func()) (got []string, reconnects int, err error) {
	lastID := ""
	for {
		u := eventsURL(base, topics...)
		useQuery := rnd.IntN(2) == 0
		if useQuery && lastID != "" {
			u += "&lastEventID=" + url.QueryEscape(lastID)
		}
		rctx, cancel := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
		if !useQuery && lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := c.Do(req)
		if err != nil {
			cancel()
			return got, reconnects, err
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			return got, reconnects, fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		br := testkit.NewBlockReader(resp.Body)
		budget := 1 + rnd.IntN(40)
		done := false
		for budget > 0 && !done {
			b, err := br.Next()
			if errors.Is(err, io.EOF) {
				break // the server ended the stream: reconnect
			}
			if err != nil {
				resp.Body.Close()
				cancel()
				return got, reconnects, fmt.Errorf("after %d events: %w", len(got), err)
			}
			if b.Type == "herald.reset" {
				resp.Body.Close()
				cancel()
				return got, reconnects, fmt.Errorf("after %d events (last id %s): unexpected %v", len(got), lastID, b)
			}
			if b.HasID {
				if lastID == "" {
					ready()
				}
				lastID = b.ID
			}
			if b.HasData {
				got = append(got, b.Data)
				budget--
				done = b.Data == "end"
			}
		}
		resp.Body.Close()
		cancel()
		if done {
			return got, reconnects, nil
		}
		if lastID == "" {
			return got, reconnects, errors.New("first connection gave no position")
		}
		reconnects++
	}
}

func publishBatch(ctx context.Context, c *http.Client, base string, reqs []publishReq) ([]string, error) {
	var body []byte
	if len(reqs) == 1 {
		body, _ = json.Marshal(reqs[0])
	} else {
		body, _ = json.Marshal(reqs)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/publish", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("publish: %d %s", resp.StatusCode, b)
	}
	var r struct {
		ID  string   `json:"id"`
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if len(reqs) == 1 {
		return []string{r.ID}, nil
	}
	if len(r.IDs) != len(reqs) {
		return nil, fmt.Errorf("batch of %d answered %s", len(reqs), b)
	}
	return r.IDs, nil
}

// diff describes the first difference of two sequences.
func diff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			dup := slices.Index(got[:i], got[i]) >= 0
			return "at " + strconv.Itoa(i) + ": got " + got[i] + ", want " + want[i] + map[bool]string{true: " (a duplicate)", false: ""}[dup] +
				fmt.Sprintf(" (%d events, want %d)", len(got), len(want))
		}
	}
	return fmt.Sprintf("%d events, want %d", len(got), len(want))
}
