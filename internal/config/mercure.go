package config

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
)

// Mercure configures the Mercure protocol endpoint (/.well-known/mercure).
// Its keys, anonymous access and CORS are Herald's own settings
// (--jwt-key, --publisher-jwt-key, --subscriber-jwt-key, --allow-anonymous,
// --cors-origins): docs/mercure.md maps the reference hub's options to them.
type Mercure struct {
	// Disable turns the endpoint off (404).
	Disable bool
	// Subscriptions publishes subscription events and serves the
	// subscriptions API, like the reference hub's "subscriptions" option.
	Subscriptions bool
	// CookieName is the cookie a browser's token may come in.
	CookieName string
	// IDIndexSize bounds the publisher-chosen event ids remembered so that
	// clients can resume from them.
	IDIndexSize int
}

func (c *Mercure) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.Disable, "mercure-disable", false, "turn off the Mercure protocol endpoint at /.well-known/mercure")
	fs.BoolVar(&c.Subscriptions, "mercure-subscriptions", false, "publish Mercure subscription events and serve the subscriptions API (/.well-known/mercure/subscriptions)")
	fs.StringVar(&c.CookieName, "mercure-cookie-name", "mercureAuthorization", "cookie that carries a Mercure subscriber's or publisher's token (__Secure-mercure_access_token, the current protocol's, and heraldAuthorization are read too)")
	fs.IntVar(&c.IDIndexSize, "mercure-id-index-size", 100000, "most publisher-chosen Mercure event ids remembered for resuming from them (the least recently published are forgotten first)")
}

func (c *Mercure) validate() error {
	var errs []error
	if c.IDIndexSize <= 0 {
		errs = append(errs, fmt.Errorf("mercure-id-index-size: must be positive, got %d", c.IDIndexSize))
	}
	if c.CookieName == "" || (&http.Cookie{Name: c.CookieName, Value: "x"}).Valid() != nil {
		errs = append(errs, fmt.Errorf("mercure-cookie-name: %q is not a valid cookie name", c.CookieName))
	}
	return errors.Join(errs...)
}
