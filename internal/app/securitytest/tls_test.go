package securitytest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

// testCA makes a CA and a certificate it signs for 127.0.0.1 and
// localhost, writes the certificate and key as PEM files, and returns their
// paths and a pool holding the CA.
func testCA(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Herald test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return certFile, keyFile, roots
}

// streamOver opens n streams of topic over client and checks they all get
// the event published afterwards; it returns the protocols used and the
// number of distinct TCP connections.
func streamOver(t *testing.T, client *http.Client, base string, n int) (protos map[string]bool, conns int) {
	t.Helper()
	protos = make(map[string]bool)
	var mu sync.Mutex
	local := make(map[string]bool)
	var streams []*testkit.Stream
	for i := 0; i < n; i++ {
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			mu.Lock()
			local[info.Conn.LocalAddr().String()] = true
			mu.Unlock()
		}}
		req := mustReq(t, http.MethodGet, eventsURL(base, "h2"))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, resp.StatusCode)
		}
		protos[resp.Proto] = true
		streams = append(streams, testkit.NewStream(t, resp, nil))
	}
	// Publish over the same client (loopback: development mode).
	formPublish(t, client, base, "topic=h2&data=hello")
	for i, s := range streams {
		if ev, err := s.NextWithin(testkit.Timeout); err != nil || ev.Data != "hello" {
			t.Fatalf("stream %d of %d: %+v, %v; want the event", i, n, ev, err)
		}
	}
	return protos, len(local)
}

func TestHTTP2OverTLS(t *testing.T) {
	certFile, keyFile, roots := testCA(t)
	srv := apptest.Start(t, func(c *config.Server) { c.HTTP.TLSCert, c.HTTP.TLSKey = certFile, keyFile })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	protos, conns := streamOver(t, &http.Client{Transport: tr}, srv.URL, 20)
	if !protos["HTTP/2.0"] || len(protos) != 1 || conns != 1 {
		t.Fatalf("protocols %v over %d connections, want HTTP/2.0 over 1", protos, conns)
	}
	// An HTTP/1.1-only client still works.
	tr1 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	tr1.Protocols = new(http.Protocols)
	tr1.Protocols.SetHTTP1(true)
	defer tr1.CloseIdleConnections()
	if protos, _ := streamOver(t, &http.Client{Transport: tr1}, srv.URL, 2); !protos["HTTP/1.1"] {
		t.Fatalf("HTTP/1.1 client: %v", protos)
	}
	// A client that does not trust the CA is refused.
	if _, err := http.Get(srv.URL + "/ping"); err == nil {
		t.Fatal("untrusted certificate accepted")
	}
}

func TestH2C(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.HTTP.H2C = true })
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	protos, conns := streamOver(t, &http.Client{Transport: tr}, srv.URL, 20)
	if !protos["HTTP/2.0"] || conns != 1 {
		t.Fatalf("protocols %v over %d connections, want HTTP/2.0 over 1", protos, conns)
	}
	// HTTP/1.1 still works on the same port.
	if protos, _ := streamOver(t, http.DefaultClient, srv.URL, 1); !protos["HTTP/1.1"] {
		t.Fatalf("HTTP/1.1 on an h2c server: %v", protos)
	}
	// Without --h2c, a prior-knowledge HTTP/2 client is refused.
	plain := apptest.Start(t, nil)
	tr2 := &http.Transport{}
	tr2.Protocols = new(http.Protocols)
	tr2.Protocols.SetUnencryptedHTTP2(true)
	defer tr2.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: tr2, Timeout: 5 * time.Second}).Get(plain.URL + "/ping"); err == nil {
		resp.Body.Close()
		t.Fatalf("h2c accepted without --h2c: %s", resp.Proto)
	}
}

// TestChromiumStreamsOverHTTP2 opens more EventSources than the six
// connections per host a browser allows on HTTP/1.1: over HTTP/2 they all
// open and get events; over HTTP/1.1 the seventh waits.
func TestChromiumStreamsOverHTTP2(t *testing.T) {
	const n = 8
	script := fmt.Sprintf(`
window.proto = performance.getEntriesByType("navigation")[0].nextHopProtocol;
window.got = 0; window.opened = 0;
for (let i = 0; i < %d; i++) {
  const es = new EventSource("/events?topic=tabs");
  es.onopen = () => { window.opened++; };
  es.onmessage = () => { window.got++; };
}`, n)
	certFile, keyFile, roots := testCA(t)
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	// run opens the n EventSources, waits until want of them are
	// subscribed, publishes, and waits until want got the event.
	run := func(t *testing.T, client *http.Client, want int, mutate func(*config.Server)) (proto string, opened, got int) {
		srv := apptest.Start(t, mutate)
		ctx := browsertest.New(t, 60*time.Second, chromedp.IgnoreCertErrors)
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/healthz")); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](script)); err != nil {
			t.Fatal(err)
		}
		// Wait for every stream the browser opens at once.
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf("window.opened >= %d", want), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, "the streams' subscriptions", func() bool { return srv.App.Hub().TopicCounts()["tabs"] >= want })
		formPublish(t, client, srv.URL, "topic=tabs&data=x")
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf("window.got >= %d", want), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatal(err)
		}
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]any](`[window.proto, window.opened, window.got]`))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(v[0]), atoi(v[1]), atoi(v[2])
	}
	t.Run("h2", func(t *testing.T) {
		proto, opened, got := run(t, tlsClient, n, func(c *config.Server) { c.HTTP.TLSCert, c.HTTP.TLSKey = certFile, keyFile })
		if proto != "h2" || opened != n || got != n {
			t.Fatalf("protocol %q: %d of %d streams open, %d got the event", proto, opened, n, got)
		}
	})
	t.Run("http/1.1", func(t *testing.T) {
		proto, opened, got := run(t, http.DefaultClient, 6, nil)
		if proto != "http/1.1" || opened != 6 || got != 6 {
			t.Fatalf("protocol %q: %d of %d streams open, %d got the event (want 6: the browser's per-host limit)", proto, opened, n, got)
		}
	})
}

// formPublish publishes a form body over client (loopback: development
// mode needs no token).
func formPublish(t *testing.T, client *http.Client, base, form string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/publish", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("publish: %s", resp.Status)
	}
}

func atoi(v any) int {
	n, _ := strconv.Atoi(fmt.Sprint(v))
	return n
}
