// Shared widgets: DOM helper, icons, value tiles (stale/invalid greyed with their age), command
// buttons and toggles (pending while their command runs), toast, confirmation dialog, keypad,
// number entry on a keypad, night mode, the event list. Every widget that shows data
// subscribes to its change keys.
import { S, sub, emit, onClear, nowS, pointMeta, has, shownQuality, good, canRun, isPending, sendCmd } from './client.js';
import { t, tOr, num, fmtAge, fmtTime, pointText, language, reasonText } from './i18n.js';

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
  car: 'M5 17H3v-5l2-5h12l3 5h1v5h-2M7 17h8M7.5 19.5a2 2 0 100-4 2 2 0 000 4zM16.5 19.5a2 2 0 100-4 2 2 0 000 4zM5 12h15',
  shield: 'M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z',
  rec: 'M12 17a5 5 0 100-10 5 5 0 000 10z',
  clock: 'M12 22a10 10 0 100-20 10 10 0 000 20zM12 6v6l4 2',
  test: 'M9 2h6M10 2v6L4.5 18.5A2 2 0 006.3 21h11.4a2 2 0 001.8-2.5L14 8V2M7 14h10',
  edit: 'M12 20h9M16.5 3.5a2.1 2.1 0 013 3L7 19l-4 1 1-4z',
};
// Result codes the crew gets a hint for (i18n hint.<code>).
const HINTS = ['circuit_shed', 'interlock', 'not_allowed', 'not_confirmed', 'forbidden', 'out_of_range', 'offline', 'timeout', 'reauth_required'];

// ---- DOM ---------------------------------------------------------------------------------------
export const $ = (s, r = document) => r.querySelector(s);
// h('div', { class, tid (data-testid), onclick, other attributes }, ...children); children may be
// nested arrays; null and false children are skipped.
export function h(tag, a, ...kids) {
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
  for (const k of kids.flat(Infinity)) if (k != null && k !== false) e.append(k);
  return e;
}
export function icon(name, cls = 'ico') {
  const s = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('class', cls);
  s.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', ICONS[name]);
  s.append(p);
  return s;
}
// Writes only real changes, so a push that changes nothing visible costs no layout.
export const setText = (e, s) => { if (e.textContent !== s) e.textContent = s; };
export const tid = (id) => id.replaceAll('/', '-');

// Settings this tablet remembers (language, night mode, PIN lockout).
export const store = {
  get(k) { try { return localStorage.getItem(k); } catch { return null; } },
  set(k, v) { try { localStorage.setItem(k, v); } catch { /* private mode: not remembered */ } },
};

// A timer of the current screen, stopped when the screen is left.
export function every(ms, fn) {
  const id = setInterval(fn, ms);
  onClear('screen', () => clearInterval(id));
}

// ---- values ------------------------------------------------------------------------------------
// A null runtime means "charging faster than the load": the store marks a null "invalid",
// so tell it apart from "unknown" by the battery SOC being fresh.
const isRuntime = (pid) => pid === 'power/runtime' || pid.startsWith('power/runtime/');
const charging = (pid) => {
  const p = S.points[pid];
  return isRuntime(pid) && S.connected && p && p.v == null && good('power/battery/soc') != null;
};

// One element per shown point value: class stale/invalid + data-quality + age when not good.
// opts: cls, scope, signed (show "+"), fmt(v) -> [text, unit] instead of the meta's format,
// after(el, point, quality) for extra painting.
export function val(pid, opts = {}) {
  const n = h('span', { class: 'num' });
  const u = h('span', { class: 'unit' });
  const a = h('span', { class: 'age' });
  const e = h('span', { class: 'val ' + (opts.cls || ''), tid: 'value-' + tid(pid) }, n, u, a);
  const keys = ['p:' + pid, 'tick', 'conn'];
  if (isRuntime(pid)) keys.push('p:power/battery/soc');
  sub(opts.scope || 'screen', keys, () => {
    const p = S.points[pid];
    let q = shownQuality(p);
    let text;
    let un = '';
    if (charging(pid)) {
      q = 'good';
      text = t(pid === 'power/runtime' ? 'runtime.charging' : 'runtime.unlimited');
    } else if (!p || p.v == null) {
      text = t('value.none');
    } else {
      [text, un] = opts.fmt ? opts.fmt(p.v) : pointText(pointMeta(pid), p.v, opts.signed);
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
export const ago = (ts) => t('age.ago', { age: fmtAge(nowS() - ts) });

export function card(titleKey, ico, ...kids) {
  return h('div', { class: 'card' }, titleKey ? h('h2', { class: 'card-title' }, ico ? icon(ico) : null, t(titleKey)) : null, kids);
}
// A labelled value; left out when the van has no such point (unless always).
export function metric(labelKey, pid, opts = {}) {
  if (!has(pid) && !opts.always) return null;
  return h('div', { class: 'metric ' + (opts.mcls || '') }, h('div', { class: 'm-label' }, t(labelKey)), val(pid, opts));
}
export function kv(label, value, cls = '', testid) {
  return h('div', { class: 'metric' }, h('div', { class: 'm-label' }, label), h('div', { class: 'kv ' + cls, tid: testid }, value));
}
export function laterCard(key) {
  return h('div', { class: 'later' }, icon('info'), h('span', null, t(key)));
}
export function placeholder(name, ico) {
  return h('div', { class: 'card placeholder' }, icon(ico, 'ico xl'), h('h2', null, t('title.' + name)), h('p', null, t('later.text')));
}

// ---- command controls --------------------------------------------------------------------------
// Callers offer a control only when canRun(action). A control ignores taps while its command
// (key) is pending and is disabled while offline or pending; paint(pending) updates its look
// on those changes and on the extra change keys.
function commandControl(el, key, keys, onTap, paint) {
  el.addEventListener('click', () => { if (!isPending(key)) onTap(); });
  sub('screen', ['pending', 'conn', ...keys], () => {
    const pend = isPending(key);
    el.disabled = !S.connected || pend;
    el.setAttribute('aria-busy', String(pend));
    paint(pend);
  });
}
function paintToggle(el, on, pend) {
  el.dataset.state = pend ? 'pending' : on ? 'on' : 'off';
  el.setAttribute('aria-pressed', String(on));
}

export function cmdButton({ testid, label, ico, key, cls = '', onTap }) {
  const b = h('button', { type: 'button', class: 'btn ' + cls, tid: testid }, ico ? icon(ico) : null, h('span', null, label));
  commandControl(b, key, [], onTap, (pend) => b.classList.toggle('pending', pend));
  return b;
}

// An on/off switch bound to a bool point, or only its value for a role that may not switch it.
export function switchButton({ testid, pid, action, args }) {
  if (!canRun(action)) return val(pid);
  const b = h('button', { type: 'button', class: 'switch', tid: testid }, h('span', { class: 'knob' }), val(pid));
  commandControl(b, action, ['p:' + pid], () => sendCmd(action, args(!S.points[pid]?.v), action),
    (pend) => paintToggle(b, !!S.points[pid]?.v, pend));
  return b;
}

const circuitLabel = (name) => tOr('circuit.' + name, pointMeta('power/circuit/' + name).description ?? name);
// A circuit: its name, why it is shed, what-if runtime, and its switch (data-state on|off|pending).
export function circuitRow(name, { whatIf = false, tile = false } = {}) {
  const pid = 'power/circuit/' + name;
  const key = 'circuit:' + name;
  // before the relay is read back, show what the crew chose
  const isOn = () => { const a = S.points[pid]; return a && a.v != null ? !!a.v : !!S.points[pid + '/wanted']?.v; };
  const shedReason = () => { const v = S.points[pid + '/shed']?.v; return typeof v === 'string' ? v : ''; };
  const state = canRun('power/circuit')
    ? h('button', { type: 'button', class: 'toggle', tid: 'circuit-' + name, 'aria-label': circuitLabel(name) }, icon('lock', 'ico lock-ico'), val(pid))
    : val(pid);
  const shed = h('div', { class: 'shed-reason', tid: `circuit-${name}-shed` });
  const wi = whatIf && has(`power/runtime/with/${name}`)
    ? h('div', { class: 'what-if' }, t('circuit.what_if'), ' ', val(`power/runtime/with/${name}`)) : null;
  const row = h('div', { class: tile ? 'circuit tile' : 'circuit' },
    h('div', { class: 'c-info' }, h('div', { class: 'c-name' }, circuitLabel(name)), shed, wi), state);
  sub('screen', ['p:' + pid, `p:${pid}/wanted`, `p:${pid}/shed`], () => {
    const reason = shedReason();
    row.classList.toggle('is-shed', !!reason);
    state.classList.toggle('shed', !!reason);
    shed.hidden = !reason;
    setText(shed, reason ? t('circuit.shed', { reason }) : '');
    if (wi) wi.hidden = isOn() || !!reason;
  });
  if (state.tagName === 'BUTTON') {
    commandControl(state, key, ['p:' + pid, `p:${pid}/wanted`], () => sendCmd('power/circuit', { circuit: name, on: !isOn() }, key),
      (pend) => paintToggle(state, isOn(), pend));
  }
  return row;
}

// Suspend/resume load shedding: a big tile (home) or a button (power); asks before suspending.
export function overrideButton(big) {
  if (!has('power/shed/override') || !canRun('power/shed_override')) return null;
  const label = h('span', { class: 'mt-label' });
  const hint = h('span', { class: 'mt-sub' });
  const b = h('button', { type: 'button', class: big ? 'mode-tile' : 'btn', tid: 'shed-override' },
    icon('bolt'), h('span', { class: 'mt-text' }, label, hint));
  const active = () => !!S.points['power/shed/override']?.v;
  commandControl(b, 'override', ['p:power/shed/override', 'p:power/shed/override_until', 'tick'], async () => {
    if (!active() && !(await confirmDialog('override'))) return;
    sendCmd('power/shed_override', { active: !active() }, 'override');
  }, (pend) => {
    const until = S.points['power/shed/override_until']?.v;
    paintToggle(b, active(), pend);
    setText(label, t(active() ? 'override.end' : 'override.start'));
    setText(hint, active() ? (until ? t('override.until', { time: fmtTime(until) }) : t('override.active')) : t('override.hint'));
  });
  return b;
}

// ---- night mode --------------------------------------------------------------------------------
let night = false;
export function setNight(on) {
  night = on;
  store.set('mcw.night', on ? '1' : '0');
  document.documentElement.classList.toggle('night', on);
  document.documentElement.classList.toggle('day', !on);
  emit('night');
  emit('chart'); // charts take their colours when drawn
}
export function nightButton(testid, cls, scope) {
  const b = h('button', { type: 'button', class: cls, tid: testid, onclick: () => setNight(!night) },
    icon('moon'), h('span', null, t(testid === 'night-toggle' ? 'night.short' : 'night.mode')));
  sub(scope, ['night'], () => { b.setAttribute('aria-pressed', String(night)); b.dataset.state = night ? 'on' : 'off'; });
  return b;
}

// ---- toast and confirmation dialog ---------------------------------------------------------------
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
export function hideToast() { $('#toast').hidden = true; }

// A light for the crew: its text (light.<name>), else the label its points' descriptions start
// with; a light's label as the supervisor writes it in its messages is found the same way.
function lightDescLabel(name) {
  const d = pointMeta(`lighting/${name}/level`).description || '';
  return d.includes(': ') ? d.slice(0, d.lastIndexOf(': ')) : '';
}
export function lightName(nameOrLabel) {
  const names = Object.keys(S.pmeta).map((id) => /^lighting\/([^/]+)\/level$/.exec(id)?.[1]).filter(Boolean);
  const name = names.includes(nameOrLabel) ? nameOrLabel : names.find((n) => lightDescLabel(n) === nameOrLabel);
  return name ? tOr('light.' + name, lightDescLabel(name) || name) : nameOrLabel;
}
// The supervisor's message (English) in the crew's language where the reason table knows it.
export const messageText = (message, names = {}) => reasonText(message, undefined, { light: lightName, ...names });

// A command that did not get done: what, why, and what the crew can do about it.
export function commandFailed({ action, status, code, message }) {
  const lines = [];
  if (HINTS.includes(code)) lines.push(t('hint.' + code));
  if (message) lines.push(messageText(message));
  const what = action ? tOr('action.' + action, '') : '';
  const title = tOr('result.' + status, t('result.failed'));
  toast('error', what ? `${what}: ${title}` : title, lines, status);
}

let closeModal = null;
// A modal dialog: build(done) gives its content; resolves with what done() was given, false when
// it is closed otherwise (a tap beside it, Escape, the panel locking). focus: the element to focus.
export function openDialog(build, focus) {
  return new Promise((resolve) => {
    closeDialog();
    const root = $('#modal');
    const done = (v) => { if (closeModal !== done) return; root.hidden = true; root.replaceChildren(); closeModal = null; resolve(v); };
    closeModal = done;
    const content = build(done);
    root.replaceChildren(content);
    root.onclick = (e) => { if (e.target === root) done(false); };
    root.hidden = false;
    (focus?.(content) || content).focus?.();
  });
}
export const dialogOpen = () => closeModal !== null;
// Resolves true when the crew confirms (texts confirm.<key>.title|body|yes), false otherwise.
export function confirmDialog(key) {
  return openDialog((done) => h('div', { class: 'dialog', role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': 'dlg-t' },
    h('div', { class: 'dlg-head' }, icon('warn', 'ico dlg-ico'), h('h2', { id: 'dlg-t' }, t(`confirm.${key}.title`))),
    h('p', null, t(`confirm.${key}.body`)),
    h('div', { class: 'dlg-buttons' },
      h('button', { type: 'button', class: 'btn big', tid: 'confirm-no', onclick: () => done(false) }, t('common.cancel')),
      h('button', { type: 'button', class: 'btn big danger', tid: 'confirm-yes', onclick: () => done(true) }, t(`confirm.${key}.yes`)))),
  (el) => el.querySelector('[data-testid="confirm-no"]'));
}
export function closeDialog() { if (closeModal) closeModal(false); }
addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDialog(); });

// ---- keypad --------------------------------------------------------------------------------------
// Digits, a function key beside the 0 (fn: { id, label, press }: clear for a PIN, delete for a
// number) and OK; test ids <prefix>-key-<digit>, <prefix>-<fn.id>, <prefix>-ok.
export function keypad(prefix, { digit, fn, ok, okLabel }) {
  const key = (label, testid, press, cls = '') => h('button', { type: 'button', class: 'key ' + cls, tid: testid, onclick: press }, label);
  const pad = h('div', { class: 'keypad' },
    ['1', '2', '3', '4', '5', '6', '7', '8', '9'].map((d) => key(d, `${prefix}-key-${d}`, () => digit(d))),
    key(h('span', null, icon('back'), ' ', fn.label), `${prefix}-${fn.id}`, fn.press, 'fn'),
    key('0', `${prefix}-key-0`, () => digit('0')),
    key(h('span', null, icon('check'), ' ', okLabel), `${prefix}-ok`, ok, 'ok'));
  return { el: pad, setDisabled(d) { for (const b of pad.children) b.disabled = d; } };
}
export const shake = (el) => { el.classList.remove('shake'); void el.offsetWidth; el.classList.add('shake'); };

// ---- whole numbers without a keyboard ------------------------------------------------------------
// The panel is a kiosk on a touchscreen with no keyboard, so a number is entered on a keypad in
// a dialog that shows its range and refuses anything outside it, saying why. A keypad rather
// than − / + steppers: a Modbus address is anywhere in 0..65535 (32768 would be thousands of
// presses away), and one way in for every number field is one thing to learn. A keyboard,
// where there is one, types into the same dialog (digits, Backspace, Delete, Enter, Escape).
// Numbers are shown as typed (no thousands separators): they are compared with a manual's.

// Resolves with the whole number entered (min <= n <= max), false when cancelled. A digit that
// would go beyond max is refused at once; below min (or nothing) is refused at OK. Test ids:
// numpad-dialog, numpad-value, numpad-range, numpad-error, numpad-key-<digit>, numpad-back,
// numpad-clear, numpad-ok, numpad-cancel.
export function numberDialog({ label, min, max, value }) {
  let keys = null;
  return openDialog((done) => {
    let text = value == null ? '' : String(value);
    const shown = h('div', { class: 'num-shown', tid: 'numpad-value', 'aria-live': 'polite' });
    const err = h('p', { class: 'pin-error', tid: 'numpad-error', role: 'alert', hidden: true });
    const outside = (s) => t('num.out_of_range', { value: s, min: String(min), max: String(max) });
    const paint = () => { setText(shown, text); err.hidden = true; };
    const refuse = (reason) => { err.hidden = false; setText(err, reason); shake(box); };
    const digit = (d) => {
      const next = text === '0' ? d : text + d;
      if (Number(next) > max) refuse(outside(next));
      else { text = next; paint(); }
    };
    const back = () => { text = text.slice(0, -1); paint(); };
    const clear = () => { text = ''; paint(); };
    const ok = () => {
      if (text === '') refuse(t('num.empty'));
      else if (Number(text) < min) refuse(outside(text));
      else done(Number(text));
    };
    keys = (e) => {
      if (/^[0-9]$/.test(e.key)) digit(e.key);
      else if (e.key === 'Backspace') back();
      else if (e.key === 'Delete') clear();
      else if (e.key === 'Enter') { e.preventDefault(); ok(); } // not also a click on a focused key
    };
    addEventListener('keydown', keys);
    const pad = keypad('numpad', { digit, fn: { id: 'back', label: t('num.back'), press: back }, ok, okLabel: t('num.ok') });
    const box = h('div', { class: 'dialog pin-dialog num-dialog', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'dlg-t', tid: 'numpad-dialog', tabindex: '-1' },
      h('div', { class: 'pin-dialog-side' },
        h('h2', { id: 'dlg-t' }, label),
        h('p', { class: 'muted', tid: 'numpad-range' }, t('num.range', { min: String(min), max: String(max) })),
        shown, err,
        h('div', { class: 'dlg-buttons' },
          h('button', { type: 'button', class: 'btn big', tid: 'numpad-clear', onclick: clear }, t('num.clear')),
          h('button', { type: 'button', class: 'btn big', tid: 'numpad-cancel', onclick: () => done(false) }, t('common.cancel')))),
      pad.el);
    paint();
    return box;
  }).finally(() => removeEventListener('keydown', keys));
}

// A number field: a button showing the value, tapped for the keypad. value: the number now.
export function numberField({ testid, label, min, max, value }) {
  let current = value;
  const shown = h('span', null, String(value));
  const el = h('button', { type: 'button', class: 'btn num-field', tid: testid, 'aria-haspopup': 'dialog', 'aria-label': label, 'data-value': String(value) },
    shown, icon('edit', 'ico small'));
  el.addEventListener('click', async () => {
    const entered = await numberDialog({ label, min, max, value: current });
    if (entered === false) return;
    current = entered;
    el.dataset.value = String(entered);
    setText(shown, String(entered));
  });
  return { el, get value() { return current; } };
}

// ---- alarms and the event log --------------------------------------------------------------------
// Texts that come with data in both languages (alarms, events).
const localText = (o) => (language() === 'pl' ? o.text_pl || o.text : o.text || o.text_pl);
export const alarmText = (a) => localText(a) || a.id;

function eventText(e) {
  const circuits = (e.circuits || []).map(circuitLabel).join(', ');
  switch (e.kind) {
    case 'alarm': return [e.severity === 'info' ? 'info' : 'warn', `${localText(e)}: ${tOr('alarmwhat.' + e.what, e.what)}`, e.detail];
    case 'power': return ['bolt', t('power_ev.' + (['shed', 'restore', 'override_started', 'override_ended'].includes(e.what) ? e.what : 'other'), { circuits, what: e.what }), e.reason];
    case 'generator': return ['gen', `${t('gen.title_short')}: ${tOr('gen_ev.' + e.what, e.what)}`, e.reason];
    case 'comms': return ['signal', tOr('comms_ev.' + e.what + (e.what === 'watchdog' ? (e.enabled ? '_on' : '_off') : ''), e.what), e.reason];
    case 'device': return [e.state === 'online' && !e.wrong_identity ? 'check' : 'warn',
      `${e.device}: ${tOr('dev.' + e.state, e.state)}${e.wrong_identity ? ' · ' + t('diag.wrong_device') : ''}`,
      e.wrong_identity || (e.state !== 'online' ? e.error : '')];
    case 'command': return [e.status === 'done' ? 'check' : 'warn',
      `${tOr('action.' + e.action, e.action)}: ${tOr('result.' + e.status, e.status)}`,
      [e.code && e.code !== 'ok' ? e.code : '', e.message, e.source ? t('diag.source', { s: e.source }) : ''].filter(Boolean).join(' · ')];
    default: return ['info', e.kind || '?', e.what || ''];
  }
}
// The newest events that pass the filter, re-painted when the log is (re)loaded.
export function eventList(filter) {
  const box = h('div', { class: 'events' });
  sub('screen', ['events'], () => {
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
  });
  return box;
}
