// MCW crew panel: plain ES module, no framework, no build step, no network beyond this van.
// State comes from the supervisor's WebSocket (push only); commands go back on the same socket.
// Every visible text comes from i18n/<lang>.json.
import { lineChart } from './chart.js';

const LOCALE = { pl: 'pl-PL', en: 'en-GB' };
const NAV = ['home', 'power', 'climate', 'lighting', 'room', 'comms', 'alarms', 'diagnostics'];
const NAV_ICON = { home: 'home', power: 'bolt', climate: 'thermo', lighting: 'bulb', room: 'door',
  comms: 'signal', alarms: 'bell', diagnostics: 'pulse' };
const BREAKERS = [6, 10, 13, 16, 25, 32];
const HINTS = ['circuit_shed', 'interlock', 'not_allowed', 'not_confirmed', 'forbidden', 'out_of_range'];
const SEV_RANK = { critical: 0, warning: 1, info: 2 };
const CMD_TIMEOUT_MS = 20000;
const HISTORY_MS = 300000;
const ENUM_GROUP = { 'power/ac/source': 'src', 'power/inverter/mode': 'invmode',
  'power/inverter/mode_setting': 'invmode', 'power/inverter/state': 'invstate',
  'power/solar/state': 'solstate', 'power/generator/state': 'genstate' };

const ICONS = {
  home: 'M3 11l9-8 9 8M5 9.5V21h5v-6h4v6h5V9.5',
  bolt: 'M13 2L4 14h7l-1 8 9-12h-7z',
  thermo: 'M14 14.8V4a2 2 0 10-4 0v10.8a4 4 0 104 0z',
  bulb: 'M9 18h6M10 22h4M12 2a7 7 0 00-4 12.7V16h8v-1.3A7 7 0 0012 2z',
  door: 'M3 21h18M6 21V3h12v18M14.5 12v.5',
  signal: 'M2 8.8a15 15 0 0120 0M5 12.5a10 10 0 0114 0M8.5 16.1a5 5 0 017 0M12 19.5v.5',
  bell: 'M18 8A6 6 0 106 8c0 7-3 9-3 9h18s-3-2-3-9M13.7 21a2 2 0 01-3.4 0',
  pulse: 'M22 12h-4l-3 9L9 3l-3 9H2',
  lock: 'M5 11h14v10H5zM8 11V7a4 4 0 018 0v4',
  moon: 'M21 12.8A9 9 0 1111.2 3a7 7 0 009.8 9.8z',
  globe: 'M12 22a10 10 0 100-20 10 10 0 000 20zM2 12h20M12 2a15 15 0 010 20 15 15 0 010-20',
  plug: 'M9 2v5M15 2v5M6 7h12v4a6 6 0 01-12 0zM12 17v5',
  gen: 'M3 7h18v13H3zM7 7V4h5v3M13 10l-3 4.5h4L11 19',
  battery: 'M2 7h17v10H2zM22 10.5v3M6 10v4M10 10v4',
  sun: 'M12 16.5a4.5 4.5 0 100-9 4.5 4.5 0 000 9zM12 1.5v2.5M12 20v2.5M4.6 4.6l1.8 1.8M17.6 17.6l1.8 1.8M1.5 12H4M20 12h2.5M4.6 19.4l1.8-1.8M17.6 6.4l1.8-1.8',
  wave: 'M2 12c2.5-7 5-7 7.5 0s5 7 7.5 0 3.5-4.5 5-3.5',
  warn: 'M10.3 3.9L1.8 18a2 2 0 001.7 3h17a2 2 0 001.7-3L13.7 3.9a2 2 0 00-3.4 0zM12 9v4M12 17v.5',
  check: 'M20 6L9 17l-5-5',
  x: 'M18 6L6 18M6 6l12 12',
  info: 'M12 22a10 10 0 100-20 10 10 0 000 20zM12 16v-5M12 8v.5',
  off: 'M1 1l22 22M16.7 11.1a11 11 0 012.3 1.5M5 12.6a11 11 0 015.2-2.5M10.7 5A16 16 0 0122.6 9M1.4 9a16 16 0 014.3-2.8M8.5 16.1a5 5 0 017 0M12 20v.5',
  back: 'M21 4H8l-7 8 7 8h13a2 2 0 002-2V6a2 2 0 00-2-2zM18 9l-6 6M12 9l6 6',
  drop: 'M12 2.7l5.7 5.6a8 8 0 11-11.4 0z',
  car: 'M5 17H3v-5l2-5h12l3 5h1v5h-2M7 17h8M7.5 19.5a2 2 0 100-4 2 2 0 000 4zM16.5 19.5a2 2 0 100-4 2 2 0 000 4zM5 12h15',
};

// ---- state --------------------------------------------------------------------------------
const S = {
  lang: 'pl', night: false, dict: {},
  role: null, vehicle: null, idleLockS: 0, unlocked: false, screen: 'home',
  meta: null, metaKey: '', pmeta: {}, actions: null, circuits: [],
  points: {}, alarms: {}, devices: {}, status: {},
  connected: false, retryAt: 0, graceUntil: Date.now() + 1500,
  pending: new Map(), pendingKeys: new Map(), clockOffset: 0,
  hist: {}, events: null, eventsErr: false,
};

const store = {
  get(k) { try { return localStorage.getItem(k); } catch { return null; } },
  set(k, v) { try { localStorage.setItem(k, v); } catch { /* private mode: not remembered */ } },
};

// ---- tiny DOM helpers ---------------------------------------------------------------------
const $ = (s, r = document) => r.querySelector(s);
function h(tag, a, ...kids) {
  const e = document.createElement(tag);
  if (a) {
    for (const k in a) {
      const v = a[k];
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'tid') e.setAttribute('data-testid', v);
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
  }
  for (const k of kids.flat()) if (k != null && k !== false) e.append(k);
  return e;
}
function icon(name, cls = 'ico') {
  const s = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('class', cls);
  s.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', ICONS[name]);
  s.append(p);
  return s;
}
const setText = (e, s) => { if (e.textContent !== s) e.textContent = s; };
const tid = (id) => id.replaceAll('/', '-');

// ---- subscriptions: re-paint pieces of the DOM in place when their data changes --------------
let subs = [];
function sub(scope, keys, fn) { subs.push({ scope, keys: new Set(keys), fn }); fn(); }
function emit(key) { for (const s of subs.slice()) if (s.keys.has(key)) s.fn(); }
function emitAll() { for (const s of subs.slice()) s.fn(); }
function clearSubs(scope) { subs = subs.filter((s) => s.scope !== scope); }

// ---- i18n and formatting --------------------------------------------------------------------
function t(key, p) {
  let s = S.dict[key];
  if (s == null) { console.warn('i18n: missing', key); s = key; }
  return p ? s.replace(/\{(\w+)\}/g, (_, k) => (p[k] ?? '')) : s;
}
const tOr = (key, fallback) => S.dict[key] ?? fallback;
const loc = () => LOCALE[S.lang];
async function loadDict(lang) {
  const r = await fetch(new URL(`i18n/${lang}.json`, import.meta.url));
  if (!r.ok) throw new Error('i18n ' + r.status);
  return r.json();
}
const nfc = new Map();
function num(v, d = 0, sign) {
  const k = `${S.lang}|${d}|${sign || ''}`;
  let f = nfc.get(k);
  if (!f) {
    f = new Intl.NumberFormat(loc(), { minimumFractionDigits: d, maximumFractionDigits: d, signDisplay: sign || 'auto' });
    nfc.set(k, f);
  }
  return f.format(v);
}
const nowS = () => (Date.now() + S.clockOffset) / 1000;
function fmtDur(s) {
  if (s == null || !isFinite(s)) return t('value.none');
  const m = Math.floor(Math.max(0, s) / 60);
  const hh = Math.floor(m / 60);
  const mm = m % 60;
  if (m < 1) return t('dur.lt1m');
  if (hh >= 48) return t('dur.dh', { d: num(Math.floor(hh / 24)), h: num(hh % 24) });
  if (hh === 0) return t('dur.m', { m: num(mm) });
  if (mm === 0) return t('dur.h', { h: num(hh) });
  return t('dur.hm', { h: num(hh), m: num(mm) });
}
function fmtAge(sec) {
  sec = Math.max(0, Math.round(sec));
  if (sec < 60) return t('dur.s', { s: num(sec) });
  if (sec < 3600) return t('dur.m', { m: num(Math.floor(sec / 60)) });
  if (sec < 172800) return t('dur.h', { h: num(Math.floor(sec / 3600)) });
  return t('dur.d', { d: num(Math.floor(sec / 86400)) });
}
const ago = (ts) => t('age.ago', { age: fmtAge(nowS() - ts) });
const dtf = new Map();
function fmtTime(epoch, withDate) {
  const d = new Date(epoch * 1000);
  const full = withDate ?? d.toDateString() !== new Date().toDateString();
  const k = S.lang + full;
  let f = dtf.get(k);
  if (!f) {
    f = new Intl.DateTimeFormat(loc(), full
      ? { day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }
      : { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    dtf.set(k, f);
  }
  return f.format(d);
}
const unit = (u) => (u ? tOr('unit.' + u, u) : '');
const enumText = (pid, v) => tOr(`${ENUM_GROUP[pid] || 'enum'}.${v}`, String(v));

// value -> [text, unit] for a point, from its meta (type, unit)
function autoFmt(pid, v) {
  const m = S.pmeta[pid] || {};
  if (typeof v === 'boolean' || m.type === 'bool') return [t(v ? 'state.on' : 'state.off'), ''];
  if (m.type === 'enum') return [enumText(pid, v), ''];
  if (typeof v === 'string') return [v === '' ? t('value.none') : v, ''];
  const u = m.unit || '';
  if (u === 's') return [pid === 'power/generator/run_time_total' ? t('dur.hours', { h: num(v / 3600, 1) }) : fmtDur(v), ''];
  const sign = pid === 'power/battery/power' || pid === 'power/battery/current' ? 'exceptZero' : undefined;
  const d = { '%': 0, W: 0, A: 1, V: pid.includes('/ac/') ? 0 : 2, degC: 1, kWh: 2, Hz: 1 }[u] ?? (m.type === 'integer' ? 0 : 1);
  return [num(v, d, sign), unit(u)];
}
const has = (pid) => !!(S.pmeta[pid] || S.points[pid]);
function good(pid) {
  const p = S.points[pid];
  return S.connected && p && p.q === 'good' ? p.v : undefined;
}
function shownQ(p) {
  if (!p) return 'unknown';
  if (!S.connected) return p.q === 'invalid' ? 'invalid' : 'stale';
  return p.q;
}
// A null runtime means "charging faster than the load": the store marks a null "invalid",
// so tell it apart from "unknown" by the battery SOC being fresh.
const isRuntime = (pid) => pid === 'power/runtime' || pid.startsWith('power/runtime/');
const charging = (pid) => {
  const p = S.points[pid];
  return isRuntime(pid) && S.connected && p && p.v == null && good('power/battery/soc') != null;
};

// One element per shown point value: class stale/invalid + data-quality + age when not good.
function val(pid, opts = {}) {
  const n = h('span', { class: 'num' });
  const u = h('span', { class: 'unit' });
  const a = h('span', { class: 'age' });
  const e = h('span', { class: 'val ' + (opts.cls || ''), tid: 'value-' + tid(pid) }, n, u, a);
  const keys = ['p:' + pid, 'tick', 'conn'];
  if (isRuntime(pid)) keys.push('p:power/battery/soc');
  sub(opts.scope || 'screen', keys, () => {
    const p = S.points[pid];
    let q = shownQ(p);
    let text;
    let un = '';
    if (charging(pid)) {
      q = 'good';
      text = t(pid === 'power/runtime' ? 'runtime.charging' : 'runtime.unlimited');
    } else if (!p || p.v == null) {
      text = t('value.none');
    } else {
      [text, un] = opts.fmt ? opts.fmt(p.v) : autoFmt(pid, p.v);
    }
    setText(n, text);
    setText(u, un ? '\u00a0' + un : '');
    setText(a, q === 'good' ? '' : ' ' + (p && p.ts ? ago(p.ts) : t('age.unknown')));
    e.dataset.quality = q;
    e.dataset.ts = p && p.ts ? String(p.ts) : '';
    e.classList.toggle('stale', q === 'stale' || q === 'unknown');
    e.classList.toggle('invalid', q === 'invalid');
    e.classList.toggle('txt', typeof p?.v === 'string' || charging(pid));
    if (opts.after) opts.after(e, p, q);
  });
  return e;
}

// ---- API -------------------------------------------------------------------------------------
async function getSession() {
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
  if (r.status === 401) { lockUi('expired'); throw new Error('locked'); }
  if (!r.ok) throw new Error(String(r.status));
  return r.json();
}

// ---- WebSocket ---------------------------------------------------------------------------------
let ws = null;
let wsTimer = 0;
let backoff = 500;
let lastMsg = 0;
let heartbeatS = 0;
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
async function retryNow() {
  clearTimeout(wsTimer);
  S.retryAt = 0;
  emit('conn');
  // A WebSocket refused for an expired session looks like any other failure: ask.
  const s = await getSession();
  if (!S.unlocked) return;
  if (s === 401) { lockUi('expired'); return; }
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
function setConnected(on) {
  if (S.connected === on) return;
  S.connected = on;
  if (!on) S.graceUntil = 0; // a real drop: tell the crew at once
  document.body.classList.toggle('disconnected', !on);
  emitAll();
}
// No banner during the first moments of a fresh connection (page load, unlock).
const connDown = () => !S.connected && Date.now() > S.graceUntil;

function onMessage(m) {
  switch (m.type) {
    case 'hello': {
      const roleChanged = S.role !== m.role;
      S.role = m.role || S.role;
      S.vehicle = m.vehicle || S.vehicle;
      if (m.idle_lock_s != null) S.idleLockS = Number(m.idle_lock_s) || 0;
      if (m.server_time) S.clockOffset = m.server_time * 1000 - Date.now();
      heartbeatS = Number(m.heartbeat_s) || 0;
      const changed = setMeta(m.meta || {});
      if (S.ready && S.unlocked && (changed || roleChanged)) renderAll();
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
      lockUi('ended');
      break;
    default:
  }
}
function setMeta(meta) {
  const key = JSON.stringify(meta);
  if (key === S.metaKey) return false;
  S.metaKey = key;
  S.meta = meta;
  S.pmeta = {};
  for (const p of meta.points || []) S.pmeta[p.id] = p;
  S.actions = meta.actions ? Object.fromEntries(meta.actions.map((a) => [a.id, a])) : null;
  S.circuits = (meta.points || []).map((p) => /^power\/circuit\/([^/]+)$/.exec(p.id)).filter(Boolean).map((x) => x[1]);
  return true;
}
const canRun = (action) => {
  if (!S.actions) return true;
  const a = S.actions[action];
  return !!a && (!a.roles || a.roles.includes(S.role));
};
const actionArg = (action, arg) => S.actions?.[action]?.args?.[arg] || {};

// ---- commands ----------------------------------------------------------------------------------
let seq = 0;
const isPending = (key) => S.pendingKeys.has(key);
function sendCmd(action, args, key) {
  if (!ws || ws.readyState !== 1 || !S.connected) {
    toast('error', t('result.failed'), [t('hint.offline')]);
    return;
  }
  const id = `panel-${Date.now().toString(36)}-${(++seq).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  ws.send(JSON.stringify({ type: 'cmd', action, id, args }));
  const timer = setTimeout(() => {
    if (!S.pending.delete(id)) return;
    if (S.pendingKeys.get(key) === id) S.pendingKeys.delete(key);
    toast('error', t('result.timeout'), [t('hint.timeout')]);
    emit('pending');
  }, CMD_TIMEOUT_MS);
  S.pending.set(id, { action, args, key, timer });
  S.pendingKeys.set(key, id);
  emit('pending');
}
function onResult(m) {
  const p = S.pending.get(m.id);
  if (p) {
    clearTimeout(p.timer);
    S.pending.delete(m.id);
    if (S.pendingKeys.get(p.key) === m.id) S.pendingKeys.delete(p.key);
    emit('pending');
  }
  if (m.status === 'done') return;
  const lines = [];
  if (HINTS.includes(m.code)) lines.push(t('hint.' + m.code));
  if (m.message) lines.push(m.message);
  const what = p ? tOr('action.' + p.action, '') : '';
  const title = tOr('result.' + m.status, t('result.failed'));
  toast('error', what ? `${what}: ${title}` : title, lines, m.status);
}
function clearPending() {
  for (const p of S.pending.values()) clearTimeout(p.timer);
  S.pending.clear();
  S.pendingKeys.clear();
}

// ---- toast and confirmation dialog -------------------------------------------------------------
let toastTimer = 0;
function toast(kind, title, lines = [], status = '') {
  const el = $('#toast');
  el.replaceChildren(
    icon(kind === 'error' ? 'warn' : 'info', 'ico toast-ico'),
    h('div', { class: 'toast-body' }, h('strong', null, title), lines.map((l) => h('div', null, l))),
    h('button', { type: 'button', class: 'btn icon-only', 'aria-label': t('common.close'), onclick: hideToast }, icon('x')),
  );
  el.dataset.kind = kind;
  el.dataset.status = status;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideToast, kind === 'error' ? 12000 : 5000);
}
function hideToast() { $('#toast').hidden = true; }

let closeModal = null;
function confirmDialog(key) {
  return new Promise((resolve) => {
    if (closeModal) closeModal(false);
    const root = $('#modal');
    const done = (v) => { root.hidden = true; root.replaceChildren(); closeModal = null; resolve(v); };
    closeModal = done;
    const no = h('button', { type: 'button', class: 'btn big', tid: 'confirm-no', onclick: () => done(false) }, t('common.cancel'));
    const yes = h('button', { type: 'button', class: 'btn big danger', tid: 'confirm-yes', onclick: () => done(true) }, t(`confirm.${key}.yes`));
    root.replaceChildren(h('div', { class: 'dialog', role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': 'dlg-t' },
      h('div', { class: 'dlg-head' }, icon('warn', 'ico dlg-ico'), h('h2', { id: 'dlg-t' }, t(`confirm.${key}.title`))),
      h('p', null, t(`confirm.${key}.body`)),
      h('div', { class: 'dlg-buttons' }, no, yes)));
    root.onclick = (e) => { if (e.target === root) done(false); };
    root.hidden = false;
    no.focus();
  });
}

// ---- locking -----------------------------------------------------------------------------------
let lastActivity = Date.now();
for (const ev of ['pointerdown', 'keydown', 'touchstart', 'wheel']) {
  addEventListener(ev, () => { lastActivity = Date.now(); }, { passive: true, capture: true });
}
function lockNow(reason) {
  fetch('/api/lock', { method: 'POST', credentials: 'same-origin', keepalive: true }).catch(() => {});
  lockUi(reason);
}
function lockUi(reason) {
  if (!S.unlocked && S.ready) { if (reason) renderAll(reason); return; }
  S.unlocked = false;
  disconnect();
  clearPending();
  if (closeModal) closeModal(false);
  hideToast();
  S.screen = 'home';
  S.events = null;
  clearInterval(screenTimer);
  for (const f of leaving.splice(0)) f();
  if (S.ready) renderAll(reason);
}
function unlocked(s) {
  adoptSession(s);
  S.unlocked = true;
  S.screen = 'home';
  lastActivity = Date.now();
  backoff = 500;
  S.graceUntil = Date.now() + 1500;
  connect();
  if (S.ready) renderAll();
}

// ---- shell: top bar, navigation, banner ---------------------------------------------------------
function renderAll(pinReason) {
  clearSubs('shell');
  clearSubs('screen');
  document.documentElement.lang = S.lang;
  document.title = t('app.title');
  const app = $('#app');
  app.className = S.unlocked ? 'app' : 'app locked';
  const title = h('div', { class: 'top-title' });
  const clock = h('div', { class: 'clock' });
  const top = h('header', { class: 'top' },
    h('div', { class: 'brand' }, h('span', { class: 'veh' }, S.vehicle?.name || t('app.short')), title),
    clock,
    h('button', { type: 'button', class: 'btn top-btn', tid: 'lang-toggle', 'aria-label': t('lang.switch'), onclick: switchLang },
      icon('globe'), h('span', null, t('lang.other'))),
    nightButton('night-toggle', 'btn top-btn', 'shell'),
    S.unlocked ? h('button', { type: 'button', class: 'btn top-btn', tid: 'lock-button', onclick: () => lockNow('manual') },
      icon('lock'), h('span', null, t('common.lock'))) : null);
  sub('shell', ['tick'], () => setText(clock, fmtTime(Date.now() / 1000, false)));
  const main = h('main', { id: 'main' });
  if (!S.unlocked) {
    setText(title, t('pin.screen'));
    app.replaceChildren(top, main);
    renderPin(main, pinReason);
    return;
  }
  const nav = h('nav', { class: 'rail', 'aria-label': t('nav.label') });
  for (const name of NAV) {
    if (name === 'diagnostics' && S.role !== 'technician') continue;
    const b = h('button', { type: 'button', class: 'nav-btn', tid: 'nav-' + name, onclick: () => go(name) },
      icon(NAV_ICON[name]), h('span', { class: 'nav-label' }, t('nav.' + name)));
    if (name === 'alarms') {
      const badge = h('span', { class: 'badge', tid: 'alarm-badge', hidden: true });
      b.append(badge);
      sub('shell', ['alarms'], () => {
        const list = shownAlarms();
        badge.hidden = !list.length;
        setText(badge, num(list.length));
        badge.dataset.severity = list[0]?.severity || '';
      });
    }
    nav.append(b);
  }
  const banner = connBanner();
  const screen = h('div', { class: 'screen-wrap' });
  main.append(banner, screen);
  app.replaceChildren(top, nav, main);
  sub('shell', ['nav'], () => {
    setText(title, t('title.' + S.screen));
    for (const b of nav.children) b.setAttribute('aria-current', b.dataset.testid === 'nav-' + S.screen ? 'page' : 'false');
  });
  renderScreen();
}
function nightButton(testid, cls, scope) {
  const b = h('button', { type: 'button', class: cls, tid: testid, onclick: () => setNight(!S.night) },
    icon('moon'), h('span', null, t(testid === 'night-toggle' ? 'night.short' : 'night.mode')));
  sub(scope, ['night'], () => { b.setAttribute('aria-pressed', String(S.night)); b.dataset.state = S.night ? 'on' : 'off'; });
  return b;
}
function connBanner() {
  const msg = h('span', { class: 'cb-text' });
  const b = h('div', { class: 'conn-banner', tid: 'conn-banner', role: 'alert', hidden: true },
    icon('off'), msg,
    h('button', { type: 'button', class: 'btn', tid: 'conn-retry', onclick: retryNow }, t('conn.retry_now')));
  sub('shell', ['conn', 'second'], () => {
    const show = S.unlocked && connDown();
    b.hidden = !show;
    if (!show) return;
    const left = Math.ceil((S.retryAt - Date.now()) / 1000);
    setText(msg, t('conn.lost') + ' ' + (left > 0 ? t('conn.retry_in', { s: num(left) }) : t('conn.connecting')));
  });
  return b;
}
function go(name) {
  if (name === 'diagnostics' && S.role !== 'technician') name = 'home';
  S.screen = name;
  renderScreen();
}
function renderScreen() {
  clearSubs('screen');
  clearInterval(screenTimer);
  for (const f of leaving.splice(0)) f();
  const wrap = $('.screen-wrap');
  if (!wrap) return;
  emit('nav');
  const sec = h('section', { class: 'screen screen-' + S.screen, tid: 'screen-' + S.screen });
  wrap.replaceChildren(sec);
  $('#main').scrollTop = 0;
  if (!S.meta && !['room', 'comms'].includes(S.screen)) {
    sec.append(h('div', { class: 'loading' }, t('conn.connecting')));
    return;
  }
  SCREENS[S.screen](sec);
}
let screenTimer = 0;
const leaving = []; // clean-ups run when the screen is left

async function switchLang() {
  const lang = S.lang === 'pl' ? 'en' : 'pl';
  try {
    S.dict = await loadDict(lang);
  } catch { return; }
  S.lang = lang;
  store.set('mcw.lang', lang);
  nfc.clear();
  dtf.clear();
  renderAll();
}
function setNight(on) {
  S.night = on;
  store.set('mcw.night', on ? '1' : '0');
  document.documentElement.classList.toggle('night', on);
  document.documentElement.classList.toggle('day', !on);
  emit('night');
  emit('chart');
}

// ---- shared widgets -------------------------------------------------------------------------------
function card(titleKey, ico, ...kids) {
  return h('div', { class: 'card' }, titleKey ? h('h2', { class: 'card-title' }, ico ? icon(ico) : null, t(titleKey)) : null, kids);
}
function metric(labelKey, pid, opts = {}) {
  if (!has(pid) && !opts.always) return null;
  return h('div', { class: 'metric ' + (opts.mcls || '') }, h('div', { class: 'm-label' }, typeof labelKey === 'string' ? t(labelKey) : labelKey), val(pid, opts));
}
function cmdButton({ testid, label, ico, key, action, cls = '', onTap }) {
  const b = h('button', { type: 'button', class: 'btn ' + cls, tid: testid }, ico ? icon(ico) : null, h('span', null, label));
  b.addEventListener('click', () => { if (!isPending(key)) onTap(); });
  sub('screen', ['pending', 'conn'], () => {
    const p = isPending(key);
    b.classList.toggle('pending', p);
    b.setAttribute('aria-busy', String(p));
    b.disabled = !S.connected || !canRun(action) || p;
  });
  return b;
}
// An on/off switch bound to a bool point; data-state on|off|pending.
function switchButton({ testid, pid, key, action, onTap, cls = '' }) {
  const b = h('button', { type: 'button', class: 'switch ' + cls, tid: testid }, h('span', { class: 'knob' }), val(pid));
  b.addEventListener('click', () => { if (!isPending(key)) onTap(); });
  sub('screen', ['p:' + pid, 'pending', 'conn'], () => {
    const pend = isPending(key);
    const on = !!S.points[pid]?.v;
    b.dataset.state = pend ? 'pending' : on ? 'on' : 'off';
    b.setAttribute('aria-pressed', String(on));
    b.setAttribute('aria-busy', String(pend));
    b.disabled = !S.connected || !canRun(action) || pend;
  });
  return b;
}

const circuitLabel = (name) => S.dict['circuit.' + name] ?? S.pmeta['power/circuit/' + name]?.description ?? name;
const shedReason = (name) => {
  const v = S.points[`power/circuit/${name}/shed`]?.v;
  return typeof v === 'string' ? v : '';
};
function toggleCircuit(name) {
  const pid = 'power/circuit/' + name;
  const actual = S.points[pid];
  const cur = actual && actual.v != null ? !!actual.v : !!S.points[pid + '/wanted']?.v;
  sendCmd('power/circuit', { circuit: name, on: !cur }, 'circuit:' + name);
}
function circuitRow(name, { whatIf = false, tile = false } = {}) {
  const pid = 'power/circuit/' + name;
  const btn = h('button', { type: 'button', class: 'toggle', tid: 'circuit-' + name, 'aria-label': circuitLabel(name) },
    icon('lock', 'ico lock-ico'), val(pid));
  btn.addEventListener('click', () => { if (!isPending('circuit:' + name)) toggleCircuit(name); });
  const shed = h('div', { class: 'shed-reason', tid: `circuit-${name}-shed` });
  const row = h('div', { class: tile ? 'circuit tile' : 'circuit' },
    h('div', { class: 'c-info' }, h('div', { class: 'c-name' }, circuitLabel(name)), shed,
      whatIf && has(`power/runtime/with/${name}`)
        ? h('div', { class: 'what-if' }, t('circuit.what_if'), ' ', val(`power/runtime/with/${name}`)) : null),
    btn);
  const wi = row.querySelector('.what-if');
  sub('screen', ['p:' + pid, `p:${pid}/wanted`, `p:${pid}/shed`, 'pending', 'conn'], () => {
    const pend = isPending('circuit:' + name);
    const a = S.points[pid];
    const on = a && a.v != null ? !!a.v : !!S.points[pid + '/wanted']?.v;
    const reason = shedReason(name);
    btn.dataset.state = pend ? 'pending' : on ? 'on' : 'off';
    btn.setAttribute('aria-pressed', String(on));
    btn.setAttribute('aria-busy', String(pend));
    btn.disabled = !S.connected || !canRun('power/circuit') || pend;
    row.classList.toggle('is-shed', !!reason);
    btn.classList.toggle('shed', !!reason);
    shed.hidden = !reason;
    setText(shed, reason ? t('circuit.shed', { reason }) : '');
    if (wi) wi.hidden = on || !!reason;
  });
  return row;
}
function overrideButton(big) {
  const b = h('button', { type: 'button', class: big ? 'mode-tile' : 'btn', tid: 'shed-override' });
  const label = h('span', { class: 'mt-label' });
  const sub2 = h('span', { class: 'mt-sub' });
  b.append(icon('bolt'), h('span', { class: 'mt-text' }, label, sub2));
  b.addEventListener('click', async () => {
    if (isPending('override')) return;
    const active = !!S.points['power/shed/override']?.v;
    if (!active && !(await confirmDialog('override'))) return;
    sendCmd('power/shed_override', { active: !active }, 'override');
  });
  sub('screen', ['p:power/shed/override', 'p:power/shed/override_until', 'pending', 'conn', 'tick'], () => {
    const active = !!S.points['power/shed/override']?.v;
    const until = S.points['power/shed/override_until']?.v;
    const pend = isPending('override');
    b.dataset.state = pend ? 'pending' : active ? 'on' : 'off';
    b.setAttribute('aria-pressed', String(active));
    b.disabled = !S.connected || !canRun('power/shed_override') || pend;
    setText(label, t(active ? 'override.end' : 'override.start'));
    setText(sub2, active ? (until ? t('override.until', { time: fmtTime(until) }) : t('override.active')) : t('override.hint'));
  });
  return b;
}

// ---- screens --------------------------------------------------------------------------------------
const SCREENS = {
  home(sec) {
    const chips = h('div', { class: 'chips' });
    const chip = h('button', { type: 'button', class: 'chip warn', tid: 'status-chip', hidden: true },
      icon('warn'), h('span'));
    chip.addEventListener('click', () => { if (S.role === 'technician') go('diagnostics'); });
    const drive = h('div', { class: 'chip info', tid: 'driving-chip', hidden: true }, icon('car'), h('span', null, t('home.driving')));
    chips.append(chip, drive);
    sub('screen', ['conn', 'devices', 'status', 'second'], () => {
      const off = offlineDevices();
      let text = '';
      if (connDown()) text = t('home.chip_conn');
      else if (off.length) text = t('home.chip_offline', { list: off.join(', ') });
      chip.hidden = !text;
      setText(chip.lastChild, text);
    });
    sub('screen', ['p:vehicle/driving', 'conn'], () => { drive.hidden = S.points['vehicle/driving']?.v !== true; });

    // battery
    const gauge = h('div', { class: 'gauge' }, h('div', { class: 'gauge-fill' }));
    const soc = val('power/battery/soc', {
      cls: 'huge',
      after: (e, p, q) => {
        const v = p && typeof p.v === 'number' ? p.v : 0;
        const fill = gauge.firstChild;
        fill.style.width = Math.max(0, Math.min(100, v)) + '%';
        gauge.dataset.level = q !== 'good' ? 'stale' : v < 20 ? 'crit' : v < 40 ? 'warn' : 'ok';
      },
    });
    const batt = h('div', { class: 'card battery' },
      h('h2', { class: 'card-title' }, icon('battery'), t('home.battery')),
      h('div', { class: 'soc-row' }, soc, metric('home.battery_power', 'power/battery/power', { mcls: 'compact' })),
      gauge,
      h('div', { class: 'runtime' },
        h('div', { class: 'm-label' }, t('home.runtime')),
        h('div', { tid: 'runtime-now', class: 'rt-now' }, val('power/runtime', { cls: 'big' })),
        has('power/runtime/with_climate')
          ? h('div', { tid: 'runtime-climate', class: 'rt-climate' }, h('span', { class: 'm-label' }, t('home.runtime_climate')), ' ', val('power/runtime/with_climate'))
          : null));

    // source
    const srcIco = h('span', { class: 'src-ico' });
    const src = h('div', { class: 'card source' },
      h('h2', { class: 'card-title' }, t('home.source')),
      h('div', { class: 'src-row' }, srcIco, h('div', { class: 'src-text' },
        val('power/ac/source', { cls: 'mid', fmt: (v) => [t('source.' + sourceKind(v)), ''] }),
        h('div', { class: 'src-detail' },
          has('power/ac/input_power') ? h('span', { class: 'src-in' }, t('home.input'), ' ', val('power/ac/input_power')) : null,
          has('power/solar/power') ? h('span', null, icon('sun', 'ico small'), ' ', val('power/solar/power')) : null))));
    sub('screen', ['p:power/ac/source', 'conn'], () => {
      const kind = sourceKind(S.points['power/ac/source']?.v);
      const ico = { shore: 'plug', generator: 'gen', battery: 'battery' }[kind];
      if (srcIco.dataset.kind !== kind) { srcIco.dataset.kind = kind; srcIco.replaceChildren(icon(ico, 'ico xl')); }
      src.dataset.source = kind;
      const inp = src.querySelector('.src-in');
      if (inp) inp.hidden = kind === 'battery';
    });

    // alarms summary
    const alist = h('div', { class: 'alarm-summary' });
    const acard = h('button', { type: 'button', class: 'card alarms-card', tid: 'home-alarms', onclick: () => go('alarms') },
      h('h2', { class: 'card-title' }, icon('bell'), t('home.alarms')), alist);
    sub('screen', ['alarms'], () => {
      const list = shownAlarms();
      acard.dataset.severity = list[0]?.severity || 'none';
      if (!list.length) { alist.replaceChildren(h('div', { class: 'ok-line' }, icon('check'), t('alarms.none'))); return; }
      const max = innerHeight >= 700 ? 5 : 2;
      alist.replaceChildren(...list.slice(0, max).map((a) => h('div', { class: 'as-row sev-' + a.severity },
        icon(a.severity === 'info' ? 'info' : 'warn'), h('span', null, alarmText(a)))),
      ...(list.length > max ? [h('div', { class: 'as-more' }, t('home.more_alarms', { n: num(list.length - max) }))] : []));
    });

    const modes = h('div', { class: 'modes' },
      nightButton('home-night-toggle', 'mode-tile', 'screen'),
      has('power/shed/override') ? overrideButton(true) : null);
    sec.append(chips, h('div', { class: 'home-grid' }, batt, h('div', { class: 'home-side' }, src, acard, modes)));
  },

  power(sec) {
    const circuits = h('div', { class: 'circuit-list' }, S.circuits.map((c) => circuitRow(c, { whatIf: true })));
    const shedInfo = h('div', { class: 'shed-steps' });
    sub('screen', ['p:power/shed/steps', 'conn'], () => {
      const n = good('power/shed/steps');
      shedInfo.hidden = !n;
      setText(shedInfo, n ? t('power.shed_steps', { n: num(n) }) : '');
    });
    sec.append(
      h('div', { class: 'flow' },
        card('power.battery', 'battery', h('div', { class: 'metrics' },
          metric('power.soc', 'power/battery/soc', { cls: 'big' }),
          metric('power.voltage', 'power/battery/voltage'),
          metric('power.current', 'power/battery/current'),
          metric('power.power', 'power/battery/power'),
          metric('power.temperature', 'power/battery/temperature'),
          metric('power.runtime', 'power/runtime', { mcls: 'wide' }))),
        h('div', { class: 'card circuits-card' },
          h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, icon('bolt'), t('power.circuits')),
            has('power/shed/override') ? overrideButton(false) : null),
          shedInfo, circuits),
        shoreCard(), generatorCard(), inverterCard(),
        has('power/solar/power') ? card('power.solar', 'sun', h('div', { class: 'metrics' },
          metric('power.solar_power', 'power/solar/power', { cls: 'big' }),
          metric('power.solar_state', 'power/solar/state'))) : null),
      h('div', { class: 'grid charts' }, chartCard('soc'), chartCard('power')));
    loadHistory();
    screenTimer = setInterval(() => loadHistory(true), HISTORY_MS);
  },

  climate(sec) {
    sec.append(h('div', { class: 'grid climate-grid' },
      card('climate.room', 'thermo', h('div', { class: 'metrics two' },
        metric('climate.temperature', 'climate/room/temperature', { cls: 'huge', always: true }),
        metric('climate.humidity', 'climate/room/humidity', { cls: 'huge', always: true }))),
      has('power/runtime/with_climate') ? card('climate.what_if', 'battery', h('div', { class: 'metrics' },
        metric('power.runtime', 'power/runtime', { cls: 'big' }),
        metric('home.runtime_climate', 'power/runtime/with_climate', { cls: 'big' }))) : null,
      laterCard('climate.later')));
  },

  lighting(sec) {
    const lights = S.circuits.filter((c) => c.includes('light'));
    sec.append(h('div', { class: 'tiles' }, lights.length
      ? lights.map((c) => circuitRow(c, { tile: true }))
      : h('div', { class: 'card' }, t('lighting.none'))), laterCard('lighting.later'));
  },
  room(sec) { sec.append(placeholder('room', 'door')); },
  comms(sec) { sec.append(placeholder('comms', 'signal')); },

  alarms(sec) {
    const list = h('div', { class: 'alarm-list' });
    const empty = h('div', { class: 'ok-line big-ok' }, icon('check'), t('alarms.none'));
    const rows = new Map();
    sub('screen', ['alarms', 'conn', 'pending', 'tick'], () => {
      const items = shownAlarms();
      for (const [id, r] of rows) if (!S.alarms[id]) { r.el.remove(); rows.delete(id); }
      items.forEach((a, i) => {
        let r = rows.get(a.id);
        if (!r) { r = alarmRow(a.id); rows.set(a.id, r); }
        r.paint(a);
        if (list.children[i] !== r.el) list.insertBefore(r.el, list.children[i] || null);
      });
      empty.hidden = items.length > 0;
    });
    const hist = h('div', { class: 'events' });
    sec.append(card('alarms.active', 'bell', empty, list), card('alarms.history', null, hist));
    sub('screen', ['events'], () => paintEvents(hist, (e) => e.kind !== 'command'));
    let timer = 0;
    sub('screen', ['alarms'], () => { clearTimeout(timer); timer = setTimeout(loadEvents, 800); });
    leaving.push(() => clearTimeout(timer));
    loadEvents();
    screenTimer = setInterval(loadEvents, 30000);
  },

  diagnostics(sec) {
    const st = h('div', { class: 'metrics' });
    sub('screen', ['status', 'conn', 'devices'], () => {
      const state = S.status.state;
      st.replaceChildren(
        kv(t('diag.supervisor'), state ? tOr('sup.' + state, state) : t('value.none'), state === 'ready' ? 'ok' : 'warn', 'supervisor-state'),
        kv(t('diag.connection'), t(S.connected ? 'diag.connected' : 'diag.disconnected'), S.connected ? 'ok' : 'crit'),
        kv(t('diag.version'), S.status.version || S.meta?.version || t('value.none')),
        kv(t('diag.vehicle'), S.vehicle?.id || t('value.none')),
        kv(t('diag.role'), tOr('role.' + S.role, S.role || '')),
        kv(t('diag.devices_ok'), `${num(Object.values(S.devices).filter((d) => d.state === 'online').length)} / ${num(deviceIds().length)}`));
    });
    const table = h('div', { class: 'devices' });
    const rows = new Map();
    sub('screen', ['devices', 'tick', 'conn'], () => {
      for (const id of deviceIds()) {
        let r = rows.get(id);
        if (!r) { r = deviceRow(id); rows.set(id, r); table.append(r.el); }
        r.paint();
      }
    });
    const cmds = h('div', { class: 'events' });
    sub('screen', ['events'], () => paintEvents(cmds, (e) => e.kind === 'command'));
    sec.append(card('diag.status', 'pulse', st), card('diag.devices', null, table), card('diag.commands', null, cmds));
    loadEvents();
    screenTimer = setInterval(loadEvents, 30000);
  },
};

function placeholder(name, ico) {
  return h('div', { class: 'card placeholder' }, icon(ico, 'ico xl'), h('h2', null, t('title.' + name)), h('p', null, t('later.text')));
}
function laterCard(key) {
  return h('div', { class: 'later' }, icon('info'), h('span', null, t(key)));
}
function kv(label, value, cls = '', testid) {
  return h('div', { class: 'metric' }, h('div', { class: 'm-label' }, label), h('div', { class: 'kv ' + cls, tid: testid }, value));
}
function sourceKind(v) {
  if (v === 'shore' || v === 'grid') return 'shore';
  if (v === 'generator') return 'generator';
  return 'battery';
}

// ---- power cards ----------------------------------------------------------------------------------
function shoreCard() {
  if (!has('power/ac/source') && !has('power/shore/current_limit')) return null;
  const arg = actionArg('power/shore/current_limit', 'amps');
  const min = arg.min ?? 3;
  const max = arg.max ?? 32;
  const cur = () => good('power/shore/current_limit') ?? S.points['power/shore/current_limit']?.v;
  const set = (a) => sendCmd('power/shore/current_limit', { amps: Math.max(min, Math.min(max, a)) }, 'shore');
  const presets = BREAKERS.filter((a) => a >= min && a <= max).map((a) =>
    cmdButton({ testid: 'shore-limit-' + a, label: t('shore.preset', { a: num(a) }), key: 'shore', action: 'power/shore/current_limit', cls: 'preset', onTap: () => set(a) }));
  sub('screen', ['p:power/shore/current_limit'], () => {
    const c = cur();
    presets.forEach((b, i) => b.setAttribute('aria-pressed', String(BREAKERS.filter((a) => a >= min && a <= max)[i] === c)));
  });
  const bar = h('div', { class: 'bar' }, h('div', { class: 'bar-fill' }));
  sub('screen', ['p:power/ac/input_current', 'p:power/shore/current_limit', 'conn'], () => {
    const i = good('power/ac/input_current');
    const l = good('power/shore/current_limit');
    const r = i != null && l ? Math.min(1, i / l) : 0;
    bar.firstChild.style.width = (r * 100).toFixed(0) + '%';
    bar.dataset.level = i == null ? 'stale' : r > 0.95 ? 'crit' : r > 0.8 ? 'warn' : 'ok';
  });
  return card('power.shore', 'plug',
    h('div', { class: 'metrics' },
      metric('power.source', 'power/ac/source', { mcls: 'wide' }),
      metric('power.input_voltage', 'power/ac/input_voltage'),
      metric('power.input_current', 'power/ac/input_current'),
      metric('power.input_power', 'power/ac/input_power')),
    has('power/ac/input_current') ? bar : null,
    h('div', { class: 'limit' },
      h('div', { class: 'm-label' }, t('shore.limit')),
      h('div', { class: 'stepper' },
        cmdButton({ testid: 'shore-limit-minus', label: '−', key: 'shore', action: 'power/shore/current_limit', cls: 'step', onTap: () => set((cur() ?? min) - 1) }),
        val('power/shore/current_limit', { cls: 'big', fmt: (v) => [num(v), unit('A')] }),
        cmdButton({ testid: 'shore-limit-plus', label: '+', key: 'shore', action: 'power/shore/current_limit', cls: 'step', onTap: () => set((cur() ?? min) + 1) })),
      h('div', { class: 'presets' }, presets)));
}
function generatorCard() {
  if (!has('power/generator/state')) return null;
  const start = cmdButton({ testid: 'gen-start', label: t('gen.start'), ico: 'gen', key: 'gen', action: 'power/generator', cls: 'primary',
    onTap: () => sendCmd('power/generator', { command: 'start' }, 'gen') });
  const stop = cmdButton({ testid: 'gen-stop', label: t('gen.stop'), ico: 'x', key: 'gen', action: 'power/generator', cls: 'danger',
    onTap: async () => { if (await confirmDialog('gen_stop')) sendCmd('power/generator', { command: 'stop' }, 'gen'); } });
  const stateEl = val('power/generator/state', { cls: 'mid' });
  sub('screen', ['p:power/generator/state', 'conn'], () => { stateEl.dataset.gen = S.points['power/generator/state']?.v || ''; });
  return card('power.generator', 'gen',
    h('div', { class: 'metrics' },
      h('div', { class: 'metric wide' }, h('div', { class: 'm-label' }, t('gen.state')), stateEl),
      metric('gen.reason', 'power/generator/reason', { mcls: 'wide' }),
      metric('gen.run_total', 'power/generator/run_time_total')),
    h('div', { class: 'btn-row' }, start, stop),
    has('power/generator/auto') ? h('div', { class: 'switch-row' }, h('span', null, t('gen.auto')),
      switchButton({ testid: 'gen-auto', pid: 'power/generator/auto', key: 'genauto', action: 'power/generator/auto',
        onTap: () => sendCmd('power/generator/auto', { enabled: !S.points['power/generator/auto']?.v }, 'genauto') })) : null);
}
function inverterCard() {
  if (!has('power/inverter/mode') && !has('power/inverter/mode_setting')) return null;
  const modes = actionArg('power/inverter/mode', 'mode').enum || ['on', 'charger_only', 'inverter_only', 'off'];
  const btns = modes.map((m) => cmdButton({ testid: 'inverter-mode-' + m, label: t('invmode.' + m), key: 'inv', action: 'power/inverter/mode',
    cls: 'seg' + (m === 'off' ? ' seg-off' : ''),
    onTap: async () => { if (m !== 'off' || (await confirmDialog('inv_off'))) sendCmd('power/inverter/mode', { mode: m }, 'inv'); } }));
  sub('screen', ['p:power/inverter/mode_setting', 'p:power/inverter/mode'], () => {
    const sel = S.points['power/inverter/mode_setting']?.v ?? S.points['power/inverter/mode']?.v;
    btns.forEach((b, i) => b.setAttribute('aria-pressed', String(modes[i] === sel)));
  });
  return card('power.inverter', 'wave',
    h('div', { class: 'metrics' },
      metric('inv.mode', 'power/inverter/mode'),
      metric('inv.state', 'power/inverter/state'),
      metric('inv.out_power', 'power/inverter/ac_out_power')),
    h('div', { class: 'm-label' }, t('inv.choose')),
    h('div', { class: 'segmented' }, btns));
}

// ---- charts ---------------------------------------------------------------------------------------
const CHARTS = {
  soc: { point: 'power/battery/soc', title: 'chart.soc', yMin: 0, yMax: 100, ticks: [0, 25, 50, 75, 100], fmt: (v) => num(v) + unit('%') },
  power: { point: 'power/battery/power', title: 'chart.power', split: true, minSpan: 200, fmt: (v) => num(v, 0, 'exceptZero') },
};
function chartCard(kind) {
  const c = CHARTS[kind];
  const box = h('div', { class: 'chart-box' });
  const note = h('div', { class: 'chart-note' });
  const fig = h('figure', { class: 'chart', tid: 'chart-' + kind }, box);
  const draw = () => {
    const d = S.hist[kind];
    if (!d) { setText(note, t('chart.loading')); return; }
    setText(note, d.error ? t('chart.error') : t('chart.updated', { time: fmtTime(d.at / 1000, false) }));
    const to = nowS();
    lineChart(box, { t: d.t || [], v: d.v || [], from: to - 86400, to, yMin: c.yMin, yMax: c.yMax, ticks: c.ticks,
      split: c.split, minSpan: c.minSpan, fmtY: c.fmt, fmtX: (e) => fmtTime(e, false), empty: t(d.error ? 'chart.error' : 'chart.empty'), title: t(c.title) });
  };
  sub('screen', ['hist', 'chart'], draw);
  let w = 0;
  const ro = new ResizeObserver(() => { if (box.clientWidth && box.clientWidth !== w) { w = box.clientWidth; draw(); } });
  ro.observe(box);
  leaving.push(() => ro.disconnect());
  return h('div', { class: 'card chart-card' },
    h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, t(c.title)),
      kind === 'power' ? h('div', { class: 'legend' }, h('span', { class: 'lg pos' }, t('chart.charging')), h('span', { class: 'lg neg' }, t('chart.discharging'))) : null),
    fig, note);
}
async function loadHistory(force) {
  await Promise.all(Object.keys(CHARTS).map(async (kind) => {
    const old = S.hist[kind];
    if (!force && old && !old.error && Date.now() - old.at < HISTORY_MS) return;
    const q = new URLSearchParams({ point: CHARTS[kind].point, hours: '24' });
    try {
      const d = await getJSON('/api/history?' + q);
      S.hist[kind] = { t: d.t || [], v: d.v || [], at: Date.now() };
    } catch {
      S.hist[kind] = { ...(old || { t: [], v: [] }), error: true, at: Date.now() };
    }
  }));
  emit('hist');
}

// ---- alarms and events ----------------------------------------------------------------------------
function shownAlarms() {
  return Object.entries(S.alarms).filter(([, a]) => a && (a.active || !a.acked)).map(([id, a]) => ({ id, ...a }))
    .sort((a, b) => (b.active - a.active) || (SEV_RANK[a.severity] ?? 3) - (SEV_RANK[b.severity] ?? 3) || (b.since || 0) - (a.since || 0));
}
const alarmText = (a) => (S.lang === 'pl' ? a.text_pl || a.text : a.text || a.text_pl) || a.id;
function alarmRow(id) {
  const text = h('div', { class: 'a-text' });
  const meta = h('div', { class: 'a-meta' });
  const sev = h('span', { class: 'a-sev' });
  const ico = h('span', { class: 'a-ico' });
  const ack = h('button', { type: 'button', class: 'btn ack', tid: 'ack-' + tid(id) }, icon('check'), h('span', null, t('alarms.ack')));
  ack.addEventListener('click', () => { if (!isPending('ack:' + id)) sendCmd('alarm/ack', { alarm: id }, 'ack:' + id); });
  const el = h('div', { class: 'alarm', tid: 'alarm-' + tid(id) }, ico, h('div', { class: 'a-body' }, h('div', { class: 'a-top' }, sev, text), meta), ack);
  return {
    el,
    paint(a) {
      el.className = `alarm sev-${a.severity}${a.active ? '' : ' cleared'}`;
      el.dataset.severity = a.severity;
      el.dataset.active = String(!!a.active);
      el.dataset.acked = String(!!a.acked);
      const icoName = a.severity === 'info' ? 'info' : 'warn';
      if (ico.dataset.i !== icoName) { ico.dataset.i = icoName; ico.replaceChildren(icon(icoName, 'ico')); }
      setText(sev, tOr('sev.' + a.severity, a.severity));
      setText(text, alarmText(a) + (a.detail ? ` (${a.detail})` : ''));
      const bits = [];
      if (a.since) bits.push(t('alarms.since', { time: fmtTime(a.since), age: fmtAge(nowS() - a.since) }));
      bits.push(t(a.active ? 'alarms.state_active' : 'alarms.state_cleared'));
      if (a.acked) bits.push(t('alarms.acked'));
      setText(meta, bits.join(' · '));
      const pend = isPending('ack:' + id);
      ack.hidden = !!a.acked;
      ack.classList.toggle('pending', pend);
      ack.disabled = pend || !S.connected || !canRun('alarm/ack');
    },
  };
}
async function loadEvents() {
  try {
    const d = await getJSON('/api/events?limit=100');
    S.events = Array.isArray(d) ? d : [];
    S.eventsErr = false;
  } catch {
    S.eventsErr = true;
  }
  emit('events');
}
function eventText(e) {
  const circuits = (e.circuits || []).map(circuitLabel).join(', ');
  switch (e.kind) {
    case 'alarm': return [e.severity === 'info' ? 'info' : 'warn', `${S.lang === 'pl' ? e.text_pl || e.text : e.text || e.text_pl}: ${tOr('alarmwhat.' + e.what, e.what)}`, e.detail];
    case 'power': return ['bolt', t('power_ev.' + (['shed', 'restore', 'override_started', 'override_ended'].includes(e.what) ? e.what : 'other'), { circuits, what: e.what }), e.reason];
    case 'generator': return ['gen', `${t('gen.title_short')}: ${tOr('gen_ev.' + e.what, e.what)}`, e.reason];
    case 'command': return [e.status === 'done' ? 'check' : 'warn',
      `${tOr('action.' + e.action, e.action)}: ${tOr('result.' + e.status, e.status)}`,
      [e.code && e.code !== 'ok' ? e.code : '', e.message, e.source ? t('diag.source', { s: e.source }) : ''].filter(Boolean).join(' · ')];
    default: return ['info', e.kind || '?', e.what || ''];
  }
}
function paintEvents(box, filter) {
  if (S.events == null) { box.replaceChildren(h('div', { class: 'muted' }, t(S.eventsErr ? 'events.error' : 'chart.loading'))); return; }
  const list = S.events.filter(filter).slice(0, 50);
  if (!list.length) { box.replaceChildren(h('div', { class: 'muted' }, t('events.none'))); return; }
  box.replaceChildren(...(S.eventsErr ? [h('div', { class: 'muted' }, t('events.error'))] : []), ...list.map((e) => {
    const [ico, title, detail] = eventText(e);
    const ts = Date.parse(e.ts) / 1000;
    return h('div', { class: `event kind-${e.kind} ${e.kind === 'alarm' ? 'sev-' + e.severity : ''}` },
      h('span', { class: 'ev-time' }, isFinite(ts) ? fmtTime(ts) : ''), icon(ico),
      h('div', { class: 'ev-body' }, h('div', null, title), detail ? h('div', { class: 'ev-detail' }, detail) : null));
  }));
}

// ---- devices --------------------------------------------------------------------------------------
const deviceIds = () => [...new Set([...(S.meta?.devices || []).map((d) => d.id), ...Object.keys(S.devices)])];
const deviceLabel = (id) => (S.meta?.devices || []).find((d) => d.id === id)?.label || id;
function offlineDevices() {
  return deviceIds().filter((id) => S.devices[id]?.state === 'offline').map(deviceLabel);
}
function deviceRow(id) {
  const m = (S.meta?.devices || []).find((d) => d.id === id) || {};
  const state = h('span', { class: 'dev-state' });
  const lat = h('span');
  const errs = h('span');
  const lastOk = h('span');
  const lastErr = h('div', { class: 'dev-err' });
  const el = h('div', { class: 'device', tid: 'device-' + id },
    h('div', { class: 'dev-name' }, h('strong', null, m.label || id),
      h('span', { class: 'muted' }, [id, m.profile, m.bus && `${m.bus}${m.unit != null ? ' #' + m.unit : ''}`].filter(Boolean).join(' · '))),
    state,
    h('div', { class: 'dev-stats' },
      h('span', null, h('span', { class: 'm-label' }, t('diag.latency')), ' ', lat),
      h('span', null, h('span', { class: 'm-label' }, t('diag.last_ok')), ' ', lastOk),
      h('span', null, h('span', { class: 'm-label' }, t('diag.errors')), ' ', errs)),
    lastErr);
  return {
    el,
    paint() {
      const d = S.devices[id] || {};
      const st = d.state || 'unknown';
      el.dataset.state = st;
      el.classList.toggle('stale', !S.connected);
      setText(state, tOr('dev.' + st, st));
      setText(lat, d.latency_ms != null ? `${num(d.latency_ms, 1)} ${unit('ms')}` : t('value.none'));
      setText(lastOk, d.last_ok ? `${fmtTime(d.last_ok)} (${ago(d.last_ok)})` : t('value.none'));
      const e = d.errors || {};
      errs.replaceChildren(...['timeout', 'framing', 'exception', 'connection'].map((k) =>
        h('span', { class: e[k] ? 'err-n bad' : 'err-n' }, `${t('err.' + k)} ${num(e[k] || 0)}`)));
      lastErr.hidden = !d.last_error;
      setText(lastErr, d.last_error ? t('diag.last_error', { e: d.last_error }) : '');
    },
  };
}

// ---- PIN screen -----------------------------------------------------------------------------------
let pin = '';
let lockoutTimer = 0;
function renderPin(main, reason) {
  pin = '';
  const dots = h('div', { class: 'pin-dots', 'aria-live': 'polite' });
  const err = h('p', { class: 'pin-error', tid: 'pin-error', role: 'alert', hidden: true });
  const lock = h('p', { class: 'pin-lockout', tid: 'pin-lockout', role: 'alert', hidden: true });
  const note = reason && reason !== 'manual' ? h('p', { class: 'pin-note' }, t('pin.reason_' + reason)) : null;
  const keys = [];
  const key = (label, testid, fn, cls = '') => {
    const b = h('button', { type: 'button', class: 'key ' + cls, tid: testid, onclick: fn }, label);
    keys.push(b);
    return b;
  };
  const paint = () => {
    dots.replaceChildren(...Array.from({ length: Math.max(4, pin.length) }, (_, i) => h('span', { class: i < pin.length ? 'dot on' : 'dot' })));
    dots.setAttribute('aria-label', t('pin.entered', { n: num(pin.length) }));
  };
  const locked = () => Number(store.get('mcw.lockout') || 0) > Date.now();
  const setDisabled = (d) => { for (const b of keys) b.disabled = d; };
  const tickLock = () => {
    const left = Math.ceil((Number(store.get('mcw.lockout') || 0) - Date.now()) / 1000);
    if (left <= 0) { clearInterval(lockoutTimer); lock.hidden = true; setDisabled(false); return; }
    lock.hidden = false;
    err.hidden = true;
    setText(lock, t('pin.lockout', { time: `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}` }));
    setDisabled(true);
  };
  const startLockout = (s) => {
    store.set('mcw.lockout', String(Date.now() + s * 1000));
    clearInterval(lockoutTimer);
    lockoutTimer = setInterval(tickLock, 250);
    tickLock();
  };
  let busy = false;
  const submit = async () => {
    if (busy || !pin || locked()) return;
    busy = true;
    setDisabled(true);
    const entered = pin;
    pin = '';
    paint();
    try {
      const r = await fetch('/api/unlock', { method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ pin: entered }) });
      const body = await r.json().catch(() => ({}));
      if (r.ok) { store.set('mcw.lockout', '0'); busy = false; unlocked(body); return; }
      if (r.status === 429) startLockout(Number(body.retry_after_s) || 60);
      else {
        err.hidden = false;
        setText(err, r.status === 401 && body.attempts_left != null ? t('pin.wrong', { n: num(body.attempts_left) }) : t('pin.wrong_plain'));
        main.querySelector('.pin')?.classList.remove('shake');
        void main.offsetWidth;
        main.querySelector('.pin')?.classList.add('shake');
      }
    } catch {
      err.hidden = false;
      setText(err, t('pin.offline'));
    }
    busy = false;
    if (!locked()) setDisabled(false);
  };
  const press = (d) => { if (pin.length < 12) { pin += d; err.hidden = true; paint(); } };
  const pad = h('div', { class: 'keypad' },
    ['1', '2', '3', '4', '5', '6', '7', '8', '9'].map((d) => key(d, 'pin-key-' + d, () => press(d))),
    key(h('span', null, icon('back'), ' ', t('pin.clear')), 'pin-clear', () => { pin = ''; paint(); }, 'fn'),
    key('0', 'pin-key-0', () => press('0')),
    key(h('span', null, icon('check'), ' ', t('pin.ok')), 'pin-ok', submit, 'ok'));
  main.append(h('section', { class: 'pin', tid: 'screen-pin' },
    h('div', { class: 'pin-side' },
      icon('lock', 'ico xl'),
      h('h1', null, t('pin.title')),
      dots, note, err, lock),
    pad));
  paint();
  if (locked()) { lockoutTimer = setInterval(tickLock, 250); tickLock(); }
  pinKeys = (e) => {
    if (S.unlocked || busy || locked()) return;
    if (/^[0-9]$/.test(e.key)) press(e.key);
    else if (e.key === 'Backspace') { pin = pin.slice(0, -1); paint(); } else if (e.key === 'Enter') submit();
    else if (e.key === 'Escape') { pin = ''; paint(); }
  };
}
let pinKeys = null;
addEventListener('keydown', (e) => {
  if (!$('#modal').hidden && e.key === 'Escape' && closeModal) { closeModal(false); return; }
  if (!S.unlocked && pinKeys) pinKeys(e);
});

// ---- timers ---------------------------------------------------------------------------------------
let ticks = 0;
setInterval(() => {
  ticks++;
  emit('second');
  if (ticks % 5 === 0) emit('tick');
  if (S.unlocked && S.idleLockS > 0 && Date.now() - lastActivity > S.idleLockS * 1000) lockNow('idle');
  // a server that announces a heartbeat lets us notice a silently dead link
  if (ws && S.connected && heartbeatS > 0 && Date.now() - lastMsg > heartbeatS * 2500) ws.close();
}, 1000);

// ---- boot: i18n and session in parallel; the socket opens as soon as the session is known ------------
S.lang = store.get('mcw.lang') === 'en' ? 'en' : 'pl';
document.documentElement.lang = S.lang;
setNight(store.get('mcw.night') === '1');
const dictP = loadDict(S.lang).catch(() => loadDict('pl')).catch(() => ({}));
const sessP = getSession().then((s) => {
  if (s && s !== 401) { adoptSession(s); S.unlocked = true; connect(); }
  return s;
});
const [dict, first] = await Promise.all([dictP, sessP]);
S.dict = dict;
S.ready = true;
document.body.classList.toggle('disconnected', !S.connected);
renderAll(first === null ? 'offline' : undefined);
// The page loaded but the supervisor did not answer: it is restarting; keep asking.
for (let s = first; s === null && !S.unlocked;) {
  await new Promise((r) => setTimeout(r, 2000));
  if (S.unlocked) break;
  s = await getSession();
  if (s === 401) $('.pin-note')?.remove();
  else if (s) unlocked(s);
}
