package bolt_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
)

func openT(t testing.TB, path string, o bolt.Options) *bolt.Broker {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	b, err := bolt.Open(path, &o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestRestartResume: a client that saw part of the history resumes after a
// restart with the same epoch and exactly the messages it missed, including
// those published after the restart.
func TestRestartResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	b := openT(t, path, bolt.Options{})
	ctx := context.Background()
	var all []*pubsub.Message
	for i := range 30 {
		m := &pubsub.Message{Topics: []string{"room"}, Data: fmt.Sprint(i)}
		if _, err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		all = append(all, m)
	}
	seen := all[9].Pos // the client saw the first 10
	epoch := b.Epoch()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := openT(t, path, bolt.Options{})
	if b2.Epoch() != epoch {
		t.Fatalf("epoch after restart %q, want %q", b2.Epoch(), epoch)
	}
	for i := 30; i < 40; i++ {
		m := &pubsub.Message{Topics: []string{"room"}, Data: fmt.Sprint(i)}
		if _, err := b2.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		all = append(all, m)
	}
	snap, err := b2.Read(ctx, pubsub.Query{Topics: []string{"room"}, After: &seen})
	if err != nil {
		t.Fatal(err)
	}
	if snap.EpochChanged || snap.Truncated {
		t.Fatalf("resume after restart: EpochChanged=%v Truncated=%v", snap.EpochChanged, snap.Truncated)
	}
	if len(snap.Events) != 30 {
		t.Fatalf("resume after restart: %d events, want 30", len(snap.Events))
	}
	for i, m := range snap.Events {
		want := all[10+i]
		if m.Pos != want.Pos || m.Data != want.Data {
			t.Fatalf("event %d: %v %q, want %v %q", i, m.Pos, m.Data, want.Pos, want.Data)
		}
	}
}

// TestFileLocked: a second Open of a file in use fails instead of sharing it.
func TestFileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	openT(t, path, bolt.Options{})
	_, err := bolt.Open(path, &bolt.Options{LockTimeout: 100e6, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open: %v, want a lock error", err)
	}
}

// TestNotAHeraldFile: a file that is not a bbolt database is refused.
func TestNotAHeraldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := bolt.Open(path, &bolt.Options{Logger: quietLogger()}); err == nil {
		b.Close()
		t.Fatal("Open of a garbage file succeeded")
	}
}

// TestDiskBound: with a bound on history bytes, the file stops growing
// however much is published through it. (16 topics: the bound never
// evicts a topic's newest message, and 16 of them fit in it.)
func TestDiskBound(t *testing.T) {
	const maxBytes = 256 << 10
	path := filepath.Join(t.TempDir(), "herald.db")
	b := openT(t, path, bolt.Options{Retention: pubsub.Retention{MaxBytes: maxBytes, MaxEvents: 100000}})
	data := strings.Repeat("d", 8<<10)
	fileSize := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	publishMB := func(mb int) {
		var wg sync.WaitGroup
		n := mb << 7 / 8 // 8 publishers, 8 KiB each
		for g := range 8 {
			wg.Go(func() {
				for i := range n {
					m := &pubsub.Message{Topics: []string{fmt.Sprintf("t%d", (g*n+i)%16)}, Data: data}
					if _, err := b.Publish(context.Background(), m); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	publishMB(4)
	first := fileSize()
	publishMB(8)
	second := fileSize()
	st, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after 4 MiB: file %d bytes; after 12 MiB: file %d bytes; history %d bytes in %d messages", first, second, st.Bytes, st.Messages)
	if st.Bytes > maxBytes {
		t.Errorf("history holds %d bytes, bound %d", st.Bytes, maxBytes)
	}
	if second > 2*first {
		t.Errorf("file grew from %d to %d bytes in steady state: freed pages are not reused", first, second)
	}
	if second > 16*maxBytes {
		t.Errorf("file is %d bytes for %d bytes of history", second, maxBytes)
	}
}

// TestCompactOnOpen: after retention shrank history, reopening rewrites a
// sparse file to a small one, keeping the log.
func TestCompactOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	b := openT(t, path, bolt.Options{})
	data := strings.Repeat("c", 4000)
	var ms []*pubsub.Message
	for i := range 2000 {
		m := &pubsub.Message{Topics: []string{"c"}, Data: fmt.Sprint(i, data)}
		ms = append(ms, m)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < len(ms); i += 8 {
				if _, err := b.Publish(context.Background(), ms[i]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	epoch := b.Epoch()
	b.Close()
	before, _ := os.Stat(path)

	b2 := openT(t, path, bolt.Options{Retention: pubsub.Retention{MaxEvents: 10}, CompactMinBytes: 1 << 20})
	after, _ := os.Stat(path)
	t.Logf("file %d bytes before, %d after compaction", before.Size(), after.Size())
	if after.Size()*4 > before.Size() {
		t.Errorf("file %d bytes after compaction, was %d", after.Size(), before.Size())
	}
	if b2.Epoch() != epoch {
		t.Errorf("epoch %q after compaction, want %q", b2.Epoch(), epoch)
	}
	snap, err := b2.Read(context.Background(), pubsub.Query{Topics: []string{"c"}, After: &pubsub.Position{Epoch: epoch}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Events) != 10 || !snap.Truncated || snap.Head.Offset != 2000 || snap.Events[9].Pos.Offset != 2000 {
		t.Errorf("after compaction: %d events, Truncated %v, Head %v", len(snap.Events), snap.Truncated, snap.Head)
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// TestCancelledPublishNotStored: a Publish whose context ends while it waits
// for the writer either returns an error and is not stored, or succeeds.
func TestCancelledPublishNotStored(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "herald.db"), bolt.Options{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				ctx, cancel := context.WithCancel(context.Background())
				if i%2 == 0 {
					cancel()
				} else {
					go cancel()
				}
				m := &pubsub.Message{Topics: []string{"x"}, Data: fmt.Sprintf("%d/%d", g, i)}
				_, err := b.Publish(ctx, m)
				cancel()
				if err == nil {
					mu.Lock()
					acked[m.Data] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: []string{"x"}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, m := range snap.Events {
		stored[m.Data] = true
	}
	for d := range stored {
		if !acked[d] {
			t.Errorf("message %s stored but its Publish returned an error", d)
		}
	}
	for d := range acked {
		if !stored[d] {
			t.Errorf("message %s acknowledged but not stored", d)
		}
	}
	t.Logf("%d of 800 publishes succeeded", len(acked))
}

// TestResetEpoch: after a restore, a new epoch makes every earlier position
// a reset, and history is kept under the new epoch.
func TestResetEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	b := openT(t, path, bolt.Options{})
	m := &pubsub.Message{Topics: []string{"r"}, Data: "kept"}
	if _, err := b.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.ResetEpoch(path); err == nil {
		t.Fatal("ResetEpoch of a file in use succeeded")
	}
	old := b.Epoch()
	b.Close()
	epoch, err := bolt.ResetEpoch(path)
	if err != nil {
		t.Fatal(err)
	}
	if epoch == old || !pubsub.ValidEpoch(epoch) {
		t.Fatalf("new epoch %q (old %q)", epoch, old)
	}
	b2 := openT(t, path, bolt.Options{})
	if b2.Epoch() != epoch {
		t.Fatalf("epoch after reset %q, want %q", b2.Epoch(), epoch)
	}
	snap, err := b2.Read(context.Background(), pubsub.Query{Topics: []string{"r"}, After: &m.Pos})
	if err != nil {
		t.Fatal(err)
	}
	if !snap.EpochChanged || len(snap.Events) != 1 || snap.Events[0].Data != "kept" || snap.Events[0].Pos.Epoch != epoch {
		t.Fatalf("resume from the old epoch: EpochChanged=%v events=%v", snap.EpochChanged, snap.Events)
	}
	if _, err := bolt.ResetEpoch(filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Fatal("ResetEpoch of a missing file succeeded")
	}
}

// TestFairBoundOnOldFile: a file written before topics counted their bytes
// gets the counts when it is opened, and the byte bound then shares
// history fairly: a lower bound applied at start cuts the noisy topic, not
// the quiet one.
func TestFairBoundOnOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	b := openT(t, path, bolt.Options{})
	ctx := context.Background()
	quiet := &pubsub.Message{Topics: []string{"quiet"}, Data: "the only event"}
	if _, err := b.Publish(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	var noisy []*pubsub.Message
	for i := range 20 {
		m := &pubsub.Message{Topics: []string{"noisy"}, Data: fmt.Sprint(i, strings.Repeat("n", 4<<10))}
		if _, err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		noisy = append(noisy, m)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	makeOld(t, path)

	b = openT(t, path, bolt.Options{Retention: pubsub.Retention{MaxBytes: 32 << 10}})
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"quiet"}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Events) != 1 || snap.Events[0].Data != quiet.Data || snap.Truncated {
		t.Fatalf("quiet topic after the bound was applied: %d events, truncated %v; want its event", len(snap.Events), snap.Truncated)
	}
	snap, err = b.Read(ctx, pubsub.Query{Topics: []string{"noisy"}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.Events); n == 0 || n > 8 || !snap.Truncated || snap.Events[n-1].Pos != noisy[len(noisy)-1].Pos {
		t.Fatalf("noisy topic after the bound was applied: %d events ending %v, truncated %v; want its newest few, truncated", n, snap.Events[n-1].Pos, snap.Truncated)
	}
	st, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes > 32<<10 {
		t.Errorf("history holds %d bytes, bound %d", st.Bytes, 32<<10)
	}
}
