// Command report summarises the JSON results of scripts/bench.sh: a Markdown
// table of Herald beside the go-sse baseline with ratios, and a plot of p99
// latency against the number of subscribers (SVG, and PNG when Chromium is
// there to render it).
//
//	go run ./internal/bench/report bench-results
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/heraldpush/herald/internal/bench"
)

func main() {
	dir := "bench-results"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	results := map[string]bench.Result{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var r bench.Result
		if json.Unmarshal(raw, &r) == nil {
			results[strings.TrimSuffix(filepath.Base(f), ".json")] = r
		}
	}
	if len(results) == 0 {
		fmt.Fprintln(os.Stderr, "report: no results in", dir)
		os.Exit(1)
	}
	labels := map[string]bool{}
	for k := range results {
		labels[k[:strings.LastIndex(k, "-")]] = true
	}
	names := make([]string, 0, len(labels))
	for l := range labels {
		names = append(names, l)
	}
	sort.Strings(names)
	fmt.Println("| run | server | CPU/delivery µs | p50 ms | p99 ms | max ms | publishes/s | deliveries/s | RSS/conn KiB | lost | dup | order |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, l := range names {
		for _, s := range []string{"herald", "baseline", "floor"} {
			r, ok := results[l+"-"+s]
			if !ok {
				continue
			}
			fmt.Printf("| %s | %s | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %.1f | %d | %d | %d |\n", l, s,
				r.CPUPerDeliveryMicros, r.LatencyP50, r.LatencyP99, r.LatencyMax, r.PublishRate, r.DeliveryRate,
				r.RSSPerConnBytes/1024, r.Lost, r.Duplicated, r.OutOfOrder)
		}
		h, hok := results[l+"-herald"]
		b, bok := results[l+"-baseline"]
		if hok && bok {
			fmt.Printf("| %s | **ratio herald/baseline** | %s | %s | %s | | %s | %s | %s | | | |\n", l,
				ratio(h.CPUPerDeliveryMicros, b.CPUPerDeliveryMicros), ratio(h.LatencyP50, b.LatencyP50), ratio(h.LatencyP99, b.LatencyP99),
				ratio(h.PublishRate, b.PublishRate), ratio(h.DeliveryRate, b.DeliveryRate), ratio(h.RSSPerConnBytes, b.RSSPerConnBytes))
		}
		if f, ok := results[l+"-floor"]; hok && ok {
			fmt.Printf("| %s | **ratio herald/floor** | %s | %s | %s | | %s | %s | | | | |\n", l,
				ratio(h.CPUPerDeliveryMicros, f.CPUPerDeliveryMicros), ratio(h.LatencyP50, f.LatencyP50), ratio(h.LatencyP99, f.LatencyP99),
				ratio(h.PublishRate, f.PublishRate), ratio(h.DeliveryRate, f.DeliveryRate))
		}
	}
	for _, l := range names {
		if r, ok := results[l+"-herald"]; ok && len(r.Extra) > 0 {
			fmt.Printf("\n%s extra: %v\n", l, r.Extra)
		}
	}
	svg := plot(results)
	svgPath := filepath.Join(dir, "p99-vs-subscribers.svg")
	if err := os.WriteFile(svgPath, []byte(svg), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pngPath := filepath.Join(dir, "p99-vs-subscribers.png")
	if err := render(svgPath, pngPath); err != nil {
		fmt.Fprintln(os.Stderr, "report: PNG not rendered:", err)
	} else {
		fmt.Println("\nplot:", pngPath)
	}
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// plot draws p99 latency against subscribers (plot-1k/5k/10k, or else
// fanout-1k/5k/10k) for both servers, on a log y axis.
func plot(results map[string]bench.Result) string {
	const w, h, left, bottom, top, right = 720, 420, 70, 50, 40, 150
	series := "plot"
	if _, ok := results["plot-1k-herald"]; !ok {
		series = "fanout"
	}
	xs := []struct {
		label string
		n     float64
	}{{series + "-1k", 1000}, {series + "-5k", 5000}, {series + "-10k", 10000}}
	rate := results[series+"-1k-herald"].PublishRate
	maxY := 1.0
	for _, s := range []string{"herald", "baseline"} {
		for _, x := range xs {
			if r, ok := results[x.label+"-"+s]; ok && r.LatencyP99 > maxY {
				maxY = r.LatencyP99
			}
		}
	}
	// log10 scale from 0.1 ms to the next power of ten above maxY.
	lo, hi := -1.0, 0.0
	for p := 1.0; p < maxY; p *= 10 {
		hi++
	}
	if hi < 1 {
		hi = 1
	}
	px := func(n float64) float64 { return left + (n-1000)/(10000-1000)*float64(w-left-right) }
	py := func(v float64) float64 {
		if v < 0.1 {
			v = 0.1
		}
		l := log10(v)
		return float64(h-bottom) - (l-lo)/(hi-lo)*float64(h-bottom-top)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="13">`, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">p99 publish→receive latency vs SSE subscribers (%.0f events/s, 100 B)</text>`, left, rate)
	for p := lo; p <= hi; p++ {
		y := py(pow10(p))
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, left, w-right, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g ms</text>`, left-6, y+4, pow10(p))
	}
	for _, x := range xs {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`, px(x.n), h-bottom+20, x.n)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">subscribers</text>`, (left+w-right)/2, h-10)
	colors := map[string]string{"herald": "#1f77b4", "baseline": "#d62728"}
	names := map[string]string{"herald": "Herald", "baseline": "go-sse baseline"}
	for i, s := range []string{"herald", "baseline"} {
		var pts []string
		for _, x := range xs {
			if r, ok := results[x.label+"-"+s]; ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(x.n), py(r.LatencyP99)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`, px(x.n), py(r.LatencyP99), colors[s])
				// Labels go left of the last points, clear of the legend.
				lx, anchor := px(x.n)+6, "start"
				if x.n == 10000 {
					lx, anchor = px(x.n)-6, "end"
				}
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s" font-size="11" text-anchor="%s">%.1f</text>`, lx, py(r.LatencyP99)-6, colors[s], anchor, r.LatencyP99)
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(pts, " "), colors[s])
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="3" fill="%s"/><text x="%d" y="%d">%s</text>`, w-right+14, top+20+i*22, colors[s], w-right+34, top+25+i*22, names[s])
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func log10(v float64) float64 { return math.Log10(v) }

func pow10(p float64) float64 { return math.Pow(10, p) }

// render turns the SVG into a PNG with headless Chromium.
func render(svgPath, pngPath string) error {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(svgPath)
	out, _ := filepath.Abs(pngPath)
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(os.TempDir(), "herald-report-chromium"),
		"--window-size=720,420", "--screenshot="+out, "file://"+abs)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, b)
	}
	return nil
}
