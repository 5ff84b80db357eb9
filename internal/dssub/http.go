package dssub

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

// maxBody bounds a subscription request's body.
const maxBody = 64 << 10

// validID is the form of a subscription id.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$`)

// Mount registers the subscriptions' routes under the manager's Prefix
// ("/v1/stream/__ds/..."), each with its policy entry. Managing a
// subscription (create, read, delete, its streams) and claiming a
// pull-wake are publishes on the subscription's topic (Topic(id)), decided
// by d with the streams' face; a pull-wake's create also publishes to its
// wake stream. A callback, an ack and a release are authenticated by the
// wake's bearer token alone, and the JWKS is public. Other paths under
// __ds/ are reserved: 404.
func (m *Manager) Mount(rt access.Registrar, d access.Decider) {
	base := m.o.Prefix + "__ds/"
	subs := base + "subscriptions/{id}"
	manage := access.Route{Action: access.Publish, Face: access.FaceStreams, Topics: true}
	public := access.Route{Action: access.Public, Face: access.FaceStreams}
	h := &handler{m: m, d: d}
	rt.HandleFunc("GET "+base+"jwks.json", public, h.jwks)
	rt.HandleFunc("PUT "+subs, manage, h.put)
	rt.HandleFunc("GET "+subs, manage, h.get)
	rt.HandleFunc("DELETE "+subs, manage, h.delete)
	rt.HandleFunc("POST "+subs+"/streams", manage, h.addStreams)
	rt.HandleFunc("DELETE "+subs+"/streams/{path...}", manage, h.removeStream)
	rt.HandleFunc("POST "+subs+"/claim", manage, h.claim)
	rt.HandleFunc("POST "+subs+"/callback", public, h.settle(typeWebhook, false))
	rt.HandleFunc("POST "+subs+"/ack", public, h.settle(typePullWake, false))
	rt.HandleFunc("POST "+subs+"/release", public, h.settle(typePullWake, true))
	for _, method := range []string{"GET", "PUT", "POST", "DELETE"} {
		rt.HandleFunc(method+" "+base, public, h.notFound)
	}
}

type handler struct {
	m *Manager
	d access.Decider
}

// writeErr answers err: a refusal as the protocol's {"error": {"code",
// "message"}}, an access refusal as Herald's, a broker failure as 503.
func writeErr(w http.ResponseWriter, r *http.Request, err error) {
	ae, ok := errAs(err)
	if !ok {
		var acc *access.Error
		if errors.As(err, &acc) {
			access.Write(w, r, err)
			return
		}
		status := http.StatusInternalServerError
		if errors.Is(err, pubsub.ErrUnavailable) || errors.Is(err, pubsub.ErrClosed) {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		ae = &apiError{status: status, code: "UNAVAILABLE", msg: "the streams broker failed; try again"}
	}
	e := map[string]any{"code": ae.code, "message": ae.msg}
	if ae.holder != "" {
		e["current_holder"] = ae.holder
	}
	if ae.code == "ALREADY_CLAIMED" || ae.code == "FENCED" {
		e["generation"] = ae.gen
	}
	httpjson.Write(w, ae.status, map[string]any{"error": e})
}

func invalid(format string, args ...any) error {
	return refuse(http.StatusBadRequest, "INVALID_REQUEST", format, args...)
}

// decode reads the request's JSON body strictly into v (an empty body is
// {}).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return refuse(http.StatusRequestEntityTooLarge, "INVALID_REQUEST", "request body over %d bytes", maxBody)
		}
		return invalid("cannot read the request body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		b = []byte("{}")
	}
	if err := httpjson.DecodeStrict(b, v); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// id returns the request's subscription id, checked.
func (h *handler) id(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !validID.MatchString(id) {
		return "", invalid("subscription id %s: use 1 to 128 letters, digits, '.', '_', '~' or '-', starting with a letter or digit", clip(id))
	}
	return id, nil
}

// manage checks the subscription id and asks the policy for a publish on
// its topic (and on more topics, if given).
func (h *handler) manage(r *http.Request, more ...string) (string, error) {
	id, err := h.id(r)
	if err != nil {
		// Asked anyway, so that a refusal of the caller comes first.
		if _, aerr := access.Ask(h.d, r, access.Query{Action: access.Publish, Face: access.FaceStreams, Topics: []string{subPrefix + "_"}}); aerr != nil {
			return "", aerr
		}
		return "", err
	}
	topics := append([]string{Topic(id)}, more...)
	if _, err := access.Ask(h.d, r, access.Query{Action: access.Publish, Face: access.FaceStreams, Topics: topics}); err != nil {
		return "", err
	}
	return id, nil
}

// base is the scheme and host the request came through.
func base(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (h *handler) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(h.m.key.jwks())
}

func (h *handler) notFound(w http.ResponseWriter, r *http.Request) {
	writeErr(w, r, refuse(http.StatusNotFound, "NOT_FOUND", "no such resource: %s__ds/ is reserved for the protocol's subscriptions (%s__ds/subscriptions/{id}, %s__ds/jwks.json)", h.m.o.Prefix, h.m.o.Prefix, h.m.o.Prefix))
}

// createBody is a create's (PUT's) body.
type createBody struct {
	Type    string   `json:"type"`
	Pattern *string  `json:"pattern"`
	Streams []string `json:"streams"`
	Webhook *struct {
		URL string `json:"url"`
	} `json:"webhook"`
	WakeStream  *string      `json:"wake_stream"`
	LeaseTTL    *json.Number `json:"lease_ttl_ms"`
	Description *string      `json:"description"`
}

// parseCreate validates a create's body.
func (h *handler) parseCreate(b createBody) (createInput, error) {
	in := createInput{Type: b.Type, LeaseTTL: defaultLeaseTTL}
	if b.Type != typeWebhook && b.Type != typePullWake {
		return in, invalid(`type must be "webhook" or "pull-wake", not %s`, clip(b.Type))
	}
	if b.Pattern != nil {
		in.Pattern = normalize(*b.Pattern)
		if in.Pattern == "" || !validPattern(in.Pattern) || len(in.Pattern) > hub.MaxTopicLen {
			return in, invalid("pattern %s is not a valid glob of stream paths (segments with *, ?, [...], or **)", clip(*b.Pattern))
		}
	}
	for _, p := range b.Streams {
		p, err := h.checkPath(p)
		if err != nil {
			return in, err
		}
		in.Streams = append(in.Streams, p)
	}
	if in.Pattern == "" && len(in.Streams) == 0 {
		return in, invalid("give a pattern or streams (or both)")
	}
	if b.LeaseTTL != nil {
		n, err := strconv.ParseInt(b.LeaseTTL.String(), 10, 64)
		if err != nil || n < minLeaseTTL || n > maxLeaseTTL {
			return in, invalid("lease_ttl_ms must be an integer from %d to %d", minLeaseTTL, maxLeaseTTL)
		}
		in.LeaseTTL = n
	}
	if b.Description != nil {
		if len(*b.Description) > 1024 {
			return in, invalid("description: at most 1024 bytes")
		}
		in.Description = *b.Description
	}
	switch in.Type {
	case typeWebhook:
		if b.Webhook == nil || b.Webhook.URL == "" {
			return in, invalid("a webhook subscription needs webhook.url")
		}
		if len(b.Webhook.URL) > 2048 {
			return in, refuse(http.StatusBadRequest, "WEBHOOK_URL_REJECTED", "webhook.url: at most 2048 bytes")
		}
		if b.WakeStream != nil {
			return in, invalid("wake_stream is for pull-wake subscriptions")
		}
		in.URL = b.Webhook.URL
	case typePullWake:
		if b.WakeStream == nil {
			return in, invalid("a pull-wake subscription needs wake_stream")
		}
		if b.Webhook != nil {
			return in, invalid("webhook is for webhook subscriptions")
		}
		p, err := h.checkPath(*b.WakeStream)
		if err != nil {
			return in, err
		}
		in.WakeStream = p
	}
	return in, nil
}

// checkPath normalises and checks a stream path.
func (h *handler) checkPath(p string) (string, error) {
	n := normalize(p)
	if n == "" || strings.HasPrefix(n, "__ds/") || n == "__ds" {
		return "", invalid("stream path %s: not a stream's path", clip(p))
	}
	for _, seg := range strings.Split(n, "/") {
		if seg == "" || seg == "." || seg == ".." {
			// No URL reaches such a stream (paths are cleaned).
			return "", invalid("stream path %s: an empty, '.' or '..' segment", clip(p))
		}
	}
	if err := hub.ValidateTopic(h.m.o.TopicPrefix + n); err != nil {
		return "", invalid("stream path %s: %v", clip(p), err)
	}
	return n, nil
}

func (h *handler) put(w http.ResponseWriter, r *http.Request) {
	var b createBody
	derr := decode(w, r, &b)
	var more []string
	if derr == nil && b.Type == typePullWake && b.WakeStream != nil {
		if p, err := h.checkPath(*b.WakeStream); err == nil {
			more = append(more, h.m.o.TopicPrefix+p) // the wake events are appended to it
		}
	}
	id, err := h.manage(r, more...)
	if err == nil {
		err = derr
	}
	var in createInput
	if err == nil {
		in, err = h.parseCreate(b)
	}
	if err != nil {
		writeErr(w, r, err)
		return
	}
	s, created, err := h.m.create(r.Context(), id, base(r), in)
	if err != nil {
		writeErr(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpjson.Write(w, status, h.describe(r, s))
}

// describe is a subscription as PUT and GET answer it (never a secret).
func (h *handler) describe(r *http.Request, s *sub) map[string]any {
	streams := make([]map[string]string, 0, len(s.Links))
	for _, l := range s.Links {
		streams = append(streams, map[string]string{"path": l.Path, "link_type": l.linkType(), "acked_offset": l.Acked})
	}
	out := map[string]any{"id": s.ID, "subscription_id": s.ID, "type": s.Type, "streams": streams, "lease_ttl_ms": s.LeaseTTL,
		"created_at": s.Created, "status": "active"}
	if s.Attempts > 0 {
		out["status"] = "failed"
	}
	if s.Pattern != "" {
		out["pattern"] = s.Pattern
	}
	if s.Description != "" {
		out["description"] = s.Description
	}
	if s.Type == typeWebhook {
		out["webhook"] = map[string]any{"url": s.URL, "signing": map[string]string{"alg": "ed25519", "kid": h.m.key.kid,
			"jwks_url": base(r) + h.m.o.Prefix + "__ds/jwks.json"}}
	} else {
		out["wake_stream"] = s.WakeStream
	}
	return out
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	id, err := h.manage(r)
	if err != nil {
		writeErr(w, r, err)
		return
	}
	s, err := h.m.load(r.Context(), id)
	if err == nil && s == nil {
		err = errNotFound()
	}
	if err != nil {
		writeErr(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, h.describe(r, s))
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	id, err := h.manage(r)
	if err == nil {
		err = h.m.remove(r.Context(), id)
	}
	if err != nil {
		writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) addStreams(w http.ResponseWriter, r *http.Request) {
	id, err := h.manage(r)
	var b struct {
		Streams []string `json:"streams"`
	}
	if err == nil {
		err = decode(w, r, &b)
	}
	if err == nil && len(b.Streams) == 0 {
		err = invalid("streams must be a non-empty array of stream paths")
	}
	paths := make([]string, 0, len(b.Streams))
	for _, p := range b.Streams {
		if err != nil {
			break
		}
		var n string
		n, err = h.checkPath(p)
		paths = append(paths, n)
	}
	if err == nil {
		err = h.m.addStreams(r.Context(), id, paths)
	}
	if err != nil {
		writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) removeStream(w http.ResponseWriter, r *http.Request) {
	id, err := h.manage(r)
	var p string
	if err == nil {
		p, err = h.checkPath(r.PathValue("path"))
	}
	if err == nil {
		err = h.m.removeStream(r.Context(), id, p)
	}
	if err != nil {
		writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) claim(w http.ResponseWriter, r *http.Request) {
	id, err := h.manage(r)
	var b struct {
		Worker string `json:"worker"`
	}
	if err == nil {
		err = decode(w, r, &b)
	}
	if err == nil && (b.Worker == "" || len(b.Worker) > 256) {
		err = invalid("worker must be a non-empty string of at most 256 bytes")
	}
	var c *claimed
	if err == nil {
		c, err = h.m.claim(r.Context(), id, b.Worker)
	}
	if err != nil {
		writeErr(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, c)
}

// settle serves a callback (webhook), an ack or a release (pull-wake).
func (h *handler) settle(typ string, release bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := h.id(r)
		if err != nil {
			writeErr(w, r, err)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			writeErr(w, r, refuse(http.StatusUnauthorized, "TOKEN_INVALID", "missing Authorization: Bearer <the wake's token>"))
			return
		}
		var b callbackReq
		if err := decode(w, r, &b); err != nil {
			writeErr(w, r, err)
			return
		}
		next, err := h.m.settle(r.Context(), id, typ, tok, b, release)
		if err != nil {
			writeErr(w, r, err)
			return
		}
		if release {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]bool{"ok": true, "next_wake": next})
	}
}

// normalize trims a stream path's leading and trailing slashes.
func normalize(p string) string { return strings.Trim(p, "/") }

// clip quotes a client's string for a message, bounded.
func clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}

// quote renders s as a JSON string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
