// The tandem dashboard: polls this agent's API once a second and redraws. Read-only until a
// token is given; the token stays in this tab (sessionStorage) and goes only to this agent.
"use strict";

const COLORS = ["#2358a6", "#c2410c", "#7c3aed", "#0f766e", "#a16207", "#be185d"];
const state = { cluster: null, token: sessionStorage.getItem("tandem-token") || "" };

const $ = (selector) => document.querySelector(selector);
const svgNode = (tag, attributes) => {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
};
const text = (value) => (value === null || value === undefined ? "—" : String(value));

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes, unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function cell(row, value, className) {
  const td = row.insertCell();
  td.textContent = text(value);
  if (className) td.className = className;
  return td;
}

function renderSummary(cluster) {
  $("#cluster-name").textContent = cluster.cluster;
  const parts = [cluster.leader ? `primary: ${cluster.leader}` : "no primary",
                 `timeline ${text(cluster.timeline)}`];
  if (cluster.paused) parts.push("PAUSED: no automatic failover");
  if (!cluster.store_reachable) parts.push("store unreachable");
  $("#summary").textContent = parts.join(" · ");
  $("#summary").classList.toggle("warn", cluster.paused || !cluster.store_reachable ||
                                 !cluster.leader);
}

function renderMembers(cluster) {
  const body = $("#members tbody");
  body.replaceChildren();
  for (const member of cluster.members) {
    const row = body.insertRow();
    row.dataset.node = member.name;
    cell(row, member.name, "name");
    cell(row, member.role, `role role-${member.role}`);
    const pending = member.pending_restart && member.pending_restart.length ?
        ` · restart pending: ${member.pending_restart.join(", ")}` : "";
    cell(row, member.state + pending, `state state-${member.state}`);
    cell(row, member.timeline);
    cell(row, member.received_lsn);
    cell(row, member.replayed_lsn);
    const lag = member.lag_bytes === undefined ? "—" :
        formatBytes(member.lag_bytes) +
        (member.lag_seconds === undefined ? "" : ` / ${member.lag_seconds.toFixed(3)} s`);
    cell(row, lag, "lag");
    cell(row, member.upstream || "");
    cell(row, `${member.host}:${member.port}`, "endpoint");
  }
  const select = $("#candidate");
  const chosen = select.value;
  select.replaceChildren(new Option("best standby", ""));
  for (const member of cluster.members) {
    if (member.role === "replica" || member.role === "sync_standby") {
      select.add(new Option(member.name, member.name, false, member.name === chosen));
    }
  }
}

function renderTopology(cluster) {
  const svg = $("#topology");
  svg.replaceChildren();
  const defs = svgNode("defs", {});
  const marker = svgNode("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
                                     markerWidth: "7", markerHeight: "7", orient: "auto" });
  marker.append(svgNode("path", { d: "M0,0 L10,5 L0,10 z", fill: "#6b6b70" }));
  defs.append(marker);
  svg.append(defs);
  const members = cluster.members;
  const leader = members.find((m) => m.role === "leader");
  const others = members.filter((m) => m !== leader);
  const position = new Map();
  if (leader) position.set(leader.name, { x: 320, y: 40 });
  others.forEach((member, index) => {
    const step = 640 / (others.length + 1);
    position.set(member.name, { x: step * (index + 1), y: 150 });
  });
  for (const member of others) {
    const from = position.get(member.upstream);
    if (!from || member.state !== "standby") continue;
    const to = position.get(member.name);
    svg.append(svgNode("line", { class: "edge", x1: from.x, y1: from.y + 22, x2: to.x,
                                 y2: to.y - 24 }));
  }
  for (const member of members) {
    const at = position.get(member.name);
    const group = svgNode("g", { class: `node ${member.role}`, "data-node": member.name });
    group.append(svgNode("rect", { x: at.x - 70, y: at.y - 22, width: 140, height: 44, rx: 6 }));
    const name = svgNode("text", { x: at.x, y: at.y - 3 });
    name.textContent = member.name;
    const role = svgNode("text", { x: at.x, y: at.y + 14 });
    role.textContent = member.role === "leader" ? "primary" : `${member.role} · ${member.state}`;
    group.append(name, role);
    svg.append(group);
  }
}

function renderSlots(cluster) {
  const body = $("#slots tbody");
  body.replaceChildren();
  const most = Math.max(1, ...cluster.slots.map((slot) => slot.retained_bytes || 0));
  for (const slot of cluster.slots) {
    const row = body.insertRow();
    row.dataset.slot = slot.name;
    cell(row, slot.name);
    cell(row, slot.active ? "yes" : "no", slot.active ? "" : "warn");
    cell(row, slot.wal_status, slot.wal_status === "lost" ? "warn" : "");
    const td = cell(row, formatBytes(slot.retained_bytes));
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${(100 * (slot.retained_bytes || 0)) / most}%`;
    bar.append(fill);
    td.append(bar);
  }
}

function renderHistory(history) {
  const body = $("#history tbody");
  body.replaceChildren();
  for (const entry of history.slice().reverse()) {
    const row = body.insertRow();
    cell(row, new Date(entry.time_ms).toLocaleString());
    cell(row, entry.from || "");
    cell(row, entry.to);
    cell(row, entry.timeline);
    cell(row, entry.lost_bytes === null ? "" : formatBytes(entry.lost_bytes));
    cell(row, entry.reason);
  }
}

function renderLag(lag) {
  const svg = $("#lag-chart");
  svg.replaceChildren();
  const samples = lag.samples;
  const width = 640, height = 220, left = 60, bottom = 20;
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.lag)))].sort();
  const now = Date.now(), start = now - lag.window_s * 1000;
  const most = Math.max(1024, ...samples.flatMap((s) => Object.values(s.lag)));
  const x = (t) => left + ((t - start) / (now - start)) * (width - left - 5);
  const y = (v) => height - bottom - (v / most) * (height - bottom - 10);
  svg.append(svgNode("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom,
                               stroke: "#d9d9d4" }));
  const top = svgNode("text", { x: 2, y: 14, "font-size": 11 });
  top.textContent = formatBytes(most);
  const zero = svgNode("text", { x: 2, y: height - bottom, "font-size": 11 });
  zero.textContent = "0";
  svg.append(top, zero);
  const legend = $("#lag-legend");
  legend.replaceChildren();
  names.forEach((name, index) => {
    const color = COLORS[index % COLORS.length];
    const points = samples.filter((s) => name in s.lag)
                          .map((s) => `${x(s.t).toFixed(1)},${y(s.lag[name]).toFixed(1)}`);
    svg.append(svgNode("polyline", { points: points.join(" "), fill: "none", stroke: color,
                                     "stroke-width": 1.5, "data-node": name }));
    const key = document.createElement("span");
    key.style.color = color;
    key.textContent = `■ ${name}`;
    legend.append(key);
  });
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function refresh() {
  try {
    const [cluster, history, lag] = await Promise.all([getJson("/cluster"), getJson("/history"),
                                                       getJson("/lag")]);
    state.cluster = cluster;
    renderSummary(cluster);
    renderMembers(cluster);
    renderTopology(cluster);
    renderSlots(cluster);
    renderHistory(history);
    renderLag(lag);
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $("#updated").textContent = `cannot reach the agent: ${error.message}`;
  }
}

function renderMode() {
  const unlocked = state.token !== "";
  $("#mode").textContent = unlocked ? "changes enabled" : "read-only";
  for (const id of ["#switchover-button", "#pause-button", "#resume-button"]) {
    $(id).disabled = !unlocked;
  }
  $("#controls").classList.toggle("locked", !unlocked);
}

async function post(path, body) {
  const result = $("#action-result");
  result.className = "";
  result.textContent = `${path.slice(1)}…`;
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Authorization": `Bearer ${state.token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const reply = await response.json();
    result.textContent = reply.message || reply.error || `HTTP ${response.status}`;
    if (!response.ok) result.className = "error";
    if (response.status === 401) {
      state.token = "";
      sessionStorage.removeItem("tandem-token");
      renderMode();
    }
  } catch (error) {
    result.className = "error";
    result.textContent = error.message;
  }
  refresh();
}

$("#auth").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("#token").value.trim();
  $("#token").value = "";
  if (state.token) sessionStorage.setItem("tandem-token", state.token);
  else sessionStorage.removeItem("tandem-token");
  renderMode();
});
$("#switchover-button").addEventListener("click", () => {
  const body = {};
  if (state.cluster && state.cluster.leader) body.leader = state.cluster.leader;
  if ($("#candidate").value) body.candidate = $("#candidate").value;
  post("/switchover", body);
});
$("#pause-button").addEventListener("click", () => post("/pause"));
$("#resume-button").addEventListener("click", () => post("/resume"));

renderMode();
refresh();
setInterval(refresh, 1000);
