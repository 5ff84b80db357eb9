package redis

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// NewClient returns a Redis client for rawURL, one of:
//
//	redis://[user:password@]host:port[/db][?option=value...]
//	    one Redis server (rediss:// for TLS, unix:///path/to/socket too);
//	redis://[user:password@]host:port[/db]?master_name=NAME[&addr=host:port...]
//	    Redis Sentinel: the host and each addr are sentinels, NAME the
//	    monitored master; the client follows failovers;
//	redis://[user:password@]host:port?cluster=true[&addr=host:port...]
//	    Redis Cluster: the host and each addr are seed nodes.
//
// Other query parameters are go-redis options in snake case
// (dial_timeout=3s, read_timeout=5s, pool_size=20, max_retries=3, ...); see
// go-redis's ParseURL, ParseFailoverURL and ParseClusterURL.
func NewClient(rawURL string) (goredis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis: invalid URL: %w", err)
	}
	q := u.Query()
	cluster := q.Get("cluster")
	switch strings.ToLower(cluster) {
	case "", "false", "0":
		cluster = ""
	case "true", "1":
	default:
		return nil, fmt.Errorf("redis: cluster=%q: want true or false", cluster)
	}
	q.Del("cluster")
	u.RawQuery = q.Encode()
	switch {
	case cluster != "":
		o, err := goredis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		return goredis.NewClusterClient(o), nil
	case q.Has("master_name"):
		o, err := goredis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		return goredis.NewFailoverClient(o), nil
	}
	o, err := goredis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return goredis.NewClient(o), nil
}

// LogTo sends go-redis's own log lines (connection pool retries, dial
// failures) to log at debug level instead of standard error: the broker
// reports what matters (publishes failing, live delivery interrupted). go-redis
// has one logger per process, so this affects every Redis client in it.
func LogTo(log *slog.Logger) { goredis.SetLogger(slogPrinter{log}) }

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(ctx context.Context, format string, v ...any) {
	p.log.DebugContext(ctx, "go-redis: "+strings.TrimSpace(fmt.Sprintf(format, v...)))
}
