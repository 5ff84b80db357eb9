package send

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Payload is the JSON body of a webhook request: one client message.
type Payload struct {
	// ClientID and MsgID identify the message; together they are also sent
	// as the Idempotency-Key header.
	ClientID string `json:"clientId"`
	MsgID    string `json:"msgId"`
	// Topic the message was published to, if any, and its event id.
	Topic string `json:"topic,omitempty"`
	ID    string `json:"id,omitempty"`
	// Event is the message's event type, if any.
	Event string `json:"event,omitempty"`
	// Data is the message's data as the client sent it (any JSON value).
	Data json.RawMessage `json:"data,omitempty"`
	// Transport the message came over: "ws" or "http".
	Transport string `json:"transport"`
}

// Webhook forwards client messages to the application backend. Its fields
// must not change after first use.
type Webhook struct {
	// URL receives a POST with a JSON Payload per message.
	URL string
	// Timeout bounds one request. Default 5s.
	Timeout time.Duration
	// Client sends the requests. Default: a client that does not follow
	// redirects.
	Client *http.Client
}

// webhookError tells a backend's refusal (permanent) from a failure to
// reach it (worth retrying).
type webhookError struct {
	status  int // the backend's status; 0 if it could not be reached
	timeout bool
	err     error
}

func (e *webhookError) Error() string { return e.err.Error() }

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Forward posts p to the webhook. A 2xx answer is success; anything else,
// or no answer within the timeout, is an error.
func (w *Webhook) Forward(ctx context.Context, p *Payload) error {
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	client := w.Client
	if client == nil {
		client = noRedirects
	}
	body, err := json.Marshal(p)
	if err != nil {
		return &webhookError{err: fmt.Errorf("webhook: encode: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return &webhookError{err: fmt.Errorf("webhook: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", p.ClientID+":"+p.MsgID)
	req.Header.Set("User-Agent", "herald-send-webhook")
	resp, err := client.Do(req)
	if err != nil {
		return &webhookError{timeout: errors.Is(err, context.DeadlineExceeded), err: fmt.Errorf("webhook: %w", err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &webhookError{status: resp.StatusCode, err: fmt.Errorf("webhook: the application backend answered %s", resp.Status)}
	}
	return nil
}
