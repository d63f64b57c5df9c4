// Switchboard agent console. Every customer-supplied string reaches the page
// through textContent only: names and messages are an XSS vector.
"use strict";

const api = "/console/api";
let me = null; // { name, role, csrf }
let current = null; // conversation key shown
let source = null; // EventSource of the current conversation
let queueTimer = null;

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

async function call(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    if (me) headers["X-CSRF-Token"] = me.csrf;
  }
  const response = await fetch(api + path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401 && path !== "/login") showLogin();
  return { ok: response.ok, status: response.status, data };
}

function waitText(secs) {
  if (secs < 60) return secs + " s";
  if (secs < 3600) return Math.floor(secs / 60) + " min";
  return Math.floor(secs / 3600) + " h " + Math.floor((secs % 3600) / 60) + " min";
}

const reasons = {
  requested: "asked for a person",
  complaint: "complaint",
  not_understood: "bot did not understand",
  verification: "verification failed",
  agent: "taken over by an agent",
};

function showLogin() {
  me = null;
  closeStream();
  if (queueTimer) { clearInterval(queueTimer); queueTimer = null; }
  $("app-view").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-view").hidden = false;
  $("token").focus();
}

function showApp() {
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = me.name + " (" + me.role + ")";
  const readOnly = me.role !== "operator";
  for (const id of ["reply-text", "send", "hand-back", "close"]) $(id).disabled = readOnly;
  refreshQueue();
  if (!queueTimer) queueTimer = setInterval(refreshQueue, 2000);
}

async function refreshQueue() {
  const { ok, data } = await call("GET", "/queue");
  if (!ok || !data) return;
  const list = $("queue");
  list.replaceChildren();
  $("queue-count").textContent = String(data.handoffs.length);
  $("queue-empty").hidden = data.handoffs.length > 0;
  for (const item of data.handoffs) {
    const li = el("li");
    li.dataset.conversation = item.conversation;
    if (item.conversation === current) li.classList.add("active");
    const head = el("div", "row");
    head.append(el("span", "customer-name", item.customer_name || "Customer"));
    head.append(el("span", "platform " + item.platform, item.platform));
    li.append(head);
    const meta = el("div", "row muted");
    meta.append(el("span", "reason", reasons[item.reason] || item.reason));
    meta.append(el("span", "wait", "waiting " + waitText(item.wait_secs)));
    li.append(meta);
    if (item.last_order) li.append(el("div", "muted order", "Order " + item.last_order));
    if (item.complaint) li.append(el("p", "complaint", item.complaint));
    li.addEventListener("click", () => openConversation(item.conversation));
    list.append(li);
  }
}

function closeStream() {
  if (source) { source.close(); source = null; }
}

function summaryRow(dl, label, value) {
  if (!value) return;
  dl.append(el("dt", null, label));
  dl.append(el("dd", null, value));
}

function renderRecord(record) {
  const entry = record.entry;
  $("conv-name").textContent = entry.customer_name || "Customer";
  $("conv-meta").textContent = entry.platform + " · " + entry.channel + " · " +
    (reasons[entry.reason] || entry.reason);
  const dl = $("conv-summary");
  dl.replaceChildren();
  summaryRow(dl, "Reason", reasons[entry.reason] || entry.reason);
  summaryRow(dl, "Order", entry.last_order);
  summaryRow(dl, "Complaint", entry.complaint);
  summaryRow(dl, "Account", entry.linked_account ? "verified" : "not verified");
  const list = $("transcript");
  list.replaceChildren();
  for (const line of record.transcript) {
    const li = el("li", "line " + line.from);
    const who = line.from === "agent" ? (line.agent || "agent") : line.from;
    li.append(el("span", "meta", who + " · " + new Date(line.at_ms).toLocaleTimeString()));
    li.append(el("span", "text", line.text));
    list.append(li);
  }
  list.scrollTop = list.scrollHeight;
}

function openConversation(key) {
  current = key;
  closeStream();
  $("conversation-view").hidden = false;
  $("app-view").classList.add("open");
  $("conv-status").textContent = "";
  $("action-error").textContent = "";
  $("transcript").replaceChildren();
  for (const li of $("queue").children) li.classList.toggle("active", li.dataset.conversation === key);
  source = new EventSource(api + "/handoffs/" + encodeURIComponent(key) + "/events");
  source.addEventListener("record", (event) => {
    try { renderRecord(JSON.parse(event.data)); } catch (_) { /* ignore a bad frame */ }
  });
  source.addEventListener("ended", () => {
    $("conv-status").textContent = "This conversation is back with the bot.";
    closeStream();
    refreshQueue();
  });
}

async function act(path, body) {
  if (!current) return false;
  $("action-error").textContent = "";
  const { ok, data } = await call("POST", "/handoffs/" + encodeURIComponent(current) + path, body);
  if (!ok) $("action-error").textContent = (data && data.error) || "That did not work; try again.";
  return ok;
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    const { ok, data } = await call("POST", "/login", { token: $("token").value });
    $("token").value = "";
    if (!ok) { $("login-error").textContent = "That token was not accepted."; return; }
    me = data;
    showApp();
  });
  $("logout").addEventListener("click", async () => {
    await call("POST", "/logout");
    showLogin();
  });
  $("reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("reply-text").value.trim();
    if (!text) return;
    if (await act("/reply", { text })) $("reply-text").value = "";
  });
  $("take-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("take-key").value.trim();
    $("take-error").textContent = "";
    if (!key) return;
    const { ok, data } = await call("POST", "/handoffs/" + encodeURIComponent(key) + "/take");
    if (!ok) { $("take-error").textContent = (data && data.error) || "That did not work; try again."; return; }
    $("take-key").value = "";
    // The take-over is queued behind the conversation's own messages:
    // wait for its record before opening it.
    for (let tries = 0; tries < 50; tries++) {
      const record = await call("GET", "/handoffs/" + encodeURIComponent(key));
      if (record.ok) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await refreshQueue();
    openConversation(key);
  });
  $("hand-back").addEventListener("click", () => act("/hand-back"));
  $("close").addEventListener("click", () => act("/close"));
  $("back").addEventListener("click", () => {
    closeStream();
    current = null;
    $("conversation-view").hidden = true;
    $("app-view").classList.remove("open");
  });
  const { ok, data } = await call("GET", "/session");
  if (ok) { me = data; showApp(); } else { showLogin(); }
});
