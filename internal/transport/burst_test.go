package transport

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestBurstCollectsOnceAfterABurst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conns int
		gap   time.Duration // between connections
		want  int           // collections
	}{
		{"a burst", 300, time.Millisecond, 1},
		{"fewer than a burst", 255, time.Millisecond, 0},
		{"a trickle", 300, 2 * burstQuiet, 0},
		{"two bursts", 600, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBurst()
				var calls atomic.Int32
				b.collect = func() { calls.Add(1) }
				for range tc.conns {
					b.note()
					time.Sleep(tc.gap)
				}
				time.Sleep(burstQuiet / 2)
				synctest.Wait()
				if tc.gap < burstQuiet && calls.Load() != 0 {
					t.Fatalf("collected %d times while the burst was not yet quiet", calls.Load())
				}
				time.Sleep(burstQuiet)
				synctest.Wait()
				if int(calls.Load()) != tc.want {
					t.Fatalf("%d connections %v apart: %d collections, want %d", tc.conns, tc.gap, calls.Load(), tc.want)
				}
			})
		})
	}
}

func TestBurstStopCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBurst()
		var calls atomic.Int32
		b.collect = func() { calls.Add(1) }
		for range burstMin {
			b.note()
		}
		b.stop()
		time.Sleep(2 * burstQuiet)
		synctest.Wait()
		if calls.Load() != 0 {
			t.Fatalf("collected %d times after stop", calls.Load())
		}
	})
}
