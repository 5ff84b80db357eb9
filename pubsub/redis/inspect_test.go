package redis_test

import (
	"context"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// TestTopics: the Inspector lists topics with their message counts,
// retained and finished state.
func TestTopics(t *testing.T) {
	needRedis(t)
	b := open(t, uniquePrefix(t), pubsub.Retention{})
	defer b.Close()
	ctx := context.Background()
	for _, m := range []*pubsub.Message{
		{Topics: []string{"a"}, Data: "1"},
		{Topics: []string{"a"}, Data: "state", Retain: true},
		{Topics: []string{"x", "y"}, Data: "end", Final: true},
	} {
		if _, err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []pubsub.TopicInfo{
		{Topic: "a", Messages: 2, Retained: true},
		{Topic: "x", Messages: 1, Finished: true},
		{Topic: "y", Messages: 1, Finished: true},
	}
	if len(got) != len(want) {
		t.Fatalf("Topics() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Topics()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}
