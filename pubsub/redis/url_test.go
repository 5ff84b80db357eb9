package redis

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

func TestNewClient(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		cluster   bool
		addr      string // for single servers
		db        int
		bad       bool
	}{
		{name: "single", url: "redis://127.0.0.1:6379/2", addr: "127.0.0.1:6379", db: 2},
		{name: "default db", url: "redis://localhost:6380", addr: "localhost:6380"},
		{name: "options", url: "redis://h:1/0?dial_timeout=3s&pool_size=5", addr: "h:1"},
		{name: "sentinel", url: "redis://s1:26379/0?master_name=mymaster&addr=s2:26379"},
		{name: "cluster", url: "redis://n1:7000?cluster=true&addr=n2:7000", cluster: true},
		{name: "not cluster", url: "redis://n1:7000?cluster=false", addr: "n1:7000"},
		{name: "bad cluster value", url: "redis://n1:7000?cluster=maybe", bad: true},
		{name: "bad scheme", url: "http://h:1", bad: true},
		{name: "unknown option", url: "redis://h:1?frobnicate=1", bad: true},
		{name: "bad db", url: "redis://h:1/x", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(tc.url)
			if tc.bad {
				if err == nil {
					c.Close()
					t.Fatalf("NewClient(%q) succeeded, want an error", tc.url)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClient(%q): %v", tc.url, err)
			}
			defer c.Close()
			_, isCluster := c.(*goredis.ClusterClient)
			if isCluster != tc.cluster {
				t.Fatalf("cluster client: %v, want %v", isCluster, tc.cluster)
			}
			if tc.addr != "" {
				o := c.(*goredis.Client).Options()
				if o.Addr != tc.addr || o.DB != tc.db {
					t.Errorf("addr %q db %d, want %q %d", o.Addr, o.DB, tc.addr, tc.db)
				}
			}
		})
	}
}
