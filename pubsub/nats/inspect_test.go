package nats_test

import (
	"context"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// TestTopics: the Inspector lists topics with their message counts,
// retained and finished state (markers are not counted as messages).
func TestTopics(t *testing.T) {
	needNATS(t)
	b := open(t, natsURL(), uniqueStream(t, natsURL()), pubsub.Retention{})
	defer b.Close()
	ctx := context.Background()
	publish(t, b, "1", "a.b c")
	r := &pubsub.Message{Topics: []string{"a.b c"}, Data: "state", Retain: true}
	if _, err := b.Publish(ctx, r); err != nil {
		t.Fatal(err)
	}
	f := &pubsub.Message{Topics: []string{"x", "y"}, Data: "end", Final: true}
	if _, err := b.Publish(ctx, f); err != nil {
		t.Fatal(err)
	}
	got, err := b.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []pubsub.TopicInfo{
		{Topic: "a.b c", Messages: 2, Retained: true},
		{Topic: "x", Messages: 1, Finished: true},
		{Topic: "y", Messages: 0, Finished: true},
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
