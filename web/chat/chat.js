// Herald chat page. The answer to a question is a server-side generation
// whose tokens are events of a Herald stream: this page follows it with a
// plain EventSource. The stream id, the last event id and the text so far
// are kept in sessionStorage, so a reload resumes the answer exactly where
// it was (lastEventID), and EventSource itself resumes after a network drop
// (Last-Event-ID). The model is never asked twice.
//
// Answers are Markdown, rendered by markdown.js into DOM nodes (never as
// HTML). Screen readers hear each whole answer once it is finished (the
// #announce live region), not every token. /chat?answer=<id> opens one
// answer — finished or still streaming — in another tab or on another
// device: every answer has that link.
import { render as markdown } from "/chat/markdown.js";

const KEY = "herald.chat.v1";
const MAX_HISTORY = 20; // messages sent with each question
const $ = (id) => document.getElementById(id);
const log = $("log"), statusEl = $("status"), form = $("ask"), input = $("question"),
  sendBtn = $("send"), stopBtn = $("stop"), newBtn = $("new"), modelEl = $("model"), announceEl = $("announce");

// For tests and the curious: what was streamed, and whether it matched
// the final text the server sent in the done event.
const debug = (window.heraldChat = { finished: 0, mismatches: 0, resumes: 0, resets: 0, lastStreamed: "", lastFinal: "" });

let state = load();
let es = null;        // the EventSource of the active answer
let answerEl = null;  // the element the active answer streams into
let probeDelay = 1000;
let frame = 0;        // a pending render of the active answer

function fresh() {
  return { conversation: "c-" + Math.random().toString(36).slice(2, 12), messages: [], active: null, model: "" };
}
function load() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY));
    if (s && Array.isArray(s.messages)) return s;
  } catch (_) { /* fall through */ }
  return fresh();
}
function save() { sessionStorage.setItem(KEY, JSON.stringify(state)); }

function setStatus(text) { statusEl.textContent = text || ""; }
function setBusy(busy) {
  document.body.dataset.state = busy ? "streaming" : "idle";
  sendBtn.disabled = busy;
  stopBtn.hidden = !busy;
  stopBtn.disabled = false;
}

function answerLink(id) {
  return new URL("/chat?answer=" + encodeURIComponent(id), location.href).href;
}

// bubble adds a message: a user's text as text, an answer as Markdown,
// with its note (stopped, failed, interrupted) and its link.
function bubble(m) {
  const el = document.createElement("article");
  el.className = "msg " + m.role + (m.kind ? " " + m.kind : "");
  el.setAttribute("aria-label", m.role === "user" ? "You" : "Answer");
  const body = document.createElement("div");
  body.className = "text";
  if (m.role === "user") body.textContent = m.content;
  else body.append(markdown(m.content || ""));
  el.append(body);
  if (m.role === "assistant" && (m.note || m.answer)) {
    const meta = document.createElement("div");
    meta.className = "meta";
    if (m.note) meta.append(Object.assign(document.createElement("span"), { className: "note", textContent: m.note }));
    if (m.answer) {
      const a = Object.assign(document.createElement("a"), {
        className: "share", href: answerLink(m.answer), target: "_blank", rel: "noopener", textContent: "Open in another tab",
      });
      a.title = "This answer on its own page: open it in another tab, or send the link to another device";
      meta.append(a);
    }
    el.append(meta);
  }
  log.append(el);
  return el;
}
function scrollDown() { window.scrollTo(0, document.body.scrollHeight); }

function render() {
  log.textContent = "";
  for (const m of state.messages) bubble(m);
  answerEl = null;
  if (state.active) {
    const el = bubble({ role: "assistant", content: state.active.text, answer: state.active.id, note: state.active.shared ? "Opened from a link." : "" });
    el.classList.add("streaming");
    el.id = "answer";
    el.setAttribute("aria-busy", "true");
    answerEl = el.querySelector(".text");
  }
  modelEl.textContent = state.model ? "Model: " + state.model + "." : "";
  scrollDown();
}

// showActive renders the active answer's text at the next frame: many
// tokens, one render.
function showActive() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    if (!answerEl || !state.active) return;
    answerEl.replaceChildren(markdown(state.active.text));
    scrollDown();
  });
}

function streamURL(a) {
  let url = "/chat/stream/" + encodeURIComponent(a.id);
  if (a.lastEventId) url += "?lastEventID=" + encodeURIComponent(a.lastEventId);
  return url;
}

// connect follows the active answer from where this page stands.
function connect() {
  const a = state.active;
  if (!a) return;
  if (es) es.close();
  if (a.lastEventId) debug.resumes++;
  const mine = (es = new EventSource(streamURL(a)));
  const current = () => es === mine && state.active === a;

  mine.onopen = () => {
    if (!current()) return;
    probeDelay = 1000;
    setStatus(a.lastEventId ? "Resumed where you left off." : "Streaming…");
  };
  mine.addEventListener("token", (e) => {
    if (!current()) return;
    a.text += e.data;
    a.lastEventId = e.lastEventId;
    a.streamed = true;
    save(); // text and position together: a reload resumes exactly here
    showActive();
  });
  mine.addEventListener("done", (e) => {
    if (current()) finish(a, JSON.parse(e.data), false);
  });
  mine.addEventListener("error", (e) => {
    if (!current()) return;
    if (typeof e.data === "string") { // the stream's own error event
      finish(a, JSON.parse(e.data), true);
      return;
    }
    if (mine.readyState === EventSource.CLOSED) { // refused: find out why
      es = null;
      probe(a);
    } else {
      setStatus("Connection lost — reconnecting…");
    }
  });
  mine.addEventListener("herald.reset", () => {
    if (!current()) return;
    // History cannot resume us exactly: start the answer over.
    debug.resets++;
    a.text = "";
    a.lastEventId = "";
    a.streamed = false;
    save();
    showActive();
    connect();
  });
}

// probe asks the server what became of a stream EventSource gave up on.
async function probe(a) {
  const ctl = new AbortController();
  let status = 0;
  try {
    const res = await fetch(streamURL(a), { signal: ctl.signal, headers: { Accept: "text/event-stream" } });
    status = res.status;
    ctl.abort();
  } catch (_) { /* network down: retry below */ }
  if (state.active !== a) return;
  if (status === 200) { connect(); return; }
  if (status === 204) { // finished, and we missed the end: fetch the whole answer
    a.text = ""; a.lastEventId = ""; a.streamed = false; save(); connect(); return;
  }
  if (status === 404) {
    lost(a, a.streamed
      ? "Interrupted: this answer stopped before it was finished, and the server no longer has it (it restarted without a durable history, or the answer expired). The text above is what arrived."
      : "This answer is not available: the link is wrong, the answer expired, or the server restarted without a durable history.");
    return;
  }
  setStatus("Server unavailable — retrying…");
  setTimeout(() => { if (state.active === a) probe(a); }, probeDelay);
  probeDelay = Math.min(probeDelay * 2, 15000);
}

// noteFor says in words how an answer ended.
function noteFor(d, isError) {
  if (isError && d.code === "interrupted") {
    return { kind: "interrupted", note: "Interrupted: the server stopped (a restart or a shutdown) before this answer was finished. The text above is what was generated." };
  }
  if (isError) return { kind: "error", note: "The answer failed: " + (d.message || "unknown error") + "." };
  if (d.stopped) return { kind: "stopped", note: "Stopped." };
  if (d.finishReason === "length") return { kind: "cut", note: "Cut off at the length limit." };
  return { kind: "", note: "" };
}

function finish(a, d, isError) {
  if (es) es.close();
  es = null;
  debug.finished++;
  debug.lastStreamed = a.text;
  debug.lastFinal = d.text;
  if (a.streamed && a.text !== d.text) {
    debug.mismatches++;
    console.warn("streamed text differs from the final text", { streamed: a.text, final: d.text });
  }
  const { kind, note } = noteFor(d, isError);
  const shared = a.shared ? "Opened from a link. " : "";
  state.messages.push({ role: "assistant", content: d.text || "", note: shared + note, kind: kind || undefined, error: isError || undefined, answer: a.id });
  state.active = null;
  save();
  render();
  setBusy(false);
  setStatus(kind === "interrupted" ? "The answer was interrupted." : isError ? "The answer failed." : "");
  announce(d.text, note);
}

// announce gives screen readers the whole answer, once.
function announce(text, note) {
  const words = (markdown(text || "").textContent || "").trim();
  announceEl.textContent = "Answer: " + (words || "(empty)") + (note ? " " + note : "");
}

function lost(a, why) {
  if (es) es.close();
  es = null;
  state.messages.push({ role: "assistant", content: a.text, note: why, kind: "interrupted", error: true, answer: a.streamed ? a.id : undefined });
  state.active = null;
  save();
  render();
  setBusy(false);
  setStatus(why);
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = input.value.trim();
  if (!q || state.active) return;
  const history = state.messages.filter((m) => !m.error && m.content).map((m) => ({ role: m.role, content: m.content }));
  history.push({ role: "user", content: q });
  sendBtn.disabled = true;
  let res, body;
  try {
    res = await fetch("/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages: history.slice(-MAX_HISTORY), conversation: state.conversation }),
    });
    body = await res.json();
  } catch (err) {
    setStatus("Cannot reach the server: " + err.message);
    sendBtn.disabled = false;
    return;
  }
  if (res.status !== 201) {
    setStatus((body && body.error) || "The server answered " + res.status);
    sendBtn.disabled = false;
    return;
  }
  input.value = "";
  state.messages.push({ role: "user", content: q });
  state.active = { id: body.id, lastEventId: "", text: "", streamed: false };
  state.model = body.model || "";
  save();
  render();
  setBusy(true);
  connect();
});

input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    form.requestSubmit();
  }
});

stopBtn.addEventListener("click", async () => {
  const a = state.active;
  if (!a) return;
  stopBtn.disabled = true;
  setStatus("Stopping…");
  try {
    // The done event with "stopped": true arrives on the stream.
    const res = await fetch("/chat/stream/" + encodeURIComponent(a.id) + "/cancel", { method: "POST" });
    if (!res.ok && res.status !== 409) setStatus("Could not stop: " + ((await res.json()).error || res.status));
  } catch (err) {
    setStatus("Could not stop: " + err.message);
  }
});

newBtn.addEventListener("click", () => {
  if (es) es.close();
  es = null;
  state = fresh();
  save();
  render();
  setBusy(false);
  setStatus("");
  input.focus();
});

// /chat?answer=<id>: follow that answer here (unless this tab has it
// already), then keep the address plain so that a reload resumes from
// sessionStorage.
const shared = new URLSearchParams(location.search).get("answer");
if (shared !== null) {
  const known = (state.active && state.active.id === shared) || state.messages.some((m) => m.answer === shared);
  if (!known) {
    if (es) es.close();
    state = fresh();
    state.active = { id: shared, lastEventId: "", text: "", streamed: false, shared: true };
    save();
  }
  history.replaceState(null, "", location.pathname);
}

render();
if (state.active) {
  setBusy(true);
  if (state.active.shared && !state.active.lastEventId) setStatus("Opening the shared answer…");
  connect();
} else {
  setBusy(false);
}
