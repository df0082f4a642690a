// The gateway's dashboard: plain DOM, no dependencies, no requests outside this gateway.
// Every value from the gateway is put in the page as text, never as markup.
"use strict";

const KEY = "gateway-admin-key";
const REFRESH_MS = 3000;
const $ = (id) => document.getElementById(id);
let timer = null;
let current = "overview";

// --- small helpers --------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  return node;
}

const num = (n) => (n === undefined || n === null ? "" : Number(n).toLocaleString("en-US"));
const cell = (value, cls) => el("td", { class: cls }, value);
const numCell = (value) => cell(num(value), "num");

// Replace a table's rows; a button that had the focus keeps it (a keyboard user is not thrown
// out of the table by the periodic refresh).
function fill(tbody, rows, empty) {
  const focused = tbody.contains(document.activeElement) && document.activeElement.getAttribute("aria-label");
  tbody.replaceChildren(...rows);
  if (focused) {
    const again = [...tbody.querySelectorAll("[aria-label]")].find((e) => e.getAttribute("aria-label") === focused);
    if (again) again.focus();
  }
  if (!rows.length) {
    const columns = tbody.closest("table").querySelectorAll("thead th").length;
    tbody.append(el("tr", {}, el("td", { colspan: columns, class: "small" }, empty)));
  }
}

function say(text, kind) {
  const message = $("message");
  message.textContent = text || "";
  message.className = "message" + (kind ? " " + kind : "");
}

function duration(seconds) {
  if (seconds >= 3600) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  if (seconds >= 60) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${seconds} s`;
}

// --- talking to the gateway ---------------------------------------------------------------

class Refused extends Error {}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  // An empty key: a gateway without keys lets anyone in.
  const headers = Object.assign(key ? { authorization: "Bearer " + key } : {}, options.headers);
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 || response.status === 403) {
    let detail = "";
    try { detail = (await response.json()).error.message; } catch (_) { /* not JSON */ }
    throw new Refused(refusal(response.status, detail));
  }
  return response;
}

async function apiJson(path, options) {
  const response = await api(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
  return body;
}

function refusal(status, detail) {
  if (status === 401) return "The gateway did not accept this key. Check the admin key and try again.";
  return "This key may not open admin data: sign in with one of the gateway's admin keys." +
    (detail ? ` (${detail})` : "");
}

// --- signing in ---------------------------------------------------------------------------

async function signIn(key, quiet) {
  sessionStorage.setItem(KEY, key);
  try {
    await apiJson("/admin/backends");
  } catch (err) {
    sessionStorage.removeItem(KEY);
    if (quiet) return;
    const message = $("sign-in-message");
    message.textContent = err instanceof Refused ? err.message : "The gateway did not answer: " + err.message;
    message.className = "message error";
    return;
  }
  $("sign-in-message").textContent = "";
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  show(current);
}

function signOut(reason) {
  sessionStorage.removeItem(KEY);
  clearTimeout(timer);
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("summary").textContent = "";
  const message = $("sign-in-message");
  message.textContent = reason || "";
  message.className = "message" + (reason ? " error" : "");
  $("admin-key").focus();
}

// --- tabs -------------------------------------------------------------------------------

const views = { overview, accounts, usage, requests, config };

function show(name) {
  current = name;
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.getAttribute("aria-controls") === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  try {
    await views[current]();
  } catch (err) {
    if (err instanceof Refused) return signOut(err.message);
    say("Could not load: " + err.message, "error");
  }
  if (current !== "config" && current !== "usage") timer = setTimeout(refresh, REFRESH_MS);
}

// --- overview -----------------------------------------------------------------------------

function bars(container, series, parts, labelOf) {
  const width = 600, height = 150, gap = 1;
  const max = Math.max(1, ...series.map((s) => parts.reduce((sum, p) => sum + (s[p.key] || 0), 0)));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" });
  const slot = width / Math.max(series.length, 1);
  series.forEach((s, i) => {
    let y = height;
    for (const part of parts) {
      const h = ((s[part.key] || 0) / max) * (height - 10);
      if (h <= 0) continue;
      y -= h;
      const rect = svg("rect", { x: i * slot + gap, y, width: Math.max(slot - 2 * gap, 1), height: h, class: part.class });
      const title = svg("title", {});
      title.textContent = `${labelOf(s)}: ${num(s[part.key])} ${part.label}`;
      rect.append(title);
      chart.append(rect);
    }
  });
  chart.setAttribute("aria-label", `${series.length} bars, largest ${num(max)}`);
  container.replaceChildren(chart);
}

async function overview() {
  const [backends, activity] = await Promise.all([apiJson("/admin/backends"), apiJson("/admin/activity")]);
  const perBackend = {};
  const now = Math.floor(Date.now() / 60000);
  const minutes = new Map();
  for (const minute of activity.data) {
    const total = { requests: 0, errors: 0 };
    for (const [name, b] of Object.entries(minute.backends)) {
      total.requests += b.requests;
      total.errors += b.errors;
      const sum = perBackend[name] || (perBackend[name] = { requests: 0, errors: 0, ms: 0, n: 0 });
      sum.requests += b.requests;
      sum.errors += b.errors;
      if (b.first_byte_ms_avg !== null) { sum.ms += b.first_byte_ms_avg * b.requests; sum.n += b.requests; }
    }
    minutes.set(minute.minute / 60, total);
  }
  const series = [];
  for (let m = now - 59; m <= now; m++) {
    const t = minutes.get(m) || { requests: 0, errors: 0 };
    series.push({ minute: m, ok: t.requests - t.errors, errors: t.errors });
  }
  bars($("activity-chart"), series,
    [{ key: "ok", class: "bar-ok", label: "answered" }, { key: "errors", class: "bar-bad", label: "errors" }],
    (s) => new Date(s.minute * 60000).toLocaleTimeString());
  $("in-flight").textContent = `In flight now: ${backends.in_flight}.`;
  const state = backends.state || { backend: "local" };
  const shared = $("shared-state");
  if (state.backend === "redis") {
    shared.textContent = state.up
      ? `Shared state: Redis (prefix ${state.prefix}), reachable since ${state.since}.`
      : `Shared state: Redis is unreachable since ${state.since} (${state.last_error || "no answer"}); this replica serves on its own state.`;
    shared.className = state.up ? "state-ok" : "state-bad";
  } else {
    shared.textContent = "State: this replica only (local).";
    shared.className = "small";
  }

  fill($("backends").tBodies[0], backends.data.map((b) => {
    const health = b.health || {};
    const open = backends.circuits.some((c) => c.backend === b.name && c.state !== "closed");
    const state = !b.enabled ? ["disabled", "state-warn"]
      : b.local_available === false ? ["no usable account", "state-bad"]
      : health.up === false ? ["down (health check)", "state-bad"]
      : open ? ["circuit open", "state-warn"] : ["serving", "state-ok"];
    const hour = perBackend[b.name];
    return el("tr", {},
      el("th", { scope: "row" }, b.name), cell(b.kind), cell(state[0], state[1]),
      numCell(b.requests), numCell(b.failures),
      cell(hour ? `${num(hour.requests)} requests, ${num(hour.errors)} errors` : "none"),
      numCell((activity.answering || {})[b.name] || 0),
      cell(hour && hour.n ? `${Math.round(hour.ms / hour.n)} ms` : ""),
      cell(b.last_error || "", "small"));
  }), "No backends are configured.");

  fill($("circuits").tBodies[0], backends.circuits.map((c) => el("tr", {},
    cell(`${c.backend} / ${c.model}`),
    cell(c.state, c.state === "closed" ? "state-ok" : "state-warn"),
    cell(c.open_for_secs ? `for ${duration(c.open_for_secs)}` : "", "small"))), "No hop has been used yet.");

  const total = backends.data.reduce((s, b) => s + b.requests, 0);
  $("summary").textContent = `${backends.data.length} backends, ${num(total)} requests routed, ${backends.in_flight} in flight`;
}

// --- accounts -----------------------------------------------------------------------------

function quotaBars(quota) {
  if (!quota) return "";
  return Object.entries(quota).map(([model, info]) => {
    const fraction = info && typeof info.remainingFraction === "number" ? info.remainingFraction : null;
    return el("div", { class: "quota" },
      el("meter", { min: 0, max: 1, value: fraction === null ? 0 : fraction, "aria-label": `${model} quota left` }),
      `${model}: ${fraction === null ? "unknown" : Math.round(fraction * 100) + "%"}`);
  });
}

async function accounts() {
  const list = await apiJson("/admin/accounts");
  fill($("account-table").tBodies[0], list.data.map((a) => {
    const pool = a.pool || "antigravity";
    // The same Google account may sit in both pools: the Gemini CLI's is named so.
    const name = (a.email || a.id) + (pool === "geminicli" ? " (Gemini CLI)" : "");
    const disabled = a.disabled_reason !== null && a.disabled_reason !== undefined;
    const cooling = Object.entries(a.cooldowns || {});
    return el("tr", { "data-account": a.id },
      el("th", { scope: "row" }, a.email || a.id), cell(pool === "geminicli" ? "Gemini CLI" : "Antigravity"),
      cell(a.project_id || ""),
      cell(disabled ? `disabled: ${a.disabled_reason}` : cooling.length ? "cooling down" : "enabled",
        disabled ? "state-bad" : cooling.length ? "state-warn" : "state-ok"),
      cell(quotaBars(a.quota)),
      cell(cooling.map(([model, secs]) => el("div", {}, `${model}: ${duration(secs)} left`)), "small"),
      numCell(a.in_flight),
      cell(`${num(a.requests)} (${num(a.failures)} failed)`),
      cell(a.last_error || "", "small"),
      cell(el("div", { class: "actions" },
        el("button", { type: "button", "aria-label": `${disabled ? "Enable" : "Disable"} ${name}`,
          onclick: () => accountAction(pool, a.id, disabled ? "enable" : "disable", name) }, disabled ? "Enable" : "Disable"),
        el("button", { type: "button", "aria-label": `Remove ${name}`,
          onclick: () => accountAction(pool, a.id, "remove", name) }, "Remove"))));
  }), "No accounts yet: add one with Google sign-in, or import an export file.");
}

async function accountAction(pool, id, action, name) {
  if (action === "remove" && !confirm(`Remove ${name}? Its file is deleted.`)) return;
  const query = `?pool=${encodeURIComponent(pool)}`;
  try {
    if (action === "remove") await apiJson(`/admin/accounts/${encodeURIComponent(id)}${query}`, { method: "DELETE" });
    else await apiJson(`/admin/accounts/${encodeURIComponent(id)}/${action}${query}`, { method: "POST" });
    say(`${name}: ${action === "remove" ? "removed" : action + "d"}.`, "ok");
  } catch (err) {
    if (err instanceof Refused) return signOut(err.message);
    say(`${name}: ${err.message}`, "error");
  }
  refresh();
}

async function importFile(event) {
  const file = event.target.files[0];
  if (!file) return;
  try {
    const body = await file.text();
    const answer = await apiJson(`/admin/accounts?pool=${$("account-pool").value}`, {
      method: "POST", headers: { "content-type": "application/json" }, body,
    });
    say(`Imported ${answer.data.length} account(s): ` +
      answer.data.map((a) => `${a.id} ${a.outcome.replace("_", " ")}`).join(", "), "ok");
  } catch (err) {
    if (err instanceof Refused) return signOut(err.message);
    say(`${file.name}: ${err.message}`, "error");
  }
  event.target.value = "";
  refresh();
}

async function addAccount() {
  try {
    const answer = await apiJson(`/admin/login?pool=${$("account-pool").value}`, { method: "POST" });
    const link = $("login-link");
    link.replaceChildren("Sign in with the Google account to add, in the window that opened or ",
      el("a", { href: answer.url, target: "_blank", rel: "noopener" }, "here"),
      ". The account shows in this list when Google sends you back.");
    link.hidden = false;
    window.open(answer.url, "_blank", "noopener");
  } catch (err) {
    if (err instanceof Refused) return signOut(err.message);
    say(`Cannot start a login: ${err.message}`, "error");
  }
}

// --- usage --------------------------------------------------------------------------------

function usageQuery(format) {
  const params = new URLSearchParams({ group_by: $("usage-group").value });
  if ($("usage-from").value) params.set("from", $("usage-from").value);
  if ($("usage-to").value) params.set("to", $("usage-to").value);
  if (format) params.set("format", format);
  return "/admin/usage?" + params;
}

async function usage() {
  const column = $("usage-group").value;
  $("usage-column").textContent = column[0].toUpperCase() + column.slice(1);
  let answer;
  try {
    answer = await apiJson(usageQuery());
  } catch (err) {
    if (err instanceof Refused) throw err;
    fill($("usage-table").tBodies[0], [], err.message);
    $("usage-chart").replaceChildren();
    return;
  }
  const rows = answer.data;
  bars($("usage-chart"), rows,
    [{ key: "input_tokens", class: "bar-in", label: "input tokens" }, { key: "output_tokens", class: "bar-out", label: "output tokens" }],
    (r) => r[column] || "(none)");
  fill($("usage-table").tBodies[0], rows.map((r) => el("tr", {},
    el("th", { scope: "row" }, r[column] || "(none)"), numCell(r.requests), numCell(r.input_tokens),
    numCell(r.output_tokens), numCell(r.reasoning_tokens), numCell(r.cached_tokens))), "No usage recorded yet.");
}

async function usageCsv() {
  try {
    const response = await api(usageQuery("csv"));
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `usage-by-${$("usage-group").value}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) {
    if (err instanceof Refused) return signOut(err.message);
    say("Cannot export: " + err.message, "error");
  }
}

// --- requests -----------------------------------------------------------------------------

async function requests() {
  const list = await apiJson("/admin/requests");
  fill($("request-table").tBodies[0], list.data.map((r) => el("tr", {},
    cell(new Date(r.at_ms).toLocaleTimeString()), cell(r.key), cell(r.endpoint), cell(r.model),
    cell(r.attempts, "small"), cell(r.status, r.failed ? "state-bad" : "state-ok"),
    cell(`${num(r.duration_ms)} ms` + (r.first_byte_ms !== null ? ` (first byte ${num(r.first_byte_ms)} ms)` : "")),
    cell(`${num(r.input_tokens)} / ${num(r.output_tokens)}`))), "No requests yet.");
}

// --- configuration ------------------------------------------------------------------------

async function config() {
  const response = await api("/admin/config");
  $("config-text").textContent = await response.text();
}

async function reload() {
  try {
    const response = await api("/admin/reload", { method: "POST" });
    const body = await response.json().catch(() => ({}));
    if (response.ok) say("The configuration was reloaded.", "ok");
    else {
      const reasons = (body.error && body.error.reasons) || [];
      say("The file was refused; the old configuration keeps serving. " +
        ((body.error && body.error.message) || "") + (reasons.length ? " " + reasons.join("; ") : ""), "error");
    }
  } catch (err) {
    if (err instanceof Refused) return signOut(err.message);
    say("Cannot reload: " + err.message, "error");
  }
  refresh();
}

// --- start --------------------------------------------------------------------------------

function tabKeys(event) {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const index = tabs.indexOf(event.target);
  const next = event.key === "ArrowRight" ? index + 1 : event.key === "ArrowLeft" ? index - 1 : null;
  if (next === null) return;
  const tab = tabs[(next + tabs.length) % tabs.length];
  tab.focus();
  show(tab.getAttribute("aria-controls"));
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("admin-key").value.trim());
  });
  $("sign-out").addEventListener("click", () => signOut());
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => show(tab.getAttribute("aria-controls")));
    tab.addEventListener("keydown", tabKeys);
  }
  $("add-account").addEventListener("click", addAccount);
  $("import-file").addEventListener("change", importFile);
  $("usage-form").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  $("usage-group").addEventListener("change", refresh);
  $("usage-csv").addEventListener("click", usageCsv);
  $("reload").addEventListener("click", reload);
  const key = sessionStorage.getItem(KEY);
  if (key !== null) signIn(key);
  else {
    $("admin-key").focus();
    signIn("", true);
  }
});
