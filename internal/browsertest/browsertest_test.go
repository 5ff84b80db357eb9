package browsertest_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/browsertest"
)

func TestChromiumLoadsAPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<title>ok</title><p id="p">hello</p><script>document.getElementById("p").textContent += " from js"</script>`))
	}))
	defer srv.Close()
	ctx := browsertest.New(t, 30*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text("#p"))
	if err != nil {
		t.Fatal(err)
	}
	if text != "hello from js" {
		t.Fatalf("page text = %q, want %q", text, "hello from js")
	}
}
