// A scenario of the project's TypeScript client (@durable-streams/client,
// unmodified) against Herald, shared by node.mjs (Node) and page.mjs
// (Chromium): create streams, append (plainly and through an idempotent
// producer), read catch-up, and follow live in SSE and long-poll modes while
// appends arrive. It returns what it saw, for the Go test to check.
import { DurableStream, IdempotentProducer, stream } from "@durable-streams/client"

// within rejects when p does not settle in ms.
function within(p, ms, what) {
  let timer
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms) })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

// follow reads a live stream from offset until it holds want items (JSON)
// or want characters (text), appending with more() once it is caught up.
async function follow(url, live, offset, json, want, more) {
  const res = await stream({ url, live, offset })
  const got = []
  let text = ""
  let appended = false
  await within(new Promise((resolve, reject) => {
    const done = () => { res.cancel(); resolve() }
    const step = async (upToDate) => {
      if (upToDate && !appended) {
        appended = true
        more().catch(reject)
      }
    }
    if (json) {
      res.subscribeJson(async (batch) => {
        got.push(...batch.items)
        if (got.length >= want) return done()
        await step(batch.upToDate)
      })
    } else {
      res.subscribeText(async (chunk) => {
        text += chunk.text
        if (text.length >= want) return done()
        await step(chunk.upToDate)
      })
    }
  }), 20000, `${live} read of ${url}`)
  return json ? got : text
}

export async function run(base, name) {
  const out = {}
  // A JSON stream: plain appends, then an idempotent producer's batch.
  const jsonURL = `${base}/v1/stream/${name}-json`
  const handle = await DurableStream.create({ url: jsonURL, contentType: "application/json" })
  await handle.append(JSON.stringify({ n: 1 }))
  await handle.append(JSON.stringify({ n: 2 }))
  const producer = new IdempotentProducer(handle, `${name}-producer`, { autoClaim: true })
  for (let n = 3; n <= 5; n++) producer.append(JSON.stringify({ n }))
  await producer.flush()
  // Catch-up.
  const caught = await stream({ url: jsonURL, live: false })
  out.catchUp = await caught.json()
  out.offset = caught.offset
  // Live, SSE: from the catch-up's offset, while three more items come.
  out.sse = await follow(jsonURL, "sse", out.offset, true, 3, async () => {
    for (let n = 6; n <= 8; n++) {
      producer.append(JSON.stringify({ n }))
      await producer.flush()
    }
  })
  await producer.close()
  const head = await handle.head()
  out.closed = head.streamClosed ?? null
  // A text stream, followed live by long-poll from its start.
  const textURL = `${base}/v1/stream/${name}-text`
  const text = await DurableStream.create({ url: textURL, contentType: "text/plain" })
  await text.append("hello ")
  out.longPoll = await follow(textURL, "long-poll", "-1", false, "hello world".length, async () => {
    await text.append("world")
  })
  // A binary stream read back byte for byte.
  const binURL = `${base}/v1/stream/${name}-bin`
  const bytes = new Uint8Array(256).map((_, i) => i)
  const bin = await DurableStream.create({ url: binURL, contentType: "application/octet-stream" })
  await bin.append(bytes)
  const back = await (await stream({ url: binURL, live: false })).body()
  out.binaryOK = back.length === 256 && back.every((b, i) => b === i)
  return out
}
