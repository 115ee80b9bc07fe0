// The one page: log-in, hash routes to each page, and the live stream that tells the
// open page to refresh what changed (throttled, so a burst of events is one fetch).

import { ApiError, get, openStream, setToken, token } from "./api.js";
import { errorBox, h, replace } from "./dom.js";
import * as cluster from "./cluster.js";
import * as jobs from "./jobs.js";
import * as serving from "./serving.js";
import * as data from "./data.js";
import * as simulator from "./simulator.js";

const PAGES = {
  overview: cluster.overview,
  jobs: jobs.list,
  job: jobs.detail,
  pending: jobs.pending,
  timeline: cluster.timeline,
  nodes: cluster.nodes,
  pipelines: data.pipelines,
  pipeline: data.pipeline,
  models: serving.models,
  model: serving.model,
  deployments: serving.deployments,
  deployment: serving.deployment,
  datasets: data.datasets,
  dataset: data.dataset,
  lineage: data.lineage,
  simulator: simulator.page,
};
const SINGULAR = { jobs: "job", pipelines: "pipeline", models: "model", deployments: "deployment", datasets: "dataset" };
const REFRESH_GAP = 400;

const ctx = { user: null, page: null, stopStream: null, timer: null, pendingRefresh: false };

function parseHash() {
  const raw = decodeURIComponent(location.hash.replace(/^#/, "")) || "overview";
  const [path, search] = raw.split("?");
  const parts = path.split("/").filter(Boolean);
  let name = parts[0] || "overview";
  let args = parts.slice(1);
  if (args.length && SINGULAR[name]) name = SINGULAR[name];
  if (!PAGES[name]) {
    name = "overview";
    args = [];
  }
  return { name, args, params: new URLSearchParams(search || "") };
}

function markNav(name) {
  for (const a of document.querySelectorAll("#nav a")) {
    const target = a.getAttribute("href").slice(1);
    const current = target === name || SINGULAR[target] === name;
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function show() {
  if (!ctx.user) return;
  if (ctx.page && ctx.page.dispose) ctx.page.dispose();
  ctx.page = null;
  const route = parseHash();
  markNav(route.name);
  const view = document.getElementById("view");
  const root = h("div", { class: "page", "data-page": route.name });
  replace(view, root);
  try {
    ctx.page = (await PAGES[route.name](root, route.args, route.params, ctx)) || {};
  } catch (err) {
    replace(root, h("h1", {}, "Not available"), errorBox(err));
    ctx.page = {};
  }
  document.title = `${root.querySelector("h1")?.textContent || "AIOS"} · AIOS`;
}

function refreshSoon(event) {
  const page = ctx.page;
  if (!page || page.live === false) return;
  if (page.wants && !page.wants(event)) return;
  if (ctx.timer) {
    ctx.pendingRefresh = true;
    return;
  }
  const run = async () => {
    try {
      if (ctx.page === page) await (page.refresh ? page.refresh(event) : show());
    } catch (err) {
      console.warn("refresh failed", err);
    }
    ctx.timer = setTimeout(() => {
      ctx.timer = null;
      if (ctx.pendingRefresh) {
        ctx.pendingRefresh = false;
        refreshSoon(event);
      }
    }, REFRESH_GAP);
  };
  ctx.timer = setTimeout(run, 50);
}

function setLive(state) {
  const badge = document.getElementById("live");
  badge.textContent = state === "live" ? "● live" : "○ reconnecting";
  badge.className = `live ${state}`;
}

async function enter() {
  try {
    ctx.user = await get("/whoami");
  } catch (err) {
    setToken(null);
    showLogin(err instanceof ApiError && err.status === 401 ? "That token is unknown or revoked." : err.message);
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  for (const a of document.querySelectorAll("#nav [data-admin]")) a.hidden = !ctx.user.admin;
  const who = ctx.user.admin ? `${ctx.user.name} (admin)` : `${ctx.user.name} · tenant ${ctx.user.tenant}`;
  document.getElementById("who").textContent = who;
  ctx.stopStream = openStream(refreshSoon, setLive);
  await show();
}

function showLogin(message) {
  ctx.user = null;
  if (ctx.stopStream) ctx.stopStream();
  ctx.stopStream = null;
  replace(document.getElementById("view"));
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  document.getElementById("live").textContent = "";
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("token").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = document.getElementById("token");
    setToken(input.value.trim());
    input.value = "";
    enter();
  });
  document.getElementById("logout").addEventListener("click", () => {
    setToken(null);
    showLogin("");
  });
  window.addEventListener("hashchange", () => {
    show();
    document.getElementById("main").focus({ preventScroll: true });
  });
  window.addEventListener("aios:unauthorized", () => showLogin("Your token is no longer valid."));
  if (token()) enter();
  else showLogin("");
});
