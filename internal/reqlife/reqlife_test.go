package reqlife_test

import (
	"context"
	"slices"
	"testing"

	"github.com/heraldpush/herald/internal/reqlife"
)

func TestLife(t *testing.T) {
	for _, tc := range []struct {
		name string
		// steps: "return", "detach", "end"
		steps []string
		// after which step (index) the funcs must have run; -1: never
		runAt int
	}{
		{"plain request", []string{"return"}, 0},
		{"detached, ends after return", []string{"detach", "return", "end"}, 2},
		{"detached, ends before return", []string{"detach", "end", "return"}, 2},
		{"detached, never ends", []string{"detach", "return"}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, l := reqlife.New(context.Background())
			if reqlife.From(ctx) != l {
				t.Fatal("From does not find the Life")
			}
			var order []int
			l.OnEnd(func() { order = append(order, 1) })
			l.OnEnd(func() { order = append(order, 2) })
			var end func(int64)
			ranAt := -1
			for i, s := range tc.steps {
				switch s {
				case "return":
					l.Returned()
				case "detach":
					end = l.Detach()
				case "end":
					end(42)
					end(1) // extra calls do nothing
				}
				if ranAt < 0 && len(order) > 0 {
					ranAt = i
				}
			}
			if ranAt != tc.runAt {
				t.Fatalf("funcs ran after step %d, want %d", ranAt, tc.runAt)
			}
			if ranAt >= 0 && !slices.Equal(order, []int{2, 1}) {
				t.Fatalf("order %v, want last registered first", order)
			}
			if end != nil && ranAt >= 0 && l.Bytes() != 42 {
				t.Fatalf("bytes %d, want 42", l.Bytes())
			}
		})
	}
}

func TestOnEndAfterEnd(t *testing.T) {
	_, l := reqlife.New(context.Background())
	l.Returned()
	ran := false
	l.OnEnd(func() { ran = true })
	if !ran {
		t.Fatal("OnEnd after the end must run at once")
	}
	if reqlife.From(context.Background()) != nil {
		t.Fatal("From of a bare context")
	}
}
