// Building the page: elements from plain data, tables, and readable numbers.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const link = (href, text) => h("a", { href }, text);

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

// A table: columns are {label, cell(row) -> node|string, sort?, numeric?}.
export function table(columns, rows, opts = {}) {
  const head = h(
    "tr",
    {},
    columns.map((c) => {
      const th = h("th", { scope: "col", class: c.numeric ? "num" : null });
      if (c.sort && opts.onSort) {
        const active = opts.sort === c.sort;
        th.setAttribute("aria-sort", active ? (opts.desc ? "descending" : "ascending") : "none");
        th.append(
          h("button", { type: "button", class: "sort", onclick: () => opts.onSort(c.sort) },
            c.label, active ? (opts.desc ? " ▼" : " ▲") : ""),
        );
      } else th.textContent = c.label;
      return th;
    }),
  );
  const body = rows.map((row) =>
    h(
      "tr",
      opts.rowAttrs ? opts.rowAttrs(row) : {},
      columns.map((c) => h("td", { class: c.numeric ? "num" : null }, c.cell(row))),
    ),
  );
  const empty = rows.length
    ? null
    : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, opts.empty || "Nothing here."));
  return h("table", { class: opts.class || "grid" }, h("thead", {}, head), h("tbody", {}, body, empty));
}

export function stateBadge(state) {
  return h("span", { class: `state state-${state}` }, state);
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${value >= 10 || i === 0 ? Math.round(value) : value.toFixed(1)} ${units[i]}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds === 0) return "0 s";
  if (seconds < 0.001) return `${Math.round(seconds * 1e6)} µs`;
  if (seconds < 1) return `${+(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms`;
  if (seconds < 120) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function when(epoch) {
  if (!epoch) return "–";
  const d = new Date(epoch * 1000);
  return d.toLocaleString(undefined, { hour12: false });
}

export function clock(epoch) {
  return new Date(epoch * 1000).toLocaleTimeString(undefined, { hour12: false });
}

export function resources(amounts) {
  const parts = [];
  if (amounts.cpu !== undefined) parts.push(`${+(amounts.cpu / 1000).toFixed(2)} cpu`);
  if (amounts.memory !== undefined) parts.push(bytes(amounts.memory));
  if (amounts.gpu) parts.push(`${amounts.gpu} gpu`);
  for (const [k, v] of Object.entries(amounts)) {
    if (!["cpu", "memory", "gpu"].includes(k)) parts.push(`${v} ${k}`);
  }
  return parts.join(", ") || "–";
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err.message || String(err));
}

export function dl(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}
