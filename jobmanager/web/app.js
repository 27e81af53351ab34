// The Strom dashboard: one page, hash routing, plain DOM and SVG. Everything it shows comes
// from the JobManager's REST API (see web/openapi.yaml); nothing is fetched from elsewhere.
"use strict";

// ------------------------------------------------------------------ helpers

function h(tag, attrs, ...children) {
  const svg = ["svg", "g", "rect", "text", "path", "marker", "defs", "title", "tspan", "circle"];
  const element = svg.includes(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// The REST access token (security.rest.token), asked for when a request that changes
// something answers 401, and kept for this browser tab's session only.
const TOKEN_KEY = "strom.rest.token";

function withToken(options) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return options;
  const headers = Object.assign({}, (options && options.headers) || {},
    { Authorization: `Bearer ${token}` });
  return Object.assign({}, options || {}, { headers });
}

function askForToken(message) {
  return new Promise((resolve) => {
    const input = h("input", { type: "password", id: "login-token", autocomplete: "off",
      placeholder: "access token" });
    const close = (value) => { dialog.remove(); resolve(value); };
    const dialog = h("div", { class: "login", id: "login", role: "dialog" },
      h("form", { class: "notice", onsubmit: (event) => {
        event.preventDefault(); close(input.value.trim() || null); } },
        h("p", {}, message),
        h("div", { class: "toolbar" }, input,
          h("button", { class: "primary", type: "submit", id: "login-submit" }, "Log in"),
          h("button", { type: "button", id: "login-cancel", onclick: () => close(null) },
            "Cancel"))));
    document.body.append(dialog);
    input.focus();
  });
}

async function api(path, options, retried) {
  let response;
  try {
    response = await fetch(path, withToken(options));
  } catch (error) {
    setConnection(false);
    throw new Error("the JobManager is not reachable: " + error.message);
  }
  setConnection(true);
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    const token = await askForToken(retried
      ? "That token was not accepted. The JobManager's access token (security.rest.token):"
      : "This action needs the JobManager's access token (security.rest.token):");
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      return api(path, options, true);
    }
  }
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const errors = body && body.errors ? body.errors.join("; ") : String(body);
    const error = new Error(errors || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function setConnection(up) {
  const dot = document.getElementById("connection");
  if (dot) {
    dot.classList.toggle("down", !up);
    dot.title = up ? "REST API reachable" : "REST API not reachable";
  }
}

const pad = (n) => String(n).padStart(2, "0");

function fmtTime(ms) {
  if (ms === null || ms === undefined || ms < 0) return "–";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "–";
  if (ms < 1000) return `${ms} ms`;
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hh = Math.floor(s / 3600); s -= hh * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hh}h ${m}m`;
  if (hh) return `${hh}h ${m}m ${s}s`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function fmtCount(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1000) return String(n);
  const units = ["K", "M", "G", "T"];
  let value = n, unit = -1;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(value < 10 ? 2 : 1)}${units[unit]}`;
}

function fmtBytes(n) {
  if (n === null || n === undefined || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const pct = (ratio) => `${Math.round((ratio || 0) * 100)}%`;
const badge = (state) => h("span", { class: `badge state-${state}` }, state);

function taskCounts(tasks) {
  const order = ["CREATED", "SCHEDULED", "DEPLOYING", "RUNNING", "FINISHED", "CANCELING",
    "CANCELED", "FAILED"];
  const spans = [];
  for (const state of order) {
    const count = (tasks || {})[state] ?? (tasks || {})[state.toLowerCase()] ?? 0;
    if (count) spans.push(h("span", { class: `state-${state}`, title: state }, count));
  }
  return h("span", { class: "task-counts" }, spans);
}

function table(headers, rows, empty, attrs) {
  const head = h("tr", {}, headers.map((header) => {
    const [label, cls] = Array.isArray(header) ? header : [header, null];
    return h("th", { class: cls }, label);
  }));
  const body = rows.length
    ? rows
    : [h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, empty || "None"))];
  return h("div", { class: "table-wrap" }, h("table", attrs || {}, h("thead", {}, head),
    h("tbody", {}, body)));
}

function notice(message, kind) {
  return h("div", { class: `notice ${kind || ""}` }, message);
}

// ------------------------------------------------------------------ routing

const main = document.getElementById("main");
let current = null; // { stop() } of the page on screen

function route() {
  if (current && current.stop) current.stop();
  current = null;
  const parts = (location.hash.replace(/^#\/?/, "") || "overview").split("/")
    .map(decodeURIComponent);
  const page = parts[0];
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === page ||
      (page === "jobs" && link.dataset.page === "overview"));
  }
  main.replaceChildren();
  if (page === "jobs" && parts[1]) current = jobPage(parts[1], parts[2] || "overview");
  else if (page === "taskmanagers" && parts[1]) current = taskManagerPage(parts[1], parts[2] || "metrics");
  else if (page === "taskmanagers") current = taskManagersPage();
  else if (page === "jobmanager") current = jobManagerPage(parts[1] || "config");
  else current = overviewPage();
}

// Runs refresh() now and then every `interval` ms until stopped; errors show on the page.
function poller(refresh, interval, errorBox) {
  let timer = null, stopped = false;
  async function tick() {
    try {
      await refresh();
      if (errorBox) errorBox.replaceChildren();
    } catch (error) {
      if (errorBox) errorBox.replaceChildren(notice(error.message, "error"));
    }
    if (!stopped && interval) timer = setTimeout(tick, interval);
  }
  tick();
  return { stop() { stopped = true; clearTimeout(timer); }, now: tick };
}

let refreshInterval = 3000;

// ------------------------------------------------------------------ overview

function jobRows(jobs) {
  return jobs.map((job) => h("tr", { class: "clickable", "data-jid": job.jid,
    onclick: () => { location.hash = `#/jobs/${job.jid}`; } },
  h("td", {}, h("a", { href: `#/jobs/${job.jid}`, class: "job-link" }, job.name)),
  h("td", { class: "mono" }, job.jid),
  h("td", {}, fmtTime(job["start-time"])),
  h("td", {}, fmtDuration(job.duration)),
  h("td", {}, fmtTime(job["end-time"])),
  h("td", {}, taskCounts(job.tasks)),
  h("td", {}, badge(job.state))));
}

const JOB_HEADERS = ["Job name", "Job ID", "Start time", "Duration", "End time", "Tasks", "Status"];

function overviewPage() {
  const errors = h("div");
  const cards = h("div", { class: "cards" });
  const running = h("div", { id: "running-jobs" });
  const completed = h("div", { id: "completed-jobs" });
  main.append(h("h1", {}, "Overview"), errors, cards,
    h("h2", {}, "Running jobs"), running, h("h2", {}, "Completed jobs"), completed);

  async function refresh() {
    const [overview, jobs, tms] = await Promise.all([
      api("overview"), api("jobs/overview"), api("taskmanagers")]);
    const total = overview["slots-total"], free = overview["slots-available"];
    const used = total - free;
    const cores = tms.taskmanagers.reduce((sum, tm) => sum + (tm.hardware.cpuCores || 0), 0);
    cards.replaceChildren(
      h("div", { class: "card" }, h("div", { class: "label" }, "Task Managers"),
        h("div", { class: "figure", id: "tm-count" }, overview.taskmanagers),
        h("div", { class: "sub" }, h("a", { href: "#/taskmanagers" }, "show all"))),
      h("div", { class: "card" }, h("div", { class: "label" }, "Task Slots"),
        h("div", { class: "figure" }, h("span", { id: "slots-available" }, free),
          h("span", { class: "sub" }, " available of "), h("span", { id: "slots-total" }, total)),
        h("div", { class: "usage", title: `${used} of ${total} slots in use`, id: "slot-usage" },
          h("div", { style: `width:${total ? (100 * used / total).toFixed(1) : 0}%` })),
        h("div", { class: "sub" }, `${used} in use`)),
      h("div", { class: "card" }, h("div", { class: "label" }, "CPU Cores"),
        h("div", { class: "figure", id: "cpu-cores" }, cores),
        h("div", { class: "sub" }, "reported by the task managers")),
      h("div", { class: "card" }, h("div", { class: "label" }, "Jobs"),
        h("div", { class: "job-counts" },
          h("div", {}, h("b", { id: "jobs-running" }, overview["jobs-running"]), h("span", {}, "running")),
          h("div", {}, h("b", { id: "jobs-finished" }, overview["jobs-finished"]), h("span", {}, "finished")),
          h("div", {}, h("b", { id: "jobs-cancelled" }, overview["jobs-cancelled"]), h("span", {}, "cancelled")),
          h("div", {}, h("b", { id: "jobs-failed" }, overview["jobs-failed"]), h("span", {}, "failed")))));
    const terminal = ["FINISHED", "CANCELED", "FAILED"];
    const done = jobs.jobs.filter((job) => terminal.includes(job.state));
    const active = jobs.jobs.filter((job) => !terminal.includes(job.state));
    running.replaceChildren(table(JOB_HEADERS, jobRows(active), "No running jobs"));
    completed.replaceChildren(table(JOB_HEADERS, jobRows(done), "No completed jobs"));
  }
  return poller(refresh, refreshInterval, errors);
}

// ------------------------------------------------------------------ the job graph

const NODE_W = 250, NODE_H = 122, GAP_X = 120, GAP_Y = 36, MARGIN = 24;

// Places plan nodes in columns by their longest distance from a source; orders each column by
// the mean row of its inputs so that edges cross little.
function layout(nodes) {
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const layer = new Map();
  const visiting = new Set();
  function depth(node) {
    if (layer.has(node.id)) return layer.get(node.id);
    if (visiting.has(node.id)) return 0;
    visiting.add(node.id);
    let d = 0;
    for (const input of node.inputs || []) {
      const source = byId.get(input.id);
      if (source) d = Math.max(d, depth(source) + 1);
    }
    visiting.delete(node.id);
    layer.set(node.id, d);
    return d;
  }
  nodes.forEach(depth);
  const columns = [];
  for (const node of nodes) (columns[layer.get(node.id)] ||= []).push(node);
  const row = new Map();
  columns.forEach((column, index) => {
    if (index > 0) {
      const key = (node) => {
        const rows = (node.inputs || []).map((i) => row.get(i.id)).filter((r) => r !== undefined);
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0;
      };
      column.sort((a, b) => key(a) - key(b));
    }
    column.forEach((node, i) => row.set(node.id, i));
  });
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const height = MARGIN * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  const positions = new Map();
  columns.forEach((column, index) => {
    const columnHeight = column.length * NODE_H + (column.length - 1) * GAP_Y;
    const top = (height - columnHeight) / 2;
    column.forEach((node, i) => positions.set(node.id, {
      x: MARGIN + index * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y) }));
  });
  const width = MARGIN * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * GAP_X;
  return { positions, width, height };
}

function truncate(text, max) {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

function drawGraph(plan, vertices, selected, onSelect) {
  const nodes = plan.nodes || [];
  const { positions, width, height } = layout(nodes);
  const byId = new Map(vertices.map((v) => [v.id, v]));
  const svg = h("svg", { id: "job-graph", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": "job graph" });
  svg.append(h("defs", {}, h("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" },
  h("path", { d: "M 0 0 L 10 5 L 0 10 z" }))));
  const edges = h("g", { class: "edges" });
  const labels = h("g", { class: "edge-labels" });
  for (const node of nodes) {
    const to = positions.get(node.id);
    (node.inputs || []).forEach((input) => {
      const from = positions.get(input.id);
      if (!from) return;
      const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2;
      const x2 = to.x, y2 = to.y + NODE_H / 2;
      const bend = Math.max(40, (x2 - x1) / 2);
      edges.append(h("path", { class: "edge", "data-from": input.id, "data-to": node.id,
        d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
        "marker-end": "url(#arrow)" }));
      const label = input.ship_strategy || "FORWARD";
      const lw = label.length * 6.8 + 12;
      const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
      labels.append(h("g", { class: "edge-label" },
        h("rect", { x: mx - lw / 2, y: my - 9, width: lw, height: 18, rx: 9 }),
        h("text", { x: mx, y: my + 4, "text-anchor": "middle" }, label)));
    });
  }
  svg.append(edges, labels);
  for (const node of nodes) {
    const { x, y } = positions.get(node.id);
    const vertex = byId.get(node.id) || {};
    const m = vertex.metrics || {};
    const status = vertex.status || "CREATED";
    const level = m["backpressure-level"] || "ok";
    const name = vertex.name || node.description || node.id;
    const g = h("g", { class: `vertex${node.id === selected ? " selected" : ""}`,
      "data-id": node.id, transform: `translate(${x},${y})`, onclick: () => onSelect(node.id) },
    h("title", {}, `${name}\n${node.description || ""}`),
    h("rect", { class: "box", width: NODE_W, height: NODE_H }),
    h("text", { class: "title", x: 12, y: 22 }, truncate(name, 32)),
    h("rect", { class: "status", x: NODE_W - 92, y: 32, width: 80, height: 17,
      fill: STATUS_FILL[status] || "#8a94a3" }),
    h("text", { class: "status-text", x: NODE_W - 52, y: 44.5, "text-anchor": "middle" },
      status),
    h("text", { class: "small", x: 12, y: 45 }, `Parallelism: ${node.parallelism}`),
    h("text", { x: 12, y: 68 }, `In: ${fmtCount(m["read-records"] || 0)}`),
    h("text", { x: 128, y: 68 }, `Out: ${fmtCount(m["write-records"] || 0)}`),
    h("circle", { class: `bp-${level}`, cx: 17, cy: 88, r: 5 }),
    h("text", { class: "small", x: 28, y: 92 },
      `Backpressure: ${level.toUpperCase()} (${pct(m["backpressured-ratio"])})`),
    h("text", { class: "small", x: 12, y: 111 }, `Busy: ${pct(m["busy-ratio"])}`));
    svg.append(g);
  }
  return svg;
}

// Status colours for SVG rects (the badges' CSS sets background, which SVG does not use).
const STATUS_FILL = {
  RUNNING: "#1f7ae0", FINISHED: "#2e9d5b", FAILED: "#d64545", CANCELED: "#7d8794",
  CANCELING: "#e0a21f", CANCELLING: "#e0a21f", FAILING: "#e0a21f", CREATED: "#9a7fd1",
  SCHEDULED: "#9a7fd1", DEPLOYING: "#9a7fd1",
};

// ------------------------------------------------------------------ job page

const TERMINAL = ["FINISHED", "CANCELED", "FAILED"];

function jobPage(jid, tab) {
  const errors = h("div");
  const head = h("div", { class: "job-head" });
  const message = h("div");
  const actionsNote = h("div", { id: "action-status" });
  const tabs = h("nav", { class: "tabs" }, ["overview", "exceptions", "checkpoints", "configuration"]
    .map((name) => h("a", { href: `#/jobs/${jid}/${name}`, id: `tab-${name}`,
      class: name === tab ? "active" : "" }, name[0].toUpperCase() + name.slice(1))));
  const body = h("div", { id: "tab-body" });
  main.append(errors, head, message, actionsNote, tabs, body);
  let selected = null, lastJob = null, confirming = false;
  const state = { savepointTrigger: null };

  function renderHead(job) {
    const finished = TERMINAL.includes(job.state);
    const actions = h("div", { class: "actions" });
    if (!finished) {
      if (confirming) {
        actions.append(h("span", {}, "Cancel this job?"),
          h("button", { class: "danger", id: "confirm-cancel", onclick: cancelJob }, "Yes, cancel"),
          h("button", { id: "abort-cancel", onclick: () => { confirming = false; renderHead(job); } },
            "No"));
      } else {
        actions.append(
          h("button", { id: "savepoint-button", onclick: showSavepointForm }, "Savepoint"),
          h("button", { class: "danger", id: "cancel-job",
            onclick: () => { confirming = true; renderHead(job); } }, "Cancel job"));
      }
    }
    head.replaceChildren(
      h("div", {},
        h("h1", { id: "job-name" }, job.name, " ", badge(job.state)),
        h("div", { class: "facts" },
          h("span", {}, "ID ", h("b", { class: "mono" }, job.jid)),
          h("span", {}, "Started ", h("b", {}, fmtTime(job["start-time"]))),
          h("span", {}, "Duration ", h("b", {}, fmtDuration(job.duration))),
          job["end-time"] > 0 ? h("span", {}, "Ended ", h("b", {}, fmtTime(job["end-time"]))) : null,
          h("span", {}, "Restarts ", h("b", {}, job.restarts ?? job.attempt ?? 0)))),
      actions);
    message.replaceChildren(
      job["status-message"] ? notice(job["status-message"]) : "",
      job.state === "FAILED" && job.failure
        ? notice(h("span", {}, "The job failed: ", h("b", {}, firstLine(job.failure)), " — ",
          h("a", { href: `#/jobs/${jid}/exceptions` }, "see the exceptions")), "error")
        : "");
  }

  async function cancelJob() {
    confirming = false;
    try {
      await api(`jobs/${jid}?mode=cancel`, { method: "PATCH" });
      actionsNote.replaceChildren(notice("Cancellation requested.", "ok"));
    } catch (error) {
      actionsNote.replaceChildren(notice(`Could not cancel: ${error.message}`, "error"));
    }
    pollerHandle.now();
  }

  function showSavepointForm() {
    const input = h("input", { type: "text", id: "savepoint-dir",
      placeholder: "target directory (empty: state.savepoints.dir)" });
    const cancelToo = h("input", { type: "checkbox", id: "savepoint-cancel" });
    actionsNote.replaceChildren(h("div", { class: "notice" },
      h("div", { class: "toolbar" }, "Savepoint to ", input,
        h("label", {}, cancelToo, " and cancel the job"),
        h("button", { class: "primary", id: "savepoint-trigger",
          onclick: () => triggerSavepoint(input.value.trim(), cancelToo.checked) }, "Trigger"),
        h("button", { onclick: () => actionsNote.replaceChildren() }, "Close"))));
    input.focus();
  }

  async function triggerSavepoint(dir, cancelJobToo) {
    const status = h("div", { id: "savepoint-status" });
    actionsNote.replaceChildren(status);
    try {
      const answer = await api(`jobs/${jid}/savepoints`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ "target-directory": dir || null, "cancel-job": cancelJobToo }),
      });
      state.savepointTrigger = answer["request-id"];
      status.replaceChildren(notice(`Savepoint triggered (${state.savepointTrigger})…`));
      followSavepoint(status, state.savepointTrigger);
    } catch (error) {
      status.replaceChildren(notice(`Savepoint not taken: ${error.message}`, "error"));
    }
  }

  async function followSavepoint(status, trigger) {
    for (let i = 0; i < 600 && current === pollerHandle; i++) {
      try {
        const answer = await api(`jobs/${jid}/savepoints/${encodeURIComponent(trigger)}`);
        const id = (answer.status || {}).id;
        const operation = answer.operation || {};
        if (id === "COMPLETED") {
          const failure = operation["failure-cause"];
          status.replaceChildren(failure
            ? notice(`Savepoint failed: ${failure["stack-trace"] || failure.class || JSON.stringify(failure)}`, "error")
            : notice(`Savepoint completed: ${operation.location}`, "ok"));
          return;
        }
      } catch (error) {
        status.replaceChildren(notice(`Savepoint status unknown: ${error.message}`, "error"));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  function select(id) {
    selected = selected === id ? null : id;
    pollerHandle.now();
  }

  async function renderOverviewTab(job) {
    const graph = drawGraph(job.plan, job.vertices, selected, select);
    const rows = job.vertices.map((v) => h("tr", {
      class: `clickable${v.id === selected ? " selected" : ""}`, onclick: () => select(v.id),
      "data-vertex": v.id },
    h("td", {}, v.name), h("td", {}, badge(v.status)), h("td", { class: "num" }, v.parallelism),
    h("td", { class: "num" }, fmtCount(v.metrics["read-records"])),
    h("td", { class: "num" }, fmtCount(v.metrics["write-records"])),
    h("td", {}, h("span", { class: `bp ${v.metrics["backpressure-level"]}` }),
      `${v.metrics["backpressure-level"].toUpperCase()} ${pct(v.metrics["backpressured-ratio"])}`),
    h("td", { class: "num" }, pct(v.metrics["busy-ratio"])),
    h("td", {}, taskCounts(v.tasks))));
    const parts = [h("div", { class: "graph-wrap" }, graph),
      h("h2", {}, "Vertices"),
      table(["Name", "Status", ["Parallelism", "num"], ["Records in", "num"],
        ["Records out", "num"], "Backpressure", ["Busy", "num"], "Tasks"], rows, "No vertices",
      { id: "vertex-table" })];
    if (selected) {
      try {
        const vertex = await api(`jobs/${jid}/vertices/${encodeURIComponent(selected)}`);
        parts.push(h("h2", {}, `Subtasks of ${vertex.name}`), table(
          ["#", "Status", ["Duration", "num"], "Host", "Endpoint", "Process",
            ["Records in", "num"], ["Records out", "num"], "Watermark", "Backpressure",
            ["Busy", "num"]],
          vertex.subtasks.map((s) => h("tr", {},
            h("td", {}, s.subtask), h("td", {}, badge(s.status)),
            h("td", { class: "num" }, fmtDuration(s.duration)),
            h("td", {}, s.host || "–"),
            h("td", { class: "mono" }, s.endpoint || "–"),
            h("td", { class: "mono" }, s.process
              ? `${s.process.pid} · ${fmtBytes(s.process.memoryRss)}` : "–"),
            h("td", { class: "num" }, fmtCount(s.metrics["read-records"])),
            h("td", { class: "num" }, fmtCount(s.metrics["write-records"])),
            h("td", {}, s.watermark === null ? "–" : fmtTime(s.watermark)),
            h("td", {}, h("span", { class: `bp ${s["backpressure-level"]}` }),
              pct(s["backpressured-ratio"])),
            h("td", { class: "num" }, pct(s["busy-ratio"])))),
          "No subtasks", { id: "subtask-table" }));
      } catch (error) {
        parts.push(notice(error.message, "error"));
      }
    }
    body.replaceChildren(...parts);
  }

  async function renderExceptionsTab() {
    const answer = await api(`jobs/${jid}/exceptions`);
    const entries = answer.exceptionHistory.entries;
    if (!entries.length) {
      body.replaceChildren(h("p", { class: "muted", id: "no-exceptions" },
        "No exceptions: the job has not failed."));
      return;
    }
    body.replaceChildren(h("div", { id: "exceptions" }, entries.map((entry) =>
      h("div", { class: "exception panel" },
        h("div", { class: "meta" }, h("b", {}, entry.exceptionName), " at ",
          fmtTime(entry.timestamp), entry.taskName ? ` in ${entry.taskName}` : "",
          entry.location ? ` on ${entry.location}` : ""),
        h("pre", { class: "trace" }, entry.stacktrace)))));
  }

  async function renderCheckpointsTab() {
    const [stats, config] = await Promise.all([
      api(`jobs/${jid}/checkpoints`), api(`jobs/${jid}/checkpoints/config`)]);
    const c = stats.counts;
    const disabled = config.mode === "disabled" || config.checkpointing === "disabled";
    const latest = stats.latest || {};
    const describe = (label, cp) => [h("dt", {}, label), h("dd", {}, cp
      ? `#${cp.id} at ${fmtTime(cp.trigger_timestamp)}, ${fmtDuration(cp.end_to_end_duration)}` +
        `${cp.state_size !== undefined ? ", " + fmtBytes(cp.state_size) : ""}` +
        `${cp.external_path ? " — " + cp.external_path : ""}` +
        `${cp.failure_message ? " — " + cp.failure_message : ""}`
      : "none")];
    const history = (stats.history || []).map((cp) => h("tr", { "data-checkpoint": cp.id },
      h("td", {}, cp.id), h("td", {}, badge(cp.status)),
      h("td", {}, cp.is_savepoint ? "savepoint" : "checkpoint"),
      h("td", {}, fmtTime(cp.trigger_timestamp)),
      h("td", {}, fmtTime(cp.latest_ack_timestamp)),
      h("td", { class: "num" }, fmtDuration(cp.end_to_end_duration)),
      h("td", { class: "num" }, fmtBytes(cp.state_size)),
      h("td", {}, `${cp.num_acknowledged_subtasks ?? "–"}/${cp.num_subtasks ?? "–"}`)));
    body.replaceChildren(
      disabled ? notice("Checkpointing is disabled for this job " +
        "(set execution.checkpointing.interval to enable it).") : "",
      h("div", { class: "cards", id: "checkpoint-counts", style: "margin-top:16px" },
        [["Triggered", c.triggered ?? c.total], ["In progress", c.in_progress],
          ["Completed", c.completed], ["Failed", c.failed], ["Restored", c.restored]]
          .map(([label, value]) => h("div", { class: "card" }, h("div", { class: "label" }, label),
            h("div", { class: "figure", "data-count": label.toLowerCase().replace(" ", "_") },
              value ?? 0)))),
      h("h2", {}, "Latest"),
      h("div", { class: "panel" }, h("dl", { class: "kv", id: "checkpoint-latest" },
        describe("Completed", latest.completed), describe("Savepoint", latest.savepoint),
        describe("Failed", latest.failed), describe("Restored", latest.restored))),
      h("h2", {}, "History"),
      table(["ID", "Status", "Type", "Triggered", "Acknowledged", ["Duration", "num"],
        ["State size", "num"], "Subtasks"], history, "No checkpoints yet",
      { id: "checkpoint-history" }),
      h("h2", {}, "Configuration"),
      configTable(config, "checkpoint-config"));
  }

  async function renderConfigurationTab() {
    const config = await api(`jobs/${jid}/config`);
    const execution = config["execution-config"] || {};
    const user = execution["user-config"] || {};
    body.replaceChildren(
      h("h2", {}, "Execution"),
      configTable(Object.fromEntries(Object.entries(execution)
        .filter(([key]) => key !== "user-config")), "execution-config"),
      h("h2", {}, "Job configuration"),
      configTable(user, "user-config"));
  }

  async function refresh() {
    const job = await api(`jobs/${jid}`);
    lastJob = job;
    renderHead(job);
    if (tab === "exceptions") await renderExceptionsTab();
    else if (tab === "checkpoints") await renderCheckpointsTab();
    else if (tab === "configuration") await renderConfigurationTab();
    else await renderOverviewTab(job);
  }

  // The graph refreshes every second; the other tabs while the job runs, less often.
  const interval = tab === "overview" ? 1000 : 3000;
  const pollerHandle = poller(async () => {
    if (lastJob && TERMINAL.includes(lastJob.state) && tab === "configuration") return;
    await refresh();
  }, interval, errors);
  return pollerHandle;
}

function firstLine(text) {
  const lines = String(text).trim().split("\n");
  return lines[lines.length - 1];
}

function configTable(object, id) {
  const rows = Object.entries(object || {}).sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => h("tr", {}, h("td", { class: "mono" }, key),
      h("td", { class: "mono" }, typeof value === "object" ? JSON.stringify(value) : String(value))));
  return table(["Key", "Value"], rows, "Nothing set", { id });
}

// ------------------------------------------------------------------ task managers

function taskManagersPage() {
  const errors = h("div");
  const list = h("div");
  main.append(h("h1", {}, "Task Managers"), errors, list);
  async function refresh() {
    const { taskmanagers } = await api("taskmanagers");
    const rows = taskmanagers.map((tm) => {
      const link = `#/taskmanagers/${encodeURIComponent(tm.id)}`;
      return h("tr", { "data-tm": tm.id },
        h("td", {}, h("a", { href: link, class: "mono" }, tm.id)),
        h("td", {}, tm.hostname), h("td", { class: "mono" }, tm.address),
        h("td", { class: "num" }, tm.slotsNumber - tm.freeSlots),
        h("td", { class: "num" }, tm.freeSlots),
        h("td", { class: "num" }, tm.hardware.cpuCores),
        h("td", { class: "num" }, fmtBytes(tm.hardware.physicalMemory)),
        h("td", { class: "num" }, fmtBytes(tm.hardware.freeMemory)),
        h("td", {}, fmtTime(tm.timeSinceLastHeartbeat)),
        h("td", {}, h("a", { href: `${link}/log`, class: "log-link" }, "Log"), " · ",
          h("a", { href: `${link}/stdout`, class: "stdout-link" }, "Stdout"), " · ",
          h("a", { href: `${link}/metrics` }, "Metrics")));
    });
    list.replaceChildren(table(["ID", "Host", "Address", ["Slots used", "num"],
      ["Slots free", "num"], ["CPU cores", "num"], ["Memory", "num"], ["Free memory", "num"],
      "Last heartbeat", ""], rows, "No task managers registered", { id: "tm-table" }));
  }
  return poller(refresh, refreshInterval, errors);
}

function logView(path, id) {
  const pre = h("pre", { id }, "Loading…");
  const status = h("span", { class: "muted" });
  async function load() {
    try {
      const response = await fetch(path);
      const content = await response.text();
      if (!response.ok) {
        let message = content;
        try { message = JSON.parse(content).errors.join("; "); } catch (e) { /* plain text */ }
        throw new Error(message);
      }
      pre.textContent = content || "(empty)";
      pre.scrollTop = pre.scrollHeight;
      const file = response.headers.get("X-Strom-Log-Path");
      status.textContent = file ? `${file} — loaded ${fmtTime(Date.now())}` : "";
    } catch (error) {
      pre.textContent = `Could not load ${path}: ${error.message}`;
    }
  }
  load();
  return h("div", {}, h("div", { class: "toolbar" },
    h("button", { onclick: load }, "Refresh"),
    h("a", { href: path, target: "_blank" }, "Open as text"), status), pre);
}

function taskManagerPage(id, tab) {
  const errors = h("div");
  const summary = h("div", { id: "tm-summary" });
  const base = `#/taskmanagers/${encodeURIComponent(id)}`;
  const tabs = h("nav", { class: "tabs" }, ["metrics", "log", "stdout"].map((name) =>
    h("a", { href: `${base}/${name}`, id: `tab-${name}`, class: name === tab ? "active" : "" },
      name[0].toUpperCase() + name.slice(1))));
  const body = h("div");
  main.append(h("h1", {}, h("a", { href: "#/taskmanagers" }, "Task Managers"), " / ",
    h("span", { class: "mono" }, id)), errors, summary, tabs, body);
  const rest = `taskmanagers/${encodeURIComponent(id)}`;
  if (tab === "log") body.append(logView(`${rest}/log`, "log-view"));
  if (tab === "stdout") body.append(logView(`${rest}/stdout`, "stdout-view"));

  async function refresh() {
    const tm = await api(rest);
    const m = tm.metrics || {};
    summary.replaceChildren(h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "label" }, "Slots"),
        h("div", { class: "figure" }, `${tm.slotsNumber - tm.freeSlots} / ${tm.slotsNumber}`),
        h("div", { class: "sub" }, `${tm.freeSlots} free`)),
      h("div", { class: "card" }, h("div", { class: "label" }, "CPU"),
        h("div", { class: "figure" }, m.cpuLoad === undefined ? "–" : pct(m.cpuLoad)),
        h("div", { class: "sub" }, `of one core; ${tm.hardware.cpuCores} cores on ${tm.hostname}`)),
      h("div", { class: "card" }, h("div", { class: "label" }, "Memory"),
        h("div", { class: "figure" }, fmtBytes(m.memoryRss)),
        h("div", { class: "sub" }, `resident; ${fmtBytes(tm.hardware.freeMemory)} free of ` +
          `${fmtBytes(tm.hardware.physicalMemory)}`)),
      h("div", { class: "card" }, h("div", { class: "label" }, "Process"),
        h("div", { class: "figure" }, tm.pid),
        h("div", { class: "sub" }, `${m.threads ?? "–"} threads, up ${fmtDuration(m.uptime)}`))),
    tm.metricsError ? notice(tm.metricsError, "error") : "");
    if (tab === "metrics") {
      body.replaceChildren(
        h("h2", {}, "Tasks"),
        table(["Job", "Task", ["Subtask", "num"], "Status", ["Records in", "num"],
          ["Records out", "num"]], (tm.tasks || []).map((t) => h("tr", {},
          h("td", {}, h("a", { href: `#/jobs/${t.jobId}`, class: "mono" }, t.jobId.slice(0, 8))),
          h("td", {}, t.name), h("td", { class: "num" }, t.subtask), h("td", {}, badge(t.status)),
          h("td", { class: "num" }, fmtCount(t["read-records"])),
          h("td", { class: "num" }, fmtCount(t["write-records"])))), "No tasks running here",
        { id: "tm-tasks" }),
        h("h2", {}, "Slot processes"),
        table([["Pid", "num"], "Job", ["Attempt", "num"], ["Slot", "num"], ["Memory", "num"],
          ["Threads", "num"], ["Tasks", "num"]], (tm.slotProcesses || []).map((p) =>
          h("tr", {}, h("td", { class: "num" }, p.pid),
            h("td", {}, h("a", { href: `#/jobs/${p.jobId}`, class: "mono" }, p.jobId.slice(0, 8))),
            h("td", { class: "num" }, p.attempt), h("td", { class: "num" }, p.slot),
            h("td", { class: "num" }, fmtBytes(p.memoryRss)),
            h("td", { class: "num" }, p.threads), h("td", { class: "num" }, p.tasks))),
        "No slot processes: no job runs here", { id: "tm-slot-processes" }),
        h("h2", {}, "Details"),
        h("div", { class: "panel" }, h("dl", { class: "kv" },
          h("dt", {}, "Address"), h("dd", { class: "mono" }, tm.address),
          h("dt", {}, "Allocated slots"), h("dd", {}, (tm.allocatedSlots || [])
            .map((s) => `#${s.index} → ${s.jobId.slice(0, 8)}`).join(", ") || "none"),
          h("dt", {}, "Prometheus"), h("dd", {}, h("a", { href: `${rest}/metrics`,
            target: "_blank" }, "metrics via the JobManager"),
          tm.metricsPort ? ` · own endpoint on port ${tm.metricsPort}` : "")),
        ));
    }
  }
  return poller(refresh, tab === "metrics" ? refreshInterval : 0, errors);
}

// ------------------------------------------------------------------ job manager

function jobManagerPage(tab) {
  const errors = h("div");
  const tabs = h("nav", { class: "tabs" }, ["config", "log", "stdout"].map((name) =>
    h("a", { href: `#/jobmanager/${name}`, id: `tab-${name}`, class: name === tab ? "active" : "" },
      name === "config" ? "Configuration" : name[0].toUpperCase() + name.slice(1))));
  const body = h("div");
  main.append(h("h1", {}, "Job Manager"), errors, tabs, body);
  if (tab === "log") body.append(logView("jobmanager/log", "jm-log"));
  else if (tab === "stdout") body.append(logView("jobmanager/stdout", "jm-stdout"));
  else {
    return poller(async () => {
      const entries = await api("jobmanager/config");
      body.replaceChildren(h("h2", {}, "Configuration"), configTable(
        Object.fromEntries(entries.map((e) => [e.key, e.value])), "jm-config"));
    }, 0, errors);
  }
  return null;
}

// ------------------------------------------------------------------ start

async function start() {
  try {
    const config = await api("config");
    refreshInterval = Math.max(1000, Math.min(config["refresh-interval"] || 3000, 10000));
    document.getElementById("version").textContent = `Strom ${config["strom-version"]}`;
  } catch (error) {
    /* the page shows the error when it loads its data */
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
