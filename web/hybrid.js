// The hybrid example page (GET /hybrid): follows a topic with herald.js and
// shows which transport it uses. Query parameters: topic (default "demo"),
// transport (auto | websocket | sse) and any numeric option of herald.js
// (rttThreshold, probeInterval, ...).
import { Herald } from '/herald.js';

const q = new URLSearchParams(location.search);
const topic = q.get('topic') || 'demo';
const options = { topics: [topic], sendTopic: topic, transport: q.get('transport') || 'auto' };
for (const k of ['rttThreshold', 'lossThreshold', 'probeInterval', 'probeSamples', 'probeTimeout', 'wsFailuresBeforeFallback',
  'wsRetryInterval', 'wsStableTime', 'reconnectDelay', 'maxReconnectDelay', 'connectTimeout', 'ackTimeout', 'simulatedLatency']) {
  if (q.has(k)) options[k] = Number(q.get(k));
}

const $ = (id) => document.getElementById(id);
const herald = new Herald('', options);
// For tests and the curious: the client and what it saw.
const state = { herald, received: [], transports: [], resets: [], sent: [], errors: [] };
window.hybrid = state;

const names = { websocket: 'WebSocket', sse: 'SSE' };
$('topic').textContent = `topic ${topic}`;
$('mode').value = options.transport;

function item(list, text, cls, max = 300) {
  const li = document.createElement('li');
  li.textContent = text;
  if (cls) li.className = cls;
  list.prepend(li);
  while (list.children.length > max) list.lastChild.remove();
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
}

herald.on('message', (m) => {
  state.received.push({ id: m.id, event: m.event, data: m.data, transport: m.transport });
  item($('events'), `${m.id}  ${m.event === 'message' ? '' : m.event + '  '}${m.data}`, m.transport);
  refresh();
});
herald.on('transport', (c) => {
  state.transports.push(c.transport);
  const n = herald.network;
  const why = n ? ` (rtt ${Math.round(n.rtt)} ms, loss ${Math.round(n.loss * 100)}%)` : '';
  $('transports').append(Object.assign(document.createElement('li'), { textContent: `${new Date().toLocaleTimeString()} → ${names[c.transport]}${why}`, className: c.transport }));
  refresh();
});
herald.on('reset', (r) => {
  state.resets.push(r);
  item($('events'), `herald.reset: ${r.reason} (after ${r.lastEventId || 'nothing'})`, 'reset');
});
herald.on('network', (n) => {
  $('rtt').textContent = Number.isFinite(n.rtt) ? `${Math.round(n.rtt)} ms` : '∞';
  $('loss').textContent = `${Math.round(n.loss * 100)} %`;
  $('weak').textContent = n.weak ? 'weak' : 'good';
});
herald.on('error', (e) => {
  state.errors.push(e);
  item($('transports'), `${new Date().toLocaleTimeString()} ${e.message}`, 'reset');
});
for (const ev of ['open', 'close', 'error']) herald.on(ev, refresh);
setInterval(refresh, 500);

$('mode').addEventListener('change', (e) => herald.setTransport(e.target.value));
$('weaken').addEventListener('change', (e) => {
  herald.simulatedLatency = e.target.checked ? 600 : 0;
  herald.probe();
});

let published = 0;
async function publish() {
  const r = await fetch('/publish', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ topic, data: `event #${++published} published at ${new Date().toLocaleTimeString()}` }),
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
  $('send-text').value = '';
  const li = document.createElement('li');
  li.textContent = `${text} — queued`;
  $('sent').prepend(li);
  herald.send(text).then(
    (ack) => { li.textContent = `${text} — delivered as ${ack.id}${ack.duplicate ? ' (retry)' : ''}`; state.sent.push(ack); },
    (err) => { li.textContent = `${text} — refused: ${err.message}`; },
  );
  refresh();
});
