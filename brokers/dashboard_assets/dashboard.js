// The run monitor: polls /api/state and redraws. No library, no request outside this host; every value
// from the journal goes into the page as text (textContent), never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
let refreshMs = 2000;
let chosenRun = new URLSearchParams(location.search).get("run");
let timer = null;
let shown = null;  // the version of the state on screen: an unchanged journal is not redrawn

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function num(x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return "-";
  return Number(x).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function pct(x) {
  return x === null || x === undefined ? "-" : `${(100 * x).toFixed(1)}%`;
}

function when(iso) {
  return iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?\+00:00$/, "").replace("+00:00", "") : "-";
}

function weights(map) {
  return Object.entries(map || {}).map(([s, w]) => `${s} ${Number(w).toFixed(3)}`).join(", ");
}

function fillRows(tableId, rows, cells) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows.map((row) => {
    const tr = el("tr");
    for (const cell of cells(row)) tr.append(cell instanceof Node ? cell : el("td", cell));
    return tr;
  }));
}

function cards(state) {
  const s = state.summary;
  const h = state.health;
  const items = [
    ["equity", num(s.end_equity)],
    ["P/L", s.pnl === null ? "-" : (s.pnl >= 0 ? "+" : "") + num(s.pnl)],
    ["bars decided", s.bars],
    ["orders", Object.values(s.orders).reduce((a, b) => a + b, 0)],
    ["fills", s.fills],
    ["rejections", s.rejections.length],
    ["risk interventions", s.risk_interventions],
    ["outages", `${s.outages} (${Math.round(s.outage_seconds)} s)`],
    ["latency", h.latency_ms === undefined ? "-" : `${num(h.latency_ms, 1)} ms`],
    ["retries", h.retries === undefined ? "-" : h.retries],
  ];
  document.getElementById("cards").replaceChildren(...items.map(([label, value]) => {
    const card = el("div", null, "card");
    card.dataset.name = label;
    card.append(el("div", label, "label"), el("div", value, "value"));
    return card;
  }));
}

function equityChart(points) {
  const chart = document.getElementById("equity-chart");
  const W = 900, H = 280, L = 60, R = 20, T = 15, B = 30;
  const series = [
    { key: "equity", cls: "live" },
    { key: "backtest", cls: "backtest" },
  ].map(({ key, cls }) => {
    const first = points.find((p) => p[key] !== null && p[key] !== undefined);
    const base = first ? first[key] : null;
    const pts = base ? points.filter((p) => p[key] !== null && p[key] !== undefined)
      .map((p) => ({ x: Date.parse(p.t), y: p[key] / base - 1, v: p[key] })) : [];
    return { cls, pts };
  });
  const all = series.flatMap((s) => s.pts);
  const nodes = [];
  if (all.length === 0) {
    nodes.push(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no decision yet"));
    chart.replaceChildren(...nodes);
    return;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x))];
  let [y0, y1] = [Math.min(0, ...all.map((p) => p.y)), Math.max(0, ...all.map((p) => p.y))];
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 - y0 < 1e-4) { y0 -= 0.005; y1 += 0.005; }
  const sx = (x) => L + (W - L - R) * (x - x0) / (x1 - x0);
  const sy = (y) => T + (H - T - B) * (1 - (y - y0) / (y1 - y0));
  nodes.push(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  nodes.push(svg("line", { class: "axis", x1: L, x2: W - R, y1: sy(0), y2: sy(0) }));
  for (let k = 0; k <= 4; k++) {
    const y = y0 + (y1 - y0) * k / 4;
    nodes.push(svg("text", { x: L - 6, y: sy(y) + 4, "text-anchor": "end" }, `${(100 * y).toFixed(2)}%`));
    const x = x0 + (x1 - x0) * k / 4;
    const anchor = k === 0 ? "start" : k === 4 ? "end" : "middle";
    nodes.push(svg("text", { x: sx(x), y: H - 8, "text-anchor": anchor }, new Date(x).toISOString().slice(0, 10)));
  }
  for (const s of series) {
    if (s.pts.length === 0) continue;
    const d = s.pts.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
    const path = svg("path", { class: s.cls, d, "data-points": String(s.pts.length) });
    const last = s.pts[s.pts.length - 1];
    path.append(svg("title", {}, `${s.cls}: ${num(last.v)} (${(100 * last.y).toFixed(2)}%)`));
    nodes.push(path);
    // One dot per bar while they can be told apart; a long run draws the line alone.
    for (const p of s.pts.length <= 300 ? s.pts : []) {
      const dot = svg("circle", { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 2.5, class: s.cls });
      dot.append(svg("title", {}, `${s.cls} ${new Date(p.x).toISOString().slice(0, 16)}: ${num(p.v)}`));
      nodes.push(dot);
    }
  }
  chart.replaceChildren(...nodes);
}

function positions(rows) {
  const scale = Math.max(0.01, ...rows.map((r) => Math.abs(r.weight || 0)), ...rows.map((r) => Math.abs(r.target)));
  fillRows("positions", rows, (r) => {
    const bars = el("td");
    const held = el("span", null, "bar held");
    held.style.width = `${(80 * Math.abs(r.weight || 0) / scale).toFixed(0)}px`;
    held.title = `held ${pct(r.weight)}`;
    const target = el("span", null, "bar target");
    target.style.width = `${(80 * Math.abs(r.target) / scale).toFixed(0)}px`;
    target.title = `target ${pct(r.target)}`;
    bars.append(held, el("br"), target);
    const sym = el("td", r.symbol + (r.stale ? " (no good bar)" : ""), r.stale ? "stale" : "");
    return [sym, num(r.qty, 4), num(r.price), pct(r.weight), pct(r.target), bars];
  });
}

function health(h) {
  const rows = [
    ["status", h.in_outage ? "outage" : "ok"],
    ["API calls", h.calls ?? "-"],
    ["retries", h.retries ?? "-"],
    ["last latency", h.latency_ms === undefined ? "-" : `${num(h.latency_ms, 1)} ms`],
    ["mean latency", h.mean_latency_ms === undefined ? "-" : `${num(h.mean_latency_ms, 1)} ms`],
    ["outages", h.outages],
  ];
  fillRows("health", rows, ([k, v]) => [k, v]);
  const status = document.getElementById("broker-status");
  status.textContent = h.in_outage ? "OUTAGE" : "broker ok";
  status.className = `status ${h.in_outage ? "down" : "ok"}`;
}

function logList(id, items, line) {
  const list = document.getElementById(id);
  const shown = items.slice(-200).reverse();
  list.replaceChildren(...(shown.length ? shown.map((item) => {
    const li = el("li");
    const [at, kind, text] = line(item);
    li.append(el("span", when(at), "when"));
    if (kind) li.append(el("span", kind, "kind"));
    li.append(document.createTextNode(text));
    return li;
  }) : [el("li", "none")]));
}

function runs(state) {
  const select = document.getElementById("run-select");
  const names = state.runs.length ? state.runs : [state.run_id];
  if (select.options.length !== names.length) {
    select.replaceChildren(...names.map((r) => el("option", r)));
  }
  select.value = state.run_id;
}

function render(state) {
  document.getElementById("run-id").textContent = state.run_id || "-";
  document.getElementById("last-bar").textContent = when(state.last_bar);
  document.getElementById("updated").textContent = new Date().toISOString().slice(11, 19) + " UTC";
  runs(state);
  cards(state);
  equityChart(state.equity);
  positions(state.positions);
  health(state.health);
  logList("alerts", state.events, (e) => [e.at, e.kind, e.message]);
  logList("risk", state.risk, (r) => [r.t, null, r.event]);
  fillRows("decisions", state.decisions.slice().reverse(), (d) => [
    when(d.t),
    d.kill_switch ? "kill switch" : JSON.stringify(d.signal),
    weights(d.requested),
    weights(d.target),
    [d.kill_switch, ...d.risk_events, ...(d.stale.length ? [`no good bar: ${d.stale.join(", ")}`] : [])]
      .filter(Boolean).join("; "),
  ]);
  fillRows("orders", state.orders.slice().reverse(), (o) => [
    when(o.bar), o.symbol, o.side, num(o.qty, 4), num(o.filled_qty, 4), o.reason ? `${o.status}: ${o.reason}` : o.status,
  ]);
  fillRows("fills", state.fills.slice().reverse(), (f) => [when(f.at), f.symbol, f.side, num(f.qty, 4), num(f.price)]);
  document.body.dataset.bars = String(state.summary.bars);
}

async function poll() {
  clearTimeout(timer);
  try {
    const reply = await fetch(`api/state${chosenRun ? `?run=${encodeURIComponent(chosenRun)}` : ""}`, { cache: "no-store" });
    if (reply.ok) {
      const state = await reply.json();
      refreshMs = 1000 * (state.refresh_seconds || 2);
      if (state.version !== shown) {
        render(state);
        shown = state.version;
      }
      document.getElementById("updated").textContent = new Date().toISOString().slice(11, 19) + " UTC";
    } else {
      document.getElementById("updated").textContent = `journal unreadable (HTTP ${reply.status})`;
    }
  } catch (err) {
    document.getElementById("updated").textContent = "disconnected; retrying";
  }
  timer = setTimeout(poll, refreshMs);
}

document.getElementById("run-select").addEventListener("change", (event) => {
  chosenRun = event.target.value;
  shown = null;
  poll();
});
poll();
