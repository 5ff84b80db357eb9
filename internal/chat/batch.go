package chat

import "strings"

// batcher groups an answer's tokens into token events so that a generation
// never publishes more events than the history keeps per topic: evicted
// tokens would make an exact resume impossible.
//
// With a per-topic limit of L events, one is kept for the final event, so
// at most L-1 token events carry the answer. While the tokens that may
// still come (up to the max tokens of the generation) fit in the events
// left, every token is an event of its own. Otherwise tokens are grouped by
// g = ceil(tokens that may still come / events left), the smallest even
// grouping that fits the worst case; g falls back to 1 as soon as it can.
// The last event left is kept for the final flush, so the token events
// always carry the whole answer.
type batcher struct {
	limit     int // most token events; < 0 means no limit
	maxTokens int

	events   int // token events taken
	tokens   int // tokens in them
	pending  strings.Builder
	pendingN int
}

// newBatcher returns a batcher for a history that keeps historyMaxEvents
// per topic (0: no limit) and an answer of at most maxTokens tokens.
func newBatcher(historyMaxEvents, maxTokens int) *batcher {
	limit := -1
	if historyMaxEvents > 0 {
		limit = historyMaxEvents - 1
	}
	return &batcher{limit: limit, maxTokens: maxTokens}
}

// add queues a token and reports whether the queued text should be
// published now (as one event, with take).
func (b *batcher) add(tok string) bool {
	b.pending.WriteString(tok)
	b.pendingN++
	if b.limit < 0 {
		return true
	}
	left := b.limit - b.events
	if left <= 1 {
		return false // the last event is kept for the final flush
	}
	remaining := max(b.maxTokens-b.tokens, b.pendingN)
	g := (remaining + left - 1) / left
	return b.pendingN >= g
}

// take returns the queued text as the data of one token event. It returns
// false when nothing is queued, or when no event is left (then the text is
// only in the final event).
func (b *batcher) take() (string, bool) {
	if b.pendingN == 0 || b.pending.Len() == 0 || (b.limit >= 0 && b.events >= b.limit) {
		return "", false
	}
	s := b.pending.String()
	b.pending.Reset()
	b.events++
	b.tokens += b.pendingN
	b.pendingN = 0
	return s, true
}

// lineEnds normalises the line ends of a token stream to LF, also when a
// CRLF is split across two tokens. SSE data carries LF only (a decoder
// turns CR and CRLF into LF), so normalising at the source keeps the
// streamed tokens and the final text identical.
type lineEnds struct{ afterCR bool }

func (l *lineEnds) normalize(s string) string {
	if l.afterCR && strings.HasPrefix(s, "\n") {
		s = s[1:]
	}
	l.afterCR = strings.HasSuffix(s, "\r")
	if strings.IndexByte(s, '\r') < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}
