package memory

import "container/heap"

// The byte bound is shared fairly (see pubsub.Retention.MaxBytes): while
// history is over it, the oldest message of the topic with the most
// evictable bytes leaves that topic's history. A topic's evictable bytes
// are those of every message it holds but its newest, which the bound
// never evicts. The topics with evictable bytes are kept in a max-heap
// (only when Retention.MaxBytes is set).

// fairHeap is a max-heap of topic logs by evictable bytes.
type fairHeap []*topicLog

func (h fairHeap) Len() int           { return len(h) }
func (h fairHeap) Less(i, j int) bool { return h[i].evictable > h[j].evictable }
func (h fairHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *fairHeap) Push(x any) {
	tl := x.(*topicLog)
	tl.hidx = len(*h)
	*h = append(*h, tl)
}
func (h *fairHeap) Pop() any {
	old := *h
	tl := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	tl.hidx = -1
	return tl
}

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
	if b.retention.MaxBytes <= 0 {
		return
	}
	tl.evictable = tl.evictableBytes()
	switch {
	case tl.evictable > 0 && tl.hidx < 0:
		heap.Push(&b.fair, tl)
	case tl.evictable > 0:
		heap.Fix(&b.fair, tl.hidx)
	case tl.hidx >= 0:
		heap.Remove(&b.fair, tl.hidx)
	}
}

// enforceBytes evicts until history fits Retention.MaxBytes or nothing is
// left to evict but the topics' newest messages. b.mu is held.
func (b *Broker) enforceBytes() {
	for b.bytes > b.retention.MaxBytes && len(b.fair) > 0 {
		tl := b.fair[0]
		b.dropFront(tl)
		b.fix(tl)
	}
}
