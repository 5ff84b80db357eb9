package bolt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
)

// TestReadsReleaseV1 opens a file written by the release before storage
// format 2 (testdata/v1.db: four messages, the last published through the
// Mercure endpoint with a publisher id and retry in a legacy metadata line)
// and checks that its epoch, history, retained and final state read as
// written, with the metadata in Meta, and that publishing goes on after it.
func TestReadsReleaseV1(t *testing.T) {
	src, err := os.ReadFile("testdata/v1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "herald.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	const epoch = "ottx6rptvc"
	if b.Epoch() != epoch {
		t.Fatalf("epoch %q, want %q (kept from the file)", b.Epoch(), epoch)
	}
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"a", "b c/é", "f", "/books/1"}, After: &pubsub.Position{Epoch: epoch}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Head.Offset != 4 || snap.Truncated || snap.EpochChanged || len(snap.Events) != 4 {
		t.Fatalf("snapshot head %v, truncated %v, epoch changed %v, %d events; want head 4 and 4 events", snap.Head, snap.Truncated, snap.EpochChanged, len(snap.Events))
	}
	want := []struct {
		data string
		typ  string
		flag string
	}{{"plain", "", ""}, {"x\x00y\nz", "update", "retain"}, {"bye", "", "final private"}, {`{"t":1}`, "u", ""}}
	for i, w := range want {
		m := snap.Events[i]
		if m.Data != w.data || m.Type != w.typ || m.Pos.Offset != uint64(i+1) {
			t.Errorf("event %d: %+v, want data %q type %q", i, m, w.data, w.typ)
		}
	}
	if m := snap.Events[1]; !m.Retain {
		t.Error("event 2 lost its retain flag")
	}
	if m := snap.Events[2]; !m.Final || !m.Private {
		t.Error("event 3 lost its final or private flag")
	}
	if meta := snap.Events[3].Meta; meta["mercure.id"] != "urn:x" || meta["mercure.retry"] != "3000" {
		t.Errorf("legacy metadata: %v, want mercure.id urn:x and mercure.retry 3000", meta)
	}
	if f, ok := snap.Finals["f"]; !ok || f.Offset != 3 {
		t.Errorf("finals %v, want f at 3", snap.Finals)
	}
	fresh, err := b.Read(ctx, pubsub.Query{Topics: []string{"b c/é"}})
	if err != nil || len(fresh.Retained) != 1 || fresh.Retained[0].Pos.Offset != 2 {
		t.Fatalf("retained of %q: %v, %v; want the message at 2", "b c/é", fresh.Retained, err)
	}
	if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"f"}, Data: "after"}); !errors.Is(err, pubsub.ErrTopicFinished) {
		t.Errorf("publish to the finished topic: %v, want ErrTopicFinished", err)
	}
	pos, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"a"}, Data: "new", Meta: map[string]string{"mercure.id": "urn:y"}})
	if err != nil || pos.Offset != 5 {
		t.Fatalf("publish after the old messages: %v, %v; want offset 5", pos, err)
	}
	snap, err = b.Read(ctx, pubsub.Query{Topics: []string{"a"}, After: &pubsub.Position{Epoch: epoch, Offset: 4}})
	if err != nil || len(snap.Events) != 1 || snap.Events[0].Meta["mercure.id"] != "urn:y" {
		t.Fatalf("new message: %+v, %v", snap.Events, err)
	}
}
