package access

import "strings"

// Namespace is a class of topics that belongs to one face: the faces
// register theirs while mounting (Policy.Reserve), and every decision
// about a topic starts by looking its class up here. A topic in no
// namespace is an ordinary topic, open to every face under the ordinary
// rules.
type Namespace struct {
	// Name names the class in errors and docs ("mercure", "chat", "demo").
	Name string
	// Face owns the namespace: the only face that may write to it, and
	// the one whose rules apply to it.
	Face Face
	// Match reports whether a topic is in the namespace. It must be fast
	// and safe for concurrent use.
	Match func(topic string) bool
	// Read says who may read the namespace's topics, and through which
	// faces.
	Read Reach
	// Writable lets the owning face publish to the namespace through the
	// policy (Publish, Send); without it no request may publish to it
	// (the owning face writes by itself, as chat does).
	Writable bool
	// Path is where the namespace's topics are meant to be read, for the
	// message of a refusal (e.g. "/.well-known/mercure").
	Path string
}

// Reach says who may read a namespace's topics.
type Reach uint8

const (
	// ReachOwnFace: only through the owning face, under its rules (the
	// Mercure hub's own topics, which carry every update and subscription
	// event: following them elsewhere would bypass Mercure's filters).
	ReachOwnFace Reach = iota
	// ReachAsTopic: through any face, under the ordinary subscribe rules
	// (a token covering the topic, or no token where anonymous
	// subscribers are allowed), without any face's widening (Mercure's
	// "a valid token reads public updates"). A chat answer is readable by
	// whoever may read that chat, through any face.
	ReachAsTopic
	// ReachAnyone: anyone, through any face, without a token; public
	// events only (the demo, which is open to anyone by design).
	ReachAnyone
)

func (r Reach) String() string {
	switch r {
	case ReachOwnFace:
		return "own face only"
	case ReachAsTopic:
		return "any face, ordinary rules"
	case ReachAnyone:
		return "anyone"
	}
	return "?"
}

// Prefix returns a Match function for the topics that start with one of
// prefixes.
func Prefix(prefixes ...string) func(string) bool {
	return func(t string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(t, p) {
				return true
			}
		}
		return false
	}
}

// namespaceOf returns the namespace of topic, nil for an ordinary topic.
func (p *Policy) namespaceOf(topic string) *Namespace {
	for i := range p.namespaces {
		if p.namespaces[i].Match(topic) {
			return &p.namespaces[i]
		}
	}
	return nil
}

// Namespaces returns the reserved namespaces, in the order they were
// registered.
func (p *Policy) Namespaces() []Namespace { return append([]Namespace(nil), p.namespaces...) }

// Class returns the name of topic's namespace, "" for an ordinary topic.
func (p *Policy) Class(topic string) string {
	if ns := p.namespaceOf(topic); ns != nil {
		return ns.Name
	}
	return ""
}
