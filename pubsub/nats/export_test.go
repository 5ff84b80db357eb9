package nats

// TrimmerState reports, for tests, whether b's history trimmer follows the
// stream and how often it asked the stream's size while asleep; ok is
// false when b has no trimmer (no Retention.MaxBytes).
func TrimmerState(b *Broker) (awake bool, looks int64, ok bool) {
	if b.trim == nil {
		return false, 0, false
	}
	return b.trim.awake.Load(), b.trim.looks.Load(), true
}

// TrimmerHolds reports, for tests, whether b holds the trimmer's lease.
func TrimmerHolds(b *Broker) bool {
	return b.trim != nil && b.trim.lease.holding.Load()
}

// FastSent reports, for tests, how many messages b sent with the stream's
// expected last sequence instead of the subject's.
func FastSent(b *Broker) int64 { return b.fast.sent.Load() }
