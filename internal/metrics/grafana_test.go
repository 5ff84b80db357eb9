package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

// TestGrafanaDashboardUsesRealMetrics checks that every metric the example
// Grafana dashboard (docs/grafana-dashboard.json) queries is one Herald
// exposes, so the dashboard cannot drift from the code.
func TestGrafanaDashboardUsesRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	m, _ := newMetrics(t)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exposed := map[string]bool{}
	for _, mf := range mfs {
		exposed[mf.GetName()] = true
		if mf.GetType().String() == "HISTOGRAM" {
			exposed[mf.GetName()+"_bucket"] = true
		}
	}
	name := regexp.MustCompile(`\b((?:herald|go|process)_[a-z_]+)\b`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllStringSubmatch(tg.Expr, -1) {
				n++
				if !exposed[m[1]] {
					t.Errorf("panel %q queries %s, which Herald does not expose", p.Title, m[1])
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no metric found in the dashboard")
	}
}
