package chat_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/browsertest"
)

// mdResult is what the page made of one input: the HTML of the rendered
// nodes, and what is not allowed in it.
type mdResult struct {
	HTML string   `json:"html"`
	Bad  []string `json:"bad"`
}

// renderMarkdown renders every input with the page's own markdown.js, in
// Chromium, served by Herald at /chat/markdown.js (with the page's CSP).
// Each result is also put into the document, so that an element that runs
// code would run it.
func renderMarkdown(t *testing.T, inputs map[string]string) map[string]mdResult {
	t.Helper()
	srv := start(t, nil, nil)
	ctx := browsertest.New(t, 60*time.Second)
	console := browsertest.WatchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/chat"), chromedp.WaitVisible(chromedp.ID("question"))); err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(inputs)
	out := browsertest.Eval[map[string]mdResult](t, ctx, `(async (inputs) => {
		const md = await import("/chat/markdown.js");
		const tags = new Set(["P", "BR", "STRONG", "EM", "DEL", "CODE", "PRE", "UL", "OL", "LI", "A", "H3", "H4", "H5", "H6", "BLOCKQUOTE", "HR"]);
		const attrs = new Set(["href", "rel", "target", "start", "data-lang"]);
		const out = {};
		for (const [name, src] of Object.entries(inputs)) {
			const div = document.createElement("div");
			div.append(md.render(src));
			const bad = [];
			for (const e of div.querySelectorAll("*")) {
				if (!tags.has(e.tagName)) bad.push("element " + e.tagName);
				for (const a of e.attributes) if (!attrs.has(a.name)) bad.push("attribute " + a.name);
				if (e.tagName === "A" && !/^https?:\/\//.test(e.getAttribute("href"))) bad.push("href " + e.getAttribute("href"));
			}
			document.body.append(div);
			out[name] = { html: div.innerHTML, bad };
		}
		// Give anything that would run (an onerror, a script) its chance.
		await new Promise((r) => setTimeout(r, 100));
		if (window.__xss) out.__xss = { html: "", bad: ["code ran: " + window.__xss] };
		return out;
	})(`+string(in)+`)`)
	console.NoErrors(t)
	return out
}

const linkAttrs = ` rel="noopener noreferrer nofollow" target="_blank"`

// The renderer, case by case: the Markdown a model writes becomes the
// elements it means.
func TestMarkdownRenders(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"emphasis":         {"Hello **world** and *you* and __this__ and _that_", `<p>Hello <strong>world</strong> and <em>you</em> and <strong>this</strong> and <em>that</em></p>`},
		"strike":           {"~~gone~~ here", `<p><del>gone</del> here</p>`},
		"nested emphasis":  {"**bold with *em* inside**", `<p><strong>bold with <em>em</em> inside</strong></p>`},
		"inline code":      {"`a < b` and ``x ` y``", `<p><code>a &lt; b</code> and <code>x ` + "`" + ` y</code></p>`},
		"code keeps marks": {"`**not bold**`", `<p><code>**not bold**</code></p>`},
		"list": {"- one\n- two\n  - nested\n- three",
			`<ul><li>one</li><li>two<ul><li>nested</li></ul></li><li>three</li></ul>`},
		"star list":      {"* a\n* b", `<ul><li>a</li><li>b</li></ul>`},
		"ordered":        {"1. a\n2. b", `<ol><li>a</li><li>b</li></ol>`},
		"ordered start":  {"3. c\n4. d", `<ol start="3"><li>c</li><li>d</li></ol>`},
		"blank in list":  {"- a\n\n- b", `<ul><li>a</li><li>b</li></ul>`},
		"list then text": {"- a\n- b\n\nafter", `<ul><li>a</li><li>b</li></ul><p>after</p>`},
		"fence": {"```js\nlet x = '<b>';\n\n  indented\n```\nafter",
			`<pre><code data-lang="js">let x = '&lt;b&gt;';` + "\n\n" + `  indented</code></pre><p>after</p>`},
		"tilde fence":     {"~~~\ncode\n~~~", `<pre><code>code</code></pre>`},
		"unclosed fence":  {"```\nstill streaming", `<pre><code>still streaming</code></pre>`},
		"link":            {"[Herald](https://example.com/a?b=1&c=2)", `<p><a href="https://example.com/a?b=1&amp;c=2"` + linkAttrs + `>Herald</a></p>`},
		"link with title": {`[x](https://example.com "the title")`, `<p><a href="https://example.com/"` + linkAttrs + `>x</a></p>`},
		"link label marks": {"[**bold** `code`](http://example.com)",
			`<p><a href="http://example.com/"` + linkAttrs + `><strong>bold</strong> <code>code</code></a></p>`},
		"autolink": {"<https://example.com/x>", `<p><a href="https://example.com/x"` + linkAttrs + `>https://example.com/x</a></p>`},
		"bare url": {"see https://example.com/x. Or (https://example.com/y)",
			`<p>see <a href="https://example.com/x"` + linkAttrs + `>https://example.com/x</a>. Or (<a href="https://example.com/y"` + linkAttrs + `>https://example.com/y</a>)</p>`},
		"image as link":  {"![a cat](https://example.com/cat.png)", `<p><a href="https://example.com/cat.png"` + linkAttrs + `>a cat</a></p>`},
		"headings":       {"# One\n## Two\n###### Six", `<h3>One</h3><h4>Two</h4><h6>Six</h6>`},
		"quote":          {"> quoted\n> more\n\nafter", `<blockquote><p>quoted<br>more</p></blockquote><p>after</p>`},
		"rule":           {"a\n\n---\n\nb", `<p>a</p><hr><p>b</p>`},
		"line breaks":    {"line one\nline two", `<p>line one<br>line two</p>`},
		"paragraphs":     {"para one\n\n\npara two", `<p>para one</p><p>para two</p>`},
		"intraword _":    {"snake_case_name and a * b * c", `<p>snake_case_name and a * b * c</p>`},
		"unclosed marks": {"**unclosed and `open", `<p>**unclosed and ` + "`" + `open</p>`},
		"escapes":        {`\*not em\* and \[not a link\](x)`, `<p>*not em* and [not a link](x)</p>`},
		"spaces":         {"* not em *", `<ul><li>not em *</li></ul>`},
		"crlf":           {"a\r\nb\r\n\r\nc", `<p>a<br>b</p><p>c</p>`},
		"empty":          {"", ``},
	}
	inputs := map[string]string{}
	for name, c := range cases {
		inputs[name] = c.in
	}
	got := renderMarkdown(t, inputs)
	for name, c := range cases {
		r := got[name]
		if r.HTML != c.want || len(r.Bad) > 0 {
			t.Errorf("%s: %q\n got %s %v\nwant %s", name, c.in, r.HTML, r.Bad, c.want)
		}
	}
}

// XSS attempts, from the model or the user: none makes an element or an
// attribute outside the renderer's fixed set, a link to anything but http
// or https, or code that runs.
func TestMarkdownIsSafe(t *testing.T) {
	attempts := []string{
		`<img src=x onerror="window.__xss='img'">`,
		`<script>window.__xss='script'</script>`,
		`<svg onload="window.__xss='svg'"></svg>`,
		`<a href="javascript:window.__xss='a'">x</a>`,
		`<iframe src="javascript:window.__xss='iframe'"></iframe>`,
		`[click](javascript:window.__xss='link')`,
		`[click](JaVaScRiPt:window.__xss='case')`,
		`[click](  javascript:window.__xss='space')`,
		`[click](java&#115;cript:window.__xss='entity')`,
		"[click](java\tscript:window.__xss='tab')",
		`[click](data:text/html,<script>window.__xss='data'</script>)`,
		`[click](vbscript:msgbox)`,
		`[click](//evil.example/x)`,
		`[click](/chat/stream/x)`,
		`<javascript:window.__xss='auto'>`,
		`![x](javascript:window.__xss='image')`,
		`![x](https://example.com/x.png" onerror="window.__xss='imgattr')`,
		`[x](https://example.com/" onmouseover="window.__xss='quote')`,
		`[<img src=x onerror="window.__xss='label'">](https://example.com)`,
		`**<img src=x onerror="window.__xss='strong'">**`,
		"```\n</code></pre><img src=x onerror=\"window.__xss='fence'\">\n```",
		"`</code><img src=x onerror=\"window.__xss='code'\">`",
		"> <img src=x onerror=\"window.__xss='quote'\">",
		"- <img src=x onerror=\"window.__xss='item'\">",
		`# <img src=x onerror="window.__xss='heading'">`,
		`javascript:window.__xss='bare'`,
		`https://example.com/"><img src=x onerror="window.__xss='bareurl'">`,
		strings.Repeat(">", 200) + " deep",
		strings.Repeat("- ", 200) + "deep",
		strings.Repeat("[", 500) + "x" + strings.Repeat("](https://example.com)", 10),
		strings.Repeat("*a ", 3000) + strings.Repeat("_b ", 3000),
	}
	inputs := map[string]string{}
	for i, a := range attempts {
		inputs[string(rune('A'+i%26))+strings.Repeat("'", i/26)] = a
	}
	start := time.Now()
	got := renderMarkdown(t, inputs)
	if r, ok := got["__xss"]; ok {
		t.Fatalf("code ran: %v", r.Bad)
	}
	for name, in := range inputs {
		r := got[name]
		if len(r.Bad) > 0 {
			t.Errorf("%.60q: %v in %s", in, r.Bad, r.HTML)
		}
		// Markup in the input is text in the output.
		if strings.Contains(in, "<img") && strings.Contains(r.HTML, "<img") {
			t.Errorf("%.60q made an img: %s", in, r.HTML)
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("rendering took %v", d)
	}
}
