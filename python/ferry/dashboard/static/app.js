// The dashboard page: polls /api/snapshot every second and redraws.
"use strict";

const COLORS = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6"];

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function micros(us) { return us >= 1000 ? (us / 1000).toFixed(2) + " ms" : us + " us"; }

// Fills <table id=id> with a header and one row per item; columns are
// [title, function(row) -> text, css class].
function table(id, columns, rows) {
  const el = document.getElementById(id);
  const head = "<tr>" + columns.map(c => `<th>${c[0]}</th>`).join("") + "</tr>";
  const body = rows.map(r => "<tr>" + columns.map(c => {
    const text = String(c[1](r));
    const cls = typeof c[2] === "function" ? c[2](r) : (c[2] || "");
    return `<td class="${cls}">${escapeHtml(text)}</td>`;
  }).join("") + "</tr>").join("");
  el.innerHTML = head + (body || `<tr><td colspan="${columns.length}">none</td></tr>`);
}

function escapeHtml(s) {
  return s.replace(/[&<>"]/g, ch => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[ch]));
}

function chart(series) {
  const svg = document.getElementById("chart");
  const names = Object.keys(series).sort();
  const max = Math.max(1, ...names.flatMap(n => series[n]));
  svg.innerHTML = names.map((n, k) => {
    const points = series[n].map((v, i, all) =>
      `${(i / Math.max(1, all.length - 1)) * 600},${155 - (v / max) * 145}`).join(" ");
    return `<polyline fill="none" stroke="${COLORS[k % COLORS.length]}" stroke-width="2" ` +
           `points="${points}"/>`;
  }).join("") + `<text x="4" y="12" font-size="10">${bytes(max)}/s</text>`;
  document.getElementById("legend").innerHTML = names.map((n, k) =>
    `<span><i style="background:${COLORS[k % COLORS.length]}"></i>${escapeHtml(n)}</span>`
  ).join("") || "no transfers in the last minute";
}

function render(s) {
  document.getElementById("target").textContent = s.target;
  document.getElementById("updated").textContent =
    "updated " + new Date(s.time * 1000).toLocaleTimeString();
  const stores = s.store_bytes;
  table("nodes", [
    ["address", n => n.address], ["state", n => n.alive ? "alive" : "dead: " + n.death_cause],
    ["resources in use", n => n.resources], ["actors", n => n.actors, "num"],
    ["object store", n => bytes((stores[n.node_id] || {}).object_store || 0), "num"],
    ["tensor store", n => bytes((stores[n.node_id] || {}).tensor_store || 0), "num"],
  ], s.nodes);
  table("transfers", [
    ["object", t => t.object_id.slice(0, 12)], ["from", t => t.from], ["to", t => t.to],
    ["transport", t => t.transport], ["path", t => t.path],
    ["bytes", t => t.size, "num"], ["time", t => micros(t.micros), "num"],
    ["MB/s", t => t.throughput_mb_s, "num"], ["error", t => t.error || "", t => t.error ? "bad" : ""],
  ], s.transfers.slice().reverse().slice(0, 50));
  table("actors", [
    ["class", a => a.class_name], ["name", a => a.name || "-"], ["state", a => a.state,
      a => a.state === "DEAD" ? "bad" : ""],
    ["node", a => a.node_ip], ["pid", a => a.pid, "num"], ["restarts", a => a.num_restarts, "num"],
  ], s.actors.filter(a => a.class_name !== "ferry-task-worker"));
  table("groups", [
    ["name", g => g.name], ["backend", g => g.backend], ["members", g => g.members.join(", ")],
    ["state", g => g.state, g => g.state === "ALIVE" ? "" : "bad"],
  ], s.groups);
  table("objects", [
    ["object", o => o.object_id.slice(0, 12)], ["owner", o => o.owner], ["kind", o => o.kind],
    ["size", o => bytes(o.size), "num"], ["transport", o => o.transport || "-"],
    ["refs", o => o.local_refs, "num"], ["task args", o => o.task_refs, "num"],
    ["borrowers", o => o.borrowers.join(", ") || "-"],
    ["tensors in", o => o.tensors_in.join(", ") || "-"], ["age", o => o.age_s.toFixed(1) + " s", "num"],
  ], s.objects.slice(0, 200));
  chart(s.throughput);
  document.getElementById("problems").textContent =
    s.unanswered.map(u => "no answer: " + u).join("; ");
}

async function refresh() {
  try {
    const response = await fetch("/api/snapshot");
    if (!response.ok) throw new Error(response.status + " " + await response.text());
    render(await response.json());
  } catch (e) {
    document.getElementById("problems").textContent = "cannot read the ferry: " + e.message;
  }
  setTimeout(refresh, 1000);
}

refresh();
