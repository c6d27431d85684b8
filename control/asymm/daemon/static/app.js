// asymm dashboard: polls the daemon's JSON API and draws the panels (hand-drawn canvas charts) and
// the semantic data graph in 3D (Three.js, served from /static/vendor, built from npm).
// Imported by path, not through an inline import map: the page's CSP allows only script-src 'self'.
import * as THREE from "/static/vendor/three.module.js";

const POLL_MS = 2000;
const WINDOW_MIN = Math.max(1, Math.min(1440, parseInt(new URLSearchParams(location.search).get("minutes") || "15", 10) || 15));
const GRAPH_MS = 10000;
const COLORS = { table: 0x4c9be8, view: 0xa77ee8, matview: 0xa77ee8, index: 0xe8b84c, query: 0x5fd08a, cache: 0xe8624c };
const EDGE_COLORS = { foreign_key: 0x4c9be8, view_depends: 0xa77ee8, reads: 0x5fd08a, writes: 0xff9b5e,
                      index_of: 0xe8b84c, synced_to: 0xe8624c };
const REGIME_COLORS = { exploration: "#a77ee8", optimization: "#e8b84c", stabilization: "#5fd0c8" };

// What the headless-browser test reads.
const state = (window.__asymm = { polls: 0, errors: [], charts: {}, graph: { nodes: [], edges: 0, webgl: null } });
const pulseHistory = [];

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmt = (x, digits = 1) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)} %`);
const ago = (iso) => { if (!iso) return "–"; const s = (Date.now() - new Date(iso).getTime()) / 1000;
  return s < 60 ? `${Math.max(0, s).toFixed(0)} s ago` : s < 3600 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`; };

// ---------------------------------------------------------------------------------------------
// Canvas charts

function sizeCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return [ctx, w, h];
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// series: [{name, color, points: [[t, y], ...], fill}]
function lineChart(canvas, series, { unit = "", axis = true } = {}) {
  const [ctx, w, h] = sizeCanvas(canvas);
  ctx.clearRect(0, 0, w, h);
  const all = series.flatMap((s) => s.points).filter((p) => p[1] !== null && p[1] !== undefined);
  canvas.dataset.points = String(all.length);
  state.charts[canvas.id] = all.length;
  const left = axis ? 44 : 4, right = 8, top = 8, bottom = axis ? 20 : 4;
  if (!all.length) {
    ctx.fillStyle = "#8492b4"; ctx.font = "12px system-ui"; ctx.textAlign = "center";
    ctx.fillText("waiting for telemetry…", w / 2, h / 2);
    return;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const ymax = niceMax(Math.max(...all.map((p) => p[1])) * 1.1);
  const x = (t) => left + (t1 === t0 ? (w - left - right) / 2 : ((t - t0) / (t1 - t0)) * (w - left - right));
  const y = (v) => top + (1 - v / ymax) * (h - top - bottom);
  if (axis) {
    ctx.strokeStyle = "#222c48"; ctx.fillStyle = "#8492b4"; ctx.font = "11px system-ui"; ctx.lineWidth = 1;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const v = (ymax * i) / 4, yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(w - right, yy); ctx.stroke();
      ctx.fillText(`${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${unit}`, left - 6, yy);
    }
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (let i = 0; i <= 3; i++) {
      const t = t0 + ((t1 - t0) * i) / 3;
      ctx.textAlign = i === 0 ? "left" : i === 3 ? "right" : "center";
      ctx.fillText(new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }), x(t), h - bottom + 5);
    }
  }
  for (const s of series) {
    const pts = s.points.filter((p) => p[1] !== null && p[1] !== undefined);
    if (!pts.length) continue;
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
    if (s.fill) {
      const grad = ctx.createLinearGradient(0, top, 0, h - bottom);
      grad.addColorStop(0, s.color + "66"); grad.addColorStop(1, s.color + "00");
      ctx.save(); ctx.lineTo(x(pts[pts.length - 1][0]), y(0)); ctx.lineTo(x(pts[0][0]), y(0)); ctx.closePath();
      ctx.fillStyle = grad; ctx.fill(); ctx.restore();
      ctx.beginPath(); pts.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
    }
    ctx.strokeStyle = s.color; ctx.lineWidth = s.width || 2; ctx.setLineDash(s.dash || []); ctx.stroke(); ctx.setLineDash([]);
  }
  if (axis && series.length > 1) {
    ctx.textAlign = "left"; ctx.textBaseline = "top"; ctx.font = "11px system-ui";
    let lx = left + 8;
    for (const s of series) { ctx.fillStyle = s.color; ctx.fillRect(lx, top + 4, 10, 3); ctx.fillStyle = "#aab6d6";
      ctx.fillText(s.name, lx + 14, top); lx += ctx.measureText(s.name).width + 32; }
  }
}

function gauge(canvas, value, label) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const cx = w / 2, cy = h - 14, r = 52;
  ctx.lineWidth = 11; ctx.lineCap = "round";
  ctx.strokeStyle = "#1d2642"; ctx.beginPath(); ctx.arc(cx, cy, r, Math.PI, 2 * Math.PI); ctx.stroke();
  if (value !== null && value !== undefined) {
    const v = Math.max(0, Math.min(1, value));
    ctx.strokeStyle = v >= 0.85 ? "#5fd08a" : v >= 0.6 ? "#e8b84c" : "#e8624c";
    ctx.beginPath(); ctx.arc(cx, cy, r, Math.PI, Math.PI + v * Math.PI); ctx.stroke();
  }
  ctx.fillStyle = "#dfe6f5"; ctx.font = "bold 20px system-ui"; ctx.textAlign = "center";
  ctx.fillText(label, cx, cy - 8);
}

// ---------------------------------------------------------------------------------------------
// Panels

function renderHeader(d) {
  const p = d.daemon.pulse;
  $("db").textContent = d.database ? `${d.database.name}` : "";
  $("version").textContent = d.database ? d.database.asymm : "";
  $("role").textContent = d.daemon.leader ? "leader" : d.daemon.ready ? "standby" : "not ready";
  $("pulse-rate").textContent = `${(1 / p.period_s).toFixed(3)} Hz`;
  $("ticks").textContent = p.ticks.toLocaleString();
  $("lateness").textContent = p.lateness_p99_s === null ? "–" : `${(1000 * p.lateness_p99_s).toFixed(2)} ms`;
  $("updated").textContent = new Date().toLocaleTimeString();
  const dot = $("pulse-dot");
  dot.style.setProperty("--period", `${p.period_s}s`);
  dot.classList.toggle("down", !d.daemon.ready);
  graph3d.setPulse(p.period_s, d.daemon.ready);
  pulseHistory.push([d.now, p.lateness_p99_s === null ? 0 : 1000 * p.lateness_p99_s]);
  while (pulseHistory.length > 90) pulseHistory.shift();
  lineChart($("chart-pulse"), [{ name: "p99 lateness", color: "#5fd0c8", points: pulseHistory, fill: true }], { unit: "", axis: false });
}

function renderRegimes(r) {
  const rows = Object.keys(r.target).map((name) => {
    const target = r.target[name], measured = r.measured[name] ?? 0, color = REGIME_COLORS[name] || "#888";
    return `<div class="regime"><span>${esc(name)}</span><div class="bar"><div class="fill" style="width:${(100 * measured).toFixed(1)}%;background:${color}"></div>
      <div class="target" style="left:${(100 * target).toFixed(1)}%"></div></div><span class="muted">${pct(measured)} / ${pct(target)}</span></div>`;
  });
  $("regimes").innerHTML = rows.join("");
  $("balance").textContent = r.balance_score === null || r.balance_score === undefined ? "–" : fmt(r.balance_score, 1);
}

function renderSeries(s) {
  if (!s || s.error) { lineChart($("chart-throughput"), []); lineChart($("chart-latency"), []); return; }
  const pts = s.points;
  lineChart($("chart-throughput"), [{ name: "calls/s", color: "#5fd0c8", fill: true, points: pts.map((p) => [p.t, p.calls_per_s]) }]);
  lineChart($("chart-latency"), [
    { name: "mean", color: "#4c9be8", fill: true, points: pts.map((p) => [p.t, p.mean_ms]) },
    { name: "worst statement", color: "#e8624c", width: 1.5, dash: [4, 3], points: pts.map((p) => [p.t, p.worst_ms]) },
  ], { unit: "" });
}

function renderSmoothCoherence(sm, co) {
  const v = sm && !sm.error ? sm.value : null;
  gauge($("gauge-smooth"), v, v === null ? "–" : `${(100 * v).toFixed(0)}%`);
  const score = co && !co.error ? co.score : null;
  gauge($("gauge-coherence"), score === null ? null : score / 100, score === null ? "–" : `${Number(score).toFixed(0)}`);
  $("coherence-note").textContent = co && !co.error
    ? `${co.coherent ?? 0} coherent, ${co.incoherent ?? 0} incoherent, ${co.not_evaluable ?? 0} not evaluable of ${co.total ?? 0} annotations (goal ${co.goal ?? "–"})`
    : co && co.error ? co.error : "";
}

function renderCache(c) {
  if (!c || c.error) { $("cache").innerHTML = `<div class="empty">${esc(c ? c.error : "no data")}</div>`; return; }
  const s = c.sync || {}, r = c.redis || {};
  const kpi = (n, l) => `<div class="kpi"><div class="n">${n}</div><div class="l">${l}</div></div>`;
  $("cache").innerHTML = [
    kpi(r.hit_rate === undefined ? "–" : pct(r.hit_rate), "Redis hit rate"),
    kpi(s.lag_ms === null || s.lag_ms === undefined ? "–" : `${fmt(s.lag_ms, 1)} ms`, "sync lag"),
    kpi(fmt(s.backlog_rows ?? null, 0), "backlog rows"),
    kpi(`${fmt(s.keys_applied ?? null, 0)}`, "keys applied"),
    kpi(`${(s.tables || []).length}`, "tracked tables"),
    kpi(r.keys === undefined ? "–" : fmt(r.keys, 0), "Redis keys"),
  ].join("") + (r.error ? `<div class="empty">${esc(r.error)}</div>` : !c.configured ? `<div class="empty">no Redis URL configured</div>` : "")
    + (s.last_error ? `<div class="empty">last error: ${esc(s.last_error)}</div>` : "");
}

function renderSlow(s) {
  if (!s || s.error) { $("slow").innerHTML = `<div class="empty">${esc(s ? s.error : "")}</div>`; return; }
  $("slow-threshold").textContent = `≥ ${s.threshold_ms} ms`;
  if (!s.queries.length) { $("slow").innerHTML = `<div class="empty">no slow statements in the window</div>`; return; }
  $("slow").innerHTML = `<table><tr><th>statement</th><th>slow / calls</th><th>mean ms</th><th>worst ms</th><th>last slow</th></tr>${
    s.queries.map((q) => `<tr><td class="q">${esc(q.query)}</td><td>${q.slow_calls} / ${q.calls}</td><td>${fmt(q.mean_ms, 1)}</td>
      <td>${fmt(q.max_sample_mean_ms, 1)}</td><td>${ago(q.last_slow_at)}</td></tr>`).join("")}</table>`;
}

const bytes = (n) => { if (n === null || n === undefined) return "–"; let v = Number(n);
  for (const u of ["B", "kB", "MB", "GB"]) { if (v < 1024 || u === "GB") return u === "B" ? `${v} B` : `${v.toFixed(1)} ${u}`; v /= 1024; } };
const STATUS_PILL = { suggested: "", applied: "good", failed: "bad", rolled_back: "warn" };
const VERDICT_PILL = { paid_off: "good", no_gain: "bad", insufficient_data: "warn" };

// One row per suggestion of asymm.index_suggestions_latest (sql/30_advisor.sql): the definition,
// the estimated benefit (planner cost units), HypoPG's size estimate (corrected for deduplication), the status,
// and what asymm verify measured: the verdict and the mean latency of the index's queries.
function renderSuggestions(s) {
  const el = $("suggestions");
  if (!s || s.error) { el.innerHTML = `<div class="empty">${esc(s ? s.error : "")}</div>`; return; }
  if (!s.installed) { el.innerHTML = `<div class="empty">index advisor not installed (no <code>asymm.index_suggestions</code>)</div>`; return; }
  if (!s.items.length) {
    el.innerHTML = `<div class="empty">no suggestions yet: <code>asymm advise --apply</code>, then <code>asymm verify</code>${
      s.hypopg === false ? " (needs <code>CREATE EXTENSION hypopg</code>)" : ""}</div>`;
    return;
  }
  const verified = (i) => {
    if (!i.verdict) return i.status === "applied" ? `<span class="muted">not verified yet</span>` : "–";
    const before = i.mean_before_ms, after = i.mean_after_ms;
    const change = before > 0 && after !== null ? ` <span class="muted">(${after <= before ? "−" : "+"}${(100 * Math.abs(1 - after / before)).toFixed(0)} %)</span>` : "";
    const lat = before !== null && after !== null ? `<br>${fmt(before, 3)} → ${fmt(after, 3)} ms${change}` : "";
    return `<span class="pill ${VERDICT_PILL[i.verdict] ?? ""}">${esc(i.verdict.replace("_", " "))}</span>${lat}` +
      (i.calls_since !== null ? `<br><span class="muted">${fmt(i.calls_since, 0)} calls since</span>` : "");
  };
  el.innerHTML = `<table class="suggestions"><tr><th>index</th><th>est. benefit</th><th>size*</th><th>status</th><th>verified gain</th></tr>${
    s.items.map((i) => `<tr data-suggestion="${esc(i.suggestion_id)}"><td class="q">${esc(i.definition)}${
        i.error ? `<br><span class="muted">${esc(i.error)}</span>` : ""}</td>
      <td title="planner cost units saved (calls × cost), minus the write penalty">${fmt(i.estimated_benefit, 0)}</td>
      <td>${bytes(i.size_bytes)}</td>
      <td><span class="pill ${STATUS_PILL[i.status] ?? ""}">${esc(i.status.replace("_", " "))}</span></td>
      <td>${verified(i)}</td></tr>`).join("")}</table>
    <div class="muted small-text">* ${esc(s.size_note)}. Benefit in planner cost units; verified gain: mean latency of the index's queries before → after (<code>asymm verify</code>).</div>`;
}

function renderDrift(d) {
  if (!d || d.error) { $("drift").innerHTML = `<div class="empty">${esc(d ? d.error : "")}</div>`; return; }
  const findings = d.findings.length
    ? `<table><tr><th>finding</th><th>object</th><th>severity</th></tr>${d.findings.map((f) => `<tr><td>${esc(f.kind)}</td><td class="q">${esc(f.identity)}</td>
        <td><span class="pill ${f.severity === "breaking" || f.severity === "high" ? "bad" : "warn"}">${esc(f.severity ?? "")}</span></td></tr>`).join("")}</table>`
    : `<div class="empty">${d.baselines ? "no open drift against the baselines" : "no baseline captured (asymm baseline NAME)"}</div>`;
  const ddl = d.ddl.length
    ? `<table><tr><th>DDL</th><th>object</th><th>who</th><th>when</th></tr>${d.ddl.slice(0, 6).map((e) => `<tr><td><span class="pill">${esc(e.command_tag)}</span></td>
        <td class="q">${esc(e.object_identity)}</td><td>${esc(e.role_name)}</td><td>${ago(e.logged_at)}</td></tr>`).join("")}</table>`
    : `<div class="empty">no DDL logged</div>`;
  $("drift").innerHTML = findings + `<h2 style="margin-top:12px">recent DDL</h2>` + ddl;
}

// ---------------------------------------------------------------------------------------------
// The 3D graph

const graph3d = (() => {
  const el = $("graph");
  let renderer = null, scene, camera, group, particles = [], meshes = [], pulse = { period: 0.2037, up: true, start: performance.now() };
  let ids = "", dragging = null, rot = { x: 0.35, y: 0 }, hover = null;
  const raycaster = new THREE.Raycaster(), mouse = new THREE.Vector2();
  try {
    renderer = new THREE.WebGLRenderer({ antialias: true, alpha: true });
    state.graph.webgl = true;
  } catch (err) {
    state.graph.webgl = false;
    el.innerHTML = `<div class="empty" style="padding:20px">WebGL is not available in this browser: the 3D graph cannot be drawn.</div>`;
    console.warn("asymm: WebGL unavailable", err);
  }
  if (renderer) {
    renderer.setPixelRatio(window.devicePixelRatio || 1);
    el.appendChild(renderer.domElement);
    scene = new THREE.Scene();
    scene.fog = new THREE.FogExp2(0x080c1a, 0.0012);
    camera = new THREE.PerspectiveCamera(50, 2, 1, 2000);
    camera.position.set(0, 0, 260);
    scene.add(new THREE.AmbientLight(0xffffff, 1.1));
    const light = new THREE.PointLight(0xffffff, 2.5, 0, 0); light.position.set(120, 160, 220); scene.add(light);
    group = new THREE.Group(); scene.add(group);
    el.addEventListener("pointerdown", (e) => { dragging = { x: e.clientX, y: e.clientY, rx: rot.x, ry: rot.y }; });
    window.addEventListener("pointerup", () => { dragging = null; });
    el.addEventListener("pointermove", (e) => {
      const r = el.getBoundingClientRect();
      mouse.set(((e.clientX - r.left) / r.width) * 2 - 1, -((e.clientY - r.top) / r.height) * 2 + 1);
      hover = { x: e.clientX - r.left, y: e.clientY - r.top };
      if (dragging) { rot.y = dragging.ry + (e.clientX - dragging.x) * 0.008; rot.x = dragging.rx + (e.clientY - dragging.y) * 0.008; }
    });
    el.addEventListener("pointerleave", () => { hover = null; $("graph-tip").style.display = "none"; });
    el.addEventListener("wheel", (e) => { e.preventDefault(); camera.position.z = Math.max(80, Math.min(700, camera.position.z * (1 + e.deltaY * 0.001))); }, { passive: false });
  }

  function label(text, color) {
    const c = document.createElement("canvas"), ctx = c.getContext("2d");
    ctx.font = "bold 26px system-ui"; const w = Math.ceil(ctx.measureText(text).width) + 16;
    c.width = w; c.height = 40;
    ctx.font = "bold 26px system-ui"; ctx.shadowColor = "#000"; ctx.shadowBlur = 6; ctx.fillStyle = color; ctx.textBaseline = "middle"; ctx.fillText(text, 8, 21);
    const tex = new THREE.CanvasTexture(c); tex.colorSpace = THREE.SRGBColorSpace;
    const sprite = new THREE.Sprite(new THREE.SpriteMaterial({ map: tex, transparent: true, depthWrite: false, fog: false }));
    sprite.scale.set(w / 5, 40 / 5, 1);
    return sprite;
  }

  // A small 3D force layout, computed once per graph change (a few hundred nodes at most).
  function layout(nodes, edges) {
    const pos = new Map(), index = new Map(nodes.map((n, i) => [n.id, i]));
    const golden = Math.PI * (3 - Math.sqrt(5));
    nodes.forEach((n, i) => {
      const y = 1 - (i / Math.max(1, nodes.length - 1)) * 2, r = Math.sqrt(1 - y * y), th = golden * i;
      const rad = n.kind === "query" ? 110 : n.kind === "table" ? 40 : 75;
      pos.set(n.id, new THREE.Vector3(Math.cos(th) * r * rad, y * rad, Math.sin(th) * r * rad));
    });
    const links = edges.filter((e) => index.has(e.source) && index.has(e.target));
    for (let it = 0; it < 220; it++) {
      const force = new Map(nodes.map((n) => [n.id, new THREE.Vector3()]));
      for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) {
        const a = pos.get(nodes[i].id), b = pos.get(nodes[j].id), d = a.clone().sub(b);
        const dist2 = Math.max(d.lengthSq(), 1), f = d.normalize().multiplyScalar(1800 / dist2);
        force.get(nodes[i].id).add(f); force.get(nodes[j].id).sub(f);
      }
      for (const e of links) {
        const a = pos.get(e.source), b = pos.get(e.target), d = b.clone().sub(a), len = d.length() || 1;
        const f = d.multiplyScalar((len - 38) * 0.02 / len);
        force.get(e.source).add(f); force.get(e.target).sub(f);
      }
      const cool = 1 - it / 240;
      for (const n of nodes) { const f = force.get(n.id).add(pos.get(n.id).clone().multiplyScalar(-0.004)); pos.get(n.id).add(f.clampLength(0, 6 * cool)); }
    }
    return pos;
  }

  function update(data) {
    state.graph.nodes = data.nodes.map((n) => n.id);
    state.graph.edges = data.edges.length;
    const counts = data.counts.nodes;
    $("graph-counts").textContent = Object.entries(counts).map(([k, v]) => `${v} ${v === 1 ? k : k === "query" ? "queries" : k === "index" ? "indexes" : k + "s"}`).join(" · ");
    if (!renderer) return;
    const key = state.graph.nodes.join("|") + "#" + data.edges.map((e) => e.source + ">" + e.target).join("|");
    const flows = new Map(data.nodes.filter((n) => n.kind === "query").map((n) => [n.id, n.recent_calls || 0]));
    if (key === ids) { particles.forEach((p) => (p.rate = rateOf(p.edge, flows))); return; }
    ids = key;
    while (group.children.length) { const c = group.children.pop(); c.geometry?.dispose?.(); c.material?.dispose?.(); }
    particles = []; meshes = [];
    const pos = layout(data.nodes, data.edges);
    const center = new THREE.Vector3(); pos.forEach((p) => center.add(p)); center.divideScalar(Math.max(1, pos.size));
    pos.forEach((p) => p.sub(center));
    let radius = 30; pos.forEach((p) => { radius = Math.max(radius, p.length()); });
    camera.position.z = Math.min(650, radius * 1.75 + 20);
    for (const n of data.nodes) {
      const size = n.kind === "table" ? 5 + Math.min(6, Math.log10(1 + (n.rows || 0))) : n.kind === "query" ? 2.6 + Math.min(3, Math.log10(1 + (n.calls || 0)) * 0.8) : n.kind === "cache" ? 5 : 3.8;
      const geo = n.kind === "index" ? new THREE.OctahedronGeometry(size) : n.kind === "cache" ? new THREE.CylinderGeometry(size * 0.8, size * 0.8, size * 1.4, 20)
        : n.kind === "view" || n.kind === "matview" ? new THREE.BoxGeometry(size * 1.4, size * 1.4, size * 1.4) : new THREE.SphereGeometry(size, 24, 16);
      const color = COLORS[n.kind] ?? 0xcccccc;
      const mesh = new THREE.Mesh(geo, new THREE.MeshStandardMaterial({ color, emissive: color, emissiveIntensity: 0.35, roughness: 0.4, metalness: 0.1 }));
      mesh.position.copy(pos.get(n.id)); mesh.userData = n; group.add(mesh); meshes.push(mesh);
      if (n.kind !== "query") {
        const s = label(n.kind === "index" ? n.label.split(".").pop() : n.label.replace(/^public\./, ""), "#" + color.toString(16).padStart(6, "0"));
        if (n.kind === "table") s.scale.multiplyScalar(1.5);
        s.position.copy(pos.get(n.id)).add(new THREE.Vector3(0, size + 5, 0)); group.add(s);
      }
    }
    for (const e of data.edges) {
      const a = pos.get(e.source), b = pos.get(e.target);
      if (!a || !b) continue;
      const color = EDGE_COLORS[e.kind] ?? 0x888888;
      const line = new THREE.Line(new THREE.BufferGeometry().setFromPoints([a, b]),
        new THREE.LineBasicMaterial({ color, transparent: true, opacity: e.kind === "reads" || e.kind === "writes" ? 0.28 : 0.5 }));
      group.add(line);
      // Data flowing: reads flow from the relation to the statement, writes and the rest along the edge.
      const from = e.kind === "reads" ? b : a, to = e.kind === "reads" ? a : b;
      const count = e.kind === "reads" || e.kind === "writes" || e.kind === "synced_to" ? 3 : 1;
      for (let i = 0; i < count; i++) {
        const dot = new THREE.Mesh(new THREE.SphereGeometry(e.kind === "synced_to" ? 1.3 : 0.9, 8, 6), new THREE.MeshBasicMaterial({ color, transparent: true, opacity: 0.95 }));
        group.add(dot);
        const p = { mesh: dot, from, to, t: i / count, edge: e, rate: 0 };
        p.rate = rateOf(e, flows); particles.push(p);
      }
    }
  }

  function rateOf(e, flows) {
    if (e.kind === "reads" || e.kind === "writes") return 0.08 + Math.min(0.9, Math.log10(1 + (flows.get(e.source) || 0)) * 0.25);
    return e.kind === "synced_to" ? 0.35 : 0.12;
  }

  function setPulse(period, up) { pulse.period = period || 0.2037; pulse.up = up; }

  let last = performance.now();
  function frame(now) {
    requestAnimationFrame(frame);
    if (!renderer) return;
    const dt = Math.min(0.1, (now - last) / 1000); last = now;
    const w = el.clientWidth, h = el.clientHeight;
    if (renderer.domElement.width !== Math.round(w * renderer.getPixelRatio()) || renderer.domElement.height !== Math.round(h * renderer.getPixelRatio())) {
      renderer.setSize(w, h, true); camera.aspect = w / h; camera.updateProjectionMatrix();
    }
    if (!dragging) rot.y += dt * 0.12;
    group.rotation.set(rot.x, rot.y, 0);
    // The pulse: every node glows on each daemon tick (period from /api/dashboard).
    const phase = ((now - pulse.start) / 1000 / pulse.period) % 1, beat = pulse.up ? Math.exp(-phase * 5) : 0;
    for (const m of meshes) {
      m.material.emissiveIntensity = 0.25 + 0.55 * beat;
      const s = 1 + 0.06 * beat; m.scale.set(s, s, s);
    }
    for (const p of particles) {
      p.t = (p.t + dt * p.rate) % 1;
      p.mesh.position.lerpVectors(p.from, p.to, p.t);
    }
    if (hover && !dragging) {
      raycaster.setFromCamera(mouse, camera);
      const hit = raycaster.intersectObjects(meshes)[0], tip = $("graph-tip");
      if (hit) {
        const n = hit.object.userData;
        tip.innerHTML = `<b>${esc(n.kind)}</b> ${esc(n.kind === "query" ? n.query : n.label)}${n.kind === "query" ? `<br><span class="muted">${n.calls} calls, ${fmt(n.recent_calls, 0)} in the last minute</span>` : n.rows !== undefined ? `<br><span class="muted">~${n.rows.toLocaleString()} rows</span>` : ""}`;
        tip.style.display = "block"; tip.style.left = `${hover.x + 24}px`; tip.style.top = `${hover.y + 40}px`;
      } else tip.style.display = "none";
    }
    renderer.render(scene, camera);
  }
  requestAnimationFrame(frame);
  return { update, setPulse };
})();

$("legend").innerHTML = Object.entries({ table: "#4c9be8", view: "#a77ee8", index: "#e8b84c", query: "#5fd08a", cache: "#e8624c" })
  .map(([k, c]) => `<span style="--c:${c}">${k}</span>`).join("");

// ---------------------------------------------------------------------------------------------
// Polling

// The API needs the daemon's HTTP token (the configured one, or the one it generated at start and
// wrote to the file its log names), so open the page as /#token=...: the fragment never leaves the
// browser; the token is kept in sessionStorage (this tab only), removed from the address bar, and
// sent as "Authorization: Bearer" with each API call.
const TOKEN = (() => {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("asymm-token", fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("asymm-token");
})();

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store", headers: TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {} });
  if (r.status === 401) $("db").textContent = "this daemon needs its HTTP token: open the page as /#token=<token> (the daemon's log names the token file)";
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

let lastBeat = 0;
function beat() {
  const dot = $("pulse-dot");
  dot.classList.remove("beat"); void dot.offsetWidth; dot.classList.add("beat");
}

async function poll() {
  try {
    const d = await getJSON(`/api/dashboard?minutes=${WINDOW_MIN}`);
    renderHeader(d); renderRegimes(d.daemon.regimes); renderSeries(d.series); renderSlow(d.slow);
    renderSmoothCoherence(d.smoothness, d.coherence); renderCache(d.cache); renderSuggestions(d.suggestions); renderDrift(d.drift);
    state.polls += 1; state.last = d;
    if (d.daemon.ready && performance.now() - lastBeat > 900) { lastBeat = performance.now(); beat(); }
  } catch (err) {
    state.errors.push(String(err)); $("pulse-dot").classList.add("down");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

async function pollGraph() {
  try { graph3d.update(await getJSON("/api/graph")); state.graphPolls = (state.graphPolls || 0) + 1; }
  catch (err) { state.errors.push(String(err)); }
  finally { setTimeout(pollGraph, GRAPH_MS); }
}

setInterval(() => { if (!$("pulse-dot").classList.contains("down")) beat(); }, 1000);
poll();
pollGraph();
