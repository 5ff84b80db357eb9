// Package logtest records what code logs through log/slog, for tests that
// check what an operator would read.
package logtest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Record is one line logged.
type Record struct {
	Level   slog.Level
	Message string
}

// String returns the record as "LEVEL message".
func (r Record) String() string { return r.Level.String() + " " + r.Message }

// Recorder is a slog.Handler that keeps every record (level and message;
// attributes are dropped). Its methods are safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	records []Record
	taken   int
}

var _ slog.Handler = (*Recorder)(nil)

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{} }

// Logger returns a logger that writes to r.
func (r *Recorder) Logger() *slog.Logger { return slog.New(r) }

// Enabled implements slog.Handler: every level is recorded.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.records = append(r.records, Record{Level: rec.Level, Message: rec.Message})
	r.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler.
func (r *Recorder) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup implements slog.Handler.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Count returns how many messages contain s.
func (r *Recorder) Count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.records {
		if strings.Contains(rec.Message, s) {
			n++
		}
	}
	return n
}

// Messages returns the messages logged at min or above, in order.
func (r *Recorder) Messages(min slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.records {
		if rec.Level >= min {
			out = append(out, rec.Message)
		}
	}
	return out
}

// Take returns the records logged since the last Take, as "LEVEL message".
func (r *Recorder) Take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.records[r.taken:] {
		out = append(out, rec.String())
	}
	r.taken = len(r.records)
	return out
}
