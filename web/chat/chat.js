// Herald chat page. The answer to a question is a server-side generation
// whose tokens are events of a Herald stream: this page follows it with a
// plain EventSource. The stream id, the last event id and the text so far
// are kept in sessionStorage, so a reload resumes the answer exactly where
// it was (lastEventID), and EventSource itself resumes after a network drop
// (Last-Event-ID). The model is never asked twice.
"use strict";
(() => {
  const KEY = "herald.chat.v1";
  const MAX_HISTORY = 20; // messages sent with each question
  const $ = (id) => document.getElementById(id);
  const log = $("log"), statusEl = $("status"), form = $("ask"), input = $("question"),
    sendBtn = $("send"), stopBtn = $("stop"), newBtn = $("new"), modelEl = $("model");

  // For tests and the curious: what was streamed, and whether it matched
  // the final text the server sent in the done event.
  const debug = (window.heraldChat = { finished: 0, mismatches: 0, resumes: 0, resets: 0, lastStreamed: "", lastFinal: "" });

  let state = load();
  let es = null;        // the EventSource of the active answer
  let answerEl = null;  // the bubble the active answer streams into
  let probeDelay = 1000;

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

  function bubble(role, text, note, isError) {
    const el = document.createElement("div");
    el.className = "msg " + role + (isError ? " error" : "");
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    el.appendChild(body);
    if (note) {
      const n = document.createElement("span");
      n.className = "note";
      n.textContent = note;
      el.appendChild(n);
    }
    log.appendChild(el);
    return el;
  }
  function scrollDown() { window.scrollTo(0, document.body.scrollHeight); }

  function render() {
    log.textContent = "";
    for (const m of state.messages) bubble(m.role, m.content, m.note, !!m.error);
    answerEl = null;
    if (state.active) {
      const el = bubble("assistant", state.active.text);
      el.classList.add("streaming");
      el.id = "answer";
      answerEl = el.querySelector(".text");
    }
    modelEl.textContent = state.model ? "Model: " + state.model + "." : "";
    scrollDown();
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
      answerEl.textContent = a.text;
      scrollDown();
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
      answerEl.textContent = "";
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
      lost(a, "This answer is no longer available (it expired, or the server restarted without a durable history).");
      return;
    }
    setStatus("Server unavailable — retrying…");
    setTimeout(() => { if (state.active === a) probe(a); }, probeDelay);
    probeDelay = Math.min(probeDelay * 2, 15000);
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
    let note = "";
    if (isError) note = "Error: " + d.message;
    else if (d.stopped) note = "Stopped.";
    else if (d.finishReason === "length") note = "Cut off at the length limit.";
    state.messages.push({ role: "assistant", content: d.text, note, error: isError || undefined });
    state.active = null;
    save();
    render();
    setBusy(false);
    setStatus(isError ? "The answer failed." : "");
  }

  function lost(a, why) {
    if (es) es.close();
    es = null;
    state.messages.push({ role: "assistant", content: a.text, note: why, error: true });
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

  render();
  if (state.active) {
    setBusy(true);
    connect();
  } else {
    setBusy(false);
  }
})();
