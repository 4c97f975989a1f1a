// band panel: a small hand-written front end over the panel's JSON API. No build step, no dependencies.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2));
const fmtInt = (n) => Number(n || 0).toLocaleString("en-US");
const fmtBytes = (b) => { const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0; b = Number(b || 0); while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; } return `${b.toFixed(i ? 1 : 0)} ${u[i]}`; };
const fmtMs = (ms) => (ms == null ? "—" : ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`);
const fmtAge = (s) => { if (s == null) return "—"; s = Math.max(0, s); if (s < 90) return `${Math.round(s)} s`; if (s < 5400) return `${Math.round(s / 60)} min`; if (s < 172800) return `${(s / 3600).toFixed(1)} h`; return `${(s / 86400).toFixed(1)} d`; };
const clock = (t) => new Date(t * 1000).toLocaleTimeString();

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options, headers: { ...(options.body ? { "Content-Type": "application/json" } : {}), ...(options.headers || {}) } };
  const resp = await fetch(path, init);
  if (resp.status === 401) { location.href = "/login"; throw new Error("logged out"); }
  const type = resp.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw Object.assign(new Error((body && body.error) || `${resp.status} ${resp.statusText}`), { status: resp.status });
  return body;
}

function toast(text, bad = false) {
  const el = $("#toast");
  el.textContent = text;
  el.className = bad ? "toast bad" : "toast";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.add("hidden"), 4000);
}

// --- pages and polling -------------------------------------------------------------
const pages = {};
let current = null;
let timer = null;

function show() {
  const [name, arg] = (location.hash || "#overview").slice(1).split("/");  // #user/<uid or user id>
  const page = pages[name] ? name : "overview";
  document.querySelectorAll(".page").forEach((el) => el.classList.toggle("hidden", el.id !== `page-${page}`));
  document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  if (current && pages[current].leave) pages[current].leave();
  clearInterval(timer);
  current = page;
  if (page !== "overview") setConn(true, "");  // the time shown is the overview's last update
  const p = pages[page];
  if (p.enter) { let value = arg; try { value = arg && decodeURIComponent(arg); } catch { /* a stray % in the hash: as typed */ } p.enter(value); }
  if (p.refresh) { p.refresh(); timer = setInterval(p.refresh, p.every || 2000); }
}

function setConn(ok, text) {
  const el = $("#conn");
  el.textContent = text;
  el.className = ok ? "conn" : "conn bad";
}

// --- overview ------------------------------------------------------------------------
let enrichers = [];

function endpointRow(ep) {
  const what = ep.role === "handler" ? (ep.path || ep.key) : ep.role === "rpc" ? ep.subject.replace(/^band\.rpc\./, "") : (ep.keys && ep.keys.length ? ep.keys.join(", ") : "every key");
  const errs = ep.errors ? `<span class="bad">${fmtInt(ep.errors)}</span>` : "0";
  return `<tr title="${esc(ep.subject)}${ep.last_error ? "\nlast error: " + esc(ep.last_error) : ""}">
    <td><span class="pill ${esc(ep.role)}">${esc(ep.role || "?")}</span>${ep.durable ? ' <span class="pill">durable</span>' : ""}</td>
    <td class="mono">${esc(ep.method || ep.name)}</td><td class="mono">${esc(what)}</td>
    <td class="num">${fmtRate(ep.rate)}/s</td><td class="num">${errs}</td><td class="num">${fmtMs(ep.latency_ms)}</td><td>${ep.spark}</td></tr>`;
}

function serviceCard(svc) {
  const up = svc.instances.filter((i) => i.status === "up");
  const oldest = Math.max(...up.map((i) => i.uptime_s || 0), 0);
  return `<div class="card service" data-service="${esc(svc.name)}" data-status="${svc.status}">
    <div class="svc-head"><span class="dot ${svc.status}"></span><h3>${esc(svc.name)}</h3>
      <span class="muted">v${esc(svc.version)}</span>${svc.roles.map((r) => `<span class="pill ${esc(r)}">${esc(r)}</span>`).join("")}</div>
    <div class="svc-meta">${up.length} of ${svc.instances.length} instance${svc.instances.length === 1 ? "" : "s"} up · up ${fmtAge(oldest)} · ${fmtRate(svc.rate)} req/s${svc.error_rate ? ` · <span class="bad">${fmtRate(svc.error_rate)} errors/s</span>` : ""}</div>
    <div class="instances">${svc.instances.map((i) => `<span class="inst" title="instance ${esc(i.id)}, version ${esc(i.version)}, started ${esc(i.started)}"><span class="dot ${i.status}"></span><span class="mono">${esc(i.id.slice(0, 8))}</span> ${i.status === "up" ? "up " + fmtAge(i.uptime_s) : "down"}</span>`).join("")}</div>
    <table class="table compact"><thead><tr><th>Role</th><th>Method</th><th>Key / path</th><th class="num">Rate</th><th class="num">Errors</th><th class="num">Latency</th><th>Last 2 min</th></tr></thead>
    <tbody>${svc.endpoints.map(endpointRow).join("")}</tbody></table></div>`;
}

function renderEdge(edges) {
  if (!edges.length) return '<div class="empty">no edge configured</div>';
  return edges.map((e) => {
    if (!e.up) return `<div class="card"><span class="dot down"></span> <b>${esc(e.url)}</b> <span class="bad">${esc(e.error || "no answer")}</span></div>`;
    const statuses = Object.entries(e.hits_per_s || {}).map(([s, r]) => `<tr><td>HTTP ${esc(s)}</td><td class="num">${fmtRate(r)}/s</td></tr>`).join("") || '<tr><td colspan="2" class="muted">no hits yet</td></tr>';
    const stages = Object.entries(e.stages || {}).map(([s, v]) => `<tr><td>${esc(s)}</td><td class="num">${fmtMs(v.mean_ms)}</td><td class="num">${v.p95_ms == null ? "—" : "≤ " + fmtMs(v.p95_ms)}</td></tr>`).join("");
    const timeouts = Object.entries(e.enricher_timeouts || {}).map(([s, n]) => `${esc(s)}: ${fmtInt(n)}`).join(", ") || "none";
    return `<div class="card edge"><div class="svc-head"><span class="dot up"></span><h3>${esc(e.url)}</h3><span class="muted">${fmtRate(e.total_per_s || 0)} hits/s · ${fmtInt(e.websockets)} sockets</span></div>
      <div class="two"><table class="table compact"><thead><tr><th>Status</th><th class="num">Hits</th></tr></thead><tbody>${statuses}</tbody></table>
      <table class="table compact"><thead><tr><th>Stage</th><th class="num">Mean</th><th class="num">p95</th></tr></thead><tbody>${stages}</tbody></table></div>
      <p class="muted">Enricher timeouts (total): ${timeouts}</p>
      <p class="${e.unenriched ? "warn" : "muted"}" title="hits stored while no enricher service was known for their key: before the enrichers registered, or with none declared">Stored without enrichment (total): ${fmtInt(e.unenriched || 0)}</p>
      <p class="muted" id="edge-bots" title="hits the edge classified as bots, by reason and what its config did with them: flag (stored with the reason in the bot column), drop (answered, not stored), keep (stored as a person's)">Bots (total): ${botCounts(e.bots)}</p></div>`;
  }).join("");
}

function botCounts(bots) {
  return Object.entries(bots || {}).map(([reason, actions]) => `${esc(reason)} ${Object.entries(actions).map(([a, n]) => `${fmtInt(n)} ${esc(a === "flag" ? "flagged" : a === "drop" ? "dropped" : "kept")}`).join(", ")}`).join(" · ") || "none";
}

function renderJetStream(js) {
  if (!js.stream) return `<div class="empty">${esc(js.message || "no stream")}</div>`;
  const s = js.stream;
  const rows = js.consumers.map((c) => `<tr><td class="mono">${esc(c.name)}</td><td class="mono">${esc(c.filter)}</td>
    <td class="num ${c.lag ? "bad" : ""}">${fmtInt(c.lag)}</td><td class="num">${fmtInt(c.ack_pending)}</td><td class="num">${fmtInt(c.redelivered)}</td></tr>`).join("")
    || '<tr><td colspan="5" class="muted">no consumers</td></tr>';
  return `<div class="card"><div class="svc-head"><h3>${esc(s.name)}</h3><span class="muted">${fmtInt(s.messages)} messages · ${fmtBytes(s.bytes)} · dead letters: <a href="#deadletters">${fmtInt(js.dead_letters)}</a></span></div>
    <table class="table compact"><thead><tr><th>Consumer</th><th>Filter</th><th class="num">Lag</th><th class="num">Unacked</th><th class="num">Redelivered</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

function renderReconcile(r) {
  const n = (v) => (v == null ? "—" : fmtInt(v));
  const lag = r.lag || {};
  const tiles = [[n(r.accepted), "accepted at the edge", "accepted"], [n(r.in_stream), "in the stream", "in_stream"],
    [n(r.stored), "stored", "stored"], [n(r.pending), "still to store", "pending"], [n(r.failed), "failed (bad rows, schemas)", "failed"], [n(r.flagged), "flagged as bots", "flagged"],
    [lag.p50_ms == null ? "—" : "≤ " + fmtMs(lag.p50_ms), "lag to queryable p50", "lag_p50"],
    [lag.p99_ms == null ? "—" : "≤ " + fmtMs(lag.p99_ms), "lag to queryable p99", "lag_p99"]];
  const notes = (r.notes || []).map((t) => `<p class="warn">${esc(t)}</p>`).join("");
  return `${r.picture || ""}<div class="summary">${tiles.map(([v, l, k]) => `<div class="stat" data-count="${k}"><b>${v}</b><span>${l}</span></div>`).join("")}</div>
    <p class="muted">Events the edge answered but did not send on (bots dropped by configuration) never reach the stream. <code>band store check</code> proves it event by event.</p>${notes}`;
}

function stat(value, label) { return `<div class="stat"><b>${value}</b><span>${label}</span></div>`; }

pages.overview = {
  every: 2000,
  async refresh() {
    let o;
    try { o = await api("/api/overview"); setConn(true, `updated ${new Date().toLocaleTimeString()}`); } catch (e) { setConn(false, e.message); return; }
    enrichers = o.enrichers || [];
    const up = o.services.filter((s) => s.status === "up").length;
    const hits = o.edge.reduce((a, e) => a + (e.total_per_s || 0), 0);
    const lag = (o.jetstream.consumers || []).reduce((a, c) => a + (c.lag || 0), 0);
    $("#summary").innerHTML = stat(`${up} / ${o.services.length}`, "services up") + stat(fmtInt(o.services.reduce((a, s) => a + s.instances.length, 0)), "instances")
      + stat(fmtRate(hits), "edge hits/s") + stat(fmtInt(o.jetstream.stream ? o.jetstream.stream.messages : 0), "events in the stream")
      + stat(fmtInt(lag), "consumer lag") + stat(fmtInt(o.jetstream.dead_letters), "dead letters");
    $("#reconcile").innerHTML = renderReconcile(o.reconcile || {});
    $("#services").innerHTML = o.services.map(serviceCard).join("") || '<div class="empty">No service answers $SRV.INFO yet. Start one with <code>band run DIR</code>.</div>';
    $("#edge").innerHTML = renderEdge(o.edge);
    $("#jetstream").innerHTML = renderJetStream(o.jetstream);
    $("#changes tbody").innerHTML = o.changes.map((c) => `<tr><td>${clock(c.time)}</td><td>${esc(c.service)}</td><td class="mono">${esc(c.instance)}</td><td><span class="dot ${c.change}"></span> ${c.change}</td></tr>`).join("")
      || '<tr><td colspan="4" class="muted">nothing changed since the panel started</td></tr>';
    const badge = $("#dlq-badge");
    badge.textContent = o.jetstream.dead_letters;
    badge.classList.toggle("hidden", !o.jetstream.dead_letters);
  },
};

// --- events: the live tail ----------------------------------------------------------------
const MAX_ROWS = 200;
let socket = null;
let paused = false;
const tailEvents = new Map();
let tailId = 0;

function renderJson(value, enriched, path = [], indent = "") {
  // pretty JSON as HTML; the parts enrichers added (data.<enricher>) are marked
  const inner = indent + "  ";
  let out;
  if (Array.isArray(value)) {
    out = value.length ? `[\n${value.map((v, i) => inner + renderJson(v, enriched, [...path, i], inner)).join(",\n")}\n${indent}]` : "[]";
  } else if (value && typeof value === "object") {
    const keys = Object.keys(value);
    out = keys.length ? `{\n${keys.map((k) => {
      const line = `${inner}<span class="k">${esc(JSON.stringify(k))}</span>: ${renderJson(value[k], enriched, [...path, k], inner)}`;
      return path.length === 1 && path[0] === "data" && enriched.includes(k) ? `<span class="enriched" title="added by the ${esc(k)} enricher">${line}</span>` : line;
    }).join(",\n")}\n${indent}}` : "{}";
  } else if (typeof value === "string") {
    out = `<span class="s">${esc(JSON.stringify(value))}</span>`;
  } else {
    out = `<span class="n">${esc(JSON.stringify(value))}</span>`;
  }
  return out;
}

function highlightJson(value, enriched) { return `<pre class="json">${renderJson(value, enriched)}</pre>`; }

function showEvent(id, table, detail) {
  const item = tailEvents.get(id) || dlqCache.get(id);
  if (!item) return;
  table.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
  const row = table.querySelector(`tr[data-id="${id}"]`);
  if (row) row.classList.add("selected");
  const names = Object.keys((item.event && item.event.data) || {}).filter((k) => enrichers.includes(k));
  detail.innerHTML = `<p><b class="mono">${esc(item.subject)}</b></p>`
    + (names.length ? `<p class="muted">Highlighted: what ${names.map(esc).join(", ")} added.</p>` : "")
    + highlightJson(item.event, enrichers);
}

function tailSend() {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ prefix: $("#tail-prefix").value.trim(), uid: $("#tail-uid").value.trim(), paused }));
  }
}

function tailConnect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${proto}://${location.host}/api/tail`);
  socket.onopen = () => { $("#tail-status").textContent = "following in.> …"; tailSend(); };
  socket.onclose = () => { $("#tail-status").textContent = "disconnected; reconnecting…"; if (current === "events") setTimeout(() => { if (current === "events") tailConnect(); }, 1000); };
  socket.onmessage = (msg) => {
    const frame = JSON.parse(msg.data);
    if (frame.type === "stats") {
      const el = $("#tail-status");
      if (paused) el.textContent = "paused";
      else if (frame.seen > frame.sent) { el.textContent = `sampling: showing ${fmtInt(frame.sent)} of ${fmtInt(frame.seen)} events/s (at most ${frame.rate}/s reach the page)`; el.className = "bad"; }
      else { el.textContent = `live: ${fmtInt(frame.seen)} events/s, all shown`; el.className = "muted"; }
      return;
    }
    if (frame.type !== "event" || paused) return;
    const id = `e${++tailId}`;
    tailEvents.set(id, frame);
    const ev = frame.event || {};
    const data = ev.data && typeof ev.data === "object" ? JSON.stringify(ev.data) : "";
    const tr = document.createElement("tr");
    tr.className = "clickable event-row";
    tr.dataset.id = id;
    tr.innerHTML = `<td>${clock(frame.at)}</td><td class="mono">${esc(frame.subject)}</td><td class="mono">${ev.uid ? `<a class="uid" href="#user/${encodeURIComponent(ev.uid)}" title="this visitor's history">${esc(ev.uid)}</a>` : ""}</td><td>${esc(ev.channel)}</td><td class="mono">${esc(data.slice(0, 160))}</td>`;
    const body = $("#tail tbody");
    body.prepend(tr);
    while (body.children.length > MAX_ROWS) { tailEvents.delete(body.lastChild.dataset.id); body.lastChild.remove(); }
  };
}

pages.events = {
  enter() { if (!socket || socket.readyState > 1) tailConnect(); },
  leave() { if (socket) { const s = socket; socket = null; s.onclose = null; s.close(); } },
};

// --- charts ------------------------------------------------------------------------------------
pages.charts = {
  every: 10000,
  refresh() {
    const t = Date.now();
    const bots = $("#charts-bots").checked;
    $("#chart-events").src = `/api/charts/events.svg?t=${t}${bots ? "&bots=1" : ""}`;
    $("#charts-bots-note").textContent = bots ? "bots included" : "bots excluded: events the edge flagged as bots are left out";
    $("#chart-statuses").src = `/api/charts/statuses.svg?t=${t}`;
    $("#chart-timeouts").src = `/api/charts/timeouts.svg?t=${t}`;
    $("#charts-note").textContent = "Events per name come from the store when it runs, else from the events stream. Edge charts are sampled by this panel every couple of seconds.";
  },
};

// --- store --------------------------------------------------------------------------------------
// "Download CSV" posts a form into a hidden frame: the browser saves the streamed answer to disk
// as it comes (nothing held in the page). A download never loads the frame; an error answer does
// (the panel's pages refuse framing, so its text cannot be read there: Run shows it).
let csvPending = false;
function downloadCsv(sql) {
  let frame = $("#sql-download");
  if (!frame) {
    frame = document.createElement("iframe");
    frame.id = "sql-download"; frame.name = "sql-download"; frame.hidden = true;
    document.body.append(frame);
    frame.onload = () => {
      if (!csvPending) return;
      csvPending = false;
      const status = $("#sql-status");
      status.textContent = "the CSV download failed: press Run to see the store's message";
      status.className = "bad";
    };
  }
  const form = document.createElement("form");
  form.method = "POST"; form.action = "/api/store/query?format=csv"; form.target = "sql-download";
  const field = document.createElement("input");
  field.type = "hidden"; field.name = "sql"; field.value = sql;
  form.append(field);
  document.body.append(form);
  csvPending = true;
  form.submit();
  form.remove();
}

async function runSql(csv = false) {
  const sql = $("#sql").value;
  const status = $("#sql-status");
  status.textContent = "running…";
  status.className = "muted";
  const started = performance.now();
  try {
    if (csv) {
      downloadCsv(sql);
      status.textContent = "CSV download started: the browser saves every row as the store sends it";
      return;
    }
    const result = await api("/api/store/query", { method: "POST", body: JSON.stringify({ sql }) });
    const cols = result.columns && result.columns.length ? result.columns.map((c) => c.name) : Object.keys(result.rows[0] || {});
    $("#sql-result").innerHTML = `<thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>`
      + result.rows.map((r) => `<tr>${cols.map((c) => `<td class="${typeof r[c] === "number" ? "num" : ""}">${esc(typeof r[c] === "object" && r[c] !== null ? JSON.stringify(r[c]) : r[c])}</td>`).join("")}</tr>`).join("") + "</tbody>";
    const ms = Math.round(performance.now() - started);
    status.textContent = result.note ? `${result.note} (${ms} ms)` : `${fmtInt(result.rows.length)} row${result.rows.length === 1 ? "" : "s"} in ${ms} ms`;
  } catch (e) {
    status.textContent = e.message;
    status.className = "bad";
  }
}

pages.store = {
  async enter() {
    if ($("#saved").children.length) return;
    try {
      const { queries } = await api("/api/store/saved");
      for (const q of queries) {
        const b = document.createElement("button");
        b.type = "button"; b.textContent = q.title;
        b.onclick = () => { $("#sql").value = q.sql; runSql(); };
        $("#saved").append(b);
      }
    } catch (e) { toast(e.message, true); }
  },
};

// --- user: one person, by any identifier: devices, traits, merges, history ------------------------
// what the operator typed as the store's identifier: digits are a uid, kind:value stays, else a user id
const asIdentifier = (v) => (/^(uid|user|partner|phone):/.test(v) ? v : /^[0-9]{10,22}$/.test(v) ? `uid:${v}` : `user:${v}`);

async function userHistory() {
  const value = $("#user-id").value.trim();
  const by = $("#user-by").value;
  const status = $("#user-status");
  const body = $("#user-timeline tbody");
  if (!value) { status.textContent = "type a uid (from the Events page), a user id your site passed to identify, partner:<partner>:<id> or phone:<digits>"; status.className = "bad"; return; }
  status.textContent = "asking the store…";
  status.className = "muted";
  const which = asIdentifier(value);
  try {
    // a uid the store has no event of yet is no person (404): the timeline says so; other trouble is shown
    const person = await api(`/api/person?id=${encodeURIComponent(which)}`).catch((e) => { if (e.status !== 404) toast(e.message, true); return null; });
    showPerson(person, which);
    const uid = which.startsWith("uid:") ? which.slice(4) : person && person.devices.length ? person.devices[0].uid : null;
    const query = uid ? `uid=${encodeURIComponent(uid)}` : `user_id=${encodeURIComponent(which.replace(/^user:/, ""))}`;
    const h = await api(`/api/history?${query}&by=${by}`);
    body.innerHTML = h.events.map((e) => `<tr class="user-row"><td class="mono">${esc(e.dateTime)}</td><td class="mono">${esc(e.uid)}</td><td class="num">${esc(e.session)}</td><td>${esc(e.name)}</td>
      <td class="mono">${esc(e.page)}</td><td>${esc(e.channel)}</td><td class="mono">${esc(e.details)}</td></tr>`).join("")
      || '<tr><td colspan="7" class="muted">no events for this person</td></tr>';
    status.textContent = h.uids.length ? `${fmtInt(h.events.length)} event${h.events.length === 1 ? "" : "s"} in ${fmtInt(h.sessions)} session${h.sessions === 1 ? "" : "s"} · counted by ${h.counted_by} · uid${h.uids.length === 1 ? "" : "s"} ${h.uids.join(", ")}`
      : `no visitor was seen with ${value}`;
  } catch (e) {
    status.textContent = e.message;
    status.className = "bad";
  }
}

function showPerson(person, which) {
  $("#person").classList.toggle("hidden", !person);
  if (!person) return;
  $("#person").dataset.identifier = which;
  $("#person").dataset.person = person.person_id;
  $("#person-title").textContent = `Person ${person.person_id} · ${person.devices.length} device${person.devices.length === 1 ? "" : "s"}`;
  $("#person-devices tbody").innerHTML = person.devices.map((d) => `<tr class="device-row"><td class="mono"><a class="uid" href="#user/${encodeURIComponent(d.uid)}">${esc(d.uid)}</a></td><td class="mono">${esc(d.first_seen ?? "—")}</td><td class="mono">${esc(d.last_seen ?? "—")}</td><td class="num">${fmtInt(d.events)}</td></tr>`).join("")
    || '<tr><td colspan="4" class="muted">no device yet</td></tr>';
  $("#person-ids tbody").innerHTML = (person.identifiers || []).map((i) => `<tr class="id-row"><td class="mono">${esc(i.identifier)}</td><td class="mono">${esc(i.first_seen)}</td><td class="mono">${esc(i.last_seen)}</td>
    <td>${person.identifiers.length > 1 ? `<button type="button" class="split-id" data-id="${esc(i.identifier)}" title="this identifier leaves the person and becomes a person of its own">Split…</button>` : ""}</td></tr>`).join("");
  const traits = Object.entries(person.traits || {});
  $("#person-traits tbody").innerHTML = traits.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="mono">${esc(typeof v === "string" ? v : JSON.stringify(v))}</td></tr>`).join("")
    || '<tr><td colspan="2" class="muted">no traits</td></tr>';
  $("#person-merges tbody").innerHTML = (person.merges || []).map((m) => `<tr class="merge-row"><td class="mono">${esc(m.at)}</td><td>${esc(m.action)}</td><td class="mono">${esc(m.a)}</td><td class="mono">${esc(m.b)}</td><td>${esc(m.by)}</td></tr>`).join("")
    || '<tr><td colspan="5" class="muted">never merged</td></tr>';
  for (const b of document.querySelectorAll("#person-ids .split-id")) b.onclick = () => personAct("split", { id: b.dataset.id }, `Split ${b.dataset.id} from person ${person.person_id}? It becomes a person of its own.`);
}

async function personAct(action, body, question) {
  if (!confirm(question)) return;
  try {
    await api(`/api/person/${action}`, { method: "POST", body: JSON.stringify(body) });
    toast(action === "merge" ? `merged ${body.a} and ${body.b}` : `${body.id} split off`);
    userHistory();
  } catch (e) { toast(e.message, true); }
}

pages.user = {
  enter(arg) { if (arg) { $("#user-id").value = arg; userHistory(); } },
};

// --- dead letters --------------------------------------------------------------------------------
const dlqCache = new Map();

async function dlqAction(seq, action) {
  try {
    await api(`/api/deadletters/${seq}/${action}`, { method: "POST" });
    toast(action === "replay" ? `dead letter ${seq} replayed into the stream` : `dead letter ${seq} dropped`);
    $("#dlq-detail").innerHTML = '<p class="muted">Click a dead letter to inspect it.</p>';
    pages.deadletters.refresh();
  } catch (e) { toast(e.message, true); }
}

pages.deadletters = {
  every: 5000,
  async refresh() {
    let list;
    try { list = await api("/api/deadletters"); } catch (e) { $("#dlq-note").textContent = e.message; return; }
    $("#dlq-note").textContent = list.total ? `${fmtInt(list.total)} dead letter${list.total === 1 ? "" : "s"}${list.total > list.letters.length ? ` (the oldest ${list.letters.length} shown)` : ""}. Replay publishes the event again on its key: every listener of that key receives it again.`
      : "No dead letters. A durable listener that keeps failing on an event puts it here.";
    $("#dlq tbody").innerHTML = list.letters.map((l) => `<tr class="clickable dlq-row" data-id="d${l.seq}" data-seq="${l.seq}"><td>${l.seq}</td><td>${esc(l.time ? new Date(l.time).toLocaleString() : "")}</td>
      <td>${esc(l.service)}</td><td class="mono">${esc(l.method)}</td><td class="mono">${esc(l.key)}</td><td class="bad">${esc(l.error).slice(0, 80)}</td>
      <td><button type="button" data-act="replay" data-seq="${l.seq}">Replay</button> <button type="button" class="danger" data-act="drop" data-seq="${l.seq}">Drop</button></td></tr>`).join("")
      || '<tr><td colspan="7" class="muted">none</td></tr>';
  },
};

// --- control ----------------------------------------------------------------------------------------
async function controlAction(name, action, button) {
  button.disabled = true;
  try {
    await api(`/api/control/${encodeURIComponent(name)}/${action}`, { method: "POST" });
    toast(`${name}: ${action} done`);
  } catch (e) { toast(e.message, true); }
  pages.control.refresh();
}

pages.control = {
  every: 2000,
  async refresh() {
    let c;
    try { c = await api("/api/control"); } catch (e) { $("#control-note").textContent = e.message; return; }
    $("#control-note").textContent = c.available ? "Processes started by band up on this machine. Instances running elsewhere are on the Overview page, read-only."
      : c.message;
    $("#control").innerHTML = c.children.map((p) => `<div class="card proc" data-proc="${esc(p.name)}" data-state="${p.state}">
      <div class="svc-head"><span class="dot ${p.state}"></span><h3>${esc(p.name)}</h3><span class="muted">${esc(p.state)}${p.pid ? ` · pid ${p.pid}` : ""}${p.uptime_s != null ? ` · up ${fmtAge(p.uptime_s)}` : ""}${p.exit_code != null ? ` · exit ${p.exit_code}` : ""} · restarts ${p.restarts}</span></div>
      ${p.controllable ? `<div class="actions"><button type="button" data-ctl="restart" data-name="${esc(p.name)}">Restart</button>
        <button type="button" class="secondary" data-ctl="stop" data-name="${esc(p.name)}" ${p.state === "running" ? "" : "disabled"}>Stop</button>
        <button type="button" class="secondary" data-ctl="start" data-name="${esc(p.name)}" ${p.state === "running" ? "disabled" : ""}>Start</button></div>` : '<p class="muted">this panel: restart band up to restart it</p>'}
      <pre class="logs">${esc(p.lines.slice(-12).join("\n")) || "no output yet"}</pre></div>`).join("");
    document.querySelectorAll("#control .logs").forEach((el) => { el.scrollTop = el.scrollHeight; });
  },
};

// --- wiring -------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  window.addEventListener("hashchange", show);
  $("#tail-pause").onclick = () => { paused = !paused; $("#tail-pause").textContent = paused ? "Resume" : "Pause"; tailSend(); };
  $("#tail-clear").onclick = () => { $("#tail tbody").innerHTML = ""; tailEvents.clear(); };
  $("#tail-prefix").onchange = tailSend;
  $("#tail-uid").onchange = tailSend;
  $("#charts-bots").onchange = () => pages.charts.refresh();
  $("#tail").onclick = (e) => { const tr = e.target.closest("tr[data-id]"); if (tr) showEvent(tr.dataset.id, $("#tail"), $("#tail-detail")); };
  $("#user-form").onsubmit = (e) => { e.preventDefault(); userHistory(); };
  $("#merge-form").onsubmit = (e) => {
    e.preventDefault();
    const a = $("#person").dataset.identifier, other = $("#merge-with").value.trim();
    if (other) personAct("merge", { a, b: asIdentifier(other) }, `Merge ${a} and ${asIdentifier(other)} into one person? Every device of both counts as one from now on.`);
  };
  $("#sql-run").onclick = () => runSql(false);
  $("#sql-csv").onclick = () => runSql(true);
  $("#sql").onkeydown = (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runSql(false); } };
  $("#dlq").onclick = async (e) => {
    const act = e.target.closest("button[data-act]");
    if (act) { await dlqAction(act.dataset.seq, act.dataset.act); return; }
    const tr = e.target.closest("tr[data-seq]");
    if (!tr) return;
    try {
      const letter = await api(`/api/deadletters/${tr.dataset.seq}`);
      dlqCache.set(`d${letter.seq}`, { subject: `${letter.key} → ${letter.method} (${letter.service}): ${letter.error}`, event: letter.event ?? { raw_base64: letter.raw_base64 } });
      showEvent(`d${letter.seq}`, $("#dlq"), $("#dlq-detail"));
    } catch (err) { toast(err.message, true); }
  };
  $("#control").onclick = (e) => { const b = e.target.closest("button[data-ctl]"); if (b) controlAction(b.dataset.name, b.dataset.ctl, b); };
  show();
});
