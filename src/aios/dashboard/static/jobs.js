// The Jobs pages: the server-paged table, one job (spec, placement, attempts, events,
// live log, cancel and resubmit), and why the queued jobs wait.

import { ApiError, followLog, get, post, query } from "./api.js";
import { bytes, dl, duration, errorBox, h, link, replace, section, stateBadge, table, when } from "./dom.js";

const STATES = ["", "queued", "running", "succeeded", "failed", "cancelled", "upstream_failed", "unschedulable"];
const PAGE = 50;

const jobLink = (job) => link(`#jobs/${job.id}`, String(job.id));

export async function list(root, _args, params) {
  const want = {
    state: params.get("state") || "",
    queue: params.get("queue") || "",
    owner: params.get("owner") || "",
    name: params.get("name") || "",
    sort: params.get("sort") || "id",
    order: params.get("order") || "desc",
    offset: Number(params.get("offset") || 0),
  };
  const go = (changes) => {
    const next = { ...want, ...changes };
    location.hash = `jobs${query({ ...next, offset: next.offset || null, order: next.order === "desc" ? null : next.order, sort: next.sort === "id" ? null : next.sort })}`;
  };
  const field = (label, key, control) => h("label", {}, label, control);
  const state = h("select", { name: "state" }, STATES.map((s) => h("option", { value: s, selected: s === want.state }, s || "any")));
  const inputs = ["queue", "owner", "name"].map((k) => h("input", { name: k, value: want[k], size: 12 }));
  const form = h("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    go({ state: state.value, queue: inputs[0].value.trim(), owner: inputs[1].value.trim(), name: inputs[2].value.trim(), offset: 0 });
  } }, field("State", "state", state), field("Queue", "queue", inputs[0]), field("User", "owner", inputs[1]),
  field("Name contains", "name", inputs[2]), h("button", { type: "submit" }, "Filter"));
  const holder = h("div", { id: "jobs-table" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of jobs" });
  replace(root, h("h1", {}, "Jobs"), form, pager, holder);

  const columns = [
    { label: "ID", sort: "id", numeric: true, cell: jobLink },
    { label: "Name", sort: "name", cell: (j) => j.name },
    { label: "State", sort: "state", cell: (j) => stateBadge(j.state) },
    { label: "Queue", sort: "queue", cell: (j) => j.queue },
    { label: "User", sort: "owner", cell: (j) => j.owner },
    { label: "CPU", sort: "cpus", numeric: true, cell: (j) => String(j.cpus) },
    { label: "Memory", sort: "memory", numeric: true, cell: (j) => bytes(j.memory) },
    { label: "GPUs", sort: "gpus", numeric: true, cell: (j) => (j.gpus ? `${j.gpus}${j.gpu_kind ? " " + j.gpu_kind : ""}` : "–") },
    { label: "Priority", sort: "priority", numeric: true, cell: (j) => String(j.priority) },
    { label: "Wait", sort: "wait", numeric: true, cell: (j) => duration(j.wait) },
    { label: "Submitted", cell: (j) => when(j.submitted_at) },
  ];
  async function refresh() {
    const page = await get(`/dashboard/jobs${query({ ...want, limit: PAGE })}`);
    replace(holder, table(columns, page.jobs, {
      sort: want.sort,
      desc: want.order === "desc",
      onSort: (key) => go({ sort: key, order: key === want.sort && want.order === "desc" ? "asc" : "desc", offset: 0 }),
      rowAttrs: (j) => ({ "data-job-id": j.id, "data-state": j.state }),
      empty: "No jobs match.",
    }));
    const last = Math.min(want.offset + page.jobs.length, page.total);
    replace(pager,
      h("button", { type: "button", disabled: want.offset === 0, onclick: () => go({ offset: Math.max(want.offset - PAGE, 0) }) }, "← Newer"),
      h("span", { class: "count", "aria-live": "polite" }, page.total ? `${want.offset + 1}–${last} of ${page.total.toLocaleString()}` : "0 jobs"),
      h("button", { type: "button", disabled: last >= page.total, onclick: () => go({ offset: want.offset + PAGE }) }, "Older →"));
  }
  await refresh();
  return { refresh };
}

export async function detail(root, args) {
  const id = Number(args[0]);
  const heading = h("h1", {}, `Job ${id}`);
  const actions = h("div", { class: "actions" });
  const notice = h("p", { class: "notice", role: "status" });
  const facts = h("div", { class: "cols" });
  const attempts = h("div");
  const events = h("div");
  const log = h("pre", { id: "log", class: "log", tabindex: 0, "aria-label": "Log (stdout)" });
  const abort = new AbortController();
  let following = false;
  let logComplete = false;
  let job;

  async function startLog() {
    if (following || logComplete) return;
    following = true;
    log.textContent = "";
    try {
      await followLog(id, (text) => {
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.append(text);
        if (atEnd) log.scrollTop = log.scrollHeight;
      }, abort.signal);
      logComplete = true; // the server ends a follow when the job has ended
    } catch (err) {
      if (err.name !== "AbortError") log.append(`\n[${err.message}]`);
    }
    following = false;
  }

  async function refresh() {
    job = await get(`/jobs/${id}`);
    const evs = await get(`/jobs/${id}/events`);
    replace(heading, `Job ${id}: ${job.name} `, stateBadge(job.state));
    const live = job.state === "queued" || job.state === "running";
    replace(actions,
      live ? h("button", { type: "button", class: "danger", onclick: cancel }, "Cancel") : null,
      job.kind === "batch" ? h("button", { type: "button", onclick: resubmit }, "Resubmit") : null,
      link(`#lineage/job/${id}`, "Lineage"),
      job.pipeline_id ? link(`#pipelines/${job.pipeline_id}`, `Pipeline ${job.pipeline_id}`) : null);
    const current = job.attempts[job.attempts.length - 1];
    replace(facts,
      section("Spec", dl([
        ["Command", h("code", {}, job.shell ? job.command[0] : job.command.join(" "))],
        ["Queue · user", `${job.queue} · ${job.owner}`],
        ["Resources", `${job.cpus} cpu, ${bytes(job.memory)}, ${job.gpus} gpu${job.gpu_kind ? " " + job.gpu_kind : ""} × ${job.replicas} replica(s)`],
        ["Priority", `${job.priority}${job.preemptible ? "" : " (not preemptible)"}`],
        ["Time limit", job.time_limit ? duration(job.time_limit) : "none"],
        ["Retries", `${job.retries} of ${job.max_retries}`],
        ["After", job.after.length ? job.after.map((p) => [link(`#jobs/${p}`, `#${p}`), " "]) : "–"],
        ["Inputs · outputs", `${job.inputs.join(", ") || "–"} · ${job.outputs.join(", ") || "–"}`],
      ])),
      section("Status", dl([
        ["State", stateBadge(job.state)],
        ["Why", job.message || "–"],
        ["Submitted", when(job.submitted_at)],
        ["Started", when(job.started_at)],
        ["Finished", when(job.finished_at)],
        ["Exit", job.exit_code === null ? (job.reason || "–") : `${job.exit_code} (${job.reason})`],
        ["Placement", current ? `node ${current.node}, cores ${current.cores.map((c) => c.join(",")).join(" | ")}${current.gpus.flat().length ? `, GPUs ${current.gpus.map((g) => g.join(",")).join(" | ")}` : ""}` : "not placed yet"],
      ])));
    replace(attempts, section("Attempts", table([
      { label: "#", numeric: true, cell: (a) => String(a.number) },
      { label: "Node", cell: (a) => a.node },
      { label: "Cores", cell: (a) => a.cores.map((c) => c.join(",")).join(" | ") },
      { label: "GPUs", cell: (a) => a.gpus.map((g) => g.join(",")).join(" | ") || "–" },
      { label: "Started", cell: (a) => when(a.started_at) },
      { label: "Ran", numeric: true, cell: (a) => duration((a.finished_at || Date.now() / 1000) - a.started_at) },
      { label: "Exit reason", cell: (a) => (a.reason ? `${a.reason}${a.exit_code === null ? "" : ` (${a.exit_code})`}` : "running") },
      { label: "Message", cell: (a) => a.message },
    ], job.attempts, { empty: "No attempt yet." })));
    replace(events, section("Events", table([
      { label: "Time", cell: (e) => when(e.time) },
      { label: "Kind", cell: (e) => e.kind },
      { label: "Message", cell: (e) => e.message },
    ], evs.slice(-200).reverse(), { empty: "No events." })));
    if (job.state !== "queued") startLog();
  }

  async function cancel() {
    try {
      await post(`/jobs/${id}/cancel`);
      notice.textContent = `Asked job ${id} to stop.`;
      await refresh();
    } catch (err) {
      notice.textContent = err.message;
    }
  }

  async function resubmit() {
    try {
      const created = await post(`/jobs/${job.id}/resubmit`);
      location.hash = `jobs/${created.id}`;
    } catch (err) {
      notice.textContent = `Resubmit refused: ${err.message}`;
    }
  }

  try {
    await refresh();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      replace(root, h("h1", {}, "Job not found"), errorBox(err), link("#jobs", "Back to the jobs"));
      return {};
    }
    throw err;
  }
  replace(root, heading, actions, notice, facts, attempts, section("Log", log), events);
  return {
    refresh,
    wants: (event) => event.job_id === id,
    dispose: () => abort.abort(),
  };
}

export async function pending(root) {
  const holder = h("div");
  replace(root, h("h1", {}, "Why pending"), h("p", { class: "hint" }, "Queued jobs, oldest first, with the scheduler's reason in words."), holder);
  async function refresh() {
    const page = await get(`/dashboard/jobs${query({ state: "queued", sort: "wait", order: "desc", limit: 200 })}`);
    replace(holder, table([
      { label: "ID", numeric: true, cell: jobLink },
      { label: "Name", cell: (j) => j.name },
      { label: "Queue", cell: (j) => j.queue },
      { label: "Asks", cell: (j) => `${j.cpus} cpu, ${bytes(j.memory)}${j.gpus ? `, ${j.gpus} gpu${j.gpu_kind ? " " + j.gpu_kind : ""}` : ""}` },
      { label: "Priority", numeric: true, cell: (j) => String(j.priority) },
      { label: "Waiting", numeric: true, cell: (j) => duration(j.wait) },
      { label: "Why", cell: (j) => h("span", { class: "why" }, j.message || "waiting for the next scheduling cycle") },
    ], page.jobs, { empty: "No job is waiting.", rowAttrs: (j) => ({ "data-job-id": j.id }) }),
    page.total > page.jobs.length ? h("p", { class: "hint" }, `${page.total - page.jobs.length} more not shown.`) : null);
  }
  await refresh();
  return { refresh };
}
