package logtest

import (
	"log/slog"
	"strings"
	"testing"
)

func TestRecorder(t *testing.T) {
	r := New()
	log := r.Logger().With("a", 1).WithGroup("g")
	log.Info("started", "x", 2)
	log.Warn("broker down")
	log.Error("broker down again")
	if n := r.Count("broker down"); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
	if got := strings.Join(r.Messages(slog.LevelWarn), "|"); got != "broker down|broker down again" {
		t.Errorf("Messages(warn) = %q", got)
	}
	if got := strings.Join(r.Take(), "|"); got != "INFO started|WARN broker down|ERROR broker down again" {
		t.Errorf("Take = %q", got)
	}
	log.Info("later")
	if got := r.Take(); len(got) != 1 || got[0] != "INFO later" {
		t.Errorf("second Take = %q", got)
	}
}
