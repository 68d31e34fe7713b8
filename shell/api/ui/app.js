// MuninnDB status page (docs/ui.md). Read-only: it only GETs (and HEADs)
// this node's read endpoints, which answer on any node:
//   /v1/cluster/events      the timeline, and the Cortex as it changes (EventSource)
//   /v1/cluster/status      members, lags, catch-up (a Lobe asks the Cortex)
//   /v1/cluster/info        this node, priorities; every second while the stream is down
//   /v1/cluster/health      health as this node sees it
//   /v1/cluster/quarantine/export (HEAD)  this node's quarantine count
// Every string from the API reaches the page through textContent or an
// attribute, never as HTML.
"use strict";

(function () {
  const POLL_MS = 1000;          // status, and info while the stream is down
  const INFO_SLOW_MS = 5000;     // info while the stream is up
  const HEALTH_MS = 2000;
  const QUARANTINE_MS = 5000;
  const FETCH_TIMEOUT_MS = 3000;
  const STREAM_RETRY_MS = 3000;  // reopening a stream the browser gave up on
  const SPARK_WINDOW_MS = 5 * 60 * 1000;
  const SPARK_W = 120, SPARK_H = 22;
  const TIMELINE_MAX = 300;

  const $ = (id) => document.getElementById(id);

  const state = {
    node: "",          // the node serving the page
    role: "",
    cortex: null,      // the current Cortex ("" during an election; null before any answer)
    epoch: -1,         // the epoch that Cortex was learned at
    streamUp: false,
    historyBoot: "",   // the node run whose kept events were replayed
    lastEventID: "",
    seen: new Set(),   // event ids already on the timeline
    info: null,
    status: null,
    lags: new Map(),   // member id -> [{t, v}] (v: lag in ms, or null)
    rows: new Map(),   // member id -> row cells
    lastOK: 0,
    polledCortex: null, // for timeline entries while polling
    polledMembers: null,
  };

  function text(el, s) {
    el.textContent = s === null || s === undefined ? "" : String(s);
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "—";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }

  function fmtTime(d) {
    const p = (n, w) => String(n).padStart(w, "0");
    return p(d.getHours(), 2) + ":" + p(d.getMinutes(), 2) + ":" + p(d.getSeconds(), 2) + "." + p(d.getMilliseconds(), 3);
  }

  async function get(path, method) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const r = await fetch(path, { method: method || "GET", signal: ctl.signal, cache: "no-store",
        headers: { Accept: "application/json" }, credentials: "same-origin" });
      let body = null;
      if (method !== "HEAD") {
        try { body = await r.json(); } catch (e) { body = null; }
      }
      return { ok: r.ok, status: r.status, body: body, headers: r.headers };
    } finally {
      clearTimeout(timer);
    }
  }

  // ------------------------------------------------------------ header

  function setNode(id, role) {
    if (typeof id === "string" && id !== "") {
      state.node = id;
      text($("node-id"), id);
      text($("timeline-node"), id);
      document.title = "MuninnDB: " + id;
    }
    if (typeof role === "string" && role !== "") {
      state.role = role;
      text($("node-role"), role);
    }
  }

  // noteCortex takes the Cortex from an answer or event of a given epoch:
  // never from an older epoch than the one shown.
  function noteCortex(cortex, epoch) {
    if (typeof epoch !== "number" || typeof cortex !== "string") return;
    if (epoch < state.epoch) return;
    state.cortex = cortex;
    state.epoch = epoch;
    const el = $("cortex");
    text(el, cortex === "" ? "none (election under way)" : cortex);
    el.setAttribute("data-cortex", cortex);
    el.setAttribute("data-epoch", String(epoch));
    text($("epoch"), epoch);
    for (const [id, r] of state.rows) r.tr.classList.toggle("is-cortex", id === cortex);
  }

  function setFeed() {
    const el = $("feed");
    let s, label;
    if (Date.now() - state.lastOK > 3 * POLL_MS + FETCH_TIMEOUT_MS && state.lastOK !== 0 && !state.streamUp) {
      s = "down"; label = "this node does not answer";
    } else if (state.streamUp) {
      s = "live"; label = "live (event stream)";
    } else if (state.lastOK !== 0) {
      s = "polling"; label = "polling every second (event stream down)";
    } else {
      s = "connecting"; label = "connecting";
    }
    el.setAttribute("data-state", s);
    text(el, label);
  }

  function touched() {
    state.lastOK = Date.now();
    text($("updated"), fmtTime(new Date()));
    setFeed();
  }

  // ------------------------------------------------------------ timeline

  const KIND = {
    cortex_changed: "failover", sdown: "failover", odown: "failover", stepped_down: "failover",
    demoted: "failover", handoff_started: "failover", handoff_aborted: "failover",
    election_started: "election", elected: "election", epoch_changed: "election",
    role_changed: "election", sdown_cleared: "election",
    member_added: "member", member_promoted: "member", member_removed: "member",
    quarantined: "quarantine", reset: "stream", overflow: "stream",
  };

  function describe(ev) {
    const s = (v) => (v === undefined || v === null || v === "" ? "?" : String(v));
    switch (ev.type) {
      case "cortex_changed":
        return "Cortex is now " + s(ev.cortex) + (ev.prev_cortex ? " (was " + ev.prev_cortex + ")" : "") + ", epoch " + s(ev.epoch);
      case "elected":
        return s(ev.node) + " elected Cortex with " + s(ev.votes) + " of " + s(ev.voters) + " votes";
      case "election_started":
        return s(ev.node) + " runs for Cortex";
      case "epoch_changed":
        return "epoch " + s(ev.prev_epoch || 0) + " → " + s(ev.epoch);
      case "role_changed":
        return s(ev.node) + " is now " + s(ev.role) + (ev.cortex && ev.cortex !== ev.node ? ", following " + ev.cortex : "");
      case "sdown":
        return s(ev.source) + " takes the Cortex " + s(ev.cortex) + " for down: " + s(ev.reason);
      case "sdown_cleared":
        return s(ev.source) + " hears the Cortex " + s(ev.cortex) + " again";
      case "odown":
        return s(ev.votes) + " of " + s(ev.voters) + " voters agree the Cortex " + s(ev.cortex) + " is down";
      case "stepped_down":
        return s(ev.source) + " stepped down: " + s(ev.reason);
      case "demoted":
        return s(ev.source) + " gave up the Cortex role: " + s(ev.reason);
      case "handoff_started":
        return "failover to " + s(ev.node) + " started";
      case "handoff_aborted":
        return "failover to " + s(ev.node) + " aborted: " + s(ev.reason);
      case "member_added":
        return s(ev.node) + " added (" + s(ev.kind) + (ev.learner ? ", learner" : "") + ")";
      case "member_promoted":
        return s(ev.node) + " promoted to voter";
      case "member_removed":
        return s(ev.node) + " removed";
      case "quarantined":
        return s(ev.count) + " entries quarantined on " + s(ev.source) + " (" + s(ev.from) + " to " + s(ev.to) + "): " + s(ev.reason);
      case "reset":
      case "overflow":
        return s(ev.reason);
      case "polled_cortex":
        return "Cortex is now " + s(ev.cortex) + (ev.prev_cortex ? " (was " + ev.prev_cortex + ")" : "") + ", epoch " + s(ev.epoch) + " (seen by polling)";
      case "polled_members":
        return s(ev.reason) + " (seen by polling)";
    }
    return "";
  }

  function addTimeline(ev) {
    const ol = $("timeline");
    const empty = ol.querySelector("li.empty");
    if (empty) empty.remove();
    const li = document.createElement("li");
    const type = String(ev.type || "");
    li.setAttribute("data-type", type);
    li.setAttribute("data-kind", KIND[type] || (type.startsWith("polled_") ? "failover" : "other"));
    if (ev.id) li.setAttribute("data-event-id", String(ev.id));
    const d = ev.time ? new Date(ev.time) : new Date();
    const t = document.createElement("span");
    t.className = "t";
    text(t, isNaN(d.getTime()) ? "?" : fmtTime(d));
    if (ev.time) t.title = String(ev.time);
    const ty = document.createElement("span");
    ty.className = "type";
    text(ty, type.replace(/^polled_/, ""));
    const desc = document.createElement("span");
    desc.className = "desc";
    text(desc, describe(ev));
    li.append(t, ty, desc);
    ol.prepend(li);
    while (ol.children.length > TIMELINE_MAX) ol.lastElementChild.remove();
  }

  // ------------------------------------------------------------ event stream

  const EVENT_TYPES = ["hello", "reset", "overflow", "cortex_changed", "elected", "election_started",
    "epoch_changed", "role_changed", "sdown", "sdown_cleared", "odown", "stepped_down", "demoted",
    "handoff_started", "handoff_aborted", "member_added", "member_promoted", "member_removed", "quarantined"];

  let es = null;
  let reopenTimer = null;

  function openStream(lastID) {
    if (es) es.close();
    if (reopenTimer) { clearTimeout(reopenTimer); reopenTimer = null; }
    const url = "/v1/cluster/events" + (lastID ? "?last_event_id=" + encodeURIComponent(lastID) : "");
    const src = new EventSource(url);
    es = src;
    src.onopen = () => { if (es === src) { state.streamUp = true; setFeed(); } };
    src.onerror = () => {
      if (es !== src) return;
      state.streamUp = false;
      setFeed();
      pollInfo(); // at once, not at the next tick
      if (src.readyState === EventSource.CLOSED) {
        // The browser gave up (an error answer such as 503): reopen.
        reopenTimer = setTimeout(() => openStream(state.lastEventID), STREAM_RETRY_MS);
      }
    };
    for (const t of EVENT_TYPES) src.addEventListener(t, (m) => onEvent(src, m));
  }

  function onEvent(src, m) {
    if (es !== src) return;
    let ev;
    try { ev = JSON.parse(m.data); } catch (e) { return; }
    if (!ev || typeof ev !== "object") return;
    if (m.lastEventId) state.lastEventID = m.lastEventId;
    state.streamUp = true;
    setFeed();
    if (ev.type === "hello") {
      setNode(ev.node, ev.role);
      noteCortex(ev.cortex || "", ev.epoch);
      if (typeof ev.boot === "string" && ev.boot !== "" && ev.boot !== state.historyBoot) {
        // A new node run: replay the events it kept (from its first).
        state.historyBoot = ev.boot;
        openStream(ev.boot + "-0");
        return;
      }
      refreshSoon();
      return;
    }
    if (ev.id) {
      if (state.seen.has(ev.id)) return;
      if (state.seen.size > 5000) state.seen.clear();
      state.seen.add(ev.id);
    }
    addTimeline(ev);
    if (ev.type === "cortex_changed") noteCortex(ev.cortex || "", ev.epoch);
    if (ev.type === "elected") noteCortex(ev.node || "", ev.epoch);
    if (ev.type === "role_changed" && ev.node === state.node) setNode("", ev.role);
    refreshSoon();
  }

  // ------------------------------------------------------------ polling

  const busy = {};
  function once(name, fn) {
    if (busy[name]) return;
    busy[name] = true;
    fn().catch(() => {}).finally(() => { busy[name] = false; });
  }

  let lastInfo = 0;
  function pollInfo() {
    once("info", async () => {
      lastInfo = Date.now();
      const r = await get("/v1/cluster/info");
      if (!r.ok || !r.body) return;
      const info = r.body;
      state.info = info;
      touched();
      setNode(info.node_id, info.role);
      noteCortex(info.cortex || "", info.epoch);
      if (!state.streamUp) notePolled(info);
      else { state.polledCortex = info.cortex || ""; state.polledMembers = memberIDs(info.members); }
      render();
    });
  }

  function memberIDs(ms) {
    return (Array.isArray(ms) ? ms : []).map((m) => String(m.id)).sort();
  }

  // notePolled puts on the timeline what polling saw change while the
  // stream was down.
  function notePolled(info) {
    const cortex = info.cortex || "";
    if (state.polledCortex !== null && cortex !== state.polledCortex) {
      addTimeline({ type: "polled_cortex", cortex: cortex || "none", prev_cortex: state.polledCortex, epoch: info.epoch });
    }
    state.polledCortex = cortex;
    const ids = memberIDs(info.members);
    if (state.polledMembers !== null) {
      const added = ids.filter((x) => !state.polledMembers.includes(x));
      const removed = state.polledMembers.filter((x) => !ids.includes(x));
      if (added.length) addTimeline({ type: "polled_members", reason: "added: " + added.join(", ") });
      if (removed.length) addTimeline({ type: "polled_members", reason: "removed: " + removed.join(", ") });
    }
    state.polledMembers = ids;
  }

  function pollStatus() {
    once("status", async () => {
      let r;
      try { r = await get("/v1/cluster/status"); } catch (e) { r = null; }
      if (!r || !r.ok || !r.body) {
        // The Cortex may hang a forwarded request: this node's own view.
        r = await get("/v1/cluster/status?local=true");
      }
      if (!r.ok || !r.body) return;
      const st = r.body;
      state.status = st;
      touched();
      noteCortex(st.cortex || "", st.epoch);
      const now = Date.now();
      for (const m of Array.isArray(st.members) ? st.members : []) {
        const id = String(m.id);
        let a = state.lags.get(id);
        if (!a) { a = []; state.lags.set(id, a); }
        a.push({ t: now, v: typeof m.lag_ms === "number" ? m.lag_ms : null });
        while (a.length && a[0].t < now - SPARK_WINDOW_MS) a.shift();
      }
      const view = $("members-view");
      text(view, st.view === "cortex"
        ? "Lags and last seqs as the Cortex " + String(st.node_id) + " measures them."
        : "Node " + String(st.node_id) + "'s own view (the Cortex did not answer): only its own lag is known.");
      render();
    });
  }

  function pollHealth() {
    once("health", async () => {
      const el = $("health"), why = $("health-reason");
      let r;
      try { r = await get("/v1/cluster/health"); } catch (e) { r = null; }
      if (!r || !r.body || typeof r.body.status !== "string") {
        el.setAttribute("data-health", "error");
        text(el, "no answer");
        text(why, r ? "HTTP " + r.status : "the node did not answer");
        return;
      }
      el.setAttribute("data-health", r.body.status);
      text(el, r.body.status);
      text(why, (r.body.reason ? r.body.reason + " " : "") + "(as " + String(r.body.node_id) + " sees it)");
    });
  }

  function pollQuarantine() {
    once("quarantine", async () => {
      const r = await get("/v1/cluster/quarantine/export", "HEAD");
      const el = $("quarantine");
      const n = r.ok ? r.headers.get("X-Muninn-Quarantine-Count") : null;
      if (n === null) {
        text(el, "?");
        el.setAttribute("data-count", "");
        return;
      }
      text(el, n === "0" ? "0 entries" : n === "1" ? "1 entry" : n + " entries");
      el.setAttribute("data-count", n);
    });
  }

  let soon = null;
  function refreshSoon() {
    if (soon) return;
    soon = setTimeout(() => { soon = null; pollStatus(); pollInfo(); pollHealth(); }, 100);
  }

  let lastHealth = 0, lastQuarantine = 0;
  function tick() {
    const now = Date.now();
    pollStatus();
    if (now - lastInfo >= (state.streamUp ? INFO_SLOW_MS : POLL_MS) - 50) pollInfo();
    if (now - lastHealth >= HEALTH_MS - 50) { lastHealth = now; pollHealth(); }
    if (now - lastQuarantine >= QUARANTINE_MS - 50) { lastQuarantine = now; pollQuarantine(); }
    setFeed();
  }

  // ------------------------------------------------------------ members

  const COLS = ["id", "role", "kind", "priority", "epoch", "last_seq", "lag", "spark", "conn", "health", "catchup"];

  function row(id) {
    let r = state.rows.get(id);
    if (r) return r;
    const tr = document.createElement("tr");
    tr.setAttribute("data-node-id", id);
    r = { tr: tr };
    for (const c of COLS) {
      const td = document.createElement("td");
      td.setAttribute("data-col", c);
      if (c === "last_seq" || c === "lag" || c === "priority" || c === "epoch") td.className = "num";
      tr.append(td);
      r[c] = td;
    }
    text(r.id, id);
    state.rows.set(id, r);
    return r;
  }

  function render() {
    const info = state.info, st = state.status;
    const byInfo = new Map(), bySt = new Map(), order = [];
    for (const m of info && Array.isArray(info.members) ? info.members : []) {
      const id = String(m.id);
      byInfo.set(id, m);
      if (!order.includes(id)) order.push(id);
    }
    for (const m of st && Array.isArray(st.members) ? st.members : []) {
      const id = String(m.id);
      bySt.set(id, m);
      if (!order.includes(id)) order.push(id);
    }
    const body = $("members-body");
    for (const [id, r] of state.rows) {
      if (!order.includes(id)) { r.tr.remove(); state.rows.delete(id); state.lags.delete(id); }
    }
    for (const id of order) {
      const mi = byInfo.get(id) || {}, ms = bySt.get(id) || {};
      const r = row(id);
      r.tr.classList.toggle("is-cortex", id === state.cortex);
      r.tr.classList.toggle("is-self", id === state.node);
      const role = ms.role || mi.role || "";
      r.tr.setAttribute("data-role", role);
      text(r.role, role || "—");
      text(r.kind, ms.kind || mi.kind || "—");
      text(r.priority, typeof mi.priority === "number" ? mi.priority : "—");
      let epoch = null;
      if (info && id === info.node_id) epoch = info.epoch;
      else if (st && id === st.node_id) epoch = st.epoch;
      text(r.epoch, epoch === null ? "—" : epoch);
      r.epoch.title = epoch === null ? "the API reports the epoch of the node answering only" : "";
      text(r.last_seq, typeof ms.last_seq === "number" ? ms.last_seq : "—");
      text(r.lag, typeof ms.lag_ms === "number" ? fmtMs(ms.lag_ms) : "—");
      sparkline(r.spark, state.lags.get(id) || []);
      if (ms.id !== undefined) {
        const conn = ms.connected ? "connected" : "disconnected";
        r.conn.setAttribute("data-conn", conn);
        text(r.conn, conn + (typeof ms.last_heard_ms === "number" ? ", heard " + fmtMs(ms.last_heard_ms) + " ago" : ""));
        r.health.setAttribute("data-health", String(ms.health || "unknown"));
        text(r.health, ms.health || "unknown");
      } else {
        r.conn.removeAttribute("data-conn");
        text(r.conn, "—");
        r.health.removeAttribute("data-health");
        text(r.health, "—");
      }
      catchUp(r.catchup, ms.catch_up);
      body.append(r.tr); // keeps the order
    }
  }

  function catchUp(td, cu) {
    td.replaceChildren();
    if (!cu || typeof cu.percent !== "number") { text(td, "—"); return; }
    const p = document.createElement("progress");
    p.max = 100;
    p.value = Math.max(0, Math.min(100, cu.percent));
    const s = document.createElement("span");
    text(s, " " + cu.percent.toFixed(1) + "% (" + String(cu.match_seq) + " of " + String(cu.target_seq) + ")");
    td.append(p, s);
  }

  // The SVG namespace, taken from the page's own <svg> template (so no
  // URL-like string appears in this file).
  let svgNS = "";

  function sparkline(td, samples) {
    const tpl = $("spark-tpl");
    const svg = tpl.content.firstElementChild.cloneNode(false);
    if (!svgNS) svgNS = svg.namespaceURI;
    const SVG_NS = svgNS;
    svg.setAttribute("width", String(SPARK_W));
    svg.setAttribute("height", String(SPARK_H));
    svg.setAttribute("viewBox", "0 0 " + SPARK_W + " " + SPARK_H);
    const base = document.createElementNS(SVG_NS, "line");
    base.setAttribute("x1", "0"); base.setAttribute("x2", String(SPARK_W));
    base.setAttribute("y1", String(SPARK_H - 1)); base.setAttribute("y2", String(SPARK_H - 1));
    svg.append(base);
    const now = Date.now();
    // The x axis spans the samples kept (up to SPARK_WINDOW_MS), so a
    // page opened a minute ago fills the width.
    const from = samples.length ? Math.max(now - SPARK_WINDOW_MS, samples[0].t) : now - SPARK_WINDOW_MS;
    const span = Math.max(now - from, 1);
    let max = 0;
    for (const s of samples) if (s.v !== null && s.v > max) max = s.v;
    const scale = Math.max(max, 10);
    let pts = [];
    const flush = () => {
      if (pts.length === 1) pts.push((parseFloat(pts[0]) + 1).toFixed(1) + "," + pts[0].split(",")[1]);
      if (pts.length > 1) {
        const pl = document.createElementNS(SVG_NS, "polyline");
        pl.setAttribute("points", pts.join(" "));
        svg.append(pl);
      }
      pts = [];
    };
    for (const s of samples) {
      if (s.v === null) { flush(); continue; }
      const x = ((s.t - from) / span) * SPARK_W;
      const y = SPARK_H - 1 - (s.v / scale) * (SPARK_H - 3);
      pts.push(x.toFixed(1) + "," + y.toFixed(1));
    }
    flush();
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = samples.some((s) => s.v !== null)
      ? "lag over the last " + fmtMs(now - from) + " (kept by this page): max " + fmtMs(max)
      : "lag unknown";
    svg.append(title);
    td.replaceChildren(svg);
  }

  // ------------------------------------------------------------ start

  function start() {
    const li = document.createElement("li");
    li.className = "empty";
    text(li, "No events yet.");
    $("timeline").append(li);
    if (typeof EventSource === "function") openStream("");
    tick();
    setInterval(tick, POLL_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
