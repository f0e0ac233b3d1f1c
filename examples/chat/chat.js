// The chat page: one WebSocket to /chat, JSON messages, reconnection with backoff.
"use strict";

const $ = (id) => document.getElementById(id);
const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/chat`;
let socket = null;
let joined = null; // {name, room} once joined; re-sent after a reconnection
let retries = 0;

function setState(state, text) {
  const el = $("state");
  el.className = `state ${state}`;
  el.dataset.state = state;
  el.textContent = text;
}

function addLine(text, from) {
  const li = document.createElement("li");
  if (from === undefined) {
    li.className = "system";
    li.textContent = text;
  } else {
    const who = document.createElement("span");
    who.className = "from";
    who.textContent = from;
    li.append(who, document.createTextNode(text));
  }
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
}

// Who is present in the current room: the state on joining, then a diff on each join and leave.
const present = new Set();

function showMembers() {
  $("members").replaceChildren(...[...present].sort().map((name) => {
    const li = document.createElement("li");
    li.textContent = name;
    return li;
  }));
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(message));
    return true;
  }
  $("error").textContent = "not connected; your message was not sent";
  return false;
}

function connect() {
  setState("connecting", retries ? `reconnecting (attempt ${retries})…` : "connecting…");
  socket = new WebSocket(url);
  socket.onopen = () => {
    retries = 0;
    setState("open", "connected");
    if (joined) send({ type: "join", room: joined.room, name: joined.name });
    $("text").disabled = !joined;
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "message") {
      addLine(message.text, message.from);
    } else if (message.type === "direct") {
      addLine(message.text, `${message.from} → ${message.to}`);
    } else if (message.type === "presence") {
      if (!joined || message.room !== joined.room) return;
      present.clear();
      message.members.forEach((name) => present.add(name));
      showMembers();
    } else if (message.type === "presence_diff") {
      if (!joined || message.room !== joined.room) return;
      message.joins.forEach((name) => present.add(name));
      message.leaves.forEach((name) => present.delete(name));
      showMembers();
    } else if (message.type === "error") {
      $("error").textContent = message.message;
    }
  };
  socket.onclose = (event) => {
    setState("closed", `disconnected (${event.code})`);
    $("text").disabled = true;
    // Exponential backoff with jitter, at most 10 s.
    const delay = Math.min(10000, 500 * 2 ** retries) * (0.5 + Math.random() / 2);
    retries += 1;
    setTimeout(connect, delay);
  };
}

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("name").value.trim();
  const room = $("room").value.trim();
  if (joined && joined.room !== room) send({ type: "leave", room: joined.room });
  if (send({ type: "join", room, name })) {
    joined = { name, room };
    present.clear();
    showMembers();
    $("error").textContent = "";
    $("room-title").textContent = `#${room}`;
    $("messages").replaceChildren();
    $("text").disabled = false;
    $("text").focus();
    addLine(`you joined #${room} as ${name}`);
  }
});

$("send").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  // "/msg NAME TEXT" sends a direct message to NAME, wherever NAME is connected.
  const direct = text.match(/^\/msg\s+(\S+)\s+(.+)$/s);
  const message = direct
    ? { type: "direct", to: direct[1], text: direct[2] }
    : { type: "message", room: joined?.room, text };
  if (joined && text.trim() && send(message)) {
    $("text").value = "";
  }
});

connect();
