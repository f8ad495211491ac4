// The PIN screen: keypad, wrong-PIN count, and the lockout the server imposes (remembered by
// this tablet so a reload does not hide the countdown). And the PIN asked again on an unlocked
// panel before a command that needs it (askPin: cancelling a panic).
import { t, num } from './i18n.js';
import { h, icon, setText, store, keypad, shake, openDialog } from './widgets.js';

let stopPinScreen = () => {};
let keyHandler = null;
let dialogKeys = null;
// Typing on a keyboard works too (technician's laptop); only while the PIN screen or the PIN
// dialog is shown.
addEventListener('keydown', (e) => { if (dialogKeys) dialogKeys(e); else if (keyHandler) keyHandler(e); });

const lockoutLeftS = () => Math.ceil((Number(store.get('mcw.lockout') || 0) - Date.now()) / 1000);
const fmtLockout = (left) => `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;

// One PIN entry, for the PIN screen and the PIN dialog alike: dots, keypad (test ids
// <prefix>-key-<digit>, -ok, -clear), the lockout countdown, the POST to `url` and its answers.
// err shows a wrong PIN or no connection; lock the countdown (may be err itself); onOk(body)
// on the right PIN; onSessionOver when the server says the panel is locked meanwhile;
// shakeEl() is shaken at a wrong PIN.
function pinEntry({ prefix, url, okLabel, err, lock, onOk, onSessionOver, shakeEl }) {
  let pin = '';
  let busy = false;
  let timer = 0;
  const dots = h('div', { class: 'pin-dots', 'aria-live': 'polite' });
  const paint = () => {
    dots.replaceChildren(...Array.from({ length: Math.max(4, pin.length) }, (_, i) => h('span', { class: i < pin.length ? 'dot on' : 'dot' })));
    dots.setAttribute('aria-label', t('pin.entered', { n: num(pin.length) }));
  };
  const lockedOut = () => lockoutLeftS() > 0;
  const tick = () => {
    const left = lockoutLeftS();
    if (left <= 0) { clearInterval(timer); lock.hidden = true; pad.setDisabled(false); return; }
    if (lock !== err) err.hidden = true;
    lock.hidden = false;
    setText(lock, t('pin.lockout', { time: fmtLockout(left) }));
    pad.setDisabled(true);
  };
  const countDown = () => { clearInterval(timer); timer = setInterval(tick, 250); tick(); };
  const submit = async () => {
    if (busy || !pin || lockedOut()) return;
    busy = true;
    pad.setDisabled(true);
    const entered = pin;
    pin = '';
    paint();
    try {
      const r = await fetch(url, { method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ pin: entered }) });
      const body = await r.json().catch(() => ({}));
      if (r.ok) { store.set('mcw.lockout', '0'); onOk(body); return; }
      if (r.status === 401 && body.error === 'locked' && onSessionOver) { onSessionOver(); return; }
      if (r.status === 429) {
        store.set('mcw.lockout', String(Date.now() + (Number(body.retry_after_s) || 60) * 1000));
        countDown();
      } else {
        err.hidden = false;
        setText(err, r.status === 401 && body.attempts_left != null ? t('pin.wrong', { n: num(body.attempts_left) }) : t('pin.wrong_plain'));
        shake(shakeEl());
      }
    } catch {
      err.hidden = false;
      setText(err, t('pin.offline'));
    }
    busy = false;
    if (!lockedOut()) pad.setDisabled(false);
  };
  const press = (d) => { if (pin.length < 12) { pin += d; err.hidden = true; paint(); } };
  const clear = () => { pin = ''; paint(); };
  const pad = keypad(prefix, { digit: press, fn: { id: 'clear', label: t('pin.clear'), press: clear }, ok: submit, okLabel });
  paint();
  if (lockedOut()) countDown();
  const keys = (e) => {
    if (busy || lockedOut()) return;
    if (/^[0-9]$/.test(e.key)) press(e.key);
    else if (e.key === 'Backspace') { pin = pin.slice(0, -1); paint(); } else if (e.key === 'Enter') submit();
    else if (e.key === 'Escape') clear();
  };
  return { dots, pad, keys, stop: () => clearInterval(timer) };
}

// reason: why the panel is locked (idle, ended, expired, offline) or nothing;
// onUnlock(session) is called with the server's answer to the right PIN.
export function renderPin(main, reason, onUnlock) {
  stopPinScreen();
  const err = h('p', { class: 'pin-error', tid: 'pin-error', role: 'alert', hidden: true });
  const lock = h('p', { class: 'pin-lockout', tid: 'pin-lockout', role: 'alert', hidden: true });
  const note = reason && reason !== 'manual' ? h('p', { class: 'pin-note' }, t('pin.reason_' + reason)) : null;
  const entry = pinEntry({ prefix: 'pin', url: '/api/unlock', okLabel: t('pin.ok'), err, lock,
    onOk: onUnlock, shakeEl: () => section });
  const section = h('section', { class: 'pin', tid: 'screen-pin' },
    h('div', { class: 'pin-side' }, icon('lock', 'ico xl'), h('h1', null, t('pin.title')), entry.dots, note, err, lock),
    entry.pad.el);
  main.append(section);
  stopPinScreen = entry.stop;
  keyHandler = (e) => { if (section.isConnected) entry.keys(e); };
}

// The PIN asked again on an unlocked panel (texts reauth.<key>.title|body): resolves true once
// the supervisor has taken it (it then runs one command that needs it, within a minute), false
// when the crew cancels or the panel locks. Wrong PINs count towards the same lockout as at the
// PIN screen. Test ids: reauth-dialog, reauth-key-<digit>, reauth-ok, reauth-clear,
// reauth-cancel, reauth-error.
export function askPin(key) {
  let entry = null;
  const asked = openDialog((done) => {
    const err = h('p', { class: 'pin-error', tid: 'reauth-error', role: 'alert', hidden: true });
    entry = pinEntry({ prefix: 'reauth', url: '/api/reauth', okLabel: t('reauth.ok'), err, lock: err,
      onOk: () => done(true), onSessionOver: () => done(false), shakeEl: () => box });
    const box = h('div', { class: 'dialog pin-dialog', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'dlg-t', tid: 'reauth-dialog', tabindex: '-1' },
      h('div', { class: 'pin-dialog-side' },
        h('div', { class: 'dlg-head' }, icon('lock', 'ico dlg-ico'), h('h2', { id: 'dlg-t' }, t(`reauth.${key}.title`))),
        h('p', null, t(`reauth.${key}.body`)),
        entry.dots, err,
        h('button', { type: 'button', class: 'btn big', tid: 'reauth-cancel', onclick: () => done(false) }, t('common.cancel'))),
      entry.pad.el);
    dialogKeys = entry.keys;
    return box;
  });
  return asked.finally(() => {
    entry?.stop();
    if (entry && dialogKeys === entry.keys) dialogKeys = null;
  });
}
