package fair

import (
	"math/rand/v2"
	"slices"
	"testing"
)

type topic struct {
	Entry
	name string
}

// TestTopIsTheLargest: after any sequence of sets, Top is a topic with the
// most evictable bytes, and the heap holds exactly the topics with some.
func TestTopIsTheLargest(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	topics := make([]*topic, 50)
	for i := range topics {
		topics[i] = &topic{name: string(rune('a' + i))}
	}
	var h Heap[*topic]
	for step := range 5000 {
		x := topics[rnd.IntN(len(topics))]
		v := int64(rnd.IntN(4)) * int64(rnd.IntN(1000))
		h.Set(x, v)
		var want []int64
		for _, tp := range topics {
			if tp.Evictable() > 0 {
				want = append(want, tp.Evictable())
			}
		}
		if h.Len() != len(want) {
			t.Fatalf("step %d: heap holds %d topics, %d have evictable bytes", step, h.Len(), len(want))
		}
		top, ok := h.Top()
		if len(want) == 0 {
			if ok {
				t.Fatalf("step %d: Top %v of an empty heap", step, top.name)
			}
			continue
		}
		if !ok || top.Evictable() != slices.Max(want) {
			t.Fatalf("step %d: Top has %d, the largest is %d", step, top.Evictable(), slices.Max(want))
		}
	}
	h.Reset()
	if _, ok := h.Top(); ok || h.Len() != 0 {
		t.Fatal("Reset left topics in the heap")
	}
	h.Set(topics[0], 5) // a topic from before the reset enters again
	if top, _ := h.Top(); top != topics[0] {
		t.Fatal("a topic set after Reset is not the top")
	}
}
