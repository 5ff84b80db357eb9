// Package client is the Go client of a Herald server: Publish sends an event
// to topics through POST /publish and returns its id, and Subscribe returns
// an [sseclient.Client] that follows topics through GET /events.
//
// Create a [Client] for the server's base URL with [New]. A refused publish
// returns a [*StatusError] carrying the server's status and message.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/heraldpush/herald/sseclient"
)

// Options configure a Client. A nil *Options means all defaults; New copies
// the options and never modifies them.
type Options struct {
	// HTTPClient sends the requests. Default http.DefaultClient.
	HTTPClient *http.Client
	// Header holds extra request headers, such as Authorization, sent with
	// every request. Default none.
	Header http.Header
}

// Client talks to one Herald server. It is safe for concurrent use.
type Client struct {
	base string
	opts Options
}

// New returns a Client for the server at baseURL, such as
// "http://localhost:8080" (a path prefix is kept: "https://host/herald").
// It does no I/O: a URL that cannot be requested is reported by the calls.
func New(baseURL string, opts *Options) *Client {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	o.Header = o.Header.Clone()
	return &Client{base: strings.TrimRight(baseURL, "/"), opts: o}
}

// PublishOptions are the optional parts of an event. The zero value
// publishes a plain "message" event.
type PublishOptions struct {
	// Topics are more topics to publish the event to, besides topic.
	Topics []string
	// Event is the event type. Default "message".
	Event string
	// Retain makes the event the topic's current state: new subscribers get
	// it first.
	Retain bool
	// Final ends the topic: nothing may be published to it afterwards, and
	// subscribers' streams end once they have it.
	Final bool
	// Private restricts delivery to subscribers authorised for the topic.
	Private bool
}

// StatusError is a refused request: the server answered with a status other
// than 200.
type StatusError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the server's explanation (the "error" of its JSON body).
	Message string
	// RetryAfter is the answer's Retry-After header, zero if none (Herald
	// sends it with 429 and 503).
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("herald: server answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

type publishRequest struct {
	Topic   string   `json:"topic,omitempty"`
	Topics  []string `json:"topics,omitempty"`
	Data    string   `json:"data"`
	Event   string   `json:"event,omitempty"`
	Retain  bool     `json:"retain,omitempty"`
	Final   bool     `json:"final,omitempty"`
	Private bool     `json:"private,omitempty"`
}

// Publish publishes data to topic and returns the event's id once the
// server has it in history. It returns a *StatusError when the server
// refuses the event, and a wrapped transport error when it cannot be
// reached.
func (c *Client) Publish(ctx context.Context, topic, data string, opts *PublishOptions) (id string, err error) {
	var o PublishOptions
	if opts != nil {
		o = *opts
	}
	in := publishRequest{Topic: topic, Data: data, Event: o.Event, Retain: o.Retain, Final: o.Final, Private: o.Private}
	if len(o.Topics) > 0 {
		in.Topic, in.Topics = "", append([]string{topic}, o.Topics...)
	}
	body, err := json.Marshal(in)
	if err != nil {
		return "", fmt.Errorf("herald: publish: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/publish", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("herald: publish: %w", err)
	}
	for k, v := range c.opts.Header {
		req.Header[k] = append([]string(nil), v...)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("herald: publish: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", &StatusError{
			StatusCode: resp.StatusCode,
			Message:    sseclient.ErrorMessage(resp),
			RetryAfter: sseclient.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, sseclient.MaxErrorBody)).Decode(&out); err != nil {
		return "", fmt.Errorf("herald: publish: unreadable answer: %w", err)
	}
	if out.ID == "" {
		return "", errors.New(`herald: publish: the answer has no "id"`)
	}
	return out.ID, nil
}

// EventsURL returns the URL of the stream of topics: /events with a topic
// query parameter for each.
func (c *Client) EventsURL(topics ...string) string {
	q := make(url.Values, 1)
	q["topic"] = topics
	return c.base + "/events?" + q.Encode()
}

// Subscribe returns an sseclient.Client that follows topics. Options that
// opts leaves unset (HTTPClient, Header) are taken from the Client's.
func (c *Client) Subscribe(topics []string, opts *sseclient.Options) *sseclient.Client {
	var o sseclient.Options
	if opts != nil {
		o = *opts
	}
	if o.HTTPClient == nil {
		o.HTTPClient = c.opts.HTTPClient
	}
	if o.Header == nil {
		o.Header = c.opts.Header
	}
	return sseclient.New(c.EventsURL(topics...), &o)
}
