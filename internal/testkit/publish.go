package testkit

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Publish publishes data to topic on the server at base (POST /publish,
// JSON) and returns the event's id. A failure is reported with t.Errorf
// (Publish may be called from a goroutine of the test) and returns "".
func Publish(t testing.TB, base, topic, data string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": topic, "data": data})
	resp, err := http.Post(base+"/publish", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Errorf("publish to %s: %v", topic, err)
		return ""
	}
	defer resp.Body.Close()
	var r struct{ ID, Error string }
	_ = json.NewDecoder(resp.Body).Decode(&r)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("publish to %s: %d %s", topic, resp.StatusCode, r.Error)
		return ""
	}
	return r.ID
}
