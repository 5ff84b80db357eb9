// Package auth turns the credentials of an HTTP request into what it may do.
//
// A request carries a JSON Web Token (see [TokenFromRequest] for where it is
// looked for). A [Verifier] checks the token's signature with a configured
// key — an HMAC secret, a public key, or the keys of a JWKS URL, fetched and
// cached by a [JWKS] — and its registered claims (exp, nbf, aud, iss), and
// returns a [Grant]: the topics the holder may publish to and subscribe to.
//
// Permissions are written as Mercure writes them, so existing token issuers
// work unchanged:
//
//	{"mercure": {"publish": ["orders/*"], "subscribe": ["orders/42", "news"]}}
//
// The current Mercure protocol's grant is read too: an access token (header
// typ "at+jwt", RFC 9068) may carry authorization_details (RFC 9396) whose
// Mercure entries grant publish and subscribe on the topics of their
// exact and URL pattern matchers ([ParseAuthorizationDetails],
// internal/topicmatch); a grant adds both claims up.
//
// Each entry of the mercure claim is a topic selector, compiled by a
// [Compiler] into a [Matcher].
// The default compiler, [Patterns], knows exact topics, "*" (every topic) and
// glob patterns ("orders/*", "orgs/7/**"); see [CompilePattern]. A Mercure
// endpoint plugs its URI-template matcher in with a [CompilerFunc] that falls
// back to [Patterns].
//
// [Authorizer] holds one server's verifiers: separate ones for publishers
// and subscribers (they may be the same). What a request may do with its
// grant is decided elsewhere, by the access policy (internal/access),
// which also finds the token ([TokenFromRequest], or
// [MercureTokenFromRequest] on the Mercure endpoint) and verifies it at
// most once per request. Errors are [*Error] values carrying the HTTP
// status (401 for a missing, invalid or expired token; 403 for a token
// that does not cover a topic) and a stable code; the policy turns them
// into its one error type.
package auth
