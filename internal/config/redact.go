package config

import (
	"net/url"
	"strings"
)

// Redact returns a flag's value fit to be shown (in `herald config print`,
// logs, /readyz, the dashboard): the whole value of a secret flag (see
// IsSecret) becomes "REDACTED", and any other value that holds a URL loses
// the credentials in it (see RedactURL). Every place that shows
// configuration uses it, so that no secret leaks through one of them.
func Redact(flagName, value string) string {
	if value == "" {
		return ""
	}
	if IsSecret(flagName) {
		return "REDACTED"
	}
	if !strings.Contains(value, "://") {
		return value
	}
	// List flags hold comma-separated items (repeated --broker values are
	// space-separated); redact each.
	urls := strings.Split(value, " ")
	for j, u := range urls {
		parts := strings.Split(u, ",")
		for i, p := range parts {
			parts[i] = RedactURL(p)
		}
		urls[j] = strings.Join(parts, ",")
	}
	return strings.Join(urls, " ")
}

// credentialParams are query parameters whose values RedactURL hides: any
// name that contains one of these, in any case.
var credentialParams = []string{"pass", "pwd", "secret", "token", "key", "auth", "credential", "signature", "sig"}

// RedactURL returns raw with its credentials hidden: the password of the
// user information ("redis://user:xxxxx@host"), and the values of query
// parameters whose names suggest a secret (password, token, api_key,
// authorization, ...). A value that does not parse as a URL but holds
// "://" and "@" is replaced whole, so that a malformed URL cannot carry a
// password through.
func RedactURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		if strings.Contains(raw, "@") {
			return "REDACTED"
		}
		return raw
	}
	changed := false
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			changed = true
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = "REDACTED"
			changed = true
		} else {
			for k, vs := range q {
				if sensitiveParam(k) {
					for i := range vs {
						vs[i] = "REDACTED"
					}
					changed = true
				}
			}
			if changed {
				u.RawQuery = q.Encode()
			}
		}
	}
	if !changed {
		return raw
	}
	return u.String()
}

func sensitiveParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range credentialParams {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}
