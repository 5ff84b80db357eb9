package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/dashboard"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/sse"
)

// openStream subscribes to topic over SSE and keeps reading until the test ends.
func openStream(t *testing.T, base, topic string) {
	t.Helper()
	testkit.Subscribe(t, nil, base+"/events?topic="+topic, nil)
}

func TestStreamSendsHistoryThenSamples(t *testing.T) {
	srv := apptest.Start(t, nil)
	openStream(t, srv.URL, "news")
	testkit.Publish(t, srv.URL, "news", "hello")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/dashboard/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type = %q", ct)
	}
	var sawHistory bool
	samples := 0
	for ev, err := range sse.Read(resp.Body) {
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Type {
		case "history":
			var hist []dashboard.Sample
			if err := json.Unmarshal([]byte(ev.Data), &hist); err != nil {
				t.Fatal(err)
			}
			sawHistory = true
		case "sample":
			if !sawHistory {
				t.Fatal("sample before history")
			}
			var s dashboard.Sample
			if err := json.Unmarshal([]byte(ev.Data), &s); err != nil {
				t.Fatal(err)
			}
			// Samples are taken every second; one taken before the
			// subscription and the publish may not show them yet.
			samples++
			// (Features may hold internal subscriptions of their own.)
			news := false
			for _, tr := range s.TopTopics {
				news = news || tr.Topic == "news" && tr.Subscribers == 1
			}
			_, chat := s.Gauges["chat_generations"]
			// This stream is counted apart from the connections.
			if s.Subscriptions >= 1 && s.Connections["sse"] == 1 && s.Published == 1 && s.Epoch != "" && news && chat && s.Dashboards == 1 {
				return
			}
			if samples == 3 {
				t.Fatalf("samples do not reflect the server: %+v", s)
			}
		}
	}
	t.Fatal("stream ended before a sample")
}

func TestDashboardOffWithAuthUnlessEnabled(t *testing.T) {
	// In development mode (the default) the dashboard is on.
	srv := apptest.Start(t, nil)
	resp, err := http.Get(srv.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("dev mode /dashboard: %s", resp.Status)
	}
	// With an admin token, the dashboard wants it.
	srv2 := apptest.Start(t, func(c *config.Server) { c.Ops.AdminToken = "tok"; c.Ops.Dashboard = true })
	for _, tc := range []struct {
		path string
		want int
	}{{"/dashboard", 401}, {"/dashboard?token=bad", 403}, {"/dashboard?token=tok", 200}} {
		resp, err := http.Get(srv2.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s, want %d", tc.path, resp.Status, tc.want)
		}
	}
}

func TestShutdownEndsDashboardStreams(t *testing.T) {
	srv := apptest.Start(t, nil)
	s := testkit.Subscribe(t, nil, srv.URL+"/dashboard/stream", nil)
	srv.Stop()
	if _, err := s.EndWithin(t, 5*time.Second); err != nil {
		t.Fatalf("dashboard stream at shutdown: %v, want a clean end", err)
	}
}

// TestDashboardInChromium opens the dashboard in a real browser: live
// figures appear, every chart has its scale and time window, the page's own
// stream is counted apart; it is checked in every layout (1280 and 390 px,
// light and dark) and its console stays free of errors. With
// HERALD_UPDATE_SCREENSHOTS set it writes docs/img/dashboard.png.
func TestDashboardInChromium(t *testing.T) {
	srv := apptest.Start(t, nil)
	for _, topic := range []string{"orders", "orders", "prices", "chat/42"} {
		openStream(t, srv.URL, topic)
	}
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				topic := []string{"orders", "prices", "orders", "chat/42"}[i%4]
				resp, err := http.PostForm(srv.URL+"/publish", map[string][]string{"topic": {topic}, "data": {"x"}})
				if err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	defer func() { close(stop); <-pubDone }()

	ctx := browsertest.New(t, 60*time.Second)
	console := browsertest.WatchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/dashboard")); err != nil {
		t.Fatal(err)
	}
	// Live figures: four subscriptions, a publish rate, the topics; three
	// samples at least, so that the charts have a window.
	browsertest.WaitFor(t, ctx, "live figures", `(() => {
		const text = (id) => document.getElementById(id).textContent;
		return document.getElementById("state").dataset.state === "open" && Number(text("subs")) >= 4 &&
			!["0", "–"].includes(text("pub")) && text("top").includes("orders") && text("top").includes("chat/42") &&
			/^−[0-9]+ s$/.test(document.querySelector("#chartPub .x-from").textContent) &&
			Number(document.querySelector("#chartPub .x-from").textContent.slice(1, -2)) >= 2;
	})()`, 20*time.Second)
	type axes struct {
		Max, Min, From, To, Label string
	}
	for _, id := range []string{"chartConns", "chartSubs", "chartPub", "chartDel"} {
		a := browsertest.Eval[axes](t, ctx, `((c) => ({max: c.querySelector(".y-max").textContent, min: c.querySelector(".y-min").textContent,
			from: c.querySelector(".x-from").textContent, to: c.querySelector(".x-to").textContent,
			label: c.querySelector("svg").getAttribute("aria-label")}))(document.getElementById("`+id+`"))`)
		if a.Max == "" || a.Max == "0" || a.Min != "0" || !strings.HasPrefix(a.From, "−") || a.To != "now" || !strings.Contains(a.Label, "the last") {
			t.Errorf("%s axes: %+v", id, a)
		}
	}
	if a := browsertest.Eval[string](t, ctx, `document.querySelector("#chartPub .y-max").textContent`); !strings.HasSuffix(a, "/s") {
		t.Errorf("publish rate scale %q: want a rate", a)
	}
	// The page's own stream: counted apart, and not among the connections
	// (four SSE subscribers).
	// (The samples of the history are from before this page came: its
	// stream counts from the next one.)
	browsertest.WaitFor(t, ctx, "this page's stream counted apart", `document.getElementById("dashboards").textContent.startsWith("+ 1 dashboard stream (this page included)")`, 5*time.Second)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById("conns").textContent`); got != "4" {
		t.Errorf("connections %q, want the 4 SSE subscribers", got)
	}

	browsertest.CheckLayouts(t, ctx, func(l browsertest.Layout) {
		if l.Name == "desktop-light" && browsertest.UpdateScreenshots() {
			// Charts with some history make a better picture.
			browsertest.WaitFor(t, ctx, "15 s of history", `Number(document.querySelector("#chartPub .x-from").textContent.replace(/[^0-9]/g, "")) >= 15`, 30*time.Second)
			browsertest.Screenshot(t, ctx, filepath.Join("..", "..", "docs", "img", "dashboard.png"))
		}
	})
	console.NoErrors(t)
}
