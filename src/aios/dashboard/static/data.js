// Pipelines (the DAG with each step's state, live), datasets (versions, sizes, tags,
// label sets, diffs) and the lineage graph linking datasets, jobs and models.

import { get, query } from "./api.js";
import { bytes, dl, errorBox, h, link, replace, section, stateBadge, table, when } from "./dom.js";
import { graph } from "./charts.js";

export async function pipelines(root) {
  const holder = h("div");
  replace(root, h("h1", {}, "Pipelines"), holder);
  async function refresh() {
    const list = await get("/pipelines");
    replace(holder, table([
      { label: "ID", numeric: true, cell: (p) => link(`#pipelines/${p.id}`, String(p.id)) },
      { label: "Name", cell: (p) => p.name },
      { label: "State", cell: (p) => stateBadge(p.state) },
      { label: "Queue", cell: (p) => p.queue },
      { label: "Steps", cell: (p) => Object.values(p.steps).map((s) => s.state).join(", ") },
      { label: "Created", cell: (p) => when(p.created_at) },
    ], list, { empty: "No pipeline." }));
  }
  await refresh();
  return { refresh };
}

export async function pipeline(root, args) {
  const id = Number(args[0]);
  const holder = h("div");
  const heading = h("h1", {}, `Pipeline ${id}`);
  replace(root, heading, holder);
  async function refresh() {
    const p = await get(`/pipelines/${id}`);
    replace(heading, `Pipeline ${id}: ${p.name} `, stateBadge(p.state));
    const steps = Object.entries(p.steps);
    const byJob = new Map(steps.map(([name, job]) => [job.id, name]));
    const nodes = steps.map(([name, job]) => ({ id: name, label: name, sub: `${job.state} · job ${job.id}`, cls: `state-${job.state}`, href: `#jobs/${job.id}` }));
    const edges = steps.flatMap(([name, job]) => job.after.filter((a) => byJob.has(a)).map((a) => [byJob.get(a), name]));
    replace(holder, section("Steps", graph(nodes, edges, `Pipeline ${p.name}: ${steps.length} steps`)),
      section("Step states", table([
        { label: "Step", cell: ([name]) => name },
        { label: "Job", cell: ([, j]) => link(`#jobs/${j.id}`, String(j.id)) },
        { label: "State", cell: ([, j]) => stateBadge(j.state) },
        { label: "Why", cell: ([, j]) => j.message || "–" },
      ], steps)));
  }
  await refresh();
  return { refresh, wants: () => true };
}

const versionColumns = (name) => [
  { label: "Version", numeric: true, cell: (v) => String(v.version) },
  { label: "Tags", cell: (v) => v.tags.join(", ") || "–" },
  { label: "Files", numeric: true, cell: (v) => v.files.toLocaleString() },
  { label: "Size", numeric: true, cell: (v) => bytes(v.bytes) },
  { label: "Complete", cell: (v) => (v.complete ? "yes" : `no: ${v.changed.length} changed, ${v.vanished.length} vanished`) },
  { label: "Message", cell: (v) => v.message },
  { label: "Made by", cell: (v) => (v.produced_by ? link(`#jobs/${v.produced_by}`, `job ${v.produced_by}`) : "–") },
  { label: "Lineage", cell: (v) => link(`#lineage/dataset/${name}@${v.version}`, "graph") },
  { label: "Time", cell: (v) => new Date(v.time).toLocaleString(undefined, { hour12: false }) },
];

export async function datasets(root) {
  const list = await get("/datasets");
  replace(root, h("h1", {}, "Datasets"), table([
    { label: "Dataset", cell: (d) => link(`#datasets/${d.name}`, d.name) },
    { label: "Versions", numeric: true, cell: (d) => String(d.versions) },
    { label: "Latest", numeric: true, cell: (d) => String(d.latest.version) },
    { label: "Files", numeric: true, cell: (d) => d.latest.files.toLocaleString() },
    { label: "Size", numeric: true, cell: (d) => bytes(d.latest.bytes) },
    { label: "Tags", cell: (d) => d.latest.tags.join(", ") || "–" },
  ], list, { empty: "No dataset (or no data repository yet: aios data init)." }));
  return { live: false };
}

export async function dataset(root, args) {
  const name = args[0];
  const d = await get(`/datasets/${name}`);
  const result = h("div", { id: "diff" });
  const options = d.versions.map((v) => v.version);
  const pick = (id, value) => h("select", { id }, options.map((o) => h("option", { value: o, selected: o === value }, `v${o}`)));
  const a = pick("diff-a", options[1] ?? options[0]);
  const b = pick("diff-b", options[0]);
  const form = h("form", { class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const diff = await get(`/datasets/${name}/diff${query({ a: a.value, b: b.value })}`);
      const rows = [
        ...diff.added.map((x) => ({ ...x, change: "added" })),
        ...diff.removed.map((x) => ({ ...x, change: "removed" })),
        ...diff.modified.map((x) => ({ ...x, change: "modified" })),
      ];
      replace(result, h("p", {}, `${diff.a} → ${diff.b}: ${diff.added.length} added, ${diff.removed.length} removed, ${diff.modified.length} modified`),
        table([
          { label: "Change", cell: (r) => r.change },
          { label: "Path", cell: (r) => h("code", {}, r.path) },
          { label: "Old size", numeric: true, cell: (r) => bytes(r.old_size) },
          { label: "New size", numeric: true, cell: (r) => bytes(r.new_size) },
        ], rows, { empty: "The two versions hold the same files." }));
    } catch (err) {
      replace(result, errorBox(err));
    }
  } }, h("label", {}, "From ", a), h("label", {}, "to ", b), h("button", { type: "submit" }, "Diff"));
  replace(root, h("h1", {}, `Dataset ${name}`),
    section("Versions", table(versionColumns(name), d.versions)),
    section("Label sets", table([
      { label: "Label set", cell: (l) => l.name },
      { label: "Version", numeric: true, cell: (l) => String(l.version) },
      { label: "Of dataset version", numeric: true, cell: (l) => String(l.dataset_version) },
      { label: "Files", numeric: true, cell: (l) => String(l.files) },
      { label: "Boxes", numeric: true, cell: (l) => String(l.boxes) },
      { label: "Classes", cell: (l) => l.classes.join(", ") },
    ], d.labels, { empty: "No labels." })),
    section("Diff", form, result));
  return { live: false };
}

const LINEAGE_HREF = {
  job: (ref) => `#jobs/${ref}`,
  dataset: (ref) => `#datasets/${ref.split("@")[0]}`,
  model: (ref) => `#models/${ref.split("@")[0]}`,
};

function lineageGraph(view) {
  const nodes = new Map();
  const edges = [];
  const add = (n) => {
    const id = `${n.kind}:${n.ref}`;
    if (!nodes.has(id)) {
      nodes.set(id, { id, label: n.label || n.ref, sub: `${n.kind} ${n.kind === "job" ? "#" : ""}${n.ref}`, cls: `kind-${n.kind}`, href: LINEAGE_HREF[n.kind](n.ref) });
    }
    return id;
  };
  const walk = (tree, up) => {
    const here = add(tree.node);
    for (const child of tree.links) {
      const there = add(child.node);
      edges.push(up ? [there, here] : [here, there]);
      walk(child, up);
    }
  };
  walk(view.upstream, true);
  walk(view.downstream, false);
  const unique = [...new Map(edges.map((e) => [e.join(">"), e])).values()];
  return { nodes: [...nodes.values()], edges: unique };
}

export async function lineage(root, args) {
  const [kind, ...rest] = args;
  const ref = rest.join("/");
  const view = await get(`/lineage/${kind}/${encodeURIComponent(ref)}`);
  const { nodes, edges } = lineageGraph(view);
  replace(root, h("h1", {}, `Lineage of ${kind} ${ref}`),
    h("p", { class: "hint" }, "Arrows point from what was read to what was made; each box opens its page."),
    h("div", { class: "scroll", id: "lineage-graph" }, graph(nodes, edges, `Lineage of ${kind} ${ref}: ${nodes.length} nodes`)),
    section("Nodes", dl(nodes.map((n) => [n.sub, link(n.href, n.label)]))));
  return { live: false };
}
