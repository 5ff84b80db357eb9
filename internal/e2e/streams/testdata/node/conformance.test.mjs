// The official Durable Streams conformance suite, unmodified, against the
// Herald at HERALD_URL (set by the Go test TestConformance).
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

runConformanceTests({
  baseUrl: process.env.HERALD_URL,
  longPollTimeoutMs: Number(process.env.HERALD_LONG_POLL_MS ?? 20000),
})
