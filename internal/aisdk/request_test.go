package aisdk

import (
	"errors"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/llm"
)

func TestParseRequest(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       []llm.Message // nil: an error containing err
		err        string
	}{
		{"one user message", `{"id":"c","messages":[{"id":"1","role":"user","parts":[{"type":"text","text":"hi"}]}],"trigger":"submit-message"}`,
			[]llm.Message{{Role: "user", Content: "hi"}}, ""},
		{"regenerate", `{"id":"c","messages":[{"role":"user","parts":[{"type":"text","text":"hi"}]}],"trigger":"regenerate-message","messageId":"m2"}`,
			[]llm.Message{{Role: "user", Content: "hi"}}, ""},
		{"text parts joined, others skipped", `{"id":"c","messages":[{"role":"user","parts":[{"type":"text","text":"a"},{"type":"data-x","data":1},{"type":"text","text":"b"}]}]}`,
			[]llm.Message{{Role: "user", Content: "ab"}}, ""},
		{"assistant without text left out", `{"id":"c","messages":[{"role":"user","parts":[{"type":"text","text":"q"}]},{"role":"assistant","parts":[{"type":"step-start"}]},{"role":"user","parts":[{"type":"text","text":"again"}]}]}`,
			[]llm.Message{{Role: "user", Content: "q"}, {Role: "user", Content: "again"}}, ""},
		{"unknown members of messages and parts ignored", `{"id":"c","messages":[{"role":"user","createdAt":"x","parts":[{"type":"text","text":"q","state":"done","providerMetadata":{}}]}]}`,
			[]llm.Message{{Role: "user", Content: "q"}}, ""},
		{"null", `null`, nil, "must be an object"},
		{"trailing garbage", `{"id":"c","messages":[]} x`, nil, "malformed JSON"},
		{"id not a string", `{"id":1,"messages":[]}`, nil, "malformed JSON"},
		{"long id", `{"id":"` + strings.Repeat("x", MaxChatIDLen+1) + `","messages":[]}`, nil, `"id"`},
		{"control character in id", `{"id":"a\u0007","messages":[]}`, nil, `"id"`},
		{"tool part", `{"id":"c","messages":[{"role":"assistant","parts":[{"type":"tool-weather","toolCallId":"1"}]}]}`, nil, `"tool-weather" parts are not supported`},
		{"missing role", `{"id":"c","messages":[{"parts":[]}]}`, nil, `missing "role"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, creq, err := parseRequest([]byte(tt.body))
			if tt.want == nil {
				var br badRequest
				if err == nil || !errors.As(err, &br) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want a bad request containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if creq.Conversation != req.ID || len(creq.Messages) != len(tt.want) {
				t.Fatalf("got %+v", creq)
			}
			for i := range tt.want {
				if creq.Messages[i] != tt.want[i] {
					t.Fatalf("message %d = %+v, want %+v", i, creq.Messages[i], tt.want[i])
				}
			}
		})
	}
}

// Any body gets a request or a bad request: never a panic, never another
// kind of error, and a parsed request always names a valid chat.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"id":"c","messages":[{"id":"1","role":"user","parts":[{"type":"text","text":"hi"}]}],"trigger":"submit-message"}`))
	f.Add([]byte(`{"id":"c","messages":[{"role":"assistant","parts":[{"type":"reasoning","text":"r"},{"type":"file"}]}]}`))
	f.Add([]byte(`{"id":"","messages":null,"model":"m","messageId":"x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, creq, err := parseRequest(body)
		if err != nil {
			var br badRequest
			if !errors.As(err, &br) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if req.ID == "" || len(req.ID) > MaxChatIDLen || creq.Conversation != req.ID {
			t.Fatalf("accepted chat id %q", req.ID)
		}
		for _, m := range creq.Messages {
			if m.Role != llm.RoleUser && m.Role != llm.RoleAssistant && m.Role != llm.RoleSystem {
				t.Fatalf("accepted role %q", m.Role)
			}
		}
	})
}
