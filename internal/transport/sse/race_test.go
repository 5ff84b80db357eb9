package sse_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
)

// Every path that takes the engine's locks at once, under -race: the hub's
// Notify callbacks (under the broker's lock) waking connections while
// workers serve them, the coalescing window, the wheel's keep-alives and
// expiries, the epoll loop reporting closed peers, an administrator's
// disconnects and a shutdown while publishers still publish. The lock
// order (internal/transport's doc) is what keeps it from deadlocking:
// the test ends, every stream ends, and nothing leaks (goleak).
func TestLockPathsUnderLoad(t *testing.T) {
	e := newEnv(t, &hub.Options{QueueBytes: 1 << 20}, func(s *sse.Server, _ *sse.Handler) {
		s.KeepAlive = 20 * time.Millisecond // the wheel ticks every few ms
	})
	const conns, topics = 40, 4
	var streams []*rawStream
	for i := range conns {
		s := openRaw(t, e.srv.URL, fmt.Sprintf("/events?topic=t%d&topic=all", i%topics))
		s.until("id: ep-0\n\n")
		streams = append(streams, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				topic := fmt.Sprintf("t%d", (p+i)%topics)
				if i%5 == 0 {
					topic = "all"
				}
				if _, err := e.hub.Publish(context.Background(), &pubsub.Message{Topics: []string{topic}, Data: fmt.Sprint(p, "-", i)}); err != nil {
					return
				}
			}
		}()
	}
	// Readers on half the streams; the others stay unread (their socket
	// buffers fill: partial writes and flushing goroutines).
	for i, s := range streams {
		if i%2 == 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, s.resp.Body)
			}()
		}
	}
	// Peers leave, an administrator kicks a topic.
	for i, s := range streams {
		if i%7 == 3 {
			s.c.Close()
		}
	}
	e.hub.Disconnect("t1")
	testkit.WaitFor(t, "the closed and kicked streams to end", func() bool { return e.hub.TopicCounts()["t1"] == 0 })
	// Shut down while publishing.
	e.hub.Close()
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	_ = e.server.Shutdown(sctx) // stuck unread streams are closed when it times out
	cancel()
	for _, s := range streams {
		s.c.Close()
	}
	wg.Wait()
	testkit.WaitFor(t, "every connection to be gone", func() bool { return e.connections() == 0 && e.server.Engine().Len() == 0 })
}
