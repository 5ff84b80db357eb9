package dssub

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"events/*", "events/a", true},
		{"events/*", "events/a/b", false},
		{"events/*", "events", false},
		{"events/*", "other/a", false},
		{"events/**", "events/a/b", true},
		{"events/**", "events", true},
		{"**/log", "a/b/log", true},
		{"**/log", "a/b/logs", false},
		{"a/?/c", "a/b/c", true},
		{"a/[xy]", "a/y", true},
		{"a/[xy]", "a/z", false},
		{"exact", "exact", true},
	}
	for _, c := range cases {
		if got := globMatch(c.pattern, c.path); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
	for p, ok := range map[string]bool{"a/*": true, "**": true, "a/[": false, "a//b": false, "": false} {
		if validPattern(p) != ok {
			t.Errorf("validPattern(%q) = %v, want %v", p, !ok, ok)
		}
	}
}

func TestOffsetAfter(t *testing.T) {
	a, b := "000000000000000002_e1", "000000000000000010_e1"
	for _, c := range []struct {
		x, y string
		want bool
	}{{b, a, true}, {a, b, false}, {a, a, false}, {a, "-1", true}, {"-1", a, false}, {"-1", "-1", false}} {
		if got := offsetAfter(c.x, c.y); got != c.want {
			t.Errorf("offsetAfter(%s, %s) = %v", c.x, c.y, got)
		}
	}
}

func TestURLPolicyAddresses(t *testing.T) {
	var p URLPolicy
	for addr, ok := range map[string]bool{
		"93.184.216.34": true, "2606:2800:220:1:248:1893:25c8:1946": true,
		"10.1.2.3": false, "172.16.0.1": false, "192.168.0.1": false, "127.0.0.1": false, "::1": false,
		"169.254.169.254": false, "fe80::1": false, "224.0.0.1": false, "ff02::1": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "fd00::1": false, "::ffff:10.0.0.1": false, "::ffff:93.184.216.34": true,
		// NAT64 and 6to4 addresses are judged as the IPv4 address they
		// carry; a zone does not hide an address from the blocks.
		"64:ff9b::a9fe:a9fe": false, "64:ff9b::7f00:1": false, "64:ff9b::5db8:d822": true,
		"2002:a00:1::1": false, "2002:7f00:1::": false, "2002:5db8:d822::1": true,
		"64:ff9b:1::5db8:d822%eth0": false, "fec0::1": false, "100::1": false,
	} {
		if got := p.allowed(netip.MustParseAddr(addr)); got != ok {
			t.Errorf("allowed(%s) = %v, want %v", addr, got, ok)
		}
	}
	p.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if !p.allowed(netip.MustParseAddr("10.9.9.9")) || p.allowed(netip.MustParseAddr("192.168.0.1")) {
		t.Error("Allow does not widen exactly its networks")
	}
}

// TestDialChecksResolvedAddresses: a host name that resolves to a refused
// address is not dialled (DNS rebinding: the check is at dial time, on
// what the name resolves to then).
func TestDialChecksResolvedAddresses(t *testing.T) {
	port, _ := loopbackListener(t)
	var strict URLPolicy
	if err := strict.Check("http://localhost:" + port + "/h"); !errors.Is(err, errRejected) {
		t.Errorf("Check(localhost) = %v", err)
	}
	if _, err := strict.DialContext(context.Background(), "tcp", "localhost:"+port); !errors.Is(err, errRejected) {
		t.Fatalf("dial localhost without an allowance: %v", err)
	}
	open := URLPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	c, err := open.DialContext(context.Background(), "tcp", "localhost:"+port)
	if err != nil {
		t.Fatalf("dial localhost allowed: %v", err)
	}
	c.Close()
}

// TestDialRefusesOtherAddressForms: decimal, octal, hexadecimal and short
// IPv4 forms, and IPv6 forms of a refused address, never reach it,
// whatever the resolver makes of them (the dial checks what it would
// connect to).
func TestDialRefusesOtherAddressForms(t *testing.T) {
	port, accepted := loopbackListener(t)
	var strict URLPolicy
	for _, host := range []string{"2130706433", "0x7f000001", "017700000001", "0177.0.0.1", "127.1", "0", "0.0.0.0",
		"[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[64:ff9b::7f00:1]", "localhost."} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := strict.DialContext(ctx, "tcp", host+":"+port)
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("dial %s: connected", host)
		}
		if u := "http://" + host + ":" + port + "/h"; !strings.HasPrefix(host, "[") || strings.Contains(host, ".") {
			if err := strict.Check(u); !errors.Is(err, errRejected) {
				t.Errorf("Check(%s) = %v, want rejected", u, err)
			}
		}
	}
	// An IDN host (full-width "localhost") is mapped to ASCII by the
	// client before its dial: still checked.
	client := &http.Client{Transport: &http.Transport{DialContext: strict.DialContext}}
	if resp, err := client.Get("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:" + port + "/h"); err == nil {
		resp.Body.Close()
		t.Error("an IDN host for localhost connected")
	}
	client.CloseIdleConnections()
	select {
	case <-accepted:
		t.Error("a refused address form reached the listener")
	default:
	}
}

func TestTokens(t *testing.T) {
	s := newSigner(make([]byte, 32))
	tok := s.token("sub", 7, "w_abc")
	if gen, wid, ok := s.checkToken("sub", tok); !ok || gen != 7 || wid != "w_abc" {
		t.Fatalf("checkToken = %d %q %v", gen, wid, ok)
	}
	for _, bad := range []string{"", "x", tok + "x", "8" + tok[1:], "7.w_abd." + tok[len("7.w_abc."):]} {
		if _, _, ok := s.checkToken("sub", bad); ok {
			t.Errorf("checkToken(%q) accepted", bad)
		}
	}
	if _, _, ok := s.checkToken("other", tok); ok {
		t.Error("a token of one subscription is accepted for another")
	}
	other := newSigner(append(make([]byte, 31), 1))
	if _, _, ok := other.checkToken("sub", tok); ok || other.kid == s.kid {
		t.Error("another key accepts the token, or has the same kid")
	}
}

// TestCacheForgetsAbsent: asking for subscriptions that are not there
// (GET, DELETE of made-up ids) leaves nothing in the cache of logs.
func TestCacheForgetsAbsent(t *testing.T) {
	b := memory.New(&memory.Options{Retention: pubsub.Retention{}})
	defer b.Close()
	m, err := Open(context.Background(), b, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	for i := range 200 {
		id := "nosuch-" + strconv.Itoa(i)
		if s, err := m.load(ctx, id); s != nil || err != nil {
			t.Fatalf("load(%s) = %v, %v", id, s, err)
		}
		if err := m.remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := m.update(ctx, "made", func(*sub) (*sub, error) { return &sub{ID: "made", Type: typePullWake}, nil }); err != nil {
		t.Fatal(err)
	}
	if err := m.remove(ctx, "made"); err != nil {
		t.Fatal(err)
	}
	if s, err := m.load(ctx, "made"); s != nil || err != nil {
		t.Fatalf("load of a deleted subscription = %v, %v", s, err)
	}
	m.mu.Lock()
	n := len(m.logs)
	m.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d cache entries for subscriptions that are not there", n)
	}
}

// TestNoDeliveryAfterClose: a wake made while the manager closes (a
// callback still served during shutdown) starts no delivery that Close
// would not have waited for.
func TestNoDeliveryAfterClose(t *testing.T) {
	b := memory.New(&memory.Options{Retention: pubsub.Retention{}})
	defer b.Close()
	m, err := Open(context.Background(), b, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.spawn(func(ctx context.Context) { <-ctx.Done() })
		}()
	}
	m.Close()
	wg.Wait()
	m.spawn(func(context.Context) { started <- struct{}{} })
	m.wg.Wait()
	select {
	case <-started:
		t.Fatal("a delivery started after Close")
	default:
	}
}

// TestWebhookClient: the default webhook client dials every connection
// through the policy, uses no proxy (HTTP_PROXY would connect to an
// address the check cannot see) and follows no redirect.
func TestWebhookClient(t *testing.T) {
	b := memory.New(&memory.Options{Retention: pubsub.Retention{}})
	defer b.Close()
	m, err := Open(context.Background(), b, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tr, ok := m.client.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport %T", m.client.Transport)
	}
	if tr.Proxy != nil || tr.DialContext == nil || tr.DialTLSContext != nil {
		t.Fatal("the webhook transport uses a proxy or a dialer other than the policy's")
	}
	if m.client.CheckRedirect == nil || m.client.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Fatal("the webhook client follows redirects")
	}
}

// loopbackListener listens on a free loopback port until the test ends,
// closing every connection it accepts; accepted receives one value per
// connection (without blocking the listener: it holds 16).
func loopbackListener(t *testing.T) (port string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, ch
}
