// The PIN screen: keypad, wrong-PIN count, and the lockout the server imposes (remembered by
// this tablet so a reload does not hide the countdown).
import { t, num } from './i18n.js';
import { h, icon, setText, store, keypad } from './widgets.js';

let lockoutTimer = 0;
let keyHandler = null;
// Typing on a keyboard works too (technician's laptop); only while the PIN screen is shown.
addEventListener('keydown', (e) => { if (keyHandler) keyHandler(e); });

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
  const lockedOut = () => Number(store.get('mcw.lockout') || 0) > Date.now();
  const tickLockout = () => {
    const left = Math.ceil((Number(store.get('mcw.lockout') || 0) - Date.now()) / 1000);
    if (left <= 0) { clearInterval(lockoutTimer); lock.hidden = true; pad.setDisabled(false); return; }
    lock.hidden = false;
    err.hidden = true;
    setText(lock, t('pin.lockout', { time: `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}` }));
    pad.setDisabled(true);
  };
  const startLockout = (s) => {
    store.set('mcw.lockout', String(Date.now() + s * 1000));
    clearInterval(lockoutTimer);
    lockoutTimer = setInterval(tickLockout, 250);
    tickLockout();
  };
  const shake = (el) => { el.classList.remove('shake'); void el.offsetWidth; el.classList.add('shake'); };
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
