// The browser side of TestClientInChromium (internal/e2e/streams): a page,
// bundled by esbuild from node_modules, that runs the client scenario
// against the Herald named by its ?herald= parameter (another origin, which
// allows this one by CORS) and keeps the outcome in window.heraldTest.
import { run } from "./client.mjs"

const base = new URLSearchParams(location.search).get("herald")
window.heraldTest = { done: false, error: "", out: null }
run(base, "chromium").then(
  (out) => { window.heraldTest.out = out; window.heraldTest.done = true },
  (err) => { window.heraldTest.error = String(err?.stack ?? err); window.heraldTest.done = true },
)
