// The Switchboard playground: a small ChatKit client of this edge, in plain JavaScript with no
// dependency and nothing loaded from elsewhere. It speaks the ChatKit protocol (POST /chatkit, answers
// as Server-Sent Events), joins a running answer after a reload (GET /chatkit/threads/{id}/stream) and
// stops one (POST /chatkit/threads/{id}/cancel).
//
// Decisions:
// - The token is kept in localStorage ("switchboard:playground:token") so a reload stays signed in;
//   "Sign out" forgets it. Under `switchboard up` the development user's token is filled in.
// - Each user's last thread is kept under "chatkit:thread:user:{user_id}" (the user id is the
//   token's `sub`), so a reload restores it and another user starts clean.
// - While no answer streams, the open thread is refreshed every few seconds (items.list, then a
//   join of any run another party started), so an operator's replies and hand-off notices appear as
//   they arrive without a page reload.
"use strict";

const TOKEN_KEY = "switchboard:playground:token";
const THREAD_KEY = (user) => `chatkit:thread:user:${user}`;
const POLL_MS = 3000;

const state = {
  token: null,
  user: null,
  threadId: null,
  items: new Map(), // id -> item, in display order
  pendingAttachments: [],
  streaming: false,
  pollTimer: null,
};

const $ = (id) => document.getElementById(id);

class AuthError extends Error {}

// --- tokens ------------------------------------------------------------------------------------

function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      atob(part + "===".slice((part.length + 3) % 4))
        .split("")
        .map((c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0"))
        .join(""),
    );
    return JSON.parse(json);
  } catch {
    return null;
  }
}

async function start() {
  $("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      send();
    }
  });
  $("stop").addEventListener("click", stop);
  $("new-thread").addEventListener("click", () => openThread(null));
  $("scope").addEventListener("change", () => loadThreads());
  $("file").addEventListener("change", attach);

  let token = localStorage.getItem(TOKEN_KEY);
  if (!token) {
    try {
      const config = await (await fetch("/playground/config.json")).json();
      token = config.token || null;
    } catch {
      token = null;
    }
  }
  if (token) {
    await signIn(token);
  } else {
    showSignIn();
  }
}

function showSignIn() {
  $("sign-in").hidden = false;
  $("app").hidden = true;
  $("sign-out").hidden = true;
}

async function signIn(token) {
  const claims = tokenClaims(token);
  if (!token || !claims || !claims.sub) {
    showError("That is not a JWT with a subject (sub): paste the whole token.");
    showSignIn();
    return;
  }
  const sameUser = claims.sub === state.user;
  state.token = token;
  state.user = claims.sub;
  localStorage.setItem(TOKEN_KEY, token);
  $("reauth").hidden = true;
  $("error").hidden = true;
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  const expires = claims.exp ? ` · token expires ${new Date(claims.exp * 1000).toLocaleString()}` : "";
  $("who").textContent = `signed in as ${claims.sub}${expires}`;
  if (!sameUser) {
    state.threadId = null;
    state.items.clear();
    render();
  }
  try {
    await loadThreads();
    await openThread(localStorage.getItem(THREAD_KEY(state.user)));
  } catch (error) {
    report(error);
  }
}

function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.user = null;
  state.threadId = null;
  state.items.clear();
  stopPolling();
  render();
  $("who").textContent = "";
  showSignIn();
}

// --- the protocol ------------------------------------------------------------------------------

function headers() {
  const out = { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" };
  const scope = $("scope").value.trim();
  if (scope) out["X-Switchboard-Scope"] = scope;
  return out;
}

async function checked(response) {
  if (response.status === 401) {
    $("reauth").hidden = false;
    $("sign-in").hidden = false;
    stopPolling();
    throw new AuthError("please sign in again");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error.message || message;
    } catch {}
    throw new Error(message);
  }
  return response;
}

async function chatkit(type, params) {
  const response = await fetch("/chatkit", {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({ type, params }),
  });
  return checked(response);
}

async function request(type, params) {
  return (await chatkit(type, params)).json();
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""));
      if (data.length) onEvent(JSON.parse(data.join("\n")));
    }
  }
}

async function stream(responsePromise) {
  state.streaming = true;
  $("stop").disabled = false;
  $("send").disabled = true;
  try {
    const response = await checked(await responsePromise);
    if (response.status === 204) return;
    await readEvents(response, onEvent);
  } catch (error) {
    report(error);
  } finally {
    state.streaming = false;
    $("stop").disabled = true;
    $("send").disabled = false;
    $("progress").textContent = "";
  }
}

function onEvent(event) {
  switch (event.type) {
    case "thread.created":
      bindThread(event.thread.id);
      loadThreads().catch(report);
      break;
    case "thread.updated":
      loadThreads().catch(report);
      break;
    case "thread.item.added":
    case "thread.item.done":
    case "thread.item.replaced":
      state.items.set(event.item.id, event.item);
      render();
      break;
    case "thread.item.removed":
      state.items.delete(event.item_id);
      render();
      break;
    case "thread.item.updated":
      applyUpdate(event.item_id, event.update);
      break;
    case "progress_update":
      $("progress").textContent = event.text;
      break;
    case "notice":
      addLocal("notice", [event.title, event.message].filter(Boolean).join(": "));
      break;
    case "error":
      addLocal("error", event.message || "The answer failed.");
      break;
    default:
      break; // stream_options, client_effect: nothing to show
  }
}

function applyUpdate(itemId, update) {
  const item = state.items.get(itemId);
  if (!item) return;
  switch (update.type) {
    case "assistant_message.content_part.added":
    case "assistant_message.content_part.done":
      item.content[update.content_index] = update.content;
      break;
    case "assistant_message.content_part.text_delta": {
      const part = item.content[update.content_index] || { type: "output_text", text: "", annotations: [] };
      part.text += update.delta;
      item.content[update.content_index] = part;
      break;
    }
    case "widget.root.updated":
      item.widget = update.widget;
      break;
    case "workflow.task.added":
    case "workflow.task.updated":
      if (item.workflow) item.workflow.tasks[update.task_index] = update.task;
      break;
    default:
      return;
  }
  render();
}

function addLocal(kind, text) {
  const id = `local_${Date.now()}_${Math.random().toString(36).slice(2)}`;
  state.items.set(id, { id, type: `local.${kind}`, text });
  render();
}

// --- threads -----------------------------------------------------------------------------------

async function loadThreads() {
  const page = await request("threads.list", { limit: 50, order: "desc" });
  const list = $("thread-list");
  list.replaceChildren();
  for (const thread of page.data) {
    const li = document.createElement("li");
    li.textContent = thread.title || "New conversation";
    li.dataset.threadId = thread.id;
    li.className = thread.id === state.threadId ? "active" : "";
    li.addEventListener("click", () => openThread(thread.id).catch(report));
    list.append(li);
  }
}

function bindThread(threadId) {
  state.threadId = threadId;
  if (threadId) localStorage.setItem(THREAD_KEY(state.user), threadId);
  else localStorage.removeItem(THREAD_KEY(state.user));
  for (const li of $("thread-list").children) {
    li.className = li.dataset.threadId === threadId ? "active" : "";
  }
}

async function openThread(threadId) {
  stopPolling();
  state.items.clear();
  bindThread(threadId);
  render();
  if (!threadId) return;
  try {
    await refreshItems();
  } catch (error) {
    if (error instanceof AuthError) throw error;
    bindThread(null); // gone, or another user's: start clean
    return;
  }
  await join();
  startPolling();
}

async function refreshItems() {
  const threadId = state.threadId;
  const page = await request("items.list", { thread_id: threadId, limit: 100, order: "desc" });
  if (threadId !== state.threadId || state.streaming) return;
  const fresh = new Map(page.data.reverse().map((item) => [item.id, item]));
  for (const [id, item] of state.items) {
    if (id.startsWith("local_")) fresh.set(id, item);
  }
  const changed = JSON.stringify([...fresh.values()]) !== JSON.stringify([...state.items.values()]);
  state.items = fresh;
  if (changed) render();
}

async function join() {
  if (!state.threadId || state.streaming) return;
  await stream(fetch(`/chatkit/threads/${encodeURIComponent(state.threadId)}/stream`, { headers: headers() }));
}

function startPolling() {
  stopPolling();
  state.pollTimer = setInterval(async () => {
    if (state.streaming || !state.threadId) return;
    try {
      await refreshItems();
      await join();
    } catch (error) {
      report(error);
    }
  }, POLL_MS);
}

function stopPolling() {
  if (state.pollTimer) clearInterval(state.pollTimer);
  state.pollTimer = null;
}

// --- sending -----------------------------------------------------------------------------------

async function send() {
  const text = $("message").value.trim();
  if ((!text && !state.pendingAttachments.length) || state.streaming) return;
  const input = {
    content: text ? [{ type: "input_text", text }] : [],
    attachments: state.pendingAttachments.map((a) => a.id),
    inference_options: {},
  };
  $("message").value = "";
  state.pendingAttachments = [];
  renderAttachments();
  const body = state.threadId
    ? { type: "threads.add_user_message", params: { thread_id: state.threadId, input } }
    : { type: "threads.create", params: { input } };
  await stream(fetch("/chatkit", { method: "POST", headers: headers(), body: JSON.stringify(body) }));
  startPolling();
}

async function action(item, act) {
  const body = { type: "threads.custom_action", params: { thread_id: state.threadId, item_id: item.id, action: act } };
  await stream(fetch("/chatkit", { method: "POST", headers: headers(), body: JSON.stringify(body) }));
}

async function answer(item, inputId, value) {
  const body = {
    type: "threads.add_structured_input",
    params: {
      thread_id: state.threadId,
      item_id: item.id,
      input: { status: "answered", answers: { [inputId]: { values: [value] } } },
    },
  };
  await stream(fetch("/chatkit", { method: "POST", headers: headers(), body: JSON.stringify(body) }));
}

async function stop() {
  if (!state.threadId) return;
  try {
    await checked(
      await fetch(`/chatkit/threads/${encodeURIComponent(state.threadId)}/cancel`, { method: "POST", headers: headers() }),
    );
  } catch (error) {
    report(error);
  }
}

async function attach() {
  const file = $("file").files[0];
  $("file").value = "";
  if (!file) return;
  try {
    const attachment = await request("attachments.create", {
      name: file.name,
      size: file.size,
      mime_type: file.type || "application/octet-stream",
    });
    const upload = attachment.upload_descriptor;
    if (upload) {
      const form = new FormData();
      form.append("file", file);
      const auth = { Authorization: `Bearer ${state.token}` };
      await checked(await fetch(upload.url, { method: upload.method || "POST", headers: auth, body: form }));
    }
    state.pendingAttachments.push(attachment);
    renderAttachments();
  } catch (error) {
    report(error);
  }
}

// --- rendering ---------------------------------------------------------------------------------

function report(error) {
  if (error instanceof AuthError) return; // the banner says it
  showError(error && error.message ? error.message : String(error));
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  setTimeout(() => ($("error").hidden = true), 8000);
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// A small, safe subset of Markdown: the text is escaped first.
function markdown(text) {
  return escapeHtml(text || "")
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/\*([^*]+)\*/g, "<em>$1</em>")
    .replace(/^- (.*)$/gm, "• $1")
    .replace(/\n/g, "<br>");
}

function element(tag, className, html) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (html !== undefined) node.innerHTML = html;
  return node;
}

function button(label, onClick, testId) {
  const node = element("button");
  node.type = "button";
  node.textContent = label;
  if (testId) node.dataset.testid = testId;
  node.addEventListener("click", async () => {
    node.disabled = true;
    await onClick();
  });
  return node;
}

function renderWidget(item, widget) {
  const kind = widget.type;
  if (["Text", "Title", "Caption", "Markdown", "Label"].includes(kind)) {
    return element(kind === "Title" ? "h3" : "div", "", markdown(String(widget.value ?? "")));
  }
  if (kind === "Button") {
    return button(widget.label || "OK", () => action(item, widget.onClickAction), "widget-button");
  }
  if (kind === "Badge") return element("span", "chip", escapeHtml(String(widget.label ?? "")));
  if (kind === "Divider") return element("hr");
  const box = element("div", kind === "Card" ? "card" : kind === "Row" ? "row" : "");
  box.dataset.testid = kind === "Card" ? "card" : "";
  if (widget.status && widget.status.text) box.append(element("div", "status", escapeHtml(widget.status.text)));
  for (const child of widget.children || []) box.append(renderWidget(item, child));
  if (widget.confirm || widget.cancel) {
    const row = element("div", "row");
    if (widget.confirm) row.append(button(widget.confirm.label, () => action(item, widget.confirm.action), "card-confirm"));
    if (widget.cancel) row.append(button(widget.cancel.label, () => action(item, widget.cancel.action), "card-cancel"));
    box.append(row);
  }
  return box;
}

function renderItem(item) {
  switch (item.type) {
    case "user_message": {
      const node = element("div", "item user");
      node.dataset.testid = "user-message";
      node.innerHTML = markdown(item.content.map((c) => c.text).join(" "));
      for (const a of item.attachments || []) node.append(element("span", "chip", "file: " + escapeHtml(a.name)));
      return node;
    }
    case "assistant_message": {
      const node = element("div", "item assistant", markdown(item.content.map((c) => c.text).join("\n\n")));
      node.dataset.testid = "assistant-message";
      return node;
    }
    case "task": {
      const task = item.task || {};
      const node = element("div", `item task ${task.status_indicator || ""}`);
      node.dataset.testid = "task";
      node.innerHTML = `<strong>${escapeHtml(task.title || "Tool")}</strong>` + (task.content ? `<pre>${escapeHtml(task.content)}</pre>` : "");
      return node;
    }
    case "workflow": {
      const node = element("div", "item task");
      for (const task of (item.workflow && item.workflow.tasks) || []) {
        node.append(element("div", `task ${task.status_indicator || ""}`, escapeHtml(task.title || task.content || task.type)));
      }
      return node;
    }
    case "client_tool_call": {
      const node = element("div", `item task ${item.status === "completed" ? "complete" : "loading"}`);
      node.dataset.testid = "tool-call";
      node.innerHTML = `<strong>${escapeHtml(item.name)}</strong> <span class="chip">${escapeHtml(item.status)}</span>`;
      return node;
    }
    case "widget": {
      const node = element("div", "item assistant");
      node.append(renderWidget(item, item.widget));
      return node;
    }
    case "structured_input": {
      const node = element("div", "item assistant card");
      node.dataset.testid = "question";
      for (const input of item.inputs || []) {
        node.append(element("div", "", markdown(input.question)));
        const row = element("div", "row");
        for (const option of input.options || []) {
          const chosen = input.answer && (input.answer.values || []).includes(option.value);
          const choice = button(option.value, () => answer(item, input.id, option.value), "choice");
          choice.disabled = item.status !== "pending" || chosen;
          row.append(choice);
        }
        node.append(row);
      }
      return node;
    }
    case "local.notice": {
      const node = element("div", "item notice", markdown(item.text));
      node.dataset.testid = "notice";
      return node;
    }
    case "local.error": {
      const node = element("div", "item error", markdown(item.text));
      node.dataset.testid = "error";
      return node;
    }
    default:
      return null; // hidden context, end of turn, ...
  }
}

function render() {
  const transcript = $("transcript");
  const atBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
  transcript.replaceChildren(...[...state.items.values()].map(renderItem).filter(Boolean));
  if (atBottom) transcript.scrollTop = transcript.scrollHeight;
}

function renderAttachments() {
  $("pending-attachments").replaceChildren(
    ...state.pendingAttachments.map((a) => element("span", "chip", "file: " + escapeHtml(a.name))),
  );
}

start();
