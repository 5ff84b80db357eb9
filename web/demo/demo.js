// Herald's demo page: plain JavaScript and the browser's own EventSource.
//
// The page follows two kinds of streams, both from GET /sse/subscribe:
//   - the demo stream (topic "demo"): CONNECTED, BROADCAST, and the PROGRESS,
//     COMPLETE and INTERRUPTED events of every task, shown in the event log;
//   - one stream per task (?task=N, topic "demo/task/N"), which carries that
//     task's events only and drives its progress bar, so tasks running at
//     once never mix. Its COMPLETE (or INTERRUPTED) event is final: the
//     server ends the stream, and the browser's reconnect gets 204 No
//     Content, which stops the EventSource for good. A task stream that
//     stops without either (the server restarted and forgot the task) shows
//     the task as interrupted. A task stream follows on from the last event
//     the page saw of it (after a Disconnect too), so it never misses the
//     end.
//
// The page remembers in sessionStorage that it was connected, so a reload
// reconnects by itself and shows the running tasks at once.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const STATES = ["connecting", "open", "closed"];
  const STORE = "herald.demo.v1";
  // Event types the demo stream carries. CONNECTED (the greeting) and
  // herald.reset have no id of their own.
  const TYPES = ["CONNECTED", "BROADCAST", "PROGRESS", "COMPLETE", "INTERRUPTED", "herald.reset", "message"];
  const NO_ID = new Set(["CONNECTED", "herald.reset"]);
  const MAX_ROWS = 500;
  const MAX_TASKS = 6;

  let source = null; // the demo stream
  let count = 0;
  const tasks = new Map(); // task number -> {n, es, row, pct, state, lastId}
  let startedTask = 0; // the task whose "Task started!" is shown

  // ---- what the page remembers across a reload ----------------------------

  function remember(connected) {
    try {
      sessionStorage.setItem(STORE, JSON.stringify({ connected }));
    } catch {
      // storage off: the page simply does not reconnect after a reload
    }
  }
  function remembered() {
    try {
      return JSON.parse(sessionStorage.getItem(STORE)) || {};
    } catch {
      return {};
    }
  }

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
    showEmpty();
  }

  function showEmpty() {
    const empty = $("log-empty");
    empty.hidden = $("log").rows.length > 0;
    if (empty.hidden) return;
    const s = state();
    if (s === "open") empty.textContent = "Connected. New events will appear here.";
    else if (s === "connecting") empty.textContent = "Connecting…";
    else {
      empty.replaceChildren("Press ", Object.assign(document.createElement("strong"), { textContent: "Connect" }), " to open the stream.");
    }
  }

  // ---- event log -------------------------------------------------------

  function time() {
    const d = new Date();
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.setAttribute("role", "cell");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  function log(type, id, data) {
    const wrap = $("log-wrap");
    const stick = wrap.scrollTop + wrap.clientHeight >= wrap.scrollHeight - 8;
    const row = document.createElement("tr");
    row.setAttribute("role", "row");
    row.dataset.type = type;
    row.dataset.id = id;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = type;
    const typeCell = cell("", "c-type");
    typeCell.append(badge);
    const idCell = cell(id || "–", "c-id");
    if (!id) idCell.dataset.none = "";
    row.append(cell(time(), "c-time"), typeCell, idCell, cell(data, "c-data"));
    const body = $("log");
    body.append(row);
    while (body.rows.length > MAX_ROWS) body.deleteRow(0);
    showEmpty();
    if (stick) wrap.scrollTop = wrap.scrollHeight;
    return row;
  }

  // resetText says in words what a herald.reset means for this page.
  function resetText(reason) {
    switch (reason) {
      case "epoch-changed":
        return "The server restarted and lost its event history: events published while this page was away are gone. The log goes on from what the server has now.";
      case "history-truncated":
        return "Some events this page missed are no longer in the server's history (it keeps a limited number). The log goes on from the oldest event it still has.";
      case "invalid-id":
        return "The server did not recognise this page's position (its history was reset). The log goes on from what the server has now.";
      default:
        return `The server could not resume this page exactly (${reason || "no reason given"}): some events may be missing.`;
    }
  }

  function onReset(e) {
    let reason = "";
    try {
      reason = JSON.parse(e.data).reason || "";
    } catch {
      // not JSON: say so in words below
    }
    const row = log(e.type, "", resetText(reason));
    row.dataset.reason = reason;
  }

  function onEvent(e) {
    count++;
    $("count").textContent = String(count);
    if (e.lastEventId) $("last-id").textContent = e.lastEventId;
    if (e.type === "herald.reset") {
      onReset(e);
      return;
    }
    const id = NO_ID.has(e.type) ? "" : e.lastEventId;
    log(e.type, id, e.data);
    // A task that another page started shows up with its first step.
    if (e.type === "PROGRESS" && e.data.startsWith("0%")) discoverTasks();
  }

  // ---- connect / disconnect ----------------------------------------------

  function connect() {
    if (source && source.readyState !== EventSource.CLOSED) return;
    remember(true);
    source = new EventSource("/sse/subscribe");
    source.onopen = () => {
      showState();
      discoverTasks();
    };
    source.onerror = () => showState();
    for (const type of TYPES) source.addEventListener(type, onEvent);
    showState();
    // The tasks paused by a Disconnect go on from where they were; the
    // running ones show with their progress while the stream opens.
    for (const t of tasks.values()) if (t.state === "running" && !t.es) follow(t.n);
    discoverTasks();
  }

  function disconnect() {
    remember(false);
    if (source) source.close();
    for (const t of tasks.values()) {
      if (t.state === "running" && t.es) {
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
    const name = Object.assign(document.createElement("span"), { className: "task-name", textContent: `Task ${n}` });
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", "0");
    bar.setAttribute("aria-label", `Task ${n} progress`);
    bar.append(Object.assign(document.createElement("div"), { className: "fill" }));
    const pct = Object.assign(document.createElement("span"), { className: "pct", textContent: "…" });
    li.append(name, bar, pct);
    const list = $("tasks");
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    list.prepend(li);
    while (list.children.length > MAX_TASKS) {
      const last = list.lastElementChild;
      const t = tasks.get(Number(last.dataset.task));
      if (t && t.state === "running") break;
      if (t && t.es) t.es.close();
      tasks.delete(Number(last.dataset.task));
      last.remove();
    }
    return li;
  }

  function setProgress(t, pct) {
    if (!Number.isFinite(pct) || t.state !== "running") return;
    t.pct = pct;
    const bar = t.row.querySelector(".bar");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.querySelector(".fill").style.width = `${pct}%`;
    t.row.querySelector(".pct").textContent = `${pct}%`;
  }

  // end marks task t as over: "done" (COMPLETE), "interrupted" (its
  // INTERRUPTED event, or a stream that stopped without COMPLETE), or
  // "ended" (over before the page saw any of it), with a note in words.
  function end(t, how, note) {
    if (t.state !== "running") return;
    if (how === "done") setProgress(t, 100);
    t.state = how;
    t.row.dataset.state = how;
    t.row.classList.add(how);
    t.row.querySelector(".pct").textContent = how;
    if (note) {
      t.row.append(Object.assign(document.createElement("p"), { className: "task-note", textContent: note }));
    }
    if (startedTask === t.n) {
      $("task-result").textContent = "";
      startedTask = 0;
    }
  }

  // follow opens task n's own stream (again, after a Disconnect, from the
  // last event seen of it). A new subscriber gets the task's retained state
  // first: its current percentage; progress, if known, shows at once.
  function follow(n, progress) {
    let t = tasks.get(n);
    if (t && t.state !== "running") {
      // A number seen before belongs to a task that is over: this one is
      // new (a server that lost its tasks numbers them again).
      if (t.es) t.es.close();
      t.row.remove();
      tasks.delete(n);
      t = null;
    }
    if (t && t.es) return;
    if (!t) {
      t = { n, es: null, row: taskRow(n), pct: null, state: "running", lastId: "" };
      t.row.dataset.state = "running";
      tasks.set(n, t);
    }
    if (Number.isFinite(progress)) setProgress(t, progress);
    const from = t.lastId ? `&lastEventID=${encodeURIComponent(t.lastId)}` : "";
    const es = new EventSource(`/sse/subscribe?task=${n}${from}`);
    t.es = es;
    t.row.dataset.stream = "open";
    const seen = (e) => {
      if (e.lastEventId) t.lastId = e.lastEventId;
    };
    es.addEventListener("PROGRESS", (e) => {
      seen(e);
      setProgress(t, parseInt(e.data, 10));
    });
    es.addEventListener("COMPLETE", (e) => {
      seen(e);
      end(t, "done");
    });
    es.addEventListener("INTERRUPTED", (e) => {
      seen(e);
      end(t, "interrupted", e.data || "The task was interrupted.");
    });
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) {
        t.row.dataset.stream = "connecting";
        return;
      }
      // After COMPLETE the server ends the stream; the reconnect gets 204
      // and the EventSource closes for good. Closed without COMPLETE, after
      // some of the task: it is gone (the server restarted, or lost it).
      // Closed before anything: the task was over before the page came
      // (a new subscriber to a finished task gets 204) — unless the page
      // had seen it running (its progress, from /sse/tasks or the demo
      // stream) before its own stream could connect.
      t.row.dataset.stream = "closed";
      if (t.es === es) t.es = null;
      if (t.lastId || t.pct !== null) end(t, "interrupted", "Interrupted: its stream ended before the task completed (the server restarted or lost it).");
      else end(t, "ended", "This task was over before the page could follow it.");
    };
  }

  let discovering = null;
  function discoverTasks() {
    if (state() === "closed" || discovering) return;
    discovering = fetch("/sse/tasks", { cache: "no-store" })
      .then((r) => (r.ok ? r.json() : { tasks: [] }))
      .then((body) => {
        if (state() === "closed") return;
        for (const t of body.tasks || []) {
          const known = tasks.get(t.task);
          if (!known || known.state !== "running" || !known.es) follow(t.task, t.progress);
        }
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
    out.classList.remove("error");
    try {
      const r = await fetch("/sse/start-task", { method: "POST" });
      if (!r.ok) {
        out.textContent = `Error: ${await errorText(r)}`;
        out.classList.add("error");
        return;
      }
      out.textContent = await r.text();
      const n = Number(r.headers.get("Herald-Demo-Task"));
      if (!n) return;
      startedTask = n;
      if (state() === "closed") {
        out.textContent += ` (task ${n}: connect to follow it)`;
        return;
      }
      follow(n);
    } catch (err) {
      out.textContent = `Error: ${err.message}`;
      out.classList.add("error");
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

  // clearLog empties the log and drops the tasks that are over.
  function clearLog() {
    $("log").replaceChildren();
    for (const t of [...tasks.values()]) {
      if (t.state === "running") continue;
      t.row.remove();
      tasks.delete(t.n);
    }
    if (tasks.size === 0 && !$("tasks").querySelector(".empty")) {
      $("tasks").append(Object.assign(document.createElement("li"), { className: "empty", textContent: "No task yet." }));
    }
    showEmpty();
  }

  $("connect").addEventListener("click", connect);
  $("disconnect").addEventListener("click", disconnect);
  $("start-task").addEventListener("click", startTask);
  $("broadcast-form").addEventListener("submit", broadcast);
  $("clear").addEventListener("click", clearLog);
  showState();
  // Connected before a reload: connect again at once.
  if (remembered().connected) connect();
})();
