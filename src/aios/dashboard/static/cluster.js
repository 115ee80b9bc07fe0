// Cluster pages: the Overview, the Nodes with what runs on each GPU, and the GPU
// Timeline (a Gantt chart of the jobs' attempts, preemptions marked).

import { get, query } from "./api.js";
import { bytes, clock, duration, h, link, replace, resources, section, stateBadge, table } from "./dom.js";
import { colour, gantt, lineChart } from "./charts.js";

const UNIT = {
  cpu: (v) => `${+(v / 1000).toFixed(1)} cores`,
  memory: bytes,
  gpu: (v) => `${v} GPUs`,
};

function meter(label, used, total, format) {
  const share = total ? Math.round((100 * used) / total) : 0;
  return h("div", { class: "meter" },
    h("div", { class: "meter-head" }, h("span", {}, label), h("span", {}, `${format(used)} of ${format(total)} (${share}%)`)),
    h("meter", { min: 0, max: total || 1, value: used, high: (total || 1) * 0.9, "aria-label": `${label}: ${share}% allocated` }));
}

export async function overview(root) {
  const body = h("div", { class: "cols" });
  replace(root, h("h1", {}, "Overview"), body);
  async function refresh() {
    const o = await get("/dashboard/overview");
    const byState = Object.entries(o.jobs_by_state).sort();
    const total = byState.reduce((n, [, c]) => n + c, 0);
    const queues = table([
      { label: "Queue", cell: (q) => link(`#jobs?queue=${q.name}`, q.name) },
      { label: "Usage vs quota", cell: (q) => {
        const rows = Object.keys({ ...(q.quota || {}), ...q.usage });
        if (!rows.length) return "idle, no quota";
        return h("div", { class: "quota" }, rows.map((r) => {
          const quota = q.quota ? q.quota[r] : undefined;
          const used = q.usage[r] || 0;
          const fmt = UNIT[r] || String;
          const over = quota !== undefined && used > quota;
          return quota === undefined
            ? h("div", {}, `${r}: ${fmt(used)} (no quota)`)
            : h("div", { class: over ? "borrowing" : null }, meter(r, used, quota, fmt), over ? h("small", {}, `borrowing ${fmt(used - quota)} from its cohort ${q.cohort || ""}`) : null);
        }));
      } },
      { label: "Running", numeric: true, cell: (q) => String(q.running) },
      { label: "Pending", numeric: true, cell: (q) => (q.pending ? link(`#pending`, String(q.pending)) : "0") },
      { label: "Weight", numeric: true, cell: (q) => String(q.weight) },
    ], o.queues, { empty: "No queue you may see." });
    const history = lineChart(
      ["cpu", "memory", "gpu"].map((r) => {
        const cap = o.resources.find((x) => x.resource === r).capacity || 1;
        return { name: `${r} %`, points: o.history.map((p) => [p.time, (100 * p[r]) / cap]) };
      }),
      { label: "Allocated share of each resource over the last hour", xFormat: clock, yFormat: (v) => `${Math.round(v)}%`, yMax: 100, step: true, width: 1100, height: 240 },
    );
    replace(body,
      section("Capacity and allocation", o.resources.map((r) => meter(r.resource, r.allocated, r.capacity, UNIT[r.resource] || String)),
        o.gpu_kinds.map((k) => meter(`GPU ${k.kind}`, k.busy, k.total, (v) => `${v}`))),
      section("Jobs by state", h("p", { class: "big" }, `${total.toLocaleString()} jobs`),
        h("ul", { class: "states" }, byState.map(([st, c]) => h("li", {}, link(`#jobs?state=${st}`, stateBadge(st)), ` ${c.toLocaleString()}`)))),
      section("Scheduler", h("dl", { class: "facts" },
        h("dt", {}, "Policy"), h("dd", {}, o.scheduler.policy),
        h("dt", {}, "Cycles"), h("dd", {}, o.scheduler.cycles.toLocaleString()),
        h("dt", {}, "Last cycle"), h("dd", { id: "cycle-last" }, duration(o.scheduler.last_cycle_seconds)),
        h("dt", {}, "Mean cycle"), h("dd", {}, duration(o.scheduler.mean_cycle_seconds)))),
      h("section", { class: "card wide" }, h("h2", {}, "Allocation over time"), history),
      h("section", { class: "card wide" }, h("h2", {}, "Queues"), queues));
  }
  await refresh();
  return { refresh };
}

export async function nodes(root) {
  const body = h("div");
  replace(root, h("h1", {}, "Nodes"), body);
  async function refresh() {
    const list = await get("/nodes");
    const holders = new Set(list.flatMap((n) => n.gpus.map((g) => g.job_id)).filter((x) => x !== null));
    const names = new Map();
    await Promise.all([...holders].map(async (id) => {
      try {
        names.set(id, (await get(`/jobs/${id}`)).name);
      } catch {
        names.set(id, null); // another tenant's job: shown as busy, not named
      }
    }));
    replace(body, list.map((n) => section(n.name,
      h("p", {}, `Allocated ${resources(n.allocated)} of ${resources(n.allocatable)}; free ${resources(n.free)}`),
      Object.keys(n.labels).length ? h("p", { class: "hint" }, Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(" ")) : null,
      h("ul", { class: "gpus" }, n.gpus.map((g) => h("li", { class: g.job_id === null ? "gpu free" : "gpu busy" },
        h("strong", {}, `GPU ${g.index}`), ` ${g.model}${g.memory ? `, ${bytes(g.memory)}` : ""} — `,
        g.job_id === null ? "free"
          : names.get(g.job_id) === null ? "in use by another tenant"
            : link(`#jobs/${g.job_id}`, `job ${g.job_id} ${names.get(g.job_id) || ""}`)))),
      n.gpus.length ? null : h("p", { class: "hint" }, "No GPUs."))));
  }
  await refresh();
  return { refresh };
}

const WINDOWS = [["5 min", 300], ["15 min", 900], ["1 hour", 3600], ["6 hours", 21600], ["1 day", 86400], ["1 week", 604800]];

export async function timeline(root, _args, params) {
  const span = Number(params.get("window") || 3600);
  const endAt = params.get("end") ? Number(params.get("end")) : null;
  const picker = h("select", { id: "window", onchange: () => { location.hash = `timeline?window=${picker.value}`; } },
    WINDOWS.map(([label, s]) => h("option", { value: s, selected: s === span }, label)));
  const holder = h("div", { class: "scroll" });
  const legend = h("p", { class: "hint" });
  replace(root, h("h1", {}, "Timeline"),
    h("form", { class: "filters" }, h("label", {}, "Window ", picker)),
    legend, holder);
  async function refresh() {
    const end = endAt || Date.now() / 1000;
    const tl = await get(`/dashboard/timeline${query({ start: end - span, end })}`);
    const queues = [...new Set(tl.bars.map((b) => b.queue))].sort();
    replace(legend, queues.map((q) => h("span", { class: "legend" }, h("span", { class: "swatch", "data-colour": colour(q) }), q)),
      " ▼ marks an attempt that ended by preemption.", tl.truncated ? " Only the newest attempts are shown." : "");
    for (const sw of legend.querySelectorAll(".swatch")) sw.style.background = sw.dataset.colour;
    replace(holder, tl.rows.length ? gantt(tl, { onBar: (bar) => { location.hash = `jobs/${bar.job_id}`; } })
      : h("p", {}, "This cluster has no GPUs."));
  }
  await refresh();
  return { refresh };
}
