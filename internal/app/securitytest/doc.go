// Package securitytest holds the end-to-end tests of Herald's security
// features (issue 6): token verification, private events on every delivery
// path, development mode, CORS, TLS and HTTP/2, limits, and a table of
// hostile requests. Everything runs over real loopback HTTP, and the browser
// tests in a real headless Chromium.
package securitytest
