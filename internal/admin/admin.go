// Package admin serves Herald's admin API: list topics, disconnect
// subscribers, purge a topic's history. Every endpoint is guarded by the
// admin token (see Guard).
package admin

import (
	"crypto/subtle"
	"net"
	"net/http"
	"sort"
	"strings"

	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

// Guard lets a request through when it carries the admin token, as
// "Authorization: Bearer <token>" or (for pages and EventSource, which cannot
// set headers) a "token" query parameter. With no token configured, only
// clients on the loopback interface get through: development mode.
func Guard(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			if !IsLoopback(r) {
				httpjson.Error(w, http.StatusForbidden, "admin endpoints are open only to loopback clients until --admin-token is set")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		got := r.URL.Query().Get("token")
		if h := r.Header.Get("Authorization"); h != "" {
			scheme, cred, _ := strings.Cut(h, " ")
			if !strings.EqualFold(scheme, "Bearer") {
				httpjson.Error(w, http.StatusUnauthorized, "admin token required: use Authorization: Bearer <token>")
				return
			}
			got = strings.TrimSpace(cred)
		}
		if got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald-admin"`)
			httpjson.Error(w, http.StatusUnauthorized, "admin token required: use Authorization: Bearer <token>")
			return
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			httpjson.Error(w, http.StatusForbidden, "invalid admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// IsLoopback reports whether the request comes from a loopback address.
func IsLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// API serves the admin endpoints.
type API struct {
	Hub   *hub.Hub
	Token string
}

// Register mounts the admin endpoints on mux under /admin/.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("GET /admin/topics", Guard(a.Token, http.HandlerFunc(a.topics)))
	mux.Handle("POST /admin/disconnect", Guard(a.Token, http.HandlerFunc(a.disconnect)))
	mux.Handle("POST /admin/purge", Guard(a.Token, http.HandlerFunc(a.purge)))
}

// Topic is one row of GET /admin/topics.
type Topic struct {
	Topic       string `json:"topic"`
	Subscribers int    `json:"subscribers"`
	// History is the number of events held for resuming clients, or -1
	// when the broker cannot tell.
	History  int    `json:"history"`
	Retained bool   `json:"retained"`
	Finished bool   `json:"finished"`
	Messages uint64 `json:"messages"`
}

func (a *API) topics(w http.ResponseWriter, r *http.Request) {
	rows := make(map[string]*Topic)
	row := func(name string) *Topic {
		t := rows[name]
		if t == nil {
			t = &Topic{Topic: name, History: -1}
			rows[name] = t
		}
		return t
	}
	for _, st := range a.Hub.TopicStats() {
		t := row(st.Topic)
		t.Subscribers, t.Messages = st.Subscribers, st.Messages
	}
	if in, ok := a.Hub.Broker().(pubsub.Inspector); ok {
		infos, err := in.Topics(r.Context())
		if err != nil {
			httpjson.Errorf(w, http.StatusServiceUnavailable, "broker: %v", err)
			return
		}
		for _, ti := range infos {
			t := row(ti.Topic)
			t.History, t.Retained, t.Finished = ti.Messages, ti.Retained, ti.Finished
		}
	}
	out := make([]*Topic, 0, len(rows))
	for _, t := range rows {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Subscribers != out[j].Subscribers {
			return out[i].Subscribers > out[j].Subscribers
		}
		return out[i].Topic < out[j].Topic
	})
	httpjson.Write(w, http.StatusOK, map[string]any{"topics": out})
}

func formValue(r *http.Request, key string) (string, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return "", err
	}
	return r.Form.Get(key), nil
}

func (a *API) disconnect(w http.ResponseWriter, r *http.Request) {
	topic, err := formValue(r, "topic")
	if err != nil {
		httpjson.Errorf(w, http.StatusBadRequest, "malformed form: %v", err)
		return
	}
	all := r.Form.Get("all") == "true"
	switch {
	case topic == "" && !all:
		httpjson.Error(w, http.StatusBadRequest, `give "topic", or "all=true" to disconnect every subscriber`)
		return
	case topic != "" && all:
		httpjson.Error(w, http.StatusBadRequest, `give either "topic" or "all=true", not both`)
		return
	case topic != "":
		if err := hub.ValidateTopic(topic); err != nil {
			httpjson.Error(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	n := a.Hub.Disconnect(topic)
	httpjson.Write(w, http.StatusOK, map[string]int{"disconnected": n})
}

func (a *API) purge(w http.ResponseWriter, r *http.Request) {
	topic, err := formValue(r, "topic")
	if err != nil {
		httpjson.Errorf(w, http.StatusBadRequest, "malformed form: %v", err)
		return
	}
	if err := hub.ValidateTopic(topic); err != nil {
		httpjson.Errorf(w, http.StatusBadRequest, `"topic": %v`, err)
		return
	}
	p, ok := a.Hub.Broker().(pubsub.Purger)
	if !ok {
		httpjson.Error(w, http.StatusNotImplemented, "this broker cannot purge history")
		return
	}
	if err := p.Purge(r.Context(), topic); err != nil {
		httpjson.Errorf(w, http.StatusServiceUnavailable, "purge: %v", err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{"purged": topic})
}
