// The official Durable Streams conformance suite, unmodified, against the
// Herald at HERALD_URL (set by the Go test TestConformance).
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

runConformanceTests({
  baseUrl: process.env.HERALD_URL,
  longPollTimeoutMs: Number(process.env.HERALD_LONG_POLL_MS ?? 20000),
  // The subscriptions extension (webhook and pull-wake): Herald serves
  // it (internal/dssub); the suite's webhook receiver listens on
  // 127.0.0.1, which the harness allows with --ds-webhook-allow.
  subscriptions: true,
})
