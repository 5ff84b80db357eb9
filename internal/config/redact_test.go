package config

import "testing"

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ flag, in, want string }{
		{"broker", "redis://user:PASSWORD@host:6379/0", "redis://user:xxxxx@host:6379/0"},
		{"broker", "redis://:PASSWORD@host/0", "redis://:xxxxx@host/0"},
		{"broker", "nats://user@host:4222", "nats://user@host:4222"},
		{"broker", "memory", "memory"},
		{"broker", "rediss://u:p%40ss@host/0?password=x&db=1", "rediss://u:xxxxx@host/0?db=1&password=REDACTED"},
		{"send-webhook", "https://app/hook?token=abc&x=1", "https://app/hook?token=REDACTED&x=1"},
		{"llm-base-url", "https://api/v1?API_KEY=abc", "https://api/v1?API_KEY=REDACTED"},
		{"jwks-url", "https://id.example/jwks.json", "https://id.example/jwks.json"},
		{"cors-origins", "https://a.example,https://u:p@b.example", "https://a.example,https://u:xxxxx@b.example"},
		{"jwt-key", "s3cret", "REDACTED"},
		{"llm-api-key", "sk", "REDACTED"},
		{"admin-token", "", ""},
		{"broker", "redis://u:p@ss@host%zz", "REDACTED"},
	} {
		if got := Redact(tc.flag, tc.in); got != tc.want {
			t.Errorf("Redact(%s, %q) = %q, want %q", tc.flag, tc.in, got, tc.want)
		}
	}
}
