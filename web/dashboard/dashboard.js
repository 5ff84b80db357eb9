// Herald's dashboard (/dashboard): the samples of /dashboard/stream (an
// event "history" with the samples kept, then one event "sample" a
// second), shown as figures and charts. Every chart has its scale (its
// highest value and zero) and its time window (how far back it goes, to
// now). This page's own stream is not one of the server's connections: it
// is counted apart, as dashboard streams.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_SAMPLES = 300;
  const fmt = (n) => (n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e4 ? (n / 1e3).toFixed(1) + "k" : (Math.round(n * 10) / 10).toString());
  const bytes = (n) => (n >= 1 << 30 ? (n / (1 << 30)).toFixed(1) + " GiB" : n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MiB" : (n / 1024).toFixed(0) + " KiB");
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
  let samples = [];

  // nice rounds a chart's highest value up to 1, 2 or 5 times a power of
  // ten, so that the scale reads well.
  function nice(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ago says how far back a window goes: "−47 s", "−2 min 10 s", "−5 min".
  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `−${s} s`;
    const m = Math.floor(s / 60), r = s % 60;
    return r ? `−${m} min ${r} s` : `−${m} min`;
  }

  function el(tag, attrs, text) {
    const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // chart draws values (oldest first; samples taken at times) into the
  // chart element box: a y axis with the scale, the line, the time window.
  function chart(box, values, times, label) {
    const w = 300, h = 64, n = values.length;
    const top = nice(Math.max(0, ...values));
    const unit = box.dataset.unit || "";
    const svg = el("svg:svg", { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", role: "img" });
    const window = n > 1 ? times[n - 1] - times[0] : 0;
    svg.setAttribute("aria-label", `${label}: ${n > 1 ? `the last ${ago(window).slice(1)}` : "no history yet"}, highest ${fmt(Math.max(0, ...values))}${unit}`);
    svg.append(el("svg:line", { class: "grid-line", x1: 0, y1: 1, x2: w, y2: 1, "vector-effect": "non-scaling-stroke" }));
    if (n >= 2) {
      const pts = values.map((v, i) => `${((i / (n - 1)) * w).toFixed(1)},${(h - (v / top) * (h - 2)).toFixed(1)}`).join(" ");
      svg.append(el("svg:polygon", { class: "area", points: `0,${h} ${pts} ${w},${h}` }));
      svg.append(el("svg:polyline", { class: "line", points: pts, "vector-effect": "non-scaling-stroke" }));
    }
    const yAxis = el("div", { class: "y-axis", "aria-hidden": "true" });
    yAxis.append(el("span", { class: "y-max" }, fmt(top) + unit), el("span", { class: "y-min" }, "0"));
    const plot = el("div", { class: "plot" });
    plot.append(yAxis, svg);
    const xAxis = el("div", { class: "x-axis", "aria-hidden": "true" });
    xAxis.append(el("span", { class: "x-from" }, n > 1 ? ago(window) : "–"), el("span", { class: "x-to" }, "now"));
    box.replaceChildren(plot, xAxis);
  }

  function render() {
    const s = samples[samples.length - 1];
    if (!s) return;
    $("broker").textContent = s.broker || "memory";
    $("epoch").textContent = s.epoch;
    $("conns").textContent = fmt(sum(s.connections));
    $("connsBy").textContent = Object.entries(s.connections || {}).map(([k, v]) => `${k} ${fmt(v)}`).join(" · ") || "no connections";
    const d = s.dashboards || 0;
    $("dashboards").textContent = `+ ${d} dashboard stream${d === 1 ? "" : "s"} (this page included), not counted above`;
    $("subs").textContent = fmt(s.subscriptions);
    $("topics").textContent = `${fmt(s.topics)} topic${s.topics === 1 ? "" : "s"}`;
    $("pub").textContent = fmt(s.publishRate);
    $("del").textContent = fmt(s.deliveryRate);
    $("pubTotal").textContent = fmt(s.published);
    $("delTotal").textContent = fmt(s.delivered);
    $("slow").textContent = fmt(s.slowDisconnects);
    $("resets").textContent = fmt(sum(s.resets));
    const resets = Object.entries(s.resets || {}).map(([k, v]) => el("span", { class: "item" }, `${k} ${v}`));
    $("resetsBy").replaceChildren(...(resets.length ? resets.flatMap((r, i) => (i ? [" · ", r] : [r])) : ["none"]));
    $("chat").textContent = s.gauges && "chat_generations" in s.gauges ? fmt(s.gauges.chat_generations) : "–";
    $("heap").textContent = bytes(s.heapBytes);
    $("gor").textContent = fmt(s.goroutines);
    const rows = (s.topTopics || []).map((t) => {
      const tr = el("tr");
      tr.append(el("td", { class: "topic" }, t.topic), el("td", { class: "num" }, fmt(t.subscribers)), el("td", { class: "num" }, fmt(t.rate)));
      return tr;
    });
    if (rows.length === 0) {
      const tr = el("tr");
      tr.append(el("td", { colspan: "3", class: "sub" }, "no topic has subscribers"));
      rows.push(tr);
    }
    $("top").replaceChildren(...rows);
    const times = samples.map((x) => x.t);
    chart($("chartConns"), samples.map((x) => sum(x.connections)), times, "Connections");
    chart($("chartSubs"), samples.map((x) => x.subscriptions), times, "Subscriptions");
    chart($("chartPub"), samples.map((x) => x.publishRate), times, "Publish rate");
    chart($("chartDel"), samples.map((x) => x.deliveryRate), times, "Delivery rate");
  }

  function connect() {
    const token = new URLSearchParams(location.search).get("token");
    const es = new EventSource("/dashboard/stream" + (token ? "?token=" + encodeURIComponent(token) : ""));
    const state = () => {
      const st = ["connecting", "open", "closed"][es.readyState];
      $("state").dataset.state = st;
      $("state-text").textContent = st;
    };
    es.onopen = state;
    es.onerror = state;
    es.addEventListener("history", (e) => {
      samples = JSON.parse(e.data) || [];
      render();
      state();
    });
    es.addEventListener("sample", (e) => {
      samples.push(JSON.parse(e.data));
      if (samples.length > MAX_SAMPLES) samples.shift();
      render();
    });
  }
  connect();
})();
