package shard_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
	"github.com/heraldpush/herald/pubsub/shard"
)

// TestOf: the hash is stable (golden values: stored data and ids depend on
// it), spreads topics evenly, and moves few topics when a shard is added.
func TestOf(t *testing.T) {
	golden := map[string][4]int{ // shards of the topic among 1, 2, 4, 16
		"a":            {0, 1, 2, 12},
		"news":         {0, 1, 3, 3},
		"chat/x":       {0, 0, 3, 13},
		"/books/1":     {0, 0, 3, 4},
		"prices.EURUS": {0, 1, 3, 15},
	}
	for topic, want := range golden {
		got := [4]int{shard.Of(topic, 1), shard.Of(topic, 2), shard.Of(topic, 4), shard.Of(topic, 16)}
		if got != want {
			t.Errorf("Of(%q) among 1, 2, 4, 16 = %v, want %v", topic, got, want)
		}
	}
	const n, topics = 8, 80000
	count := make([]int, n)
	moved := 0
	for i := range topics {
		topic := fmt.Sprint("topic-", i)
		k := shard.Of(topic, n)
		count[k]++
		if shard.Of(topic, n+1) != k {
			moved++
		}
	}
	for k, c := range count {
		if c < topics/n*9/10 || c > topics/n*11/10 {
			t.Errorf("shard %d holds %d of %d topics, want %d ±10%%", k, c, topics, topics/n)
		}
	}
	if want := topics / (n + 1); moved < want*9/10 || moved > want*11/10 {
		t.Errorf("%d topics moved from %d to %d shards, want about %d", moved, n, n+1, want)
	}
}

func TestIDs(t *testing.T) {
	epochs := []string{"e0", "e1", "e2"}
	entries := []shard.Entry{{0, pubsub.Position{Epoch: "e0", Offset: 35}}, {2, pubsub.Position{Epoch: "e2", Offset: 1 << 40}}}
	id := shard.FormatID(entries)
	got, err := shard.ParseID(id, epochs)
	if err != nil || !reflect.DeepEqual(got, entries) {
		t.Fatalf("ParseID(%q) = %v, %v; want %v", id, got, err, entries)
	}
	if len(id) > 9+2*17 {
		t.Errorf("id %q longer than the stated bound", id)
	}
	// Another epoch on one of the shards: the positions are unknown.
	got, err = shard.ParseID(id, []string{"e0", "e1", "new"})
	if err != nil || got[0].Pos.Epoch != "" || got[1].Pos.Epoch != "" || got[1].Pos.Offset != 1<<40 {
		t.Fatalf("ParseID after an epoch change = %v, %v; want entries without epoch", got, err)
	}
	// A shard that no longer exists.
	if got, err = shard.ParseID(id, []string{"e0"}); err != nil || got[0].Pos.Epoch != "" {
		t.Fatalf("ParseID with fewer shards = %v, %v", got, err)
	}
	// The one-log form names its shard by epoch.
	one := shard.FormatID(entries[1:])
	if one != "e2-1099511627776" {
		t.Fatalf("one-entry id %q, want the one-log form", one)
	}
	if got, err = shard.ParseID(one, epochs); err != nil || got[0].Shard != 2 {
		t.Fatalf("ParseID(%q) = %v, %v", one, got, err)
	}
	if got, err = shard.ParseID("old-7", epochs); err != nil || got[0].Shard != -1 {
		t.Fatalf("ParseID of another epoch = %v, %v", got, err)
	}
	for _, bad := range []string{"", "x", "abc~", "abcdefgh~", "abcdefgh~1", "abcdefgh~1-", "abcdefgh~-1", "abcdefgh~1-2.1-3", "abcdefgh~2-1.1-1", "abcdefgh~1-2.", "abcdefg~1-2"} {
		if _, err := shard.ParseID(bad, epochs); !errors.Is(err, shard.ErrInvalidID) {
			t.Errorf("ParseID(%q) = %v, want ErrInvalidID", bad, err)
		}
	}
}

func FuzzParseID(f *testing.F) {
	f.Add(shard.FormatID([]shard.Entry{{0, pubsub.Position{Epoch: "e0", Offset: 9}}, {1, pubsub.Position{Epoch: "e1", Offset: 3}}}))
	f.Add("e0-5")
	f.Add("zzzzzzzz~a-b.c-d")
	f.Fuzz(func(t *testing.T, id string) {
		entries, err := shard.ParseID(id, []string{"e0", "e1"})
		if err != nil || len(entries) < 2 || entries[0].Pos.Epoch == "" {
			return
		}
		// Whatever parses with its fingerprint formats back to itself,
		// up to the digits' case.
		again, err := shard.ParseID(shard.FormatID(entries), []string{"e0", "e1"})
		if err != nil || !reflect.DeepEqual(again, entries) {
			t.Fatalf("round trip of %q: %v, %v", id, again, err)
		}
	})
}

func newBrokers(n int) []pubsub.Broker {
	out := make([]pubsub.Broker, n)
	for k := range out {
		out[k] = memory.New(&memory.Options{Epoch: fmt.Sprint("ep", k)})
	}
	return out
}

// topicOn returns a topic of shard k among n.
func topicOn(k, n int, name string) string {
	for i := 0; ; i++ {
		if t := fmt.Sprintf("%s-%d", name, i); shard.Of(t, n) == k {
			return t
		}
	}
}

// TestSplitPublish: an event whose topics are on several shards is stored
// once on each, with the other shards' topics in Also; a batch goes to each
// shard in order; a finished topic refuses the event before anything is
// stored.
func TestSplitPublish(t *testing.T) {
	ctx := context.Background()
	bs := newBrokers(3)
	b, err := shard.New(ctx, bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, c := topicOn(0, 3, "a"), topicOn(2, 3, "c")
	m := &pubsub.Message{Topics: []string{c, a}, Data: "both", ID: "evt-1"}
	pos, err := b.Publish(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Epoch != "ep2" || m.Pos != pos {
		t.Errorf("position %v, want one on the first topic's shard (ep2)", pos)
	}
	for k, want := range map[int][2]string{0: {a, c}, 2: {c, a}} {
		snap, err := bs[k].Read(ctx, pubsub.Query{Topics: []string{want[0]}, After: &pubsub.Position{Epoch: bs[k].Epoch()}})
		if err != nil || len(snap.Events) != 1 {
			t.Fatalf("shard %d: %v, %v", k, snap.Events, err)
		}
		got := snap.Events[0]
		if !reflect.DeepEqual(got.Topics, []string{want[0]}) || !reflect.DeepEqual(got.Also, []string{want[1]}) || got.Data != "both" || got.ID != "evt-1" {
			t.Errorf("shard %d holds %+v", k, got)
		}
	}
	msgs := []*pubsub.Message{{Topics: []string{a}, Data: "1"}, {Topics: []string{a, c}, Data: "2"}, {Topics: []string{c}, Data: "3", Final: true}}
	if n, err := b.PublishBatch(ctx, msgs); n != 3 || err != nil {
		t.Fatalf("PublishBatch = %d, %v", n, err)
	}
	for i, m := range msgs {
		if m.Pos.IsZero() {
			t.Errorf("batch message %d has no position", i)
		}
	}
	_, err = b.Publish(ctx, &pubsub.Message{Topics: []string{a, c}, Data: "late"})
	if !errors.Is(err, pubsub.ErrTopicFinished) {
		t.Fatalf("publish to a finished topic: %v", err)
	}
	snap, _ := bs[0].Read(ctx, pubsub.Query{Topics: []string{a}, After: &pubsub.Position{Epoch: "ep0"}})
	for _, m := range snap.Events {
		if m.Data == "late" {
			t.Error("the refused event was stored on the open topic's shard")
		}
	}
	if _, err := b.Read(ctx, pubsub.Query{Topics: []string{a, c}}); !errors.Is(err, shard.ErrSpansShards) {
		t.Errorf("Read across shards: %v", err)
	}
}

// TestMoved: shard counts are recorded per shard, and a topic that lived
// on another shard since a position (moved, or moved and back) is
// reported; one that stayed is not.
func TestMoved(t *testing.T) {
	ctx := context.Background()
	bs := newBrokers(4)
	open := func(n int) *shard.Broker {
		t.Helper()
		b, err := shard.New(ctx, bs[:n], &shard.Options{Reshard: true})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Topics on shard 0 with one shard: x stays on 0 with 4 shards, y moves.
	var x, y string
	for i := 0; x == "" || y == ""; i++ {
		topic := fmt.Sprint("t", i)
		switch k := shard.Of(topic, 4); {
		case k == 0 && x == "" && shard.Of(topic, 2) == 0:
			x = topic
		case k == 2 && y == "" && shard.Of(topic, 2) == 0:
			y = topic
		}
	}
	one := open(1)
	p, err := one.Publish(ctx, &pubsub.Message{Topics: []string{x}, Data: "1"})
	if err != nil {
		t.Fatal(err)
	}
	four := open(4)
	if four.Moved(x, p) {
		t.Errorf("%s stayed on shard 0 but is reported moved", x)
	}
	if four.Moved(y, p) {
		// A position of another shard: the epoch check covers it.
		t.Errorf("%s: a position of another shard is reported moved", y)
	}
	q, err := four.Publish(ctx, &pubsub.Message{Topics: []string{y}, Data: "2"})
	if err != nil {
		t.Fatal(err)
	}
	if four.Moved(y, q) {
		t.Errorf("%s reported moved after a position taken on its new shard", y)
	}
	// 4 → 2 → 4: shard 2 was out of the deployment meantime.
	open(2)
	again := open(4)
	if !again.Moved(y, q) {
		t.Errorf("%s lived on shard 0 while there were 2 shards, but is not reported", y)
	}
	r, err := again.Publish(ctx, &pubsub.Message{Topics: []string{x}, Data: "3"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Moved(x, r) || again.Moved(x, p) {
		t.Errorf("%s never left shard 0 but is reported moved", x)
	}
}
