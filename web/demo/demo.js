// Herald's demo page: plain JavaScript and the browser's own EventSource.
//
// The page follows two kinds of streams, both from GET /sse/subscribe:
//   - the demo stream (topic "demo"): CONNECTED, BROADCAST, and the PROGRESS
//     and COMPLETE events of every task, shown in the event log;
//   - one stream per task (?task=N, topic "demo/task/N"), which carries that
//     task's events only and drives its progress bar, so tasks running at
//     once never mix. Its COMPLETE event is final: the server ends the
//     stream, and the browser's reconnect gets 204 No Content, which stops
//     the EventSource for good.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const STATES = ["connecting", "open", "closed"];
  // Event types the demo stream carries. CONNECTED (the greeting) and
  // herald.reset have no id of their own.
  const TYPES = ["CONNECTED", "BROADCAST", "PROGRESS", "COMPLETE", "herald.reset", "message"];
  const NO_ID = new Set(["CONNECTED", "herald.reset"]);
  const MAX_ROWS = 500;

  let source = null; // the demo stream
  let count = 0;
  const tasks = new Map(); // task number -> {n, es, row, pct, done}

  // ---- connection state ------------------------------------------------

  function state() {
    return source ? STATES[source.readyState] : "closed";
  }

  function showState() {
    const s = state();
    $("state").dataset.state = s;
    $("state-text").textContent = s;
    $("connect").disabled = s !== "closed";
    $("disconnect").disabled = s === "closed";
  }

  // ---- event log -------------------------------------------------------

  function time() {
    const d = new Date();
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  function log(type, id, data) {
    const wrap = $("log-wrap");
    const stick = wrap.scrollTop + wrap.clientHeight >= wrap.scrollHeight - 8;
    const row = document.createElement("tr");
    row.dataset.type = type;
    row.dataset.id = id;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = type;
    const typeCell = cell("", "c-type");
    typeCell.append(badge);
    row.append(cell(time(), "c-time"), typeCell, cell(id || "–", "c-id"), cell(data, "c-data"));
    const body = $("log");
    body.append(row);
    while (body.rows.length > MAX_ROWS) body.deleteRow(0);
    $("log-empty").hidden = true;
    if (stick) wrap.scrollTop = wrap.scrollHeight;
  }

  function onEvent(e) {
    const id = NO_ID.has(e.type) ? "" : e.lastEventId;
    log(e.type, id, e.data);
    count++;
    $("count").textContent = String(count);
    if (e.lastEventId) $("last-id").textContent = e.lastEventId;
    // A task that another page started shows up with its first step.
    if (e.type === "PROGRESS" && e.data.startsWith("0%")) discoverTasks();
  }

  // ---- connect / disconnect ----------------------------------------------

  function connect() {
    if (source && source.readyState !== EventSource.CLOSED) return;
    source = new EventSource("/sse/subscribe");
    source.onopen = () => {
      showState();
      discoverTasks();
    };
    source.onerror = () => showState();
    for (const type of TYPES) source.addEventListener(type, onEvent);
    showState();
  }

  function disconnect() {
    if (source) source.close();
    for (const t of tasks.values()) {
      if (!t.done && t.es) {
        t.es.close();
        t.es = null;
        t.row.dataset.stream = "paused";
      }
    }
    showState();
  }

  // ---- tasks -------------------------------------------------------------

  function taskRow(n) {
    const li = document.createElement("li");
    li.className = "task";
    li.dataset.task = String(n);
    li.innerHTML =
      '<span class="task-name"></span>' +
      '<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0"><div class="fill"></div></div>' +
      '<span class="pct">…</span>';
    li.querySelector(".task-name").textContent = `Task ${n}`;
    li.querySelector(".bar").setAttribute("aria-label", `Task ${n} progress`);
    const list = $("tasks");
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    list.prepend(li);
    while (list.children.length > 6) {
      const last = list.lastElementChild;
      const t = tasks.get(Number(last.dataset.task));
      if (t && !t.done) break;
      if (t && t.es) t.es.close();
      tasks.delete(Number(last.dataset.task));
      last.remove();
    }
    return li;
  }

  function setProgress(t, pct) {
    if (!Number.isFinite(pct)) return;
    t.pct = pct;
    const bar = t.row.querySelector(".bar");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.querySelector(".fill").style.width = `${pct}%`;
    t.row.querySelector(".pct").textContent = `${pct}%`;
  }

  // follow opens task n's own stream (again, after a Disconnect). A new
  // subscriber gets the task's retained state first: its current percentage.
  function follow(n) {
    let t = tasks.get(n);
    if (t && (t.done || t.es)) return;
    if (!t) {
      t = { n, es: null, row: taskRow(n), pct: null, done: false };
      tasks.set(n, t);
    }
    const es = new EventSource(`/sse/subscribe?task=${n}`);
    t.es = es;
    t.row.dataset.stream = "open";
    es.addEventListener("PROGRESS", (e) => setProgress(t, parseInt(e.data, 10)));
    es.addEventListener("COMPLETE", () => {
      setProgress(t, 100);
      t.done = true;
      t.row.classList.add("done");
      t.row.querySelector(".pct").textContent = "done";
    });
    es.onerror = () => {
      // After COMPLETE the server ends the stream; the reconnect gets 204
      // and the EventSource closes for good.
      if (es.readyState === EventSource.CLOSED) {
        t.row.dataset.stream = "closed";
        if (t.es === es) t.es = null;
      }
    };
  }

  let discovering = null;
  function discoverTasks() {
    if (state() === "closed") return;
    if (discovering) return;
    discovering = fetch("/sse/tasks", { cache: "no-store" })
      .then((r) => (r.ok ? r.json() : { tasks: [] }))
      .then((body) => {
        if (state() === "closed") return;
        for (const t of body.tasks || []) follow(t.task);
      })
      .catch(() => {})
      .finally(() => {
        discovering = null;
      });
  }

  async function errorText(r) {
    try {
      const body = await r.json();
      return body.error || r.statusText;
    } catch {
      return r.statusText;
    }
  }

  async function startTask() {
    const out = $("task-result");
    try {
      const r = await fetch("/sse/start-task", { method: "POST" });
      if (!r.ok) {
        out.textContent = `Error: ${await errorText(r)}`;
        return;
      }
      out.textContent = await r.text();
      const n = Number(r.headers.get("Herald-Demo-Task"));
      if (!n) return;
      if (state() === "closed") {
        out.textContent += ` (task ${n}: connect to follow it)`;
        return;
      }
      follow(n);
    } catch (err) {
      out.textContent = `Error: ${err.message}`;
    }
  }

  async function broadcast(ev) {
    ev.preventDefault();
    const out = $("broadcast-result");
    try {
      const r = await fetch("/sse/broadcast", {
        method: "POST",
        body: new URLSearchParams({ message: $("message").value }),
      });
      out.textContent = r.ok ? await r.text() : `Error: ${await errorText(r)}`;
      out.classList.toggle("error", !r.ok);
    } catch (err) {
      out.textContent = `Error: ${err.message}`;
      out.classList.add("error");
    }
  }

  function clearLog() {
    $("log").replaceChildren();
    $("log-empty").hidden = false;
  }

  $("connect").addEventListener("click", connect);
  $("disconnect").addEventListener("click", disconnect);
  $("start-task").addEventListener("click", startTask);
  $("broadcast-form").addEventListener("submit", broadcast);
  $("clear").addEventListener("click", clearLog);
  showState();
})();
