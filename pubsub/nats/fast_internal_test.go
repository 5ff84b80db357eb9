package nats

import (
	"testing"
	"time"
)

// TestFastSetExpires: a fast set is usable only while its base's
// Nats-Msg-Id is surely still in JetStream's duplicate window (an event ID
// used again later would otherwise let a stale expectation through).
func TestFastSetExpires(t *testing.T) {
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

	// Its age is counted from when that wave began.
	if f.baseAt.After(time.Now()) || time.Since(f.baseAt) > time.Minute {
		t.Fatalf("baseAt %v is not the wave's start", f.baseAt)
	}
	f.baseAt = time.Now().Add(-maxAge + time.Second)
	if _, _, _, ready := f.start(maxAge); !ready {
		t.Fatal("the set expired before maxAge")
	}
	f.baseAt = time.Now().Add(-maxAge)
	if _, _, _, ready := f.start(maxAge); ready {
		t.Fatal("the set is still usable maxAge after its base's wave began")
	}

	// A fast wave continuing the set renews it from when it began,
	// not from when it ended.
	f.valid = true
	f.baseAt = time.Now().Add(-maxAge + time.Second)
	r = f.run(gen, base, true)
	r.began = r.began.Add(-time.Second) // the wave took a second
	r.stored(a, 9, "id-9")
	f.end(r)
	if _, base, _, ready := f.start(maxAge); !ready || base != 9 || f.baseAt != r.began {
		t.Fatalf("after a fast wave: ready %v base %d baseAt %v, want the wave's start %v", ready, base, f.baseAt, r.began)
	}
}
