package aisdk

import "sync"

// answer is a chat's latest answer: its generation and the channel that
// closes when the generation has published its final event.
type answer struct {
	id   string
	done <-chan struct{}
}

func (a answer) running() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// activeIndex maps chat ids to their running answer on this node. Entries
// of finished answers are dropped when looked up and on every set, so the
// index holds little more than the running generations (which
// --chat-max-concurrent bounds). All methods are safe for concurrent use.
type activeIndex struct {
	mu      sync.Mutex
	answers map[string]answer // chat id → answer
}

func newActiveIndex() *activeIndex {
	return &activeIndex{answers: make(map[string]answer)}
}

// get returns the running answer of chat.
func (x *activeIndex) get(chat string) (answer, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	a, ok := x.answers[chat]
	if ok && !a.running() {
		delete(x.answers, chat)
		return answer{}, false
	}
	return a, ok
}

// set makes a the running answer of chat.
func (x *activeIndex) set(chat string, a answer) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, old := range x.answers {
		if !old.running() {
			delete(x.answers, k)
		}
	}
	x.answers[chat] = a
}

// clear forgets chat's answer if it is still the answer id.
func (x *activeIndex) clear(chat, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.answers[chat].id == id {
		delete(x.answers, chat)
	}
}

// len returns the number of entries (for tests).
func (x *activeIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.answers)
}
