package memory

// The byte bound is shared fairly (see pubsub.Retention.MaxBytes): while
// history is over it, the oldest message of the topic with the most
// evictable bytes leaves that topic's history. A topic's evictable bytes
// are those of every message it holds but its newest, which the bound
// never evicts. The topics with evictable bytes are kept in a max-heap
// (only when Retention.MaxBytes is set).

// evictableBytes returns the bytes of tl's messages but its newest.
func (tl *topicLog) evictableBytes() int64 {
	if len(tl.log) < 2 {
		return 0
	}
	return tl.bytes - int64(tl.log[len(tl.log)-1].size)
}

// fix brings tl's place in the heap up to date after its log changed.
// b.mu is held.
func (b *Broker) fix(tl *topicLog) {
	if b.retention.MaxBytes > 0 {
		b.fair.Set(tl, tl.evictableBytes())
	}
}

// enforceBytes evicts until history fits Retention.MaxBytes or nothing is
// left to evict but the topics' newest messages. b.mu is held.
func (b *Broker) enforceBytes() {
	for b.bytes > b.retention.MaxBytes {
		tl, ok := b.fair.Top()
		if !ok {
			return
		}
		b.dropFront(tl)
		b.fix(tl)
	}
}
