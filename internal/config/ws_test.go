package config

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func wsFlags(t *testing.T, args []string, env map[string]string) (*Server, error) {
	t.Helper()
	var c Server
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Register(fs)
	return &c, Parse(fs, args, func(k string) string { return env[k] })
}

func TestWSDefaultsAndEnv(t *testing.T) {
	c, err := wsFlags(t, nil, map[string]string{"HERALD_WS_ORIGIN": "app.example.com,*.example.org", "HERALD_SEND_WEBHOOK": "http://127.0.0.1:9000/in"})
	if err != nil {
		t.Fatal(err)
	}
	w := c.WS
	if w.Disable || w.PingInterval != 25*time.Second || w.PingTimeout != 10*time.Second || w.ResumeTimeout != 10*time.Second ||
		w.MaxFrameBytes != 0 || w.SendWebhookTimeout != 5*time.Second || w.SendDedupeWindow != 10*time.Minute || w.SendDedupeSize != 100000 {
		t.Fatalf("defaults: %+v", w)
	}
	if strings.Join(w.Origins, "|") != "app.example.com|*.example.org" || w.SendWebhook != "http://127.0.0.1:9000/in" {
		t.Fatalf("from the environment: %+v", w)
	}
	if err := w.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestWSValidate(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--ws-ping-interval", "0s"}, "ws-ping-interval: must be positive"},
		{[]string{"--ws-ping-timeout", "-1s"}, "ws-ping-timeout: must be positive"},
		{[]string{"--ws-resume-timeout", "0s"}, "ws-resume-timeout"},
		{[]string{"--send-dedupe-window", "0s"}, "send-dedupe-window"},
		{[]string{"--send-dedupe-size", "0"}, "send-dedupe-size"},
		{[]string{"--send-webhook-timeout", "0s"}, "send-webhook-timeout"},
		{[]string{"--send-webhook", "ftp://backend/in"}, "not an http:// or https:// URL"},
		{[]string{"--send-webhook", "backend:8080/in"}, "not an http:// or https:// URL"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			c, err := wsFlags(t, tc.args, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.WS.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate: %v, want %q", err, tc.want)
			}
		})
	}
}
