// The REST API as the pages use it: the bearer token from log-in, JSON in and out,
// and the live event stream (opened with a short-lived ticket: EventSource cannot
// send an Authorization header).

const KEY = "aios.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

function detailOf(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return `HTTP ${status}`;
}

export async function request(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new Event("aios:unauthorized"));
    throw new ApiError(response.status, detailOf(parsed, response.status));
  }
  return parsed;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body ?? {});
export const patch = (path, body) => request("PATCH", path, body);

export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

// Follows a job's log: calls onText with each chunk until the job ends or the signal
// aborts.
export async function followLog(jobId, onText, signal) {
  const response = await fetch(`/api/v1/jobs/${jobId}/logs?follow=true`, {
    headers: { Authorization: `Bearer ${token()}` },
    signal,
  });
  if (!response.ok) throw new ApiError(response.status, `log: HTTP ${response.status}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    onText(decoder.decode(value, { stream: true }));
  }
}

// Opens the event stream; onChange gets each new event row, onState "live" or "lost".
// Reopens with a fresh ticket after an error, resuming after the last event seen.
export function openStream(onChange, onState) {
  let source = null;
  let last = null;
  let closed = false;
  let retry = null;
  async function open() {
    if (closed) return;
    try {
      const { ticket } = await post("/stream/ticket");
      const since = last === null ? "" : `&since=${last}`;
      source = new EventSource(`/api/v1/stream?ticket=${encodeURIComponent(ticket)}${since}`);
    } catch {
      onState("lost");
      retry = setTimeout(open, 2000);
      return;
    }
    source.addEventListener("ready", (e) => {
      const data = JSON.parse(e.data);
      if (last === null) last = data.since;
      onState("live");
    });
    source.addEventListener("change", (e) => {
      const row = JSON.parse(e.data);
      last = row.id;
      onChange(row);
    });
    source.onerror = () => {
      source.close();
      onState("lost");
      if (!closed) retry = setTimeout(open, 1000);
    };
  }
  open();
  return () => {
    closed = true;
    clearTimeout(retry);
    if (source) source.close();
  };
}
