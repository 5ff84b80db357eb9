// The Node side of TestClientInNode (internal/e2e/streams): runs the client
// scenario against the Herald at argv[2] and prints what it saw as JSON.
import { run } from "./client.mjs"

try {
  const out = await run(process.argv[2], process.argv[3] ?? "node")
  console.log(JSON.stringify(out))
} catch (err) {
  console.error(err?.stack ?? String(err))
  process.exit(1)
}
