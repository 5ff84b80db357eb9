// herald.js — the browser client of Herald, a real-time push server.
//
// An ES module with no dependencies. It receives a set of topics over
// WebSocket when the network is good and over Server-Sent Events when it is
// weak (high round-trip time or loss, measured with GET /ping), or when
// WebSockets are blocked. It reacts within seconds: a light check every few
// seconds (a ping frame on the WebSocket, one GET /ping sample) and every
// slow or missing acknowledgement or heartbeat trigger a full probe at once,
// and so does every reconnection. Switching is lossless: the new transport resumes
// from the last event id the client saw, and events are deduplicated by id,
// so no event is lost or shown twice across any number of switches.
// Messages sent with send() are queued while switching or offline, flushed
// in order, and retried with the same message id, which the server
// deduplicates: each is delivered once.
//
// Guide: docs/herald-js.md. Types: herald.d.ts. Served by the Herald binary
// at /herald.js.

const DEFAULTS = Object.freeze({
  topics: [],
  transport: 'auto',
  rttThreshold: 300,
  lossThreshold: 0.2,
  probeInterval: 30000,
  probeSamples: 5,
  probeTimeout: 2000,
  checkInterval: 3000,
  heartbeatTimeout: 45000,
  wsFailuresBeforeFallback: 2,
  wsRetryInterval: 60000,
  wsStableTime: 10000,
  reconnectDelay: 1000,
  maxReconnectDelay: 30000,
  connectTimeout: 10000,
  ackTimeout: 10000,
  sendTopic: undefined,
  lastEventId: undefined,
  clientId: undefined,
  token: undefined,
  getToken: undefined,
  dedupeSize: 10000,
  simulatedLatency: 0,
});

const MODES = ['auto', 'websocket', 'sse'];

/** Error of a message the server refused (status 4xx) or of a closed client. */
export class HeraldError extends Error {
  constructor(message, status = 0, code = '') {
    super(message);
    this.name = 'HeraldError';
    this.status = status;
    this.code = code;
  }
}

function randomId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  let s = '';
  for (let i = 0; i < 4; i++) s += Math.floor(Math.random() * 0x100000000).toString(36);
  return s;
}

function median(xs) {
  if (xs.length === 0) return Infinity;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const now = () => (globalThis.performance ? performance.now() : Date.now());

/**
 * Herald is a connection to a Herald server following some topics, over
 * WebSocket or SSE. It is an EventTarget; every event carries its data in
 * `detail`. Events: 'message' (every published event), 'event:<type>' (by
 * event type; untyped events are 'event:message'), 'open', 'close',
 * 'transport', 'reset', 'network', 'error'.
 */
export class Herald extends EventTarget {
  #o;
  #base;
  #mode;
  #clientId;
  #cur = null; // the link events come from
  #next = null; // a link being opened to replace (or become) #cur
  #lastId; // position when no link is current
  #lastKind = null;
  #seen = new Set();
  #network = null;
  #verdict = null; // the last probe that reached the server
  #probing = null;
  #checkTimer = 0;
  #ping = null; // the WebSocket ping in flight: {t, at, link}
  #missedPongs = 0;
  #pingSeq = 0;
  #everConnected = false;
  #onVisible = null;
  #probeTimer = 0;
  #lastProbeAt = 0;
  #reconnectTimer = 0;
  #reconnectAttempts = 0;
  #wsFailures = 0;
  #wsBlockedUntil = 0;
  #switchFailures = 0;
  #switchBackoffUntil = 0;
  #queue = [];
  #msgSeq = 0;
  #pumpTimer = 0;
  #connected = false;
  #closed = false;
  #finished = false;

  /**
   * @param {string} baseUrl the server's URL, e.g. "https://push.example.com" or "" for this page's origin
   * @param {object} options see herald.d.ts
   */
  constructor(baseUrl, options = {}) {
    super();
    const o = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) o[k] = v;
    if (typeof o.topics === 'string') o.topics = [o.topics];
    if (!Array.isArray(o.topics) || o.topics.length === 0) throw new TypeError('herald: options.topics must name at least one topic');
    if (!MODES.includes(o.transport)) throw new TypeError(`herald: options.transport must be one of ${MODES.join(', ')}`);
    this.#o = o;
    const loc = globalThis.location ? globalThis.location.href : undefined;
    const base = new URL(baseUrl || '/', loc);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    base.search = '';
    base.hash = '';
    this.#base = base;
    this.#mode = o.transport;
    this.#clientId = o.clientId || randomId();
    this.#lastId = o.lastEventId || '';
    // Start once the caller had a chance to add listeners.
    queueMicrotask(() => this.#start());
  }

  /** The transport events come over now: 'websocket', 'sse', or null when not connected. */
  get transport() { return this.#cur ? this.#cur.kind : null; }
  /** The transport mode: 'auto', 'websocket' or 'sse'. */
  get mode() { return this.#mode; }
  /** The id of the last event (or position) received: where a new connection resumes. */
  get lastEventId() { return this.#cur ? this.#cur.lastId : this.#lastId; }
  /** The last network probe, or null before the first. */
  get network() { return this.#network; }
  /** This client's id, sent with every message for deduplication. */
  get clientId() { return this.#clientId; }
  /** 'connecting', 'open', 'finished' (every topic ended) or 'closed' (close() was called). */
  get state() {
    if (this.#closed) return 'closed';
    if (this.#finished) return 'finished';
    return this.#connected ? 'open' : 'connecting';
  }
  /** Messages sent and not acknowledged yet. */
  get pendingSends() { return this.#queue.length; }
  /** Extra milliseconds added to every probe sample (demos: pretend the network is slow). */
  get simulatedLatency() { return this.#o.simulatedLatency; }
  set simulatedLatency(ms) { this.#o.simulatedLatency = Math.max(0, Number(ms) || 0); }

  /** Adds a listener that receives the event's detail; returns a function that removes it. */
  on(type, fn) {
    const l = (e) => fn(e.detail);
    this.addEventListener(type, l);
    return () => this.removeEventListener(type, l);
  }

  /** Changes the transport mode at run time. */
  setTransport(mode) {
    if (!MODES.includes(mode)) throw new TypeError(`herald: transport must be one of ${MODES.join(', ')}`);
    this.#mode = mode;
    this.#switchBackoffUntil = 0;
    if (mode === 'auto') {
      this.#wsBlockedUntil = 0;
      this.probe().catch(() => {});
    } else {
      clearTimeout(this.#probeTimer);
      this.#ensure();
    }
  }

  /**
   * Sends a message to the server. It resolves with the server's ack
   * ({msgId, id, duplicate}) once the message is delivered, and rejects with
   * a HeraldError if the server refuses it (4xx) or the client is closed.
   * Messages are sent one at a time, in order; while switching or offline
   * they wait, and failed attempts are retried with the same message id.
   */
  send(data, options = {}) {
    if (this.#closed) return Promise.reject(new HeraldError('herald: closed'));
    const msg = { msgId: `${Date.now().toString(36)}-${(++this.#msgSeq).toString(36)}` };
    const topic = options.topic !== undefined ? options.topic : this.#o.sendTopic;
    if (topic) msg.topic = topic;
    if (options.event) msg.event = options.event;
    if (data !== undefined) msg.data = data;
    return new Promise((resolve, reject) => {
      this.#queue.push({ msg, resolve, reject, link: null, timer: 0, attempt: 0, waitUntil: 0 });
      this.#pump();
    });
  }

  /** Measures the network now (several GET /ping samples) and returns the report. */
  probe() {
    if (this.#probing) return this.#probing;
    this.#probing = (async () => {
      try {
        const report = await this.#measure();
        if (this.#closed) return report;
        this.#network = report;
        // A server that does not answer says nothing about the network:
        // keep choosing by the last probe that reached it.
        if (!report.offline) this.#verdict = report;
        this.#emit('network', report);
        this.#ensure();
        return report;
      } finally {
        this.#probing = null;
        this.#lastProbeAt = Date.now();
        if (this.#mode === 'auto' && !this.#closed && !this.#finished) {
          clearTimeout(this.#probeTimer);
          this.#probeTimer = setTimeout(() => this.probe().catch(() => {}), this.#o.probeInterval);
        }
      }
    })();
    return this.#probing;
  }

  /** Closes the connection for good; unsent messages are rejected. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    this.#dropLinks();
    if (this.#onVisible) globalThis.document.removeEventListener('visibilitychange', this.#onVisible);
    const queue = this.#queue;
    this.#queue = [];
    for (const item of queue) {
      clearTimeout(item.timer);
      item.reject(new HeraldError('herald: closed before the message was acknowledged'));
    }
    this.#connected = false;
    this.#emit('close', { finished: false, reconnecting: false });
  }

  // ---- internals --------------------------------------------------------

  #emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  #url(path, params) {
    const u = new URL(path, this.#base);
    for (const [k, v] of params) u.searchParams.append(k, v);
    return u;
  }

  async #authParams() {
    let token = this.#o.token;
    if (typeof this.#o.getToken === 'function') token = await this.#o.getToken();
    return token ? [['authorization', token]] : [];
  }

  async #start() {
    if (this.#closed) return;
    const doc = globalThis.document;
    if (doc && typeof doc.addEventListener === 'function') {
      // A tab coming back to the front checks the network at once.
      this.#onVisible = () => { if (doc.visibilityState === 'visible') this.#scheduleCheck(0); };
      doc.addEventListener('visibilitychange', this.#onVisible);
    }
    this.#scheduleCheck();
    if (this.#mode === 'auto') await this.probe().catch(() => {});
    else this.#ensure();
  }

  // sample times one GET /ping: {ok, rtt} or {ok: false, error} (the server
  // did not answer, or answered with an error) or {ok: false, timeout}.
  async #sample() {
    const o = this.#o;
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), o.probeTimeout);
    const t0 = now();
    try {
      const r = await fetch(this.#url('ping', [['_', randomId()]]), { cache: 'no-store', signal: ctrl.signal });
      if (!r.ok) return { ok: false, error: true };
      const rtt = now() - t0 + o.simulatedLatency;
      return rtt > o.probeTimeout ? { ok: false, timeout: true } : { ok: true, rtt };
    } catch {
      return ctrl.signal.aborted ? { ok: false, timeout: true } : { ok: false, error: true };
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- checks between probes ---------------------------------------------
  //
  // Every checkInterval (a little jittered) the client looks at the
  // connection it has, cheaply: a ping frame on a WebSocket (its pong
  // measures the round trip on the connection itself; a missing one means
  // trouble), the heartbeat of an SSE stream (the server's keep-alive
  // comments: none for heartbeatTimeout means the stream is dead), and in
  // 'auto' mode one GET /ping sample. A sample or pong that disagrees with
  // the last probe — slow on a good network, fast on a weak one, an answer
  // from a server that was unreachable — starts a full probe at once. With
  // no connection (the server is down), a sample that gets an answer
  // reconnects at once instead of waiting for the backoff.

  #scheduleCheck(delay) {
    clearTimeout(this.#checkTimer);
    this.#checkTimer = 0;
    const every = this.#o.checkInterval;
    if (!(every > 0) || this.#closed || this.#finished) return;
    const d = delay !== undefined ? delay : every * (0.9 + Math.random() * 0.2);
    const timer = setTimeout(async () => {
      await this.#check().catch(() => {});
      if (this.#checkTimer === timer) this.#scheduleCheck();
    }, d);
    this.#checkTimer = timer;
  }

  async #check() {
    if (this.#closed || this.#finished) return;
    const doc = globalThis.document;
    if (doc && doc.visibilityState === 'hidden') return; // a background tab waits
    const cur = this.#cur;
    if (cur && cur.kind === 'websocket') this.#wsPing(cur);
    if (cur && cur.kind === 'sse' && this.#o.heartbeatTimeout > 0 && Date.now() - cur.lastActivity > this.#o.heartbeatTimeout) {
      cur.fail({ stalled: true }); // no byte, not even a keep-alive: the stream is dead
      return;
    }
    const offline = !this.#cur && !this.#next;
    if (!offline && (this.#mode !== 'auto' || this.#probing)) return;
    const s = await this.#sample();
    if (this.#closed || this.#finished) return;
    if (!this.#cur && !this.#next) {
      if (s.ok) this.#reconnectNow();
      return;
    }
    if (this.#mode !== 'auto' || this.#probing) return;
    const weak = this.#verdict ? this.#verdict.weak : false;
    const sampleWeak = !s.ok || s.rtt > this.#o.rttThreshold;
    const wasOffline = !!(this.#network && this.#network.offline);
    if (sampleWeak !== weak || (wasOffline && s.ok)) this.probe().catch(() => {});
  }

  // reconnectNow ends the reconnection backoff: the server answers again.
  #reconnectNow() {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = 0;
    this.#reconnectAttempts = 0;
    this.#switchBackoffUntil = 0;
    if (this.#mode === 'auto') this.probe().catch(() => {});
    this.#ensure();
  }

  // wsPing sends a ping frame on the WebSocket; its pong measures the round
  // trip. A pong still missing at the next check is a missed heartbeat:
  // one starts a probe, two in a row end the connection (it is dead).
  #wsPing(link) {
    const p = this.#ping;
    if (p && p.link === link) {
      if (++this.#missedPongs >= 2) {
        this.#ping = null;
        link.fail({ timeout: true, heartbeat: true });
        return;
      }
      this.#trouble();
    }
    if (!link.canSend()) return;
    this.#ping = { t: ++this.#pingSeq, at: now(), link };
    link.sendFrame({ type: 'ping', t: this.#ping.t });
  }

  #pong(link, f) {
    const p = this.#ping;
    if (!p || p.link !== link || f.t !== p.t) return;
    this.#ping = null;
    this.#missedPongs = 0;
    this.#slow(now() - p.at);
  }

  // slow starts a probe when a round trip seen on the way (a pong, an
  // acknowledgement) is over the threshold while the network counts as
  // good.
  #slow(ms) {
    const rtt = ms + this.#o.simulatedLatency;
    if (rtt > this.#o.rttThreshold && !(this.#verdict && this.#verdict.weak)) this.#trouble();
  }

  // measure takes up to probeSamples samples of GET /ping. It stops early
  // once the verdict is weak whatever the other samples say (more than
  // half of them slow, or more lost than lossThreshold allows), so that a
  // slow network is recognised in a few round trips.
  async #measure() {
    const o = this.#o;
    const n = Math.max(1, o.probeSamples);
    const rtts = [];
    let lost = 0;
    let errors = 0;
    let slow = 0;
    let taken = 0;
    while (taken < n) {
      const s = await this.#sample();
      taken++;
      if (s.ok) {
        rtts.push(s.rtt);
        if (s.rtt > o.rttThreshold) slow++;
      } else {
        lost++;
        if (s.error) errors++;
      }
      if (this.#closed) break;
      if (slow > n / 2 || lost / n > o.lossThreshold) {
        if (errors < taken) break;
      }
    }
    const rtt = median(rtts);
    const loss = lost / taken;
    // No sample got an answer: the server is unreachable, which says
    // nothing about the network.
    const offline = errors === taken;
    return { rtt, loss, weak: !offline && (rtt > o.rttThreshold || loss > o.lossThreshold), offline, samples: taken, at: Date.now() };
  }

  // desired returns the transport the conditions call for and why, or
  // null before the first probe: [kind, reason].
  #desired() {
    const hasWS = typeof globalThis.WebSocket === 'function';
    switch (this.#mode) {
      case 'websocket': return hasWS ? ['websocket', 'forced'] : ['sse', 'unsupported'];
      case 'sse': return ['sse', 'forced'];
    }
    if (!this.#network) return null;
    if (!hasWS) return ['sse', 'unsupported'];
    if (Date.now() < this.#wsBlockedUntil) return ['sse', 'fallback'];
    // Never reached the server yet: try WebSocket, which falls back.
    if (!this.#verdict) return ['websocket', 'good'];
    return this.#verdict.weak ? ['sse', 'weak'] : ['websocket', 'good'];
  }

  // ensure opens the transport the conditions call for, if it is not the
  // current one. The current link keeps delivering until the new one has
  // its first frame (make before break).
  #ensure() {
    if (this.#closed || this.#finished) return;
    const d = this.#desired();
    if (!d) return;
    const [want, reason] = d;
    if (this.#next) {
      if (this.#next.kind === want) return;
      this.#next.close();
      this.#next = null;
    }
    if (this.#cur && this.#cur.kind === want) return;
    if (!this.#cur && this.#reconnectTimer) return; // backing off
    if (this.#cur && Date.now() < this.#switchBackoffUntil) return; // the last switch failed
    this.#open(want, reason);
  }

  #open(kind, reason) {
    const sink = {
      frame: (link, f) => this.#frame(link, f),
      reply: (link, f) => this.#reply(link, f),
      pong: (link, f) => this.#pong(link, f),
      end: (link, info) => this.#end(link, info),
    };
    const link = kind === 'websocket' ? new WsLink(this, sink) : new SseLink(this, sink);
    link.reason = reason;
    this.#next = link;
    link.timer = setTimeout(() => { if (!link.ready) link.fail({ timeout: true }); }, this.#o.connectTimeout);
    this.#authParams().then(
      (auth) => { if (!link.dead) link.start(this.lastEventId, auth); },
      (err) => link.fail({ error: err }),
    );
  }

  // Internal accessors for the links.
  _endpoint(path, params) { return this.#url(path, params); }
  _topics() { return this.#o.topics; }

  #frame(link, f) {
    if (link.dead) return;
    if (!link.ready) {
      link.ready = true;
      this.#promote(link);
    }
    if (f.id) link.lastId = f.id;
    switch (f.type) {
      case 'event': {
        if (!f.id) return;
        if (this.#seen.has(f.id)) return;
        this.#seen.add(f.id);
        if (this.#seen.size > this.#o.dedupeSize) this.#seen.delete(this.#seen.values().next().value);
        const type = f.event || 'message';
        const detail = { id: f.id, event: type, data: f.data === undefined ? '' : f.data, transport: link.kind };
        this.#emit('message', detail);
        this.#emit('event:' + type, detail);
        break;
      }
      case 'reset':
        this.#emit('reset', { reason: f.reason, lastEventId: f.lastEventId || '', transport: link.kind });
        break;
    }
  }

  #promote(link) {
    clearTimeout(link.timer);
    const old = this.#cur;
    this.#next = null;
    this.#cur = link;
    link.readyAt = Date.now();
    if (old) {
      old.close();
      this.#requeue(old);
    }
    this.#reconnectAttempts = 0;
    this.#switchFailures = 0;
    this.#switchBackoffUntil = 0;
    const previous = this.#lastKind;
    this.#lastKind = link.kind;
    const wasConnected = this.#connected;
    const reconnected = !wasConnected && this.#everConnected;
    this.#connected = true;
    this.#everConnected = true;
    this.#ping = null;
    this.#missedPongs = 0;
    if (previous !== link.kind) this.#emit('transport', { transport: link.kind, previous, reason: link.reason });
    if (!wasConnected) this.#emit('open', { transport: link.kind });
    this.#pump();
    // Back after a drop (a restart, a network change): measure again now
    // rather than at the next scheduled probe.
    if (reconnected && this.#mode === 'auto' && !this.#probing) this.probe().catch(() => {});
  }

  #end(link, info) {
    if (link.dead) return;
    link.dead = true;
    clearTimeout(link.timer);
    if (link.kind === 'websocket' && !info.finished) {
      // A WebSocket that cannot open, or dies without a close frame soon
      // after opening, is what proxies that do not pass WebSockets do. A
      // close with a code from the server (shutdown, kicked, ...) is not.
      const broken = !link.opened || info.timeout || info.code === 1006 || info.code === undefined;
      const unstable = !link.ready || Date.now() - link.readyAt < this.#o.wsStableTime;
      if (broken && unstable) {
        // A WebSocket that fails while the server answers HTTP is being
        // blocked on the way; one that fails while the server is down
        // (a restart) is not: only the first counts.
        this.#sample().then((s) => {
          if (!s.ok || this.#closed) return;
          if (++this.#wsFailures >= this.#o.wsFailuresBeforeFallback) {
            this.#wsFailures = 0;
            this.#wsBlockedUntil = Date.now() + this.#o.wsRetryInterval;
            this.#emit('error', { message: 'WebSocket keeps failing: using SSE for now', transport: 'websocket', code: info.code });
            this.#ensure();
          }
        });
      } else if (!unstable) {
        this.#wsFailures = 0;
      }
    }
    if (link === this.#cur) {
      this.#lastId = link.lastId;
      this.#cur = null;
      this.#requeue(link);
    } else if (link === this.#next) {
      this.#next = null;
      if (this.#cur) {
        const o = this.#o;
        this.#switchBackoffUntil = Date.now() + Math.min(o.maxReconnectDelay, o.reconnectDelay * 2 ** this.#switchFailures++);
      }
    }
    if (info.finished) {
      this.#finish();
      return;
    }
    if (info.fatal) {
      this.#emit('error', { message: info.message, status: info.status, transport: link.kind });
      this.close();
      return;
    }
    if (!this.#cur && this.#connected) {
      this.#connected = false;
      this.#emit('close', { finished: false, reconnecting: true, transport: link.kind, code: info.code, reason: info.reason });
    }
    if (!this.#cur && !this.#next) this.#scheduleReconnect();
    this.#trouble();
  }

  #finish() {
    this.#finished = true;
    if (this.#cur) this.#lastId = this.#cur.lastId;
    this.#stopTimers();
    this.#dropLinks();
    this.#connected = false;
    this.#emit('close', { finished: true, reconnecting: false });
    this.#pump(); // messages still go out over HTTP
  }

  #dropLinks() {
    for (const link of [this.#cur, this.#next]) {
      if (link) {
        link.close();
        clearTimeout(link.timer);
      }
    }
    if (this.#cur) this.#lastId = this.#cur.lastId;
    this.#cur = this.#next = null;
  }

  #stopTimers() {
    clearTimeout(this.#probeTimer);
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#pumpTimer);
    clearTimeout(this.#checkTimer);
    this.#reconnectTimer = 0;
    this.#checkTimer = 0;
  }

  #scheduleReconnect() {
    if (this.#reconnectTimer || this.#closed || this.#finished) return;
    const o = this.#o;
    const n = this.#reconnectAttempts++;
    const delay = Math.min(o.maxReconnectDelay, o.reconnectDelay * 2 ** n) * (0.5 + Math.random() / 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = 0;
      this.#ensure();
    }, delay);
  }

  // trouble re-probes the network after an error, at most once a second.
  #trouble() {
    if (this.#mode !== 'auto' || this.#closed || this.#finished) return;
    if (Date.now() - this.#lastProbeAt < 1000) {
      this.#ensure();
      return;
    }
    this.probe().catch(() => {});
  }

  // ---- sending ----------------------------------------------------------

  // pump sends the first queued message, if it is not in flight, over the
  // current WebSocket, else over HTTP (POST /send) when on SSE or finished.
  #pump() {
    if (this.#closed || this.#queue.length === 0) return;
    const item = this.#queue[0];
    if (item.link) return;
    const wait = item.waitUntil - Date.now();
    if (wait > 0) {
      clearTimeout(this.#pumpTimer);
      this.#pumpTimer = setTimeout(() => this.#pump(), wait);
      return;
    }
    const cur = this.#cur;
    if (cur && cur.kind === 'websocket' && cur.canSend()) {
      item.link = cur;
      item.sentAt = now();
      cur.sendFrame({ type: 'send', ...item.msg });
      item.timer = setTimeout(() => {
        this.#trouble(); // a missing acknowledgement: is the network still good?
        this.#retry(item, cur);
      }, this.#o.ackTimeout);
    } else if ((cur && cur.kind === 'sse') || this.#finished) {
      item.link = 'http';
      this.#post(item);
    }
    // Otherwise offline or connecting: promote() pumps again.
  }

  async #post(item) {
    const ctrl = new AbortController();
    item.timer = setTimeout(() => ctrl.abort(), this.#o.ackTimeout);
    let status = 0;
    let body = {};
    item.sentAt = now();
    try {
      const auth = await this.#authParams();
      const r = await fetch(this.#url('send', auth), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ clientId: this.#clientId, ...item.msg }),
        cache: 'no-store',
        signal: ctrl.signal,
      });
      status = r.status;
      body = await r.json().catch(() => ({}));
    } catch {
      status = 0;
    } finally {
      clearTimeout(item.timer);
    }
    if (this.#queue[0] !== item || item.link !== 'http') return;
    if (status === 200) this.#acked(item, body);
    else if (status >= 400 && status < 500 && status !== 408 && status !== 429) this.#refused(item, body.error || `status ${status}`, status, body.code);
    else {
      if (status === 0) this.#trouble();
      this.#retry(item, 'http');
    }
  }

  #reply(link, f) {
    const item = this.#queue[0];
    if (!item || item.link !== link || item.msg.msgId !== f.msgId) {
      if (f.type === 'error' && !f.msgId) this.#emit('error', { message: f.error, status: f.status, transport: link.kind });
      return;
    }
    clearTimeout(item.timer);
    if (f.type === 'ack') this.#acked(item, f);
    else if (f.status >= 400 && f.status < 500 && f.status !== 408 && f.status !== 429) this.#refused(item, f.error, f.status, f.code);
    else this.#retry(item, link);
  }

  #acked(item, f) {
    if (item.sentAt) this.#slow(now() - item.sentAt);
    this.#queue.shift();
    item.resolve({ msgId: item.msg.msgId, id: f.id || '', duplicate: !!f.duplicate });
    this.#pump();
  }

  #refused(item, message, status, code) {
    this.#queue.shift();
    item.reject(new HeraldError(message, status, code || ''));
    this.#pump();
  }

  #retry(item, link) {
    if (this.#queue[0] !== item || item.link !== link) return;
    clearTimeout(item.timer);
    item.link = null;
    item.waitUntil = Date.now() + Math.min(10000, 250 * 2 ** item.attempt++);
    this.#pump();
  }

  // requeue makes the message in flight on a link that went away go out
  // again (same message id) on the next transport.
  #requeue(link) {
    const item = this.#queue[0];
    if (item && item.link === link) {
      clearTimeout(item.timer);
      item.link = null;
    }
  }
}

// A link is one connection of one transport. It reports frames
// ({type:'event'|'position'|'reset', ...}), replies to sends and its end to
// its sink. Once dead it reports nothing.
class Link {
  constructor(herald, sink) {
    this.herald = herald;
    this.sink = sink;
    this.lastId = '';
    this.ready = false;
    this.readyAt = 0;
    this.dead = false;
    this.timer = 0;
    this.lastActivity = Date.now(); // the last byte or frame received
    this.reason = '';
  }
  fail(info) {
    if (this.dead) return;
    this.abort();
    this.sink.end(this, info);
  }
  close() {
    if (this.dead) return;
    this.dead = true;
    this.abort();
  }
}

class WsLink extends Link {
  kind = 'websocket';
  ws = null;
  opened = false;

  start(fromId, auth) {
    this.lastId = fromId;
    const h = this.herald;
    const params = h._topics().map((t) => ['topic', t]);
    params.push(['clientId', h.clientId], ['resume', 'frame'], ...auth);
    const u = h._endpoint('ws', params);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(u);
    } catch (err) {
      this.fail({ error: err });
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.opened = true;
      ws.send(JSON.stringify({ type: 'resume', lastEventId: fromId || '' }));
    };
    ws.onmessage = (e) => {
      if (this.dead) return;
      this.lastActivity = Date.now();
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      switch (f.type) {
        case 'event':
          if (!f.id) return; // herald.auth-expired: the close that follows says what to do
        // fall through
        case 'position':
        case 'reset':
          this.sink.frame(this, f);
          break;
        case 'ack':
        case 'error':
          this.sink.reply(this, f);
          break;
        case 'pong':
          this.sink.pong(this, f);
          break;
      }
    };
    ws.onclose = (e) => {
      if (this.dead) return;
      const finished = (e.code === 1000 && e.reason === 'finished') || e.code === 4204;
      this.sink.end(this, { finished, code: e.code, reason: e.reason, opened: this.opened });
    };
  }
  canSend() { return !this.dead && this.ws && this.ws.readyState === 1; }
  sendFrame(f) { this.ws.send(JSON.stringify(f)); }
  abort() {
    const ws = this.ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close(1000, 'client switched');
    } catch {
      // already closed
    }
  }
}

class SseLink extends Link {
  kind = 'sse';
  ctrl = new AbortController();

  start(fromId, auth) {
    this.lastId = fromId;
    const h = this.herald;
    const params = h._topics().map((t) => ['topic', t]);
    if (fromId) params.push(['lastEventID', fromId]);
    params.push(...auth);
    this.read(h._endpoint('events', params)).catch((err) => this.fail({ error: err }));
  }

  async read(url) {
    const r = await fetch(url, { headers: { Accept: 'text/event-stream' }, cache: 'no-store', signal: this.ctrl.signal });
    if (r.status === 204) {
      this.fail({ finished: true });
      return;
    }
    if (!r.ok || !r.body) {
      const body = await r.json().catch(() => ({}));
      const fatal = r.status === 400 || r.status === 404;
      this.fail({ status: r.status, fatal, message: body.error || `GET /events: ${r.status}` });
      return;
    }
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let data = [];
    let type = '';
    let idInBlock = false;
    let id = '';
    const dispatch = () => {
      if (data.length === 0) {
        if (idInBlock) this.sink.frame(this, { type: 'position', id });
      } else if (type === 'herald.reset') {
        let d = {};
        try {
          d = JSON.parse(data.join('\n'));
        } catch {
          // malformed reset data: report it without details
        }
        this.sink.frame(this, { type: 'reset', reason: d.reason, lastEventId: d.lastEventId });
      } else if (type === 'herald.auth-expired') {
        this.fail({ authExpired: true });
      } else if (idInBlock) {
        this.sink.frame(this, { type: 'event', id, event: type, data: data.join('\n') });
      }
      data = [];
      type = '';
      idInBlock = false;
    };
    const line = (l) => {
      if (l === '') return dispatch();
      if (l[0] === ':') return;
      const i = l.indexOf(':');
      const field = i < 0 ? l : l.slice(0, i);
      let value = i < 0 ? '' : l.slice(i + 1);
      if (value[0] === ' ') value = value.slice(1);
      switch (field) {
        case 'event': type = value; break;
        case 'data': data.push(value); break;
        case 'id':
          if (!value.includes('\0')) {
            id = value;
            idInBlock = true;
          }
          break;
      }
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (this.dead) return;
      if (done) break;
      this.lastActivity = Date.now();
      buf += value;
      let start = 0;
      for (;;) {
        const cr = buf.indexOf('\r', start);
        const lf = buf.indexOf('\n', start);
        let end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
        if (end < 0) break;
        let next = end + 1;
        if (buf[end] === '\r') {
          if (end === buf.length - 1) break; // a LF may follow in the next chunk
          if (buf[end + 1] === '\n') next++;
        }
        line(buf.slice(start, end));
        if (this.dead) return;
        start = next;
      }
      buf = buf.slice(start);
    }
    this.fail({ ended: true });
  }

  abort() { this.ctrl.abort(); }
}

export default Herald;
