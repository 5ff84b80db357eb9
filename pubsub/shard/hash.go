package shard

// Of returns the shard of topic among n: a jump consistent hash of the
// topic's FNV-1a 64-bit hash. It never changes: ids and stored data depend
// on it.
func Of(topic string, n int) int {
	if n <= 1 {
		return 0
	}
	const offset64, prime64 = 14695981039346656037, 1099511628211
	key := uint64(offset64)
	for i := 0; i < len(topic); i++ {
		key ^= uint64(topic[i])
		key *= prime64
	}
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}
