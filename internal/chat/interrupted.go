package chat

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/journal"
	"github.com/heraldpush/herald/pubsub"
)

// journalData is what the journal keeps of a generation.
type journalData struct {
	Model        string `json:"model,omitempty"`
	Conversation string `json:"conversation,omitempty"`
}

// endInterrupted ends the streams of generations that a crash left
// running (the journal's leftovers): each gets an error event, code
// CodeInterrupted, with the partial answer its history holds. A stream
// that has ended meanwhile is left as it is.
func (s *Service) endInterrupted(ctx context.Context, items []journal.Item) {
	ended := 0
	for _, it := range items {
		if !validID(it.ID) {
			s.log.Warn("chat: journal item with an invalid id", "id", it.ID)
			continue
		}
		var jd journalData
		_ = json.Unmarshal(it.Data, &jd)
		topic := TopicPrefix + it.ID
		b := pubsub.LogOf(s.hub.Broker(), topic)
		snap, err := b.Read(ctx, pubsub.Query{Topics: []string{topic}, After: &pubsub.Position{Epoch: b.Epoch()}})
		if err != nil {
			s.log.Warn("chat: cannot read an interrupted generation's stream", "id", it.ID, "err", err)
			continue
		}
		if _, done := snap.Finals[topic]; done {
			continue
		}
		var text strings.Builder
		events := 0
		for _, m := range snap.Events {
			if m.Type == EventToken {
				text.WriteString(m.Data)
				events++
			}
		}
		// The tokens are counted by event: after a crash the number of
		// tokens grouped in each is not known.
		data, _ := json.Marshal(Error{Message: errCrashed.Error(), Code: CodeInterrupted, Text: text.String(), Tokens: events, Model: jd.Model, Conversation: jd.Conversation})
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = s.hub.Publish(pctx, &pubsub.Message{Topics: []string{topic}, Type: EventError, Data: string(data), Retain: true, Final: true})
		cancel()
		switch {
		case errors.Is(err, pubsub.ErrTopicFinished):
		case err != nil:
			s.log.Warn("chat: cannot end an interrupted generation's stream", "id", it.ID, "err", err)
		default:
			ended++
			s.metrics.finished.WithLabelValues("interrupted").Inc()
			s.remember(it.ID)
		}
	}
	if ended > 0 {
		s.log.Info("chat: ended the streams of generations a crash had interrupted", "count", ended)
	}
}

// remember keeps a generation that ended before this run started, so that
// its stream is forgotten after the retention period like the others.
func (s *Service) remember(id string) {
	g := &generation{id: id, topic: TopicPrefix + id, done: make(chan struct{}), state: finished, cancel: func(error) {}}
	close(g.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.gens[id] != nil {
		return
	}
	s.gens[id] = g
	if s.keep > 0 {
		g.mu.Lock()
		g.forget = time.AfterFunc(s.keep, func() { s.forget(g) })
		g.mu.Unlock()
	}
}
