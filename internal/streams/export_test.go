package streams

// SetPlanPage sets how many messages a catch-up read takes per read
// transaction, for a test, and returns the function that restores it.
func SetPlanPage(n int) (restore func()) {
	old := planPage
	planPage = n
	return func() { planPage = old }
}
