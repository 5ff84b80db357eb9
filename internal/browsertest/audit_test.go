package browsertest_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/browsertest"
)

// The audit finds what it is for, and nothing on a clean page: each case is
// a page with one known problem (or none).
func TestAuditFindsProblems(t *testing.T) {
	pages := map[string]string{
		"/clean": `<style>a{color:inherit} body{background:#fff;color:#222} @media (prefers-color-scheme: dark){body{background:#111;color:#eee}}</style>
			<p>Readable text</p><label for="q">Question</label><input id="q" value="typed"><button>Send</button><a href="/x">a link</a>
			<span style="position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)">hidden for sight only</span>`,
		// #888 on white is 3.54:1.
		"/grey": `<style>body{background:#fff}</style><p style="color:#888">Grey text</p>`,
		// Half-transparent dark text on white: #222 at 30 % is light grey.
		"/faded": `<style>body{background:#fff}</style><p style="color:#222;opacity:.3">Faded text</p>`,
		// Fine in light, unreadable in dark (dark text on a dark background).
		"/dark-only": `<style>body{background:#fff;color:#333} @media (prefers-color-scheme: dark){body{background:#111}}</style><p>Theme text</p>`,
		"/placeholder": `<style>body{background:#fff}</style><label for="q">Q</label><input id="q" placeholder="Type here" style="color:#000">
			<style>#q::placeholder{color:#bbb}</style>`,
		"/unlabelled": `<style>body{background:#fff;color:#000}</style><button></button><input id="i"><p>text</p>`,
		"/wide":       `<meta name="viewport" content="width=device-width"><style>body{background:#fff;color:#000;margin:0}</style><div id="w" style="width:600px">Too wide</div>`,
		"/image":      `<style>body{background:#fff}</style><p style="background-image:linear-gradient(#000,#fff);color:#fff">Over an image</p>`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<!doctype html><html><head><title>t</title></head><body>" + body + "</body></html>"))
	}))
	defer srv.Close()
	ctx := browsertest.New(t, 60*time.Second)

	for _, tc := range []struct {
		path   string
		layout string
		want   string // a problem containing this; "" for none
	}{
		{"/clean", "desktop-light", ""},
		{"/clean", "desktop-dark", ""},
		{"/clean", "phone-light", ""},
		{"/grey", "desktop-light", `contrast 3.54:1`},
		{"/faded", "desktop-light", `"Faded text"`},
		{"/dark-only", "desktop-light", ""},
		{"/dark-only", "desktop-dark", `"Theme text"`},
		{"/placeholder", "desktop-light", `placeholder "Type here"`},
		{"/unlabelled", "desktop-light", `control without a label: body > button`},
		{"/unlabelled", "desktop-light", `control without a label: input#i`},
		{"/wide", "desktop-light", ""},
		{"/wide", "phone-light", `horizontal scrolling: the page is 600 px wide in a 390 px viewport; sticking out: div#w`},
		{"/image", "desktop-light", `contrast not measurable (text over a background image)`},
	} {
		t.Run(tc.path+"/"+tc.layout, func(t *testing.T) {
			i := slices.IndexFunc(browsertest.Layouts(), func(l browsertest.Layout) bool { return l.Name == tc.layout })
			if err := browsertest.Layouts()[i].Apply(ctx); err != nil {
				t.Fatal(err)
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+tc.path)); err != nil {
				t.Fatal(err)
			}
			r, err := browsertest.Audit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.Checked == 0 && tc.path != "/image" {
				t.Error("no text measured")
			}
			problems := r.Problems()
			if tc.want == "" {
				if len(problems) > 0 {
					t.Errorf("problems on a clean page: %q", problems)
				}
				return
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("problems %q, want one with %q", problems, tc.want)
			}
		})
	}
}

// The console watcher sees errors and uncaught exceptions, not logs.
func TestConsoleErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<title>c</title><script>console.log("fine"); console.error("broken thing"); setTimeout(() => { throw new Error("uncaught one") });</script><img src="/missing.png" alt="">`))
	}))
	defer srv.Close()
	ctx := browsertest.New(t, 30*time.Second)
	console := browsertest.WatchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	want := []string{"broken thing", "uncaught one", "404"}
	console.WaitErrors(t, 10*time.Second, func(errs []string) bool {
		all := strings.Join(errs, "\n")
		return !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(all, w) })
	})
	if errs := strings.Join(console.Errors(), "\n"); strings.Contains(errs, "fine") {
		t.Errorf("a console.log counted as an error: %s", errs)
	}
}
