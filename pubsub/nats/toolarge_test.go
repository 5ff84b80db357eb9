package nats_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/nats"
)

// TestOverMaxPayload: a message larger than the server's max_payload is
// pubsub.ErrTooLarge on every way of publishing (the HTTP faces answer
// 413, not a 503 that invites a retry), and the broker goes on working.
func TestOverMaxPayload(t *testing.T) {
	needNATS(t)
	ctx := context.Background()
	b, err := nats.Open(ctx, natsURL(), &nats.Options{Stream: uniqueStream(t, natsURL())})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	big := strings.Repeat("x", 2<<20)
	msg := func(topic string) *pubsub.Message {
		return &pubsub.Message{Topics: []string{topic}, Data: big}
	}
	for _, c := range []struct {
		name string
		pub  func() error
	}{
		{"Publish", func() error { _, err := b.Publish(ctx, msg("big/one")); return err }},
		{"PublishBatch", func() error {
			_, err := b.PublishBatch(ctx, []*pubsub.Message{msg("big/a"), msg("big/b")})
			return err
		}},
		{"PublishIf", func() error { _, err := b.PublishIf(ctx, pubsub.Position{}, msg("big/if")); return err }},
	} {
		if err := c.pub(); !errors.Is(err, pubsub.ErrTooLarge) || errors.Is(err, pubsub.ErrUnavailable) {
			t.Errorf("%s of 2 MiB: %v, want ErrTooLarge (and not ErrUnavailable)", c.name, err)
		}
	}
	if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"big/one"}, Data: "small"}); err != nil {
		t.Fatalf("a small publish after the refused ones: %v", err)
	}
}
