// The hybrid example page (GET /hybrid): follows a topic with herald.js and
// shows which transport it uses, and why. Query parameters: topic (default
// "demo"), transport (auto | websocket | sse) and any numeric option of
// herald.js (rttThreshold, probeInterval, checkInterval, ...).
import { Herald } from '/herald.js';

const q = new URLSearchParams(location.search);
const topic = q.get('topic') || 'demo';
const options = { topics: [topic], sendTopic: topic, transport: q.get('transport') || 'auto' };
for (const k of ['rttThreshold', 'lossThreshold', 'probeInterval', 'probeSamples', 'probeTimeout', 'checkInterval', 'heartbeatTimeout',
  'wsFailuresBeforeFallback', 'wsRetryInterval', 'wsStableTime', 'reconnectDelay', 'maxReconnectDelay', 'connectTimeout', 'ackTimeout',
  'simulatedLatency']) {
  if (q.has(k)) options[k] = Number(q.get(k));
}

const $ = (id) => document.getElementById(id);
const herald = new Herald('', options);
// For tests and the curious: the client and what it saw.
const state = { herald, received: [], transports: [], changes: [], resets: [], sent: [], errors: [] };
window.hybrid = state;

const names = { websocket: 'WebSocket', sse: 'SSE' };
const modes = { auto: 'Auto', websocket: 'WebSocket only', sse: 'SSE only' };
$('topic').textContent = `topic ${topic}`;
$('mode').value = options.transport;

const clock = () => new Date().toLocaleTimeString();

function item(list, text, cls, max = 300) {
  const li = document.createElement('li');
  li.textContent = text;
  if (cls) li.className = cls;
  list.prepend(li);
  while (list.children.length > max) list.lastChild.remove();
  return li;
}

function refresh() {
  const t = herald.transport;
  const badge = $('transport');
  badge.dataset.transport = t || '';
  badge.textContent = t ? names[t] : herald.state === 'finished' ? 'finished' : 'connecting…';
  $('state').textContent = herald.state;
  $('last').textContent = herald.lastEventId || '–';
  $('count').textContent = String(state.received.length);
  $('pending').textContent = String(herald.pendingSends);
  $('events-empty').hidden = state.received.length > 0;
}

// The first events a new subscriber gets at once are the topic's retained
// state (its latest retained event, if any), published before the page
// was opened. They arrive with the connection, before anything live: the
// page marks what comes in that first moment, before it published or sent
// anything itself.
let firstOpen = 0;
let acted = false;
const RETAINED_WINDOW = 250; // ms after the first connection opened

herald.on('open', () => {
  if (!firstOpen) firstOpen = performance.now();
  refresh();
});

herald.on('message', (m) => {
  const retained = !acted && state.received.length < 10 && performance.now() - firstOpen < RETAINED_WINDOW;
  state.received.push({ id: m.id, event: m.event, data: m.data, transport: m.transport, retained });
  const li = item($('events'), '', m.transport);
  li.append(Object.assign(document.createElement('span'), { className: 'tag', textContent: m.transport === 'websocket' ? 'WS' : 'SSE' }));
  li.append(`${m.id}  ${m.event === 'message' ? '' : m.event + '  '}${m.data}`);
  if (retained) {
    li.classList.add('retained');
    li.append(Object.assign(document.createElement('span'), {
      className: 'why',
      textContent: 'Retained: the topic’s current state, published before you opened this page. A new subscriber gets it first; what follows is live.',
    }));
  }
  refresh();
});

// why says in words what made the client pick a transport.
function why(c) {
  const n = herald.network;
  const measured = n && !n.offline ? ` (round trip ${Math.round(n.rtt)} ms, loss ${Math.round(n.loss * 100)} %)` : '';
  switch (c.reason) {
    case 'forced': return `forced: “${modes[herald.mode]}” chosen, the network is not probed`;
    case 'weak': return `the network is weak${measured}`;
    case 'good': return `the network is good${measured}`;
    case 'fallback': return 'WebSocket keeps failing (blocked on the way?): SSE for now';
    case 'unsupported': return 'this browser has no WebSocket';
    default: return c.reason || '';
  }
}

herald.on('transport', (c) => {
  state.transports.push(c.transport);
  state.changes.push({ transport: c.transport, reason: c.reason });
  item($('transports'), `${clock()} → ${names[c.transport]} · ${why(c)}`, c.transport + (c.reason === 'forced' ? ' forced' : ''));
  refresh();
});
herald.on('reset', (r) => {
  state.resets.push(r);
  item($('events'), `herald.reset: ${r.reason} (after ${r.lastEventId || 'nothing'})`, 'reset');
});
herald.on('network', (n) => {
  $('rtt').textContent = n.offline ? 'no answer' : Number.isFinite(n.rtt) ? `${Math.round(n.rtt)} ms` : 'every sample lost';
  $('loss').textContent = n.offline ? '–' : `${Math.round(n.loss * 100)} %`;
  $('weak').textContent = n.offline ? 'server unreachable' : n.weak ? 'weak' : 'good';
});
herald.on('error', (e) => {
  state.errors.push(e);
  item($('transports'), `${clock()} ${e.message}`, 'reset');
});
for (const ev of ['close', 'error']) herald.on(ev, refresh);
setInterval(refresh, 500);

$('mode').addEventListener('change', (e) => {
  const mode = e.target.value;
  herald.setTransport(mode);
  item($('transports'), `${clock()} mode: ${modes[mode]}${mode === 'auto' ? ' (probing the network)' : ' (forced)'}`, mode === 'auto' ? '' : 'forced');
});
$('weaken').addEventListener('change', (e) => {
  herald.simulatedLatency = e.target.checked ? 600 : 0;
  herald.probe();
});

let published = 0;
async function publish() {
  acted = true;
  const r = await fetch('/publish', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ topic, data: `event #${++published} published at ${clock()}` }),
  });
  if (!r.ok) item($('events'), `publish failed: ${(await r.json()).error}`, 'reset');
}
$('publish-form').addEventListener('submit', (e) => {
  e.preventDefault();
  publish();
});
let timer = 0;
$('auto-publish').addEventListener('change', (e) => {
  clearInterval(timer);
  if (e.target.checked) timer = setInterval(publish, 1000);
});

$('send-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('send-text').value.trim();
  if (!text) return;
  acted = true;
  $('send-text').value = '';
  const li = item($('sent'), `${text} — queued`);
  herald.send(text).then(
    (ack) => { li.textContent = `${text} — delivered as ${ack.id}${ack.duplicate ? ' (retry)' : ''}`; state.sent.push(ack); },
    (err) => { li.textContent = `${text} — refused: ${err.message}`; li.className = 'reset'; },
  );
  refresh();
});
refresh();
