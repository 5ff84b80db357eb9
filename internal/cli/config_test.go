package cli_test

import (
	"context"
	"strings"
	"testing"
)

// TestConfigPrintRedactsSecrets: `herald config print` showed the broker's
// password (issue 15); no URL or secret-bearing flag shows its secret,
// from flags or from the environment.
func TestConfigPrintRedactsSecrets(t *testing.T) {
	code, out, errOut := herald(context.Background(), "", map[string]string{"HERALD_LLM_API_KEY": "sk-ENV-SECRET"},
		"config", "print",
		"--broker", "redis://user:BROKER-PASSWORD@127.0.0.1:6379/0",
		"--send-webhook", "https://hook:WEBHOOK-PASSWORD@app.example/hook?token=WEBHOOK-TOKEN",
		"--llm-base-url", "https://llm.example/v1?api_key=LLM-KEY", "--llm-model", "m",
		"--jwt-key", "JWT-SECRET-of-at-least-32-bytes-0123456789",
		"--admin-token", "ADMIN-SECRET",
	)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, secret := range []string{"BROKER-PASSWORD", "WEBHOOK-PASSWORD", "WEBHOOK-TOKEN", "LLM-KEY", "JWT-SECRET", "ADMIN-SECRET", "sk-ENV-SECRET"} {
		if strings.Contains(out, secret) {
			t.Errorf("config print shows %s:\n%s", secret, out)
		}
	}
	for _, want := range []string{"- redis://user:xxxxx@127.0.0.1:6379/0", "admin-token: REDACTED", "llm-api-key: REDACTED"} {
		if !strings.Contains(out, want) {
			t.Errorf("config print lacks %q:\n%s", want, out)
		}
	}
}
