package streams_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/streams"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
)

// plain is a broker with Conditional and Purger only: a node on it reads
// as on brokers without pubsub.TopicStreamer (copies of the messages).
type plain struct {
	pubsub.Broker
	pubsub.Conditional
	pubsub.Purger
}

// watched is a bolt broker that counts the data ReadTopic returns and the
// calls of ReadTopicTo, and runs hook (when set) before each of those.
type watched struct {
	*bolt.Broker
	topicBytes atomic.Int64
	readTos    atomic.Int64
	hook       atomic.Pointer[func(ctx context.Context, call int64)]
}

func (w *watched) ReadTopic(ctx context.Context, topic string, after pubsub.Position, limit int) ([]*pubsub.Message, pubsub.Position, error) {
	msgs, tail, err := w.Broker.ReadTopic(ctx, topic, after, limit)
	for _, m := range msgs {
		w.topicBytes.Add(int64(len(m.Data)))
	}
	return msgs, tail, err
}

func (w *watched) ReadTopicTo(ctx context.Context, topic string, after pubsub.Position, limit int, fn func(*pubsub.Message) error) (pubsub.Position, error) {
	n := w.readTos.Add(1)
	if h := w.hook.Load(); h != nil {
		(*h)(ctx, n)
	}
	return w.Broker.ReadTopicTo(ctx, topic, after, limit, fn)
}

func openBolt(t testing.TB) *watched {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "streams.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &watched{Broker: b}
}

func withBuffers(chunk, buffer int) func(*streams.Handler) {
	return func(h *streams.Handler) { h.ChunkBytes, h.ReadBuffer = chunk, buffer }
}

// randomBytes returns n bytes of every value, from r.
func randomBytes(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return string(b)
}

// TestCatchUpFromStore: catch-up reads served from the bolt store's memory
// map (pubsub.TopicStreamer) answer exactly what reads of copied messages
// answer (body, Stream-Next-Offset, Stream-Up-To-Date, Stream-Closed, ETag,
// Content-Length, 304s; long-polls that find data), from every offset, for
// binary data of every byte value and JSON, with responses and appends
// that end inside the copy buffer, on its edges and span several buffers,
// and read transactions that end after a few messages; and the data does
// not go through ReadTopic's copies.
func TestCatchUpFromStore(t *testing.T) {
	const chunk, buffer = 10_000, 777
	// Few messages per read transaction: pages of messages end inside
	// responses and buffers too.
	defer streams.SetPlanPage(7)()
	w := openBolt(t)
	fast := newNode(t, w, 0, withBuffers(chunk, buffer))
	slow := newNode(t, plain{w.Broker, w.Broker, w.Broker}, 0, withBuffers(chunk, buffer))
	r := rand.New(rand.NewPCG(20, 26))
	offsets := map[string][]string{}
	for _, s := range []struct{ path, ctype string }{{"bin", "application/octet-stream"}, {"js", "application/json"}, {"closed", "text/plain"}, {"tiny", "application/octet-stream"}} {
		if rp := fast.do(t, "PUT", s.path, "", "Content-Type: "+s.ctype); rp.status != http.StatusCreated {
			t.Fatal(rp.status, rp.body)
		}
		offsets[s.path] = []string{"-1"}
		// Sizes on and around the buffer's and the response's edges, and
		// random ones.
		sizes := []int{1, buffer - 1, buffer, buffer + 1, 2 * buffer, chunk - 1, chunk, chunk + 1, 3 * chunk, 1}
		for range 40 {
			sizes = append(sizes, 1+r.IntN(2*buffer))
		}
		if s.path == "tiny" {
			// Many appends to a buffer.
			sizes = sizes[:0]
			for range 60 {
				sizes = append(sizes, 1+r.IntN(20))
			}
		}
		for _, n := range sizes {
			body := randomBytes(r, n)
			if s.path == "js" {
				body = fmt.Sprintf(`{"p":%q}`, strings.Repeat("j", n))
			} else if s.path == "closed" {
				body = strings.Repeat("c", n)
			}
			rp := fast.do(t, "POST", s.path, body, "Content-Type: "+s.ctype)
			if rp.status != http.StatusNoContent {
				t.Fatal(rp.status, rp.body)
			}
			offsets[s.path] = append(offsets[s.path], rp.hdr.Get("Stream-Next-Offset"))
		}
	}
	if rp := fast.do(t, "POST", "closed", "", "Content-Type: text/plain", "Stream-Closed: true"); rp.status != http.StatusNoContent {
		t.Fatal(rp.status, rp.body)
	}
	w.topicBytes.Store(0)
	before := w.readTos.Load()
	responses := 0
	for path, offs := range offsets {
		for _, from := range offs {
			// Follow the stream from this offset to its tail on both.
			off := from
			for range 1000 {
				q := path + "?offset=" + off
				a, b := fast.do(t, "GET", q, ""), slow.do(t, "GET", q, "")
				responses++
				if a.status != http.StatusOK || a.status != b.status || a.body != b.body {
					t.Fatalf("GET %s: %d, %d bytes; without TopicStreamer %d, %d bytes", q, a.status, len(a.body), b.status, len(b.body))
				}
				for _, h := range []string{"Stream-Next-Offset", "Stream-Up-To-Date", "Stream-Closed", "ETag", "Content-Length", "Content-Type", "Cache-Control"} {
					if a.hdr.Get(h) != b.hdr.Get(h) {
						t.Fatalf("GET %s: %s %q; without TopicStreamer %q", q, h, a.hdr.Get(h), b.hdr.Get(h))
					}
				}
				if n := a.hdr.Get("Content-Length"); n != fmt.Sprint(len(a.body)) {
					t.Fatalf("GET %s: Content-Length %s, body %d bytes", q, n, len(a.body))
				}
				if nm := fast.do(t, "GET", q, "", "If-None-Match: "+a.hdr.Get("ETag")); nm.status != http.StatusNotModified {
					t.Fatalf("GET %s with its ETag: %d", q, nm.status)
				}
				if a.body != "" && a.body != "[]" {
					// A long-poll with data to answer answers at once, as
					// the catch-up read does (but for its cursor).
					lq := q + "&live=long-poll"
					la, lb := fast.do(t, "GET", lq, ""), slow.do(t, "GET", lq, "")
					if la.status != http.StatusOK || la.status != lb.status || la.body != a.body || lb.body != a.body {
						t.Fatalf("GET %s: %d, %d bytes; without TopicStreamer %d, %d bytes; catch-up %d bytes", lq, la.status, len(la.body), lb.status, len(lb.body), len(a.body))
					}
					for _, h := range []string{"Stream-Next-Offset", "Stream-Up-To-Date", "Stream-Closed", "ETag", "Content-Length"} {
						if la.hdr.Get(h) != lb.hdr.Get(h) || la.hdr.Get(h) != a.hdr.Get(h) {
							t.Fatalf("GET %s: %s %q; without TopicStreamer %q; catch-up %q", lq, h, la.hdr.Get(h), lb.hdr.Get(h), a.hdr.Get(h))
						}
					}
					if la.hdr.Get("Stream-Cursor") == "" {
						t.Fatalf("GET %s: no Stream-Cursor", lq)
					}
				}
				if a.hdr.Get("Stream-Up-To-Date") == "true" {
					break
				}
				off = a.hdr.Get("Stream-Next-Offset")
			}
		}
	}
	if n := w.topicBytes.Load(); n != 0 {
		t.Errorf("the catch-up reads took %d bytes through ReadTopic's copies", n)
	}
	// At least a read to measure each response and one to copy it.
	if n := w.readTos.Load() - before; n < int64(2*responses) {
		t.Errorf("%d ReadTopicTo calls for %d responses", n, responses)
	}
}

// TestCatchUpFromStoreGrowing: appends while a response is being copied
// from the store do not change it: it ends at the offset its headers name,
// and the next read has them.
func TestCatchUpFromStoreGrowing(t *testing.T) {
	w := openBolt(t)
	n := newNode(t, w, 0, withBuffers(0, 4096))
	if rp := n.do(t, "PUT", "g", "", "Content-Type: application/octet-stream"); rp.status != http.StatusCreated {
		t.Fatal(rp.status)
	}
	var want strings.Builder
	var tail string
	for i := range 50 {
		body := strings.Repeat(string(rune('a'+i%26)), 1000+i)
		want.WriteString(body)
		rp := n.do(t, "POST", "g", body, "Content-Type: application/octet-stream")
		tail = rp.hdr.Get("Stream-Next-Offset")
	}
	var more strings.Builder
	grown := false
	hook := func(ctx context.Context, call int64) {
		if call != 3 { // the measure, a first buffer, then this
			return
		}
		for i := range 10 {
			body := fmt.Sprint("later-", i)
			more.WriteString(body)
			if rp := n.do(t, "POST", "g", body, "Content-Type: application/octet-stream"); rp.status != http.StatusNoContent {
				t.Errorf("append during the read: %d %s", rp.status, rp.body)
			}
		}
		grown = true
	}
	w.hook.Store(&hook)
	rp := n.do(t, "GET", "g?offset=-1", "")
	w.hook.Store(nil)
	if !grown {
		t.Fatal("the read did not copy from the store in several reads")
	}
	if rp.body != want.String() || rp.hdr.Get("Stream-Next-Offset") != tail || rp.hdr.Get("Stream-Up-To-Date") != "true" {
		t.Fatalf("read during appends: %d bytes (want %d), next offset %s (want %s), up to date %q",
			len(rp.body), want.Len(), rp.hdr.Get("Stream-Next-Offset"), tail, rp.hdr.Get("Stream-Up-To-Date"))
	}
	if rp := n.do(t, "GET", "g?offset="+tail, ""); rp.body != more.String() {
		t.Fatalf("the next read: %q, want %q", rp.body, more.String())
	}
}

// TestCatchUpFromStoreCancelled: a client that goes away in the middle of
// a response stops the server's reads of the store.
func TestCatchUpFromStoreCancelled(t *testing.T) {
	w := openBolt(t)
	n := newNode(t, w, 0, withBuffers(0, 4096))
	if rp := n.do(t, "PUT", "c", "", "Content-Type: application/octet-stream"); rp.status != http.StatusCreated {
		t.Fatal(rp.status)
	}
	for range 64 {
		n.do(t, "POST", "c", strings.Repeat("z", 32<<10), "Content-Type: application/octet-stream")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var served, after atomic.Int64
	hook := func(sctx context.Context, call int64) {
		switch {
		case served.Load() == 0 && call >= 3:
			served.Store(call)
			cancel()
			testkit.WaitFor(t, "the server to see the client go", func() bool { return sctx.Err() != nil })
		case served.Load() != 0:
			after.Add(1)
		}
	}
	start := w.readTos.Load()
	w.hook.Store(&hook)
	defer w.hook.Store(nil)
	req, _ := http.NewRequestWithContext(ctx, "GET", n.url+"c?offset=-1", nil)
	// The client may go before or after the headers arrive.
	var got int64
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		got, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if !errors.Is(err, context.Canceled) || got >= 64*32<<10 {
		t.Fatalf("a cancelled read got %d bytes, %v", got, err)
	}
	testkit.WaitFor(t, "the hook", func() bool { return served.Load() != 0 })
	// The handler's next look at the store sees the cancelled context and
	// it returns; no read of the store follows.
	if a := after.Load(); a > 1 {
		t.Fatalf("%d reads of the store after the client went (from call %d of %d)", a, served.Load()-start, w.readTos.Load()-start)
	}
}

// TestCatchUpFromStoreSlowClient: a client that stops reading in the
// middle of a response holds no read transaction open: appends that make
// the store grow its file (and remap it, which waits for every open read)
// go through while it stalls, and the client then reads all of it.
func TestCatchUpFromStoreSlowClient(t *testing.T) {
	w := openBolt(t)
	n := newNode(t, w, 0, withBuffers(64<<20, 1<<20))
	if rp := n.do(t, "PUT", "s", "", "Content-Type: application/octet-stream"); rp.status != http.StatusCreated {
		t.Fatal(rp.status)
	}
	block := strings.Repeat("s", 1<<20)
	const size = 32
	for range size {
		n.do(t, "POST", "s", block, "Content-Type: application/octet-stream")
	}
	resp, err := http.Get(n.url + "s?offset=-1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	// The handler has filled the socket's buffers and waits in a write:
	// no read of the store for 20 looks in a row.
	last, same := int64(-1), 0
	testkit.WaitFor(t, "the response to stall", func() bool {
		cur := w.readTos.Load()
		if cur == last {
			same++
		} else {
			last, same = cur, 0
		}
		return same >= 20
	})
	before, _ := w.Stats()
	if rp := n.do(t, "PUT", "other", "", "Content-Type: application/octet-stream"); rp.status != http.StatusCreated {
		t.Fatal(rp.status)
	}
	// Each append must go through in time (an open read transaction would
	// hold the file's remapping, and with it the append, until the client
	// reads).
	c := &http.Client{Timeout: 30 * time.Second}
	for i := range 48 {
		resp, err := c.Post(n.url+"other", "application/octet-stream", strings.NewReader(block))
		if err != nil {
			t.Fatalf("append %d while a read stalls: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("append %d: %d", i, resp.StatusCode)
		}
	}
	after, _ := w.Stats()
	if after.FileBytes <= before.FileBytes {
		t.Fatalf("the file did not grow: %d then %d bytes", before.FileBytes, after.FileBytes)
	}
	rest, err := io.Copy(io.Discard, resp.Body)
	if err != nil || rest+1024 != size<<20 {
		t.Fatalf("the stalled read: %d more bytes, %v", rest, err)
	}
}

// TestCatchUpFromStoreAllocs: reading a stream from the bolt store
// allocates a small part of its size (the data goes from the memory map to
// the socket through one buffer).
func TestCatchUpFromStoreAllocs(t *testing.T) {
	w := openBolt(t)
	n := newNode(t, w, 0, withBuffers(32<<20, 0))
	if rp := n.do(t, "PUT", "a", "", "Content-Type: application/octet-stream"); rp.status != http.StatusCreated {
		t.Fatal(rp.status)
	}
	block := strings.Repeat("a", 512<<10)
	for range 32 {
		n.do(t, "POST", "a", block, "Content-Type: application/octet-stream")
	}
	read := func() int64 {
		resp, err := http.Get(n.url + "a?offset=-1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	read() // the buffers in their pools
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	got := read()
	runtime.ReadMemStats(&m1)
	if got != 16<<20 {
		t.Fatalf("read %d bytes", got)
	}
	if a := m1.TotalAlloc - m0.TotalAlloc; a > 4<<20 {
		t.Fatalf("reading 16 MiB allocated %d bytes", a)
	}
}

// TestCatchUpShardedFallback: on a sharded broker whose shards cannot hand
// their messages over (memory: ReadTopicTo answers errors.ErrUnsupported),
// catch-up reads fall back to ReadTopic's messages, with the same answers.
func TestCatchUpShardedFallback(t *testing.T) {
	n := newNode(t, testkit.ShardedBroker(t, 3), 0, withBuffers(3000, 100))
	var want strings.Builder
	for _, path := range []string{"a", "b", "c", "d"} {
		want.Reset()
		if rp := n.do(t, "PUT", path, "", "Content-Type: application/octet-stream"); rp.status != http.StatusCreated {
			t.Fatal(rp.status)
		}
		for i := range 10 {
			body := strings.Repeat(fmt.Sprint(i), 700)
			want.WriteString(body)
			if rp := n.do(t, "POST", path, body, "Content-Type: application/octet-stream"); rp.status != http.StatusNoContent {
				t.Fatal(rp.status, rp.body)
			}
		}
		var got strings.Builder
		off := "-1"
		for range 100 {
			rp := n.do(t, "GET", path+"?offset="+off, "")
			if rp.status != http.StatusOK || rp.hdr.Get("Content-Length") != fmt.Sprint(len(rp.body)) {
				t.Fatalf("GET %s at %s: %d, Content-Length %s for %d bytes", path, off, rp.status, rp.hdr.Get("Content-Length"), len(rp.body))
			}
			got.WriteString(rp.body)
			if len(rp.body) > 3000 {
				t.Fatalf("a response of %d bytes, over the chunk", len(rp.body))
			}
			if rp.hdr.Get("Stream-Up-To-Date") == "true" {
				break
			}
			off = rp.hdr.Get("Stream-Next-Offset")
		}
		if got.String() != want.String() {
			t.Fatalf("stream %s read %d bytes, want %d", path, got.Len(), want.Len())
		}
	}
}
