//go:build tools

// Package deps pins modules that packages under construction will import.
// TEMPORARY: removed once every module is imported by real code.
package deps

import (
	_ "github.com/HdrHistogram/hdrhistogram-go"
	_ "github.com/chromedp/chromedp"
	_ "github.com/coder/websocket"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/testutil/promlint"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/tmaxmax/go-sse"
	_ "github.com/yosida95/uritemplate/v3"
	_ "go.etcd.io/bbolt"
	_ "go.uber.org/goleak"
	_ "go.yaml.in/yaml/v3"
)
