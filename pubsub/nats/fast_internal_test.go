package nats

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestFastSetExpires: a fast set is usable only while its base's
// Nats-Msg-Id is surely still in JetStream's duplicate window (an event ID
// used again later would otherwise let a stale expectation through).
func TestFastSetExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dup := 2 * time.Minute
		maxAge := fastMaxAge(dup)
		if maxAge <= 0 || maxAge > dup/2 {
			t.Fatalf("fastMaxAge(%s) = %s, want in (0, %s]", dup, maxAge, dup/2)
		}
		if got := fastMaxAge(time.Second); got != 500*time.Millisecond {
			t.Fatalf("fastMaxAge(1s) = %s, want 500ms", got)
		}

		var f fastPath
		if _, _, _, ready := f.start(maxAge); ready {
			t.Fatal("an empty set is ready")
		}
		// A wave by the subjects' chains, stored at 7 and 8 in a row,
		// starts the set at 8.
		r := f.run(f.gen, f.base, false)
		a, b := &subjectState{}, &subjectState{}
		r.stored(a, 7, "id-7")
		r.stored(b, 8, "id-8")
		f.end(r)
		gen, base, baseID, ready := f.start(maxAge)
		if !ready || base != 8 || baseID != "id-8" || a.fastGen.Load() != gen || b.fastGen.Load() != gen {
			t.Fatalf("after a consecutive wave: ready %v base %d id %q", ready, base, baseID)
		}

		time.Sleep(maxAge - time.Millisecond)
		if _, _, _, ready := f.start(maxAge); !ready {
			t.Fatal("the set expired before maxAge")
		}
		time.Sleep(time.Millisecond)
		if _, _, _, ready := f.start(maxAge); ready {
			t.Fatal("the set is still usable maxAge after its base's wave began")
		}

		// A fast wave continuing the set renews it from when it began.
		f.valid = true
		f.baseAt = time.Now()
		r = f.run(gen, base, true)
		time.Sleep(maxAge / 2)
		r.stored(a, 9, "id-9")
		f.end(r)
		if _, base, _, ready := f.start(maxAge); !ready || base != 9 {
			t.Fatalf("after a fast wave: ready %v base %d", ready, base)
		}
		time.Sleep(maxAge/2 + time.Millisecond)
		if _, _, _, ready := f.start(maxAge); ready {
			t.Fatal("the renewed set outlived maxAge from its wave's start")
		}
	})
}
