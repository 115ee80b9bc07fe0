// Charts drawn as SVG by our own code: line plots, the GPU Gantt chart and layered
// graphs (pipeline DAGs, lineage). Each returns an element with a text alternative.

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2f6fb3", "#d9822b", "#3a9a5b", "#b8423c", "#7d5ba6", "#8c6d3f", "#c2549d", "#5f6b73"];

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function colour(key) {
  let hash = 0;
  for (const ch of String(key)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

function svgRoot(width, height, label) {
  return s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart" },
    s("title", {}, label));
}

// series: [{name, points: [[x, y], ...]}]; returns an SVG line plot with a legend.
export function lineChart(series, { label, xFormat = String, yFormat = String, yMax, width = 640, height = 220, step = false }) {
  const pad = { l: 56, r: 36, t: 10, b: 36 };
  const svg = svgRoot(width, height, label);
  const all = series.flatMap((d) => d.points);
  if (!all.length) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "muted" }, "no data yet"));
    return svg;
  }
  const xs = all.map((p) => p[0]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs) > x0 ? Math.max(...xs) : x0 + 1;
  const top = yMax ?? Math.max(...all.map((p) => p[1]), 1e-9);
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - (y / top) * (height - pad.t - pad.b);
  for (let i = 0; i <= 4; i += 1) {
    const v = (top * i) / 4;
    svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: Y(v), y2: Y(v), class: "gridline" }),
      s("text", { x: pad.l - 6, y: Y(v) + 4, "text-anchor": "end", class: "tick" }, yFormat(v)));
  }
  for (let i = 0; i <= 4; i += 1) {
    const v = x0 + ((x1 - x0) * i) / 4;
    svg.append(s("text", { x: X(v), y: height - pad.b + 16, "text-anchor": "middle", class: "tick" }, xFormat(v)));
  }
  series.forEach((d, i) => {
    const c = d.colour || PALETTE[i % PALETTE.length];
    let path = "";
    d.points.forEach(([x, y], j) => {
      if (j === 0) path += `M${X(x)},${Y(y)}`;
      else if (step) path += `H${X(x)}V${Y(y)}`;
      else path += `L${X(x)},${Y(y)}`;
    });
    svg.append(s("path", { d: path, fill: "none", stroke: c, "stroke-width": 2 }));
    svg.append(s("rect", { x: pad.l + i * 120, y: height - 14, width: 10, height: 10, fill: c }),
      s("text", { x: pad.l + 14 + i * 120, y: height - 5, class: "tick" }, d.name));
  });
  return svg;
}

// The Gantt chart of GPU bars: one row per (node, gpu), time across.
export function gantt(tl, { onBar } = {}) {
  const rowH = 22;
  const pad = { l: 110, r: 40, t: 24, b: 8 };
  const width = 1000;
  const height = pad.t + pad.b + Math.max(tl.rows.length, 1) * rowH;
  const svg = svgRoot(width, height, `GPU timeline: ${tl.bars.length} job attempts on ${tl.rows.length} GPUs`);
  const span = tl.end - tl.start;
  const X = (t) => pad.l + ((Math.min(Math.max(t, tl.start), tl.end) - tl.start) / span) * (width - pad.l - pad.r);
  const rowOf = new Map(tl.rows.map((r, i) => [`${r.node}/${r.gpu}`, i]));
  for (let i = 0; i <= 6; i += 1) {
    const t = tl.start + (span * i) / 6;
    svg.append(s("line", { x1: X(t), x2: X(t), y1: pad.t - 4, y2: height - pad.b, class: "gridline" }),
      s("text", { x: X(t), y: 14, "text-anchor": "middle", class: "tick" },
        new Date(t * 1000).toLocaleTimeString(undefined, { hour12: false })));
  }
  tl.rows.forEach((r, i) => {
    svg.append(s("text", { x: pad.l - 8, y: pad.t + i * rowH + 15, "text-anchor": "end", class: "tick" },
      `${r.node} · gpu ${r.gpu}`));
  });
  for (const bar of tl.bars) {
    const row = rowOf.get(`${bar.node}/${bar.gpu}`);
    if (row === undefined) continue;
    const x = X(bar.start);
    const w = Math.max(X(bar.end ?? tl.end) - x, 2);
    const y = pad.t + row * rowH + 3;
    const what = `job ${bar.job_id} ${bar.name} (attempt ${bar.attempt}, ${bar.queue})` +
      (bar.end === null ? ", running" : `, ${bar.reason || "ended"}`);
    const g = s("g", { class: "bar", tabindex: 0, role: "link", "aria-label": what, "data-job-id": bar.job_id,
      onclick: () => onBar && onBar(bar),
      onkeydown: (e) => { if (e.key === "Enter" && onBar) onBar(bar); } },
    s("title", {}, what),
    s("rect", { x, y, width: w, height: rowH - 6, rx: 3, fill: colour(bar.queue) }));
    if (w > 50) g.append(s("text", { x: x + 4, y: y + 12, class: "bar-label" }, `#${bar.job_id}`));
    if (bar.preempted) {
      g.append(s("path", { d: `M${x + w},${y - 2} l5,-5 h-10 z`, class: "preempt" }),
        s("line", { x1: x + w, x2: x + w, y1: y - 2, y2: y + rowH - 4, class: "preempt-line" }));
    }
    svg.append(g);
  }
  return svg;
}

// A layered graph: nodes {id, label, sub, cls, href}, edges [from, to]. Layers follow
// the longest path from a source, so each edge points rightwards.
export function graph(nodes, edges, label) {
  const layer = new Map(nodes.map((n) => [n.id, 0]));
  for (let pass = 0; pass < nodes.length; pass += 1) {
    let moved = false;
    for (const [a, b] of edges) {
      if (layer.has(a) && layer.has(b) && layer.get(b) < layer.get(a) + 1) {
        layer.set(b, layer.get(a) + 1);
        moved = true;
      }
    }
    if (!moved) break;
  }
  const columns = [];
  for (const n of nodes) (columns[layer.get(n.id)] ||= []).push(n);
  const boxW = 170, boxH = 46, gapX = 60, gapY = 18, pad = 12;
  const tallest = Math.max(...columns.map((c) => (c ? c.length : 0)), 1);
  const width = pad * 2 + columns.length * boxW + (columns.length - 1) * gapX;
  const height = pad * 2 + tallest * boxH + (tallest - 1) * gapY;
  const svg = svgRoot(Math.max(width, 200), Math.max(height, 60), label);
  svg.setAttribute("class", "chart graph"); // drawn at its own size, shrunk to fit
  svg.setAttribute("width", Math.max(width, 200));
  svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
    s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
  const at = new Map();
  columns.forEach((col, ci) => (col || []).forEach((n, ri) => {
    const offset = ((tallest - col.length) * (boxH + gapY)) / 2;
    at.set(n.id, { x: pad + ci * (boxW + gapX), y: pad + offset + ri * (boxH + gapY) });
  }));
  for (const [a, b] of edges) {
    const p = at.get(a), q = at.get(b);
    if (!p || !q) continue;
    const x1 = p.x + boxW, y1 = p.y + boxH / 2, x2 = q.x, y2 = q.y + boxH / 2;
    svg.append(s("path", { d: `M${x1},${y1} C${x1 + gapX / 2},${y1} ${x2 - gapX / 2},${y2} ${x2},${y2}`, class: "edge", "marker-end": "url(#arrow)" }));
  }
  for (const n of nodes) {
    const p = at.get(n.id);
    const box = s("g", { class: `node ${n.cls || ""}`, "data-node": n.id },
      s("title", {}, `${n.label} ${n.sub || ""}`),
      s("rect", { x: p.x, y: p.y, width: boxW, height: boxH, rx: 6 }),
      s("text", { x: p.x + 8, y: p.y + 19, class: "node-label" }, n.label.length > 24 ? n.label.slice(0, 23) + "…" : n.label),
      s("text", { x: p.x + 8, y: p.y + 36, class: "node-sub" }, n.sub || ""));
    if (n.href) {
      const a = s("a", { href: n.href, "aria-label": `${n.label} ${n.sub || ""}` });
      a.append(box);
      svg.append(a);
    } else svg.append(box);
  }
  return svg;
}
