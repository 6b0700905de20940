// report.html's script: draws the data block written by nstjax/sweep/html.py. No network, no
// libraries. Sorting: numbers numerically and before text, text by code point, missing values
// last in either direction, ties in sweep order (the sort is stable).
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const SVG = "http://www.w3.org/2000/svg";
const TERMS = [["loss", "total", "#222"], ["content", "content", "#1f77b4"],
  ["style", "style", "#d62728"], ["tv", "tv", "#2ca02c"]];
const state = { sortCol: -1, sortDir: 1, selected: null, rows: new Map() };

function el(tag, attrs, parent, text) {
  const svg = ["svg", "g", "line", "polyline", "circle", "text", "title", "rect", "path"];
  const node = svg.includes(tag) ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function fmt(v) {
  if (v === null || v === undefined || v === "") return "\u2013";
  if (typeof v !== "number") return String(v);
  const a = Math.abs(v);
  if (v === 0) return "0";
  if (Number.isInteger(v) && a < 1e6) return String(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

function sortKey(v) {
  if (v === null || v === undefined || v === "") return null;
  if (typeof v === "number") return v;
  const n = Number(v);
  return v.trim() !== "" && Number.isFinite(n) ? n : String(v);
}

function compare(a, b) {
  const na = typeof a === "number", nb = typeof b === "number";
  if (na && nb) return a - b;
  if (na !== nb) return na ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function niceTicks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}

// A chart: {width, height, xLabel, yLabel, log, series: [{name, color, xs, ys, points, line}]}.
function chart(opts, parent) {
  const W = opts.width, H = opts.height, L = 62, R = 10, T = opts.legend ? 22 : 10, B = 38;
  const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "chart" }, parent);
  const tx = (v) => (opts.log ? Math.log10(v) : v);
  const ok = (v) => v !== null && Number.isFinite(v) && (!opts.log || v > 0);
  let xs = [], ys = [];
  for (const s of opts.series) s.xs.forEach((x, i) => { if (ok(s.ys[i])) { xs.push(x); ys.push(tx(s.ys[i])); } });
  if (!xs.length) { el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "note" }, svg, "no values yet"); return { svg }; }
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }
  if (y1 === y0) { const d = Math.abs(y0) * 0.05 || 0.5; y0 -= d; y1 += d; }
  if (opts.pad) { const dx = (x1 - x0) * opts.pad, dy = (y1 - y0) * opts.pad; x0 -= dx; x1 += dx; y0 -= dy; y1 += dy; }
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const axes = el("g", { class: "axes" }, svg);
  el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B }, axes);
  el("line", { x1: L, y1: T, x2: L, y2: H - B }, axes);
  for (const t of niceTicks(x0, x1, 5)) {
    el("line", { x1: px(t), y1: H - B, x2: px(t), y2: H - B + 4 }, axes);
    el("text", { x: px(t), y: H - B + 15, "text-anchor": "middle" }, axes, fmt(t));
  }
  for (const t of niceTicks(y0, y1, 5)) {
    el("line", { x1: L - 4, y1: py(t), x2: W - R, y2: py(t), class: "grid" }, axes);
    el("text", { x: L - 6, y: py(t) + 4, "text-anchor": "end" }, axes, fmt(opts.log ? Math.pow(10, t) : t));
  }
  el("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", class: "label" }, axes, opts.xLabel);
  el("text", { x: 12, y: (T + H - B) / 2, "text-anchor": "middle", class: "label",
    transform: `rotate(-90 12 ${(T + H - B) / 2})` }, axes, opts.yLabel);
  let lx = L + 4;
  for (const s of opts.series) {
    const g = el("g", { class: "series", "data-name": s.name }, svg);
    if (s.line !== false) {
      let seg = [];
      const flush = () => { if (seg.length) el("polyline", { points: seg.join(" "), fill: "none", stroke: s.color, "stroke-width": 1.5 }, g); seg = []; };
      let last = null;
      s.xs.forEach((x, i) => {
        if (!ok(s.ys[i])) { flush(); last = null; return; }
        const [X, Y] = [px(x).toFixed(1), py(tx(s.ys[i])).toFixed(1)];
        if (s.step && last !== null) seg.push(`${X},${last}`);
        seg.push(`${X},${Y}`);
        last = Y;
      });
      flush();
    }
    if (s.points) s.xs.forEach((x, i) => { if (ok(s.ys[i])) el("circle", { cx: px(x), cy: py(tx(s.ys[i])), r: 3, fill: s.color, class: "dot" }, g); });
    if (opts.legend) {
      el("rect", { x: lx, y: 6, width: 10, height: 10, fill: s.color }, svg);
      const t = el("text", { x: lx + 13, y: 15, class: "legend" }, svg, s.name);
      lx += 22 + 7 * s.name.length;
      t.setAttribute("data-legend", s.name);
    }
  }
  return { svg, x: px, y: (v) => py(tx(v)) };
}

function sparkline(curves, parent) {
  const svg = el("svg", { width: 110, height: 30, class: "spark" }, parent);
  if (!curves) return svg;
  const pts = curves.step.map((s, i) => [s, curves.loss[i]]).filter(([, v]) => v !== null && v > 0);
  el("title", {}, svg, "total loss against the step (log scale); click the row for every term");
  if (pts.length < 2) return svg;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => Math.log10(p[1]));
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const line = pts.map(([x], i) => `${(2 + (106 * (x - x0)) / (x1 - x0 || 1)).toFixed(1)},${(28 - (26 * (ys[i] - y0)) / (y1 - y0 || 1)).toFixed(1)}`);
  el("polyline", { points: line.join(" "), fill: "none", stroke: "#222", "stroke-width": 1 }, svg);
  return svg;
}

function header() {
  const h = el("header", {}, document.body);
  const search = DATA.runs.length === 0 && DATA.history;
  el("h1", {}, h, `${DATA.title}: ${search ? "search" : "sweep"} report`);
  const c = DATA.counts;
  const what = search ? `${DATA.history.trials.length} trials` : `${DATA.runs.length} runs: ${c.done} done, ${c.failed} failed, ${c.pending} pending`;
  el("p", { id: "counts" }, h, `${what} \u00b7 written ${DATA.written} (UTC)`);
}

function select(id) {
  const run = DATA.runs.find((r) => r.id === id);
  if (!run) return;
  if (state.selected) state.rows.get(state.selected)?.classList.remove("selected");
  state.selected = id;
  state.rows.get(id)?.classList.add("selected");
  document.querySelectorAll("#scatter circle.selected").forEach((c) => c.classList.remove("selected"));
  document.querySelectorAll(`#scatter circle[data-id="${id}"]`).forEach((c) => c.classList.add("selected"));
  const box = document.getElementById("detail");
  box.replaceChildren();
  el("h2", {}, box, `Run ${run.id} (${run.status})`);
  el("p", { class: "runlabel" }, box, run.label);
  const fig = el("div", { class: "detail-body" }, box);
  if (run.image) {
    const a = el("a", { href: run.image, target: "_blank" }, fig);
    const img = el("img", { alt: `image of run ${run.id}`, class: "detail-image" }, a);
    if (run.thumb) img.addEventListener("error", () => { img.src = run.thumb; }, { once: true });
    img.src = run.image;
  }
  const curves = run.curves;
  const series = curves ? TERMS.filter(([k]) => curves[k]).map(([k, name, color]) => ({ name, color, xs: curves.step, ys: curves[k] })) : [];
  chart({ width: 420, height: 230, log: true, legend: true, series,
    xLabel: "step (loss of the image before it)", yLabel: "loss term (log scale)" }, fig);
  const q = el("dl", { class: "quality" }, box);
  for (const m of DATA.measures) { el("dt", {}, q, m.name); el("dd", {}, q, fmt(run.quality[m.name])); }
}

function scatterSection(parent) {
  const box = el("section", { id: "scatter" }, parent);
  el("h2", {}, box, "Trade-off");
  if (DATA.measures.length < 2) { el("p", { class: "note" }, box, "Needs two quality measures in the runs' records."); return; }
  const form = el("div", { class: "axes-choice" }, box);
  const choice = (label, value) => {
    el("label", {}, form, label + " ");
    const s = el("select", { id: `scatter-${label}` }, form);
    for (const m of DATA.measures) el("option", { value: m.name }, s, m.name);
    s.value = value || DATA.measures[0].name;
    s.addEventListener("change", drawScatter);
    return s;
  };
  choice("x", DATA.scatter[0]); choice("y", DATA.scatter[1]);
  el("div", { id: "scatter-plot" }, box);
}

function drawScatter() {
  const x = document.getElementById("scatter-x").value, y = document.getElementById("scatter-y").value;
  const where = document.getElementById("scatter-plot");
  where.replaceChildren();
  const dir = (m) => { const h = DATA.measures.find((d) => d.name === m).higher; return h === true ? " (higher is better)" : h === false ? " (lower is better)" : ""; };
  const runs = DATA.runs.filter((r) => r.status === "done" && r.quality[x] !== null && r.quality[y] !== null);
  const front = new Set(DATA.pareto[`${x}\t${y}`] || []);
  const onFront = runs.filter((r) => front.has(r.id)).sort((a, b) => a.quality[x] - b.quality[x]);
  const plot = chart({ width: 440, height: 320, legend: true, pad: 0.05, series: [
    { name: "run", color: "#8aa", xs: runs.map((r) => r.quality[x]), ys: runs.map((r) => r.quality[y]), line: false },
    { name: "Pareto-optimal", color: "#d62728", xs: onFront.map((r) => r.quality[x]), ys: onFront.map((r) => r.quality[y]), line: x !== y },
  ], xLabel: x + dir(x), yLabel: y + dir(y) }, where);
  const g = el("g", { class: "points" }, plot.svg);
  for (const r of runs) {
    const c = el("circle", { cx: plot.x(r.quality[x]), cy: plot.y(r.quality[y]), r: front.has(r.id) ? 5 : 3.5,
      class: front.has(r.id) ? "front" : "point", "data-id": r.id }, g);
    el("title", {}, c, `${r.id} ${r.label}\n${x} ${fmt(r.quality[x])}, ${y} ${fmt(r.quality[y])}`);
    c.addEventListener("click", () => select(r.id));
    if (r.id === state.selected) c.classList.add("selected");
  }
  el("p", { class: "note" }, where, `${runs.length} finished run(s) with both measures; ${onFront.length} Pareto-optimal (red: no other run is at least as good on both and better on one). Click a point to select its run.`);
}

function searchSection(parent) {
  const h = DATA.history;
  if (!h) return;
  const box = el("section", { id: "search" }, parent);
  el("h2", {}, box, `Search: ${h.objective} (${h.direction})`);
  const xs = h.trials.map((t) => t.trial);
  chart({ width: 520, height: 260, legend: true, pad: 0.04, xLabel: "trial", yLabel: h.objective, series: [
    { name: "objective of the trial", color: "#1f77b4", xs, ys: h.trials.map((t) => t.objective), line: false, points: true },
    { name: "best so far", color: "#d62728", xs, ys: h.trials.map((t) => t.best), step: true },
  ] }, box);
  const table = el("table", { id: "trials" }, box);
  const head = el("tr", {}, el("thead", {}, table));
  for (const name of ["trial", h.objective, "best so far", "settings", "run"]) el("th", {}, head, name);
  const body = el("tbody", {}, table);
  for (const t of h.trials) {
    const tr = el("tr", { "data-trial": t.trial }, body);
    for (const v of [t.trial, t.objective, t.best, t.params]) el("td", {}, tr, fmt(v));
    const td = el("td", {}, tr);
    if (t.run) { const a = el("a", { href: "#" }, td, t.run); a.addEventListener("click", (e) => { e.preventDefault(); select(t.run); }); }
  }
  for (const v of DATA.views || []) {
    const fig = el("figure", { class: "view" }, box);
    el("img", { src: v.src, alt: v.title }, el("a", { href: v.src }, fig));
    el("figcaption", {}, fig, v.title);
  }
}

function runsSection(parent) {
  const box = el("section", { id: "runs" }, parent);
  el("h2", {}, box, "Runs");
  const bar = el("div", { class: "toolbar" }, box);
  const filter = el("input", { id: "filter", type: "search", placeholder: "filter: words that must all appear in a row" }, bar);
  const toggle = el("input", { id: "show-constant", type: "checkbox" }, el("label", {}, bar));
  toggle.after(" show the settings every run shares");
  const shown = el("span", { id: "shown" }, bar);
  el("p", { class: "note" }, box, "Click a column's header to sort (again to reverse), a row to see its loss curves; final losses are the run's own (unweighted terms), quality measures (\u2191 higher is better, \u2193 lower) compare runs.");
  const table = el("table", { id: "runs-table" }, box);
  const head = el("tr", {}, el("thead", {}, table));
  el("th", { class: "nosort" }, head, "image");
  el("th", { class: "nosort" }, head, "total loss");
  DATA.columns.forEach((c, i) => {
    const th = el("th", { "data-key": c.key, class: `group-${c.group.replace(/ /g, "-")}${c.constant ? " constant" : ""}`, title: c.group }, head, c.label);
    th.addEventListener("click", () => sortRows(i, state.sortCol === i ? -state.sortDir : 1));
  });
  const body = el("tbody", {}, table);
  for (const run of DATA.runs) {
    const tr = el("tr", { "data-id": run.id, "data-status": run.status }, body);
    const cell = el("td", { class: "thumb" }, tr);
    if (run.thumb) el("img", { src: run.thumb, alt: run.id }, el("a", { href: run.image, target: "_blank" }, cell));
    else el("div", { class: "missing" }, cell, run.status);
    sparkline(run.curves, el("td", {}, tr));
    run.cells.forEach((v, i) => {
      const c = DATA.columns[i];
      const td = el("td", { class: (typeof v === "number" ? "num" : "") + (c.constant ? " constant" : "") }, tr, fmt(v));
      if (c.key === "status") td.classList.add(`status-${v}`);
      if (c.key === "label") td.classList.add("label");
    });
    tr.addEventListener("click", (e) => { if (!e.target.closest("a")) select(run.id); });
    state.rows.set(run.id, tr);
  }
  const apply = () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let n = 0;
    for (const tr of state.rows.values()) {
      const text = tr.textContent.toLowerCase();
      tr.hidden = !words.every((w) => text.includes(w));
      n += !tr.hidden;
    }
    shown.textContent = `${n} of ${DATA.runs.length} shown`;
  };
  filter.addEventListener("input", apply);
  toggle.addEventListener("change", () => table.classList.toggle("show-constant", toggle.checked));
  apply();
}

function sortRows(col, dir) {
  state.sortCol = col; state.sortDir = dir;
  const order = DATA.runs.map((r, i) => [sortKey(r.cells[col]), i, r.id]);
  order.sort((a, b) => {
    if (a[0] === null || b[0] === null) return (a[0] === null) - (b[0] === null);
    return dir * compare(a[0], b[0]);
  });
  const body = document.querySelector("#runs-table tbody");
  for (const [, , id] of order) body.appendChild(state.rows.get(id));
  document.querySelectorAll("#runs-table th[data-key]").forEach((th, i) =>
    th.setAttribute("aria-sort", i === col ? (dir > 0 ? "ascending" : "descending") : "none"));
}

function fromHash() {
  const args = new URLSearchParams(location.hash.slice(1));
  const sort = args.get("sort");
  if (sort) {
    const key = sort.replace(/^-/, "");
    const th = document.querySelector(`#runs-table th[data-key="${CSS.escape(key)}"]`);
    if (th) { th.click(); if (sort.startsWith("-")) th.click(); }
  }
  if (args.has("filter")) {
    const f = document.getElementById("filter");
    f.value = args.get("filter");
    f.dispatchEvent(new Event("input"));
  }
  for (const axis of ["x", "y"]) {
    const s = document.getElementById(`scatter-${axis}`);
    if (s && args.get(axis) && DATA.measures.some((m) => m.name === args.get(axis))) s.value = args.get(axis);
  }
  return args.get("run");
}

function main() {
  header();
  if (DATA.runs.length === 0 && DATA.history) {  // a search's page: its trials are not runs
    searchSection(document.body);
    return;
  }
  const top = el("div", { class: "top" }, document.body);
  scatterSection(top);
  el("section", { id: "detail" }, top);
  runsSection(document.body);
  searchSection(document.body);
  const wanted = fromHash();
  if (document.getElementById("scatter-x")) drawScatter();
  const first = DATA.runs.find((r) => r.status !== "pending") || DATA.runs[0];
  const target = DATA.runs.some((r) => r.id === wanted) ? wanted : first && first.id;
  if (target) select(target);
}

main();
