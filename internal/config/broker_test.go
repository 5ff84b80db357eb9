package config

import (
	"strings"
	"testing"
	"time"
)

func TestBrokerDefaultsAndEnv(t *testing.T) {
	c, err := wsFlags(t, nil, map[string]string{"HERALD_BROKER": "nats://n1:4222,nats://n2:4222", "HERALD_BROKER_STREAM": "PUSH", "HERALD_BROKER_REPLICAS": "3"})
	if err != nil {
		t.Fatal(err)
	}
	b := c.Broker
	if b.URL != "nats://n1:4222,nats://n2:4222" || b.Stream != "PUSH" || b.Replicas != 3 || b.Prefix != "herald" || b.Timeout != 5*time.Second {
		t.Fatalf("broker settings: %+v", b)
	}
	if err := b.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBrokerValidate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for valid
	}{
		{[]string{"--broker", "redis://127.0.0.1:6379/0"}, ""},
		{[]string{"--broker", "rediss://u:p@h:6380/1?master_name=m"}, ""},
		{[]string{"--broker", "tls://n:4222"}, ""},
		{[]string{"--broker", "kafka://k:9092"}, "is not memory"},
		{[]string{"--broker", "redis://h:6379", "--data-dir", "/tmp/x"}, "data-dir: only for the embedded broker"},
		{[]string{"--broker-prefix", ""}, "broker-prefix"},
		{[]string{"--broker-prefix", "a{b}"}, "broker-prefix"},
		{[]string{"--broker-stream", "HER.ALD"}, "broker-stream"},
		{[]string{"--broker-stream", ""}, "broker-stream"},
		{[]string{"--broker-replicas", "0"}, "broker-replicas"},
		{[]string{"--broker-replicas", "7"}, "broker-replicas"},
		{[]string{"--broker-timeout", "0s"}, "broker-timeout"},
		{[]string{"--node-id", "web-1.example:8080"}, ""},
		{[]string{"--node-id", "a/b"}, "node-id"},
		{[]string{"--node-id", strings.Repeat("n", 129)}, "node-id"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			c, err := wsFlags(t, tc.args, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Broker.validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("validate: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("validate: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestBrokerShards(t *testing.T) {
	c, err := wsFlags(t, []string{"--broker", "redis://a:6379/0", "--broker", "redis://u:secret@b:6379/0", "--broker-shards", "4"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Broker.URL != "redis://a:6379/0" || len(c.Broker.All()) != 2 || c.Broker.Shards != 4 {
		t.Fatalf("broker settings: %+v", c.Broker)
	}
	if err := c.Broker.validate(); err != nil {
		t.Fatal(err)
	}
	if got := Redact("broker", (&brokerURLs{&c.Broker}).String()); strings.Contains(got, "secret") || !strings.Contains(got, "b:6379") {
		t.Errorf("redacted broker URLs: %q", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--broker-shards", "0"}, "broker-shards"},
		{[]string{"--broker-shards", "257"}, "broker-shards"},
		{[]string{"--broker", "redis://a", "--broker", "nats://b"}, "must all be redis:// or all nats://"},
		{[]string{"--broker", "redis://a", "--broker", "redis://b", "--broker", "redis://c", "--broker-shards", "2"}, "at least as many"},
		{[]string{"--broker-prefix", "a#1"}, "broker-prefix"},
	} {
		c, err := wsFlags(t, tc.args, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Broker.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: validate = %v, want %q", tc.args, err, tc.want)
		}
	}
}
