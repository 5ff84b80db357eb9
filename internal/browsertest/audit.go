package browsertest

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// MinContrast is the contrast every text of Herald's pages must reach
// against its background: WCAG 2's 4.5:1 (level AA for body text; it is
// asked of large text too).
const MinContrast = 4.5

//go:embed audit.js
var auditJS string

// Report is what Audit found wrong on a page. Its zero value is a page
// without problems.
type Report struct {
	// Checked counts the pieces of text whose contrast was measured.
	Checked int `json:"checked"`
	// Contrast lists the text under MinContrast.
	Contrast []ContrastProblem `json:"contrast"`
	// UnknownBackground lists text whose contrast cannot be measured (over
	// a background image, or in a colour the audit cannot parse).
	UnknownBackground []struct {
		Element string `json:"element"`
		Text    string `json:"text"`
		Why     string `json:"why"`
	} `json:"unknownBackground"`
	// Unlabelled lists controls without an accessible name.
	Unlabelled []string `json:"unlabelled"`
	// Overflow is set when the page scrolls horizontally.
	Overflow *struct {
		Viewport    int      `json:"viewport"`
		ScrollWidth int      `json:"scrollWidth"`
		Elements    []string `json:"elements"`
	} `json:"overflow"`
}

// ContrastProblem is a piece of text under MinContrast.
type ContrastProblem struct {
	Element    string  `json:"element"`
	Text       string  `json:"text"`
	What       string  `json:"what"` // text, value, placeholder, svg text
	Color      string  `json:"color"`
	Background string  `json:"background"`
	Ratio      float64 `json:"ratio"`
}

// Problems returns one line per problem of the report.
func (r Report) Problems() []string {
	var out []string
	for _, c := range r.Contrast {
		out = append(out, fmt.Sprintf("contrast %.2f:1 (under %.1f:1) of %s %q in %s: %s on %s", c.Ratio, MinContrast, c.What, c.Text, c.Element, c.Color, c.Background))
	}
	for _, u := range r.UnknownBackground {
		out = append(out, fmt.Sprintf("contrast not measurable (%s) of %q in %s", u.Why, u.Text, u.Element))
	}
	for _, u := range r.Unlabelled {
		out = append(out, "control without a label: "+u)
	}
	if o := r.Overflow; o != nil {
		out = append(out, fmt.Sprintf("horizontal scrolling: the page is %d px wide in a %d px viewport; sticking out: %s", o.ScrollWidth, o.Viewport, strings.Join(o.Elements, "; ")))
	}
	return out
}

// Audit checks the page as it is now: text contrast (MinContrast), labels
// of controls, and horizontal scrolling. It waits for running transitions
// to end first.
func Audit(ctx context.Context) (Report, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[Report](fmt.Sprintf("(%s)(%v)", auditJS, MinContrast), chromedp.EvalAwaitPromise))
}

// Layout is a way a page is looked at: a viewport and a colour scheme.
type Layout struct {
	// Name is short and file-name safe, e.g. "phone-dark".
	Name          string
	Width, Height int64
	// Phone emulates a mobile device (the page's meta viewport applies,
	// scrollbars overlay).
	Phone bool
	// Scheme is the emulated prefers-color-scheme: "light" or "dark".
	Scheme string
}

// Layouts returns the layouts every page is checked in: 1280 and 390 px
// wide, light and dark, and the narrowest phone the pages are made for,
// 360 px.
func Layouts() []Layout {
	return []Layout{
		{Name: "desktop-light", Width: 1280, Height: 800, Scheme: "light"},
		{Name: "desktop-dark", Width: 1280, Height: 800, Scheme: "dark"},
		{Name: "phone-light", Width: 390, Height: 844, Phone: true, Scheme: "light"},
		{Name: "phone-dark", Width: 390, Height: 844, Phone: true, Scheme: "dark"},
		{Name: "narrow-light", Width: 360, Height: 740, Phone: true, Scheme: "light"},
	}
}

// Apply sets the tab's viewport and colour scheme to the layout's.
func (l Layout) Apply(ctx context.Context) error {
	var opts []chromedp.EmulateViewportOption
	if l.Phone {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(l.Width, l.Height, opts...)); err != nil {
		return fmt.Errorf("browsertest: viewport %dx%d: %w", l.Width, l.Height, err)
	}
	return SetColorScheme(ctx, l.Scheme)
}

// SetColorScheme emulates prefers-color-scheme: "light" or "dark" ("" ends
// the emulation).
func SetColorScheme(ctx context.Context, scheme string) error {
	params := emulation.SetEmulatedMediaParams{}
	if scheme != "" {
		params.Features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}
	}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, params); err != nil {
		return fmt.Errorf("browsertest: color scheme %q: %w", scheme, err)
	}
	return nil
}

// CheckLayouts shows the page in every layout of Layouts, audits it in
// each (a problem fails the test, naming the layout), and calls each, if
// not nil, for the page's own checks in that layout. It leaves the tab in
// the last layout.
func CheckLayouts(t testing.TB, ctx context.Context, each func(Layout)) {
	t.Helper()
	for _, l := range Layouts() {
		if err := l.Apply(ctx); err != nil {
			t.Fatal(err)
		}
		r, err := Audit(ctx)
		if err != nil {
			t.Fatalf("%s: audit: %v", l.Name, err)
		}
		if r.Checked == 0 {
			t.Errorf("%s: the audit measured no text", l.Name)
		}
		for _, p := range r.Problems() {
			t.Errorf("%s: %s", l.Name, p)
		}
		if each != nil {
			each(l)
		}
	}
}

// UpdateScreenshots reports whether tests should write their screenshots
// to docs/img: the environment variable HERALD_UPDATE_SCREENSHOTS is set.
func UpdateScreenshots() bool {
	return os.Getenv("HERALD_UPDATE_SCREENSHOTS") != "" || os.Getenv("HERALD_UPDATE_SCREENSHOT") != ""
}

// Screenshot writes a PNG of the whole page, scrolled to its top, to path,
// if UpdateScreenshots.
func Screenshot(t testing.TB, ctx context.Context, path string) {
	t.Helper()
	screenshot(t, ctx, path, `window.scrollTo(0, 0)`, chromedp.FullScreenshot(100))
}

// ScreenshotViewport writes a PNG of what the viewport shows now to path,
// if UpdateScreenshots: a page with sticky parts (a chat's question box)
// as a reader sees it.
func ScreenshotViewport(t testing.TB, ctx context.Context, path string) {
	t.Helper()
	screenshot(t, ctx, path, `0`, chromedp.CaptureScreenshot())
}

func screenshot(t testing.TB, ctx context.Context, path, prepare string, capture chromedp.Action[[]byte]) {
	t.Helper()
	if !UpdateScreenshots() {
		return
	}
	// No focus ring or caret in the picture.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(), `+prepare)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, capture)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}

// Console collects what a tab writes to its console: calls of the console
// API, uncaught exceptions and entries of the browser log (failed loads,
// CSP violations).
type Console struct {
	mu      sync.Mutex
	msgs    []chromedp.ConsoleMessage
	changed chan struct{} // closed and replaced on each message
	done    chan struct{}
}

// WatchConsole starts collecting the tab's console messages, until the test
// ends. Call it before the page loads so that nothing is missed.
func WatchConsole(t testing.TB, ctx context.Context) *Console {
	t.Helper()
	c := &Console{done: make(chan struct{}), changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	msgs := chromedp.Console(ctx)
	go func() {
		defer close(c.done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
		if t.Failed() {
			for _, m := range c.All() {
				t.Logf("browser console: %s", m)
			}
		}
	})
	return c
}

// All returns every message so far, as lines.
func (c *Console) All() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.msgs))
	for _, m := range c.msgs {
		line := m.String()
		if m.URL != "" {
			line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line)
		}
		out = append(out, line)
	}
	return out
}

// Errors returns the errors so far: console.error calls, uncaught
// exceptions and error entries of the browser log.
func (c *Console) Errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			line := m.String()
			if m.URL != "" {
				line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line)
			}
			out = append(out, line)
		}
	}
	return out
}

// WaitErrors waits until ok accepts the errors so far, and fails the test
// if that takes longer than timeout.
func (c *Console) WaitErrors(t testing.TB, timeout time.Duration, ok func(errors []string) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		errs := c.Errors()
		if ok(errs) {
			return
		}
		select {
		case <-changed:
		case <-c.done:
			t.Fatalf("browsertest: console closed; errors %q", errs)
		case <-deadline.C:
			t.Fatalf("browsertest: console errors after %v: %q", timeout, errs)
		}
	}
}

// NoErrors fails the test if the console has errors.
func (c *Console) NoErrors(t testing.TB) {
	t.Helper()
	for _, e := range c.Errors() {
		t.Errorf("browser console: %s", e)
	}
}
