// Models and deployments: versions, aliases and lineage; per deployment the replicas,
// traffic split, request rate, latency percentiles and batch sizes, with controls to
// shift a canary or roll back.

import { get, patch } from "./api.js";
import { bytes, dl, duration, errorBox, h, link, replace, section, stateBadge, table, when } from "./dom.js";
import { lineChart } from "./charts.js";

export async function models(root) {
  const holder = h("div");
  replace(root, h("h1", {}, "Models"), holder);
  async function refresh() {
    const list = await get("/models");
    replace(holder, table([
      { label: "Model", cell: (m) => link(`#models/${m.name}`, m.name) },
      { label: "Tenant", cell: (m) => m.tenant },
      { label: "Versions", numeric: true, cell: (m) => String(m.versions) },
      { label: "Latest", numeric: true, cell: (m) => (m.latest === null ? "–" : String(m.latest)) },
      { label: "Aliases", cell: (m) => Object.entries(m.aliases).map(([a, v]) => `${a} → ${v}`).join(", ") || "–" },
      { label: "Created", cell: (m) => when(m.created_at) },
    ], list, { empty: "No model registered." }));
  }
  await refresh();
  return { refresh, live: false };
}

export async function model(root, args) {
  const name = args[0];
  const [info, versions] = await Promise.all([get(`/models/${name}`), get(`/models/${name}/versions`)]);
  replace(root, h("h1", {}, `Model ${name}`),
    h("p", {}, `Tenant ${info.tenant}, registered by ${info.owner}. Aliases: `,
      Object.entries(info.aliases).map(([a, v]) => `${a} → v${v}`).join(", ") || "none"),
    section("Versions", table([
      { label: "Version", numeric: true, cell: (v) => String(v.version) },
      { label: "Aliases", cell: (v) => v.aliases.join(", ") || "–" },
      { label: "Format", cell: (v) => v.format },
      { label: "Size", numeric: true, cell: (v) => bytes(v.size) },
      { label: "Metrics", cell: (v) => Object.entries(v.metrics).map(([k, x]) => `${k}=${x}`).join(", ") || "–" },
      { label: "From", cell: (v) => [v.from_job ? link(`#jobs/${v.from_job}`, `job ${v.from_job}`) : null, v.dataset ? [" ", link(`#lineage/dataset/${v.dataset}`, v.dataset)] : null] },
      { label: "Lineage", cell: (v) => link(`#lineage/model/${name}@${v.version}`, "graph") },
      { label: "Created", cell: (v) => when(v.created_at) },
    ], [...versions].reverse())));
  return { live: false };
}

export async function deployments(root) {
  const holder = h("div");
  replace(root, h("h1", {}, "Deployments"), holder);
  async function refresh() {
    const list = await get("/deployments");
    replace(holder, table([
      { label: "Deployment", cell: (d) => link(`#deployments/${d.name}`, d.name) },
      { label: "Tenant", cell: (d) => d.tenant },
      { label: "Traffic", cell: (d) => d.versions.map((v) => `${v.model} v${v.version}: ${v.weight}%`).join(", ") },
      { label: "Replicas ready", numeric: true, cell: (d) => `${d.replicas.filter((r) => r.ready).length} / ${d.desired_replicas}` },
      { label: "Status", cell: (d) => d.message || "–" },
    ], list, { empty: "No deployment." }));
  }
  await refresh();
  return { refresh };
}

const ms = (s) => (s === null || s === undefined ? "–" : duration(s));

export async function deployment(root, args) {
  const name = args[0];
  const heading = h("h1", {}, `Deployment ${name}`);
  const notice = h("p", { class: "notice", role: "status" });
  const split = h("div");
  const replicas = h("div");
  const stats = h("div");
  const plot = h("div");
  const rates = [];
  let poll = null;
  let dep;

  function controls() {
    const inputs = new Map();
    const form = h("form", { class: "traffic", onsubmit: async (e) => {
      e.preventDefault();
      const weights = Object.fromEntries([...inputs].map(([v, input]) => [String(v), Number(input.value)]));
      await shift(weights);
    } });
    for (const v of dep.versions) {
      const input = h("input", { type: "number", min: 0, max: 100, step: 1, value: v.weight, id: `weight-${v.version}`, size: 4 });
      inputs.set(v.version, input);
      form.append(h("label", { for: `weight-${v.version}` }, `${v.model} v${v.version} %`), input);
    }
    form.append(h("button", { type: "submit" }, "Set traffic"));
    const sorted = [...dep.versions].sort((a, b) => a.version - b.version);
    const stable = sorted[0];
    const buttons = h("div", { class: "actions" });
    if (sorted.length > 1) {
      buttons.append(
        h("button", { type: "button", onclick: () => shift(Object.fromEntries(sorted.map((v) => [String(v.version), v === stable ? 100 : 0]))) }, `Roll back to v${stable.version}`),
        h("button", { type: "button", onclick: () => {
          const canary = sorted[sorted.length - 1];
          const next = Math.min(canary.weight + 25, 100);
          shift(Object.fromEntries(sorted.map((v) => [String(v.version), v === canary ? next : v === stable ? 100 - next : 0])));
        } }, "Shift canary +25%"));
    }
    return [form, buttons];
  }

  async function shift(weights) {
    try {
      await patch(`/deployments/${name}/traffic`, { weights });
      notice.textContent = `Traffic set: ${Object.entries(weights).map(([v, w]) => `v${v} ${w}%`).join(", ")}.`;
      await refresh();
    } catch (err) {
      notice.textContent = `Refused: ${err.message}`;
    }
  }

  async function refresh() {
    dep = await get(`/deployments/${name}`);
    replace(heading, `Deployment ${name}`);
    replace(split, section("Traffic split",
      h("ul", { class: "split" }, dep.versions.map((v) => h("li", {}, link(`#models/${v.model}`, `${v.model} v${v.version}`), ` ${v.weight}%`,
        h("meter", { min: 0, max: 100, value: v.weight, "aria-label": `v${v.version} gets ${v.weight}%` })))),
      controls()));
    replace(replicas, section("Replicas", dl([
      ["Desired", `${dep.desired_replicas} (min ${dep.min_replicas}, max ${dep.max_replicas})`],
      ["Resources each", `${dep.cpus} cpu, ${bytes(dep.memory)}, ${dep.gpus} gpu`],
      ["Status", dep.message || "–"],
    ]), table([
      { label: "Job", cell: (r) => link(`#jobs/${r.job_id}`, String(r.job_id)) },
      { label: "State", cell: (r) => stateBadge(r.state) },
      { label: "Ready", cell: (r) => (r.ready ? "yes" : "no") },
      { label: "Generation", numeric: true, cell: (r) => String(r.generation) },
      { label: "In flight", numeric: true, cell: (r) => String(r.in_flight) },
    ], dep.replicas, { empty: "No replica yet." })));
  }

  async function readTraffic() {
    try {
      const t = await get(`/dashboard/deployments/${name}/traffic`);
      if (t.request_rate !== null) rates.push([Date.now() / 1000, t.request_rate]);
      if (rates.length > 120) rates.shift();
      replace(stats, section("Requests", dl([
        ["Requests", t.requests.toLocaleString()],
        ["Rate", t.request_rate === null ? "measuring…" : `${t.request_rate.toFixed(1)} /s`],
        ["Latency p50 · p95 · p99", `${ms(t.latency_p50)} · ${ms(t.latency_p95)} · ${ms(t.latency_p99)}`],
        ["Batch size mean · p95", t.batch_mean === null ? "no batches yet" : `${t.batch_mean.toFixed(1)} · ${t.batch_p95 === null ? "–" : t.batch_p95.toFixed(0)}`],
        ["By version", t.versions.map((v) => `v${v.version}: ${v.requests} (${v.errors} errors)`).join(", ") || "–"],
      ])));
      replace(plot, lineChart([{ name: "requests/s", points: rates }], {
        label: "Request rate since this page opened", xFormat: (x) => new Date(x * 1000).toLocaleTimeString(undefined, { hour12: false }), yFormat: (v) => v.toFixed(1), width: 1100, height: 220,
      }));
    } catch (err) {
      replace(stats, errorBox(err));
    }
  }

  await refresh();
  replace(root, heading, notice, h("div", { class: "cols" }, split, replicas, stats),
    h("section", { class: "card wide" }, h("h2", {}, "Request rate"), plot));
  await readTraffic();
  poll = setInterval(readTraffic, 5000);
  return { refresh, dispose: () => clearInterval(poll) };
}
