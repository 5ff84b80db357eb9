package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newServerFlags() (*Server, *flag.FlagSet) {
	var c Server
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.Register(fs)
	return &c, fs
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedenceFlagsEnvFileDefaults(t *testing.T) {
	path := writeFile(t, "addr: ':7000'\nretry: 7s\nkeepalive: 9s\nhistory-max-events: 42\n")
	env := map[string]string{"HERALD_RETRY": "3s", "HERALD_KEEPALIVE": "4s"}
	c, fs := newServerFlags()
	err := Parse(fs, []string{"--config", path, "--keepalive", "2s"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"file beats default", c.Core.Addr, ":7000"},
		{"env beats file", c.Core.Retry, 3 * time.Second},
		{"flag beats env and file", c.Core.KeepAlive, 2 * time.Second},
		{"file int", c.History.MaxEvents, 42},
		{"default", c.Core.LogFormat, "text"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	path := writeFile(t, "addr: ':7001'\n")
	c, fs := newServerFlags()
	if err := Parse(fs, nil, func(k string) string {
		if k == "HERALD_CONFIG" {
			return path
		}
		return ""
	}); err != nil {
		t.Fatal(err)
	}
	if c.Core.Addr != ":7001" {
		t.Fatalf("addr = %q, want :7001 from the file named by HERALD_CONFIG", c.Core.Addr)
	}
}

func TestFileErrorsNameKeyAndReason(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "adr: ':1'\n", []string{":1: adr: unknown key", "addr"}},
		{"invalid duration", "\nretry: soon\n", []string{":2: retry: invalid value \"soon\""}},
		{"invalid int", "history-max-events: many\n", []string{"history-max-events: invalid value \"many\""}},
		{"invalid size", "max-data-bytes: 1XB\n", []string{"max-data-bytes: invalid value", "not a size"}},
		{"list for scalar", "addr: [a, b]\n", []string{"addr: takes one value, not a list"}},
		{"duplicate", "addr: ':1'\naddr: ':2'\n", []string{"addr: key given twice"}},
		{"not a mapping", "- a\n- b\n", []string{"must be a mapping"}},
		{"nested config", "config: other.yaml\n", []string{"cannot name another config file"}},
		{"malformed yaml", "addr: [\n", []string{"herald.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.body)
			_, fs := newServerFlags()
			err := Parse(fs, []string{"--config", path}, func(string) string { return "" })
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestEmptyFileIsValid(t *testing.T) {
	path := writeFile(t, "")
	c, fs := newServerFlags()
	if err := Parse(fs, []string{"--config", path}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if c.Core.Addr != ":8080" {
		t.Fatalf("addr = %q", c.Core.Addr)
	}
}

func TestWriteYAMLRoundTripsAndRedacts(t *testing.T) {
	c, fs := newServerFlags()
	fs.Var(new(Strings), "test-origins", "a list")
	fs.String("test-api-key", "", "a secret")
	if err := Parse(fs, []string{"--history-max-events", "7", "--test-origins", "a,b", "--test-api-key", "s3cret"}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	out := string(WriteYAML(fs))
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "test-api-key: REDACTED") {
		t.Fatalf("secret not redacted:\n%s", out)
	}
	// Reading the printed file back (without the redacted secret) gives the same values.
	out = strings.ReplaceAll(out, "test-api-key: REDACTED\n", "")
	path := writeFile(t, out)
	c2, fs2 := newServerFlags()
	fs2.Var(new(Strings), "test-origins", "a list")
	fs2.String("test-api-key", "", "a secret")
	if err := Parse(fs2, []string{"--config", path}, func(string) string { return "" }); err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, out)
	}
	if c2.History.MaxEvents != c.History.MaxEvents || fs2.Lookup("test-origins").Value.String() != "a,b" {
		t.Fatalf("round trip lost values:\n%s", out)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"512KiB", 512 << 10, true}, {"1MiB", 1 << 20, true}, {"2GiB", 2 << 30, true},
		{"1KB", 1000, true}, {"64k", 64 << 10, true}, {"1m", 1 << 20, true}, {"0", 0, true},
		{"-1", 0, false}, {"1XB", 0, false}, {"", 0, false}, {"MiB", 0, false},
	}
	for _, tt := range tests {
		var b ByteSize
		err := b.Set(tt.in)
		if (err == nil) != tt.ok || (tt.ok && int64(b) != tt.want) {
			t.Errorf("Set(%q) = %d, %v; want %d, ok=%v", tt.in, b, err, tt.want, tt.ok)
		}
	}
	b := ByteSize(3 << 20)
	if b.String() != "3MiB" {
		t.Errorf("String() = %q", b.String())
	}
}

func TestEnvInvalidValueNamesVariable(t *testing.T) {
	_, fs := newServerFlags()
	err := Parse(fs, nil, func(k string) string {
		if k == "HERALD_RETRY" {
			return "later"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "HERALD_RETRY") {
		t.Fatalf("err = %v, want one naming HERALD_RETRY", err)
	}
}

func TestValidateDefaults(t *testing.T) {
	c, fs := newServerFlags()
	if err := Parse(fs, nil, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c.Core.LogFormat = "xml"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "log-format") {
		t.Fatalf("Validate = %v, want log-format error", err)
	}
}
