// Package admin serves Herald's admin API: list topics, disconnect
// subscribers, purge a topic's history. Its routes are registered with the
// admin face's policy entries: the policy (internal/access) guards them
// with the admin token, or without one lets only local, same-origin
// clients in.
package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

// API serves the admin endpoints.
type API struct {
	Hub *hub.Hub
}

// Register mounts the admin endpoints on reg under /admin/: reading the
// topics is access.ReadMetadata, disconnecting and purging
// access.Administer, on face access.FaceAdmin.
func (a *API) Register(reg access.Registrar) {
	reg.HandleFunc("GET /admin/topics", access.Route{Action: access.ReadMetadata, Face: access.FaceAdmin}, a.topics)
	reg.HandleFunc("POST /admin/disconnect", access.Route{Action: access.Administer, Face: access.FaceAdmin}, a.disconnect)
	reg.HandleFunc("POST /admin/purge", access.Route{Action: access.Administer, Face: access.FaceAdmin}, a.purge)
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
			access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf("broker: %v", err), RetryAfter: 1})
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

// form returns the request's form: the query and an urlencoded body of at
// most 64 KiB (refused before reading when its Content-Length is over).
func form(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	return access.ReadForm(w, r, 64<<10)
}

func (a *API) disconnect(w http.ResponseWriter, r *http.Request) {
	f, err := form(w, r)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	topic, all := f.Get("topic"), f.Get("all") == "true"
	switch {
	case topic == "" && !all:
		access.Write(w, r, access.BadRequest(`give "topic", or "all=true" to disconnect every subscriber`))
		return
	case topic != "" && all:
		access.Write(w, r, access.BadRequest(`give either "topic" or "all=true", not both`))
		return
	case topic != "":
		if err := hub.ValidateTopic(topic); err != nil {
			access.Write(w, r, access.BadRequest("%v", err))
			return
		}
	}
	n := a.Hub.Disconnect(topic)
	httpjson.Write(w, http.StatusOK, map[string]int{"disconnected": n})
}

func (a *API) purge(w http.ResponseWriter, r *http.Request) {
	f, err := form(w, r)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	topic := f.Get("topic")
	if err := hub.ValidateTopic(topic); err != nil {
		access.Write(w, r, access.BadRequest(`"topic": %v`, err))
		return
	}
	p, ok := a.Hub.Broker().(pubsub.Purger)
	if !ok {
		access.Write(w, r, access.Errorf(http.StatusNotImplemented, "", "this broker cannot purge history"))
		return
	}
	if err := p.Purge(r.Context(), topic); err != nil {
		access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf("purge: %v", err), RetryAfter: 1})
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{"purged": topic})
}
