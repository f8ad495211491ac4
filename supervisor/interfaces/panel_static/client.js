// State client: the supervisor's WebSocket (hello + snapshot, then pushes of every change),
// reconnection, commands and their results, and the REST reads (session, history, events, a
// device's registers).
// The state lives in S; pieces of the DOM subscribe to change keys and re-paint in place:
//   'p:<point id>', 'alarms', 'devices', 'status', 'conn', 'pending', 'hist', 'events'
// and the UI's own keys ('second', 'tick', 'nav', 'night', 'chart').

const CMD_TIMEOUT_MS = 20000;
const SEV_RANK = { critical: 0, warning: 1, info: 2 };

export const S = {
  role: null, vehicle: null, idleLockS: 0, unlocked: false,
  meta: null, metaKey: '', pmeta: {}, actions: {}, circuits: [],
  points: {}, alarms: {}, devices: {}, status: {},
  connected: false, retryAt: 0, graceUntil: Date.now() + 1500,
  pending: new Map(), pendingKeys: new Map(), clockOffset: 0,
  hist: {}, events: null, eventsErr: false,
};

// What the client tells the app, set once by app.js before the first request:
// locked(reason), metaChanged(), commandFailed({ action, status, code, message }).
let on;
export function setHandlers(handlers) { on = handlers; }

// ---- subscriptions, by scope ('shell' lives until the next full render, 'screen' until the next screen)
let subs = [];
let cleanups = [];
export function sub(scope, keys, fn) { subs.push({ scope, keys: new Set(keys), fn }); fn(); }
export function onClear(scope, fn) { cleanups.push({ scope, fn }); }
export function emit(key) { for (const s of subs.slice()) if (s.keys.has(key)) s.fn(); }
function emitAll() { for (const s of subs.slice()) s.fn(); }
export function clearScope(scope) {
  subs = subs.filter((s) => s.scope !== scope);
  const mine = cleanups.filter((c) => c.scope === scope);
  cleanups = cleanups.filter((c) => c.scope !== scope);
  for (const c of mine) c.fn();
}

// ---- reading the state
export const nowS = () => (Date.now() + S.clockOffset) / 1000;
export const pointMeta = (pid) => S.pmeta[pid] || {};
export const has = (pid) => !!(S.pmeta[pid] || S.points[pid]);
export function good(pid) {
  const p = S.points[pid];
  return S.connected && p && p.q === 'good' ? p.v : undefined;
}
// The quality to show: nothing is fresh while the link is down.
export function shownQuality(p) {
  if (!p) return 'unknown';
  if (!S.connected) return p.q === 'invalid' ? 'invalid' : 'stale';
  return p.q;
}
// The server runs an action only for the roles its meta lists; the page offers no more.
export const canRun = (action) => !!S.actions[action]?.roles?.includes(S.role);
export const actionArg = (action, arg) => S.actions[action]?.args?.[arg] || {};
// No banner during the first moments of a fresh connection (page load, unlock).
export const connDown = () => !S.connected && Date.now() > S.graceUntil;

// What the crew must still see, in order: active before cleared-but-unacknowledged, then by
// severity, newest first.
export function shownAlarms() {
  return Object.entries(S.alarms).filter(([, a]) => a && (a.active || !a.acked)).map(([id, a]) => ({ id, ...a }))
    .sort((a, b) => (b.active - a.active) || (SEV_RANK[a.severity] ?? 3) - (SEV_RANK[b.severity] ?? 3) || (b.since || 0) - (a.since || 0));
}
export const deviceMeta = (id) => (S.meta?.devices || []).find((d) => d.id === id) || {};
export const deviceIds = () => [...new Set([...(S.meta?.devices || []).map((d) => d.id), ...Object.keys(S.devices)])];
export const offlineDevices = () => deviceIds().filter((id) => S.devices[id]?.state === 'offline').map((id) => deviceMeta(id).label || id);

// ---- REST
export async function getSession() {
  try {
    const r = await fetch('/api/session', { cache: 'no-store', credentials: 'same-origin' });
    const date = Date.parse(r.headers.get('Date') || '');
    if (date && Math.abs(date - Date.now()) > 3000) S.clockOffset = date - Date.now();
    if (r.status === 401) return 401;
    if (!r.ok) return null;
    return await r.json();
  } catch { return null; }
}
function adoptSession(s) {
  S.role = s.role;
  S.vehicle = s.vehicle || S.vehicle;
  if (s.idle_lock_s != null) S.idleLockS = Number(s.idle_lock_s) || 0;
}
async function getJSON(path) {
  const r = await fetch(path, { cache: 'no-store', credentials: 'same-origin' });
  if (r.status === 401) { on.locked('expired'); throw new Error('locked'); }
  if (!r.ok) throw new Error(String(r.status));
  return r.json();
}

// The last 24 h of a point into S.hist[key]; kept for maxAgeMs unless forced.
export async function loadHistory(key, point, maxAgeMs, force) {
  const old = S.hist[key];
  if (!force && old && !old.error && Date.now() - old.at < maxAgeMs) return;
  try {
    const d = await getJSON('/api/history?' + new URLSearchParams({ point, hours: '24' }));
    S.hist[key] = { t: d.t || [], v: d.v || [], at: Date.now() };
  } catch {
    S.hist[key] = { ...(old || { t: [], v: [] }), error: true, at: Date.now() };
  }
  emit('hist');
}

export async function loadEvents() {
  try {
    const d = await getJSON('/api/events?limit=100');
    S.events = Array.isArray(d) ? d : [];
    S.eventsErr = false;
  } catch {
    S.eventsErr = true;
  }
  emit('events');
}

// A device's registers that diag/read reads by name ([{ name, table, address, unit }], by name);
// technicians only. Throws when they cannot be had.
export async function loadRegisters(device) {
  const d = await getJSON('/api/registers?' + new URLSearchParams({ device }));
  return (Array.isArray(d.registers) ? d.registers : []).filter((r) => typeof r?.name === 'string');
}

// ---- session: the socket is open while the panel is unlocked
let ws = null;
let wsTimer = 0;
let backoff = 500;
let lastMsg = 0;
let heartbeatS = 0;
export function startSession(session) {
  adoptSession(session);
  S.unlocked = true;
  backoff = 500;
  S.graceUntil = Date.now() + 1500;
  connect();
}
export function endSession() {
  S.unlocked = false;
  disconnect();
  // commands still unanswered: their callers hear that no answer will come (no toast)
  const unheard = [...S.pending.values()];
  S.pending.clear();
  for (const p of unheard) { clearTimeout(p.timer); p.resolve({ action: p.action, status: 'timeout', code: 'session_ended', message: '' }); }
  S.pendingKeys.clear();
  S.events = null;
}

// ---- WebSocket
function connect() {
  clearTimeout(wsTimer);
  if (!S.unlocked) return;
  const url = new URL('/api/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let sock;
  try { sock = new WebSocket(url); } catch { scheduleReconnect(); return; }
  ws = sock;
  sock.onmessage = (e) => {
    if (ws !== sock) return;
    lastMsg = Date.now();
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    onMessage(m);
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    setConnected(false);
    if (S.unlocked) scheduleReconnect();
  };
}
function scheduleReconnect() {
  clearTimeout(wsTimer);
  const delay = Math.min(backoff, 15000) * (0.8 + Math.random() * 0.4);
  backoff = Math.min(backoff * 2, 15000);
  S.retryAt = Date.now() + delay;
  wsTimer = setTimeout(retryNow, delay);
  emit('conn');
}
export async function retryNow() {
  clearTimeout(wsTimer);
  S.retryAt = 0;
  emit('conn');
  // A WebSocket refused for an expired session looks like any other failure: ask.
  const s = await getSession();
  if (!S.unlocked) return;
  if (s === 401) { on.locked('expired'); return; }
  if (s && typeof s === 'object') adoptSession(s);
  if (!ws) connect();
}
function disconnect() {
  clearTimeout(wsTimer);
  const s = ws;
  ws = null;
  if (s) s.close();
  setConnected(false);
}
function setConnected(up) {
  if (S.connected === up) return;
  S.connected = up;
  if (!up) S.graceUntil = 0; // a real drop: tell the crew at once
  document.body.classList.toggle('disconnected', !up);
  emitAll();
}
// A server that announces a heartbeat lets us notice a silently dead link.
setInterval(() => {
  if (ws && S.connected && heartbeatS > 0 && Date.now() - lastMsg > heartbeatS * 2500) ws.close();
}, 1000);

function onMessage(m) {
  switch (m.type) {
    case 'hello': {
      const roleChanged = S.role !== m.role;
      S.role = m.role || S.role;
      S.vehicle = m.vehicle || S.vehicle;
      if (m.idle_lock_s != null) S.idleLockS = Number(m.idle_lock_s) || 0;
      if (m.server_time) S.clockOffset = m.server_time * 1000 - Date.now();
      heartbeatS = Number(m.heartbeat_s) || 0;
      if (setMeta(m.meta || {}) || roleChanged) on.metaChanged();
      break;
    }
    case 'snapshot':
      S.points = m.points || {};
      S.alarms = m.alarms || {};
      S.devices = m.devices || {};
      S.status = m.status || {};
      backoff = 500;
      if (S.connected) emitAll(); else setConnected(true);
      break;
    case 'point':
      S.points[m.id] = { v: m.v, q: m.q, ts: m.ts };
      emit('p:' + m.id);
      break;
    case 'alarm':
      if (m.alarm) S.alarms[m.id] = m.alarm; else delete S.alarms[m.id];
      emit('alarms');
      break;
    case 'device':
      S.devices[m.id] = m.status || {};
      emit('devices');
      break;
    case 'status': {
      const { type, ...rest } = m;
      Object.assign(S.status, rest);
      emit('status');
      break;
    }
    case 'result':
      onResult(m);
      break;
    case 'locked':
      on.locked('ended');
      break;
    default:
  }
}
function setMeta(meta) {
  const key = JSON.stringify(meta);
  if (key === S.metaKey) return false;
  S.metaKey = key;
  S.meta = meta;
  S.pmeta = Object.fromEntries((meta.points || []).map((p) => [p.id, p]));
  S.actions = Object.fromEntries((meta.actions || []).map((a) => [a.id, a]));
  S.circuits = (meta.points || []).map((p) => /^power\/circuit\/([^/]+)$/.exec(p.id)).filter(Boolean).map((x) => x[1]);
  return true;
}

// ---- the crew's touches keep the session: the server locks it when idle, whatever the page
const ACTIVITY_EVERY_MS = 20000;
let lastTold = 0;
export function touched() {
  if (!ws || ws.readyState !== 1 || Date.now() - lastTold < ACTIVITY_EVERY_MS) return;
  lastTold = Date.now();
  ws.send(JSON.stringify({ type: 'activity' }));
}

// ---- commands: one pending command per key (a control); its result or a timeout ends it.
// sendCmd returns a promise of the command's result, whatever it is (it never rejects):
//   { action, status, code, message }
// status as the supervisor answered (done, rejected, failed, expired, duplicate) with its code
// and message, or made here: failed/offline (not sent), timeout/timeout (no answer in time),
// timeout/session_ended (locked before the answer). Anything but done is also told to the app
// (commandFailed, its toast), so a caller that only shows the pending state may ignore it.
let seq = 0;
export const isPending = (key) => S.pendingKeys.has(key);
export function sendCmd(action, args, key) {
  if (!ws || ws.readyState !== 1 || !S.connected) {
    const result = { action, status: 'failed', code: 'offline', message: '' };
    on.commandFailed(result);
    return Promise.resolve(result);
  }
  const id = `panel-${Date.now().toString(36)}-${(++seq).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  ws.send(JSON.stringify({ type: 'cmd', action, id, args }));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (!S.pending.delete(id)) return;
      if (S.pendingKeys.get(key) === id) S.pendingKeys.delete(key);
      const result = { action, status: 'timeout', code: 'timeout', message: '' };
      on.commandFailed(result);
      emit('pending');
      resolve(result);
    }, CMD_TIMEOUT_MS);
    S.pending.set(id, { action, key, timer, resolve });
    S.pendingKeys.set(key, id);
    emit('pending');
  });
}
function onResult(m) {
  const p = S.pending.get(m.id);
  const result = { action: p?.action, status: m.status, code: m.code, message: m.message || '' };
  if (p) {
    clearTimeout(p.timer);
    S.pending.delete(m.id);
    if (S.pendingKeys.get(p.key) === m.id) S.pendingKeys.delete(p.key);
    emit('pending');
  }
  if (m.status !== 'done') on.commandFailed(result);
  p?.resolve(result);
}
