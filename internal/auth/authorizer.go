package auth

// Role is what a token is checked for: publishing or subscribing.
type Role uint8

const (
	// RoleSubscriber checks a token with the subscriber key.
	RoleSubscriber Role = iota
	// RolePublisher checks a token with the publisher key.
	RolePublisher
)

func (r Role) String() string {
	if r == RolePublisher {
		return "publisher"
	}
	return "subscriber"
}

// Authorizer holds a server's verifiers: one for publishers' tokens and one
// for subscribers' (they may be the same). A nil verifier means no key is
// configured for that role. Its fields must not change once it is in use.
type Authorizer struct {
	Publisher  *Verifier
	Subscriber *Verifier
}

// Verifier returns the verifier of role, nil if none is configured.
func (a *Authorizer) Verifier(role Role) *Verifier {
	if a == nil {
		return nil
	}
	if role == RolePublisher {
		return a.Publisher
	}
	return a.Subscriber
}
