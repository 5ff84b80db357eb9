// Runner settings for the conformance suite: one file, tests as the suite
// orders them; a test gets more time than vitest's 5 s default because the
// machine running it may be shared and slow.
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["conformance.test.mjs"],
    testTimeout: 30000,
    hookTimeout: 30000,
  },
})
