// The PIN screen: keypad, wrong-PIN count, and the lockout the server imposes (remembered by
// this tablet so a reload does not hide the countdown). And the PIN asked again on an unlocked
// panel before a command that needs it (askPin: cancelling a panic).
import { t, num } from './i18n.js';
import { h, icon, setText, store, keypad, openDialog } from './widgets.js';

let lockoutTimer = 0;
let keyHandler = null;
let dialogKeys = null;
// Typing on a keyboard works too (technician's laptop); only while the PIN screen or the PIN
// dialog is shown.
addEventListener('keydown', (e) => { if (dialogKeys) dialogKeys(e); else if (keyHandler) keyHandler(e); });

const lockoutLeftS = () => Math.ceil((Number(store.get('mcw.lockout') || 0) - Date.now()) / 1000);
const fmtLockout = (left) => `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
const shake = (el) => { el.classList.remove('shake'); void el.offsetWidth; el.classList.add('shake'); };

// reason: why the panel is locked (idle, ended, expired, offline) or nothing;
// onUnlock(session) is called with the server's answer to the right PIN.
export function renderPin(main, reason, onUnlock) {
  let pin = '';
  let busy = false;
  const dots = h('div', { class: 'pin-dots', 'aria-live': 'polite' });
  const err = h('p', { class: 'pin-error', tid: 'pin-error', role: 'alert', hidden: true });
  const lock = h('p', { class: 'pin-lockout', tid: 'pin-lockout', role: 'alert', hidden: true });
  const note = reason && reason !== 'manual' ? h('p', { class: 'pin-note' }, t('pin.reason_' + reason)) : null;
  const paint = () => {
    dots.replaceChildren(...Array.from({ length: Math.max(4, pin.length) }, (_, i) => h('span', { class: i < pin.length ? 'dot on' : 'dot' })));
    dots.setAttribute('aria-label', t('pin.entered', { n: num(pin.length) }));
  };
  const lockedOut = () => lockoutLeftS() > 0;
  const tickLockout = () => {
    const left = lockoutLeftS();
    if (left <= 0) { clearInterval(lockoutTimer); lock.hidden = true; pad.setDisabled(false); return; }
    lock.hidden = false;
    err.hidden = true;
    setText(lock, t('pin.lockout', { time: fmtLockout(left) }));
    pad.setDisabled(true);
  };
  const startLockout = (s) => {
    store.set('mcw.lockout', String(Date.now() + s * 1000));
    clearInterval(lockoutTimer);
    lockoutTimer = setInterval(tickLockout, 250);
    tickLockout();
  };
  const submit = async () => {
    if (busy || !pin || lockedOut()) return;
    busy = true;
    pad.setDisabled(true);
    const entered = pin;
    pin = '';
    paint();
    try {
      const r = await fetch('/api/unlock', { method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ pin: entered }) });
      const body = await r.json().catch(() => ({}));
      if (r.ok) { store.set('mcw.lockout', '0'); onUnlock(body); return; }
      if (r.status === 429) startLockout(Number(body.retry_after_s) || 60);
      else {
        err.hidden = false;
        setText(err, r.status === 401 && body.attempts_left != null ? t('pin.wrong', { n: num(body.attempts_left) }) : t('pin.wrong_plain'));
        shake(section);
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
  const pad = keypad('pin', { digit: press, clear, ok: submit, clearLabel: t('pin.clear'), okLabel: t('pin.ok') });
  const section = h('section', { class: 'pin', tid: 'screen-pin' },
    h('div', { class: 'pin-side' }, icon('lock', 'ico xl'), h('h1', null, t('pin.title')), dots, note, err, lock),
    pad.el);
  main.append(section);
  paint();
  if (lockedOut()) { lockoutTimer = setInterval(tickLockout, 250); tickLockout(); }
  keyHandler = (e) => {
    if (!section.isConnected || busy || lockedOut()) return;
    if (/^[0-9]$/.test(e.key)) press(e.key);
    else if (e.key === 'Backspace') { pin = pin.slice(0, -1); paint(); } else if (e.key === 'Enter') submit();
    else if (e.key === 'Escape') clear();
  };
}

// The PIN asked again on an unlocked panel (texts reauth.<key>.title|body): resolves true once
// the supervisor has taken it (it then runs one command that needs it, within a minute), false
// when the crew cancels or the panel locks. Wrong PINs count towards the same lockout as at the
// PIN screen. Test ids: reauth-dialog, reauth-key-<digit>, reauth-ok, reauth-clear,
// reauth-cancel, reauth-error.
export function askPin(key) {
  let timer = 0;
  let keys = null;
  const asked = openDialog((done) => {
    let pin = '';
    let busy = false;
    const dots = h('div', { class: 'pin-dots', 'aria-live': 'polite' });
    const err = h('p', { class: 'pin-error', tid: 'reauth-error', role: 'alert', hidden: true });
    const paint = () => {
      dots.replaceChildren(...Array.from({ length: Math.max(4, pin.length) }, (_, i) => h('span', { class: i < pin.length ? 'dot on' : 'dot' })));
      dots.setAttribute('aria-label', t('pin.entered', { n: num(pin.length) }));
    };
    const tickLockout = () => {
      const left = lockoutLeftS();
      if (left <= 0) { clearInterval(timer); err.hidden = true; pad.setDisabled(false); return; }
      err.hidden = false;
      setText(err, t('pin.lockout', { time: fmtLockout(left) }));
      pad.setDisabled(true);
    };
    const startLockout = (sec) => {
      store.set('mcw.lockout', String(Date.now() + sec * 1000));
      clearInterval(timer);
      timer = setInterval(tickLockout, 250);
      tickLockout();
    };
    const submit = async () => {
      if (busy || !pin || lockoutLeftS() > 0) return;
      busy = true;
      pad.setDisabled(true);
      const entered = pin;
      pin = '';
      paint();
      try {
        const r = await fetch('/api/reauth', { method: 'POST', credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ pin: entered }) });
        const body = await r.json().catch(() => ({}));
        if (r.ok) { store.set('mcw.lockout', '0'); done(true); return; }
        if (r.status === 401 && body.error === 'locked') { done(false); return; } // the session is over
        if (r.status === 429) startLockout(Number(body.retry_after_s) || 60);
        else {
          err.hidden = false;
          setText(err, r.status === 401 && body.attempts_left != null ? t('pin.wrong', { n: num(body.attempts_left) }) : t('pin.wrong_plain'));
          shake(box);
        }
      } catch {
        err.hidden = false;
        setText(err, t('pin.offline'));
      }
      busy = false;
      if (lockoutLeftS() <= 0) pad.setDisabled(false);
    };
    const press = (d) => { if (pin.length < 12) { pin += d; err.hidden = true; paint(); } };
    const clear = () => { pin = ''; paint(); };
    const pad = keypad('reauth', { digit: press, clear, ok: submit, clearLabel: t('pin.clear'), okLabel: t('reauth.ok') });
    const box = h('div', { class: 'dialog pin-dialog', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'dlg-t', tid: 'reauth-dialog', tabindex: '-1' },
      h('div', { class: 'pin-dialog-side' },
        h('div', { class: 'dlg-head' }, icon('lock', 'ico dlg-ico'), h('h2', { id: 'dlg-t' }, t(`reauth.${key}.title`))),
        h('p', null, t(`reauth.${key}.body`)),
        dots, err,
        h('button', { type: 'button', class: 'btn big', tid: 'reauth-cancel', onclick: () => done(false) }, t('common.cancel'))),
      pad.el);
    paint();
    if (lockoutLeftS() > 0) { timer = setInterval(tickLockout, 250); tickLockout(); }
    dialogKeys = keys = (e) => {
      if (busy || lockoutLeftS() > 0) return;
      if (/^[0-9]$/.test(e.key)) press(e.key);
      else if (e.key === 'Backspace') { pin = pin.slice(0, -1); paint(); } else if (e.key === 'Enter') submit();
    };
    return box;
  });
  return asked.finally(() => { clearInterval(timer); if (dialogKeys === keys) dialogKeys = null; });
}
