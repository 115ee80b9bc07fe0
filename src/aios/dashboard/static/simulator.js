// The Simulator page (admins): replay a trace under chosen policies and compare them
// in a table and in the JCT and GPU-utilization plots.

import { get, post } from "./api.js";
import { duration, errorBox, h, replace, section, table } from "./dom.js";
import { lineChart } from "./charts.js";

export async function page(root) {
  const opts = await get("/simulator");
  const trace = h("select", { id: "sim-trace" },
    h("option", { value: "philly" }, "Bundled Philly trace"),
    h("option", { value: "upload" }, "A Philly-format CSV file…"),
    opts.history ? h("option", { value: "history" }, "This cluster's history") : null);
  const file = h("input", { type: "file", id: "sim-file", accept: ".csv,text/csv" });
  const limit = h("input", { type: "number", id: "sim-limit", min: 1, max: 2000, value: 300, size: 6 });
  const nodes = h("input", { type: "number", id: "sim-nodes", min: 1, max: 1000, value: Math.max(opts.nodes, 8), size: 5 });
  const gpus = h("input", { type: "number", id: "sim-gpus", min: 0, max: 64, value: opts.gpus_per_node || 8, size: 4 });
  const boxes = opts.policies.map((p) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "policy", value: p, checked: ["fifo", "drf", "las"].includes(p) }), ` ${p}`));
  const out = h("div", { id: "sim-results", "aria-live": "polite" });
  const run = h("button", { type: "submit" }, "Run");
  const form = h("form", { class: "filters sim", onsubmit: async (e) => {
    e.preventDefault();
    const policies = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    const body = { trace: trace.value, policies, limit: Number(limit.value), nodes: Number(nodes.value), gpus_per_node: Number(gpus.value) };
    if (trace.value === "upload") {
      if (!file.files.length) {
        replace(out, errorBox(new Error("Choose a CSV file first.")));
        return;
      }
      body.text = await file.files[0].text();
    }
    run.disabled = true;
    replace(out, h("p", {}, `Replaying under ${policies.join(", ")}…`));
    try {
      show(out, await post("/simulator/run", body));
    } catch (err) {
      replace(out, errorBox(err));
    }
    run.disabled = false;
  } },
  h("label", {}, "Trace ", trace), h("label", {}, "File ", file), h("label", {}, "Jobs ", limit),
  h("label", {}, "Nodes ", nodes), h("label", {}, "GPUs per node ", gpus),
  h("fieldset", {}, h("legend", {}, "Policies"), boxes), run);
  replace(root, h("h1", {}, "Simulator"),
    h("p", { class: "hint" }, "Replays the jobs through the same scheduler the cluster runs, on a simulated clock."),
    form, out);
  return { live: false };
}

const hours = (s) => `${(s / 3600).toFixed(1)} h`;

function show(out, answer) {
  const rows = answer.results;
  replace(out,
    h("p", {}, `${answer.jobs} jobs of the ${answer.trace} on ${answer.nodes} nodes × ${answer.gpus_per_node} GPUs.`),
    table([
      { label: "Policy", cell: (r) => r.policy },
      { label: "Completed", numeric: true, cell: (r) => `${r.metrics.completed} / ${r.metrics.jobs}` },
      { label: "Mean JCT", numeric: true, cell: (r) => duration(r.metrics.mean_jct) },
      { label: "p95 JCT", numeric: true, cell: (r) => duration(r.metrics.p95_jct) },
      { label: "Mean wait", numeric: true, cell: (r) => duration(r.metrics.mean_queueing_delay) },
      { label: "Makespan", numeric: true, cell: (r) => duration(r.metrics.makespan) },
      { label: "GPU utilization", numeric: true, cell: (r) => `${(100 * r.metrics.gpu_utilization).toFixed(1)}%` },
      { label: "Jain index", numeric: true, cell: (r) => r.metrics.jain_index.toFixed(3) },
      { label: "Preemptions", numeric: true, cell: (r) => String(r.metrics.preemptions) },
    ], rows, { class: "grid", rowAttrs: (r) => ({ "data-policy": r.policy }) }),
    h("div", { class: "cols" },
      section("Job completion time (CDF)", lineChart(rows.map((r) => ({ name: r.policy, points: r.jct_cdf.map(([x, y]) => [x, y * 100]) })),
        { label: "Share of jobs finished within a completion time, per policy", xFormat: hours, yFormat: (v) => `${Math.round(v)}%`, yMax: 100 })),
      section("GPU utilization", lineChart(rows.map((r) => ({ name: r.policy, points: r.utilization.map(([x, y]) => [x, y * 100]) })),
        { label: "GPU utilization over simulated time, per policy", xFormat: hours, yFormat: (v) => `${Math.round(v)}%`, yMax: 100 }))));
}
