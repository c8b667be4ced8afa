// Live dashboard: one monitor socket, frames rendered into the page. No build step, no CDN.
// Frames follow API.md: {"type": "cluster_update", "seq": n, "cluster_stats": {...}, "instances": [...]}
// and {"type": "employee_update", ...}. A gap in `seq` means a missed frame: ask for a fresh snapshot.

const text = (value) => (value === null || value === undefined ? "–" : String(value));
const pct = (value) => (value === null || value === undefined ? "–" : `${Number(value).toFixed(1)} %`);
const when = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "–");

function cell(row, content, className) {
  const td = row.insertCell();
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  if (className) td.className = className;
  return td;
}

function badge(status) {
  const span = document.createElement("span");
  span.className = `status ${status}`;
  span.textContent = status;
  return span;
}

function renderCluster(frame) {
  const stats = frame.cluster_stats || {};
  for (const [key, value] of Object.entries(stats)) {
    const el = document.querySelector(`[data-stat="${key}"]`);
    if (el) el.textContent = key.startsWith("avg_") ? pct(value) : text(value);
  }
  const body = document.querySelector("#instances tbody");
  if (!body || !frame.instances) return;
  body.replaceChildren();
  for (const inst of frame.instances) {
    const row = body.insertRow();
    row.dataset.instanceId = inst.id;
    row.dataset.status = inst.status;
    cell(row, inst.url);
    cell(row, badge(inst.status));
    cell(row, text(inst.weight));
    cell(row, pct(inst.cpu_usage));
    cell(row, pct(inst.memory_usage));
    cell(row, text(inst.connections));
    cell(row, when(inst.last_heartbeat));
  }
  const events = document.querySelector("#events tbody");
  if (events && frame.events) {
    events.replaceChildren();
    for (const ev of frame.events) {
      const row = events.insertRow();
      cell(row, when(ev.created_at));
      cell(row, ev.address || text(ev.instance_id));
      cell(row, `${text(ev.from_status)} → ${text(ev.to_status)}`);
      cell(row, text(ev.reason), "muted");
    }
  }
}

function renderEmployees(frame) {
  const body = document.querySelector("#employees tbody");
  if (body && frame.employees) {
    body.replaceChildren();
    for (const emp of frame.employees) {
      const row = body.insertRow();
      row.dataset.employeeId = emp.employee_id;
      const depth = emp.queue_depth || {};
      cell(row, emp.employee_id);
      cell(row, emp.role);
      cell(row, badge(emp.status));
      for (const p of ["4", "3", "2", "1"]) cell(row, text(depth[p] ?? 0));
      cell(row, when(emp.last_seen));
    }
  }
  const messages = document.querySelector("#messages tbody");
  if (messages && frame.messages) {
    messages.replaceChildren();
    for (const m of frame.messages) {
      const row = messages.insertRow();
      row.dataset.messageId = m.id;
      for (const value of [when(m.created_at), m.sender_id, m.receiver_id, m.message_type, m.action, m.priority, m.status]) {
        cell(row, text(value));
      }
    }
  }
  const conversations = document.querySelector("#conversations tbody");
  if (conversations && frame.conversations) {
    conversations.replaceChildren();
    for (const c of frame.conversations) {
      const row = conversations.insertRow();
      for (const value of [when(c.created_at), c.topic, c.created_by, (c.participants || []).join(", ")]) cell(row, text(value));
    }
  }
}

export function connectMonitor(path, render) {
  const live = document.getElementById("live");
  let lastSeq = null;
  let delay = 500;
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.onopen = () => { delay = 500; live.textContent = "live"; live.className = "live on"; };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (typeof frame.seq === "number") {
        if (lastSeq !== null && frame.seq > lastSeq + 1) socket.send(JSON.stringify({ action: "snapshot" }));
        lastSeq = frame.seq;
      }
      render(frame);
    };
    socket.onclose = () => {
      live.textContent = "offline"; live.className = "live off";
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
}

export { renderCluster, renderEmployees };
