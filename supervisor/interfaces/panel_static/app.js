// MCW crew panel: plain ES modules, no framework, no build step, no network beyond this van.
// This module wires the pieces together: the screen registry and navigation, the language,
// locking and unlocking, and the boot. The supervisor's state: client.js; texts and numbers:
// i18n.js; shared widgets: widgets.js; the PIN screen: pin.js; one module per screen: screens/.
import { S, sub, emit, clearScope, connDown, shownAlarms, retryNow, getSession, setHandlers, startSession, endSession, touched } from './client.js';
import { t, num, fmtTime, loadDict, setLanguage, language } from './i18n.js';
import { $, h, icon, setText, store, setNight, nightButton, commandFailed, closeDialog, hideToast } from './widgets.js';
import { renderPin } from './pin.js';

// The screens, in the order of the navigation rail. Each is screens/<name>.js, whose default
// export is { icon, render(section, nav), roles?: who may see it, needsMeta?: false if it
// shows before the supervisor's meta has arrived }; its texts are nav.<name> and title.<name>.
// A new screen is a new module and one line here.
const SCREEN_NAMES = [
  'home',
  'power',
  'climate',
  'lighting',
  'room',
  'comms',
  'alarms',
  'diagnostics',
];

let screens = new Map(); // name -> screen, once loaded
let current = 'home';
let ready = false; // texts and screens loaded: the page can be drawn
const nav = { go };
const mayView = (screen) => !screen.roles || screen.roles.includes(S.role);

// ---- locking ---------------------------------------------------------------------------------
let lastActivity = Date.now();
for (const ev of ['pointerdown', 'keydown', 'touchstart', 'wheel']) {
  addEventListener(ev, () => { lastActivity = Date.now(); touched(); }, { passive: true, capture: true });
}
function lockNow(reason) {
  fetch('/api/lock', { method: 'POST', credentials: 'same-origin', keepalive: true }).catch(() => {});
  lockUi(reason);
}
// reason (shown on the PIN screen): manual, idle, ended, expired, offline
function lockUi(reason) {
  if (!S.unlocked && ready) { if (reason) renderAll(reason); return; }
  endSession();
  closeDialog();
  hideToast();
  current = 'home';
  if (ready) renderAll(reason);
}
function unlocked(session) {
  startSession(session);
  current = 'home';
  lastActivity = Date.now();
  if (ready) renderAll();
}

// ---- shell: top bar, navigation rail, connection banner ----------------------------------------
function renderAll(pinReason) {
  clearScope('shell');
  clearScope('screen');
  document.documentElement.lang = language();
  document.title = t('app.title');
  const app = $('#app');
  app.className = S.unlocked ? 'app' : 'app locked';
  const title = h('div', { class: 'top-title' });
  const top = topBar(title);
  const main = h('main', { id: 'main' });
  if (!S.unlocked) {
    setText(title, t('pin.screen'));
    app.replaceChildren(top, main);
    renderPin(main, pinReason, unlocked);
    return;
  }
  const rail = navRail();
  main.append(connBanner(), panicBanner(), walkTestBanner(), h('div', { class: 'screen-wrap' }));
  app.replaceChildren(top, rail, main);
  sub('shell', ['nav'], () => {
    setText(title, t('title.' + current));
    for (const b of rail.children) b.setAttribute('aria-current', b.dataset.testid === 'nav-' + current ? 'page' : 'false');
  });
  renderScreen();
}
function topBar(title) {
  const clock = h('div', { class: 'clock' });
  sub('shell', ['tick'], () => setText(clock, fmtTime(Date.now() / 1000, false)));
  return h('header', { class: 'top' },
    h('div', { class: 'brand' }, h('span', { class: 'veh' }, S.vehicle?.name || t('app.short')), title),
    clock,
    h('button', { type: 'button', class: 'btn top-btn', tid: 'lang-toggle', 'aria-label': t('lang.switch'), onclick: switchLang },
      icon('globe'), h('span', null, t('lang.other'))),
    nightButton('night-toggle', 'btn top-btn', 'shell'),
    S.unlocked ? h('button', { type: 'button', class: 'btn top-btn', tid: 'lock-button', onclick: () => lockNow('manual') },
      icon('lock'), h('span', null, t('common.lock'))) : null);
}
function navRail() {
  const rail = h('nav', { class: 'rail', 'aria-label': t('nav.label') });
  for (const [name, screen] of screens) {
    if (!mayView(screen)) continue;
    rail.append(h('button', { type: 'button', class: 'nav-btn', tid: 'nav-' + name, onclick: () => go(name) },
      icon(screen.icon), h('span', { class: 'nav-label' }, t('nav.' + name)), name === 'alarms' ? alarmBadge() : null));
  }
  return rail;
}
function alarmBadge() {
  const badge = h('span', { class: 'badge', tid: 'alarm-badge', hidden: true });
  sub('shell', ['alarms'], () => {
    const list = shownAlarms();
    badge.hidden = !list.length;
    setText(badge, num(list.length));
    badge.dataset.severity = list[0]?.severity || '';
  });
  return badge;
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

// A panic raised: on every screen but the room's, which shows it whole.
function panicBanner() {
  const b = h('button', { type: 'button', class: 'panic-banner', tid: 'panic-banner', role: 'alert', hidden: true, onclick: () => go('room') },
    icon('warn'), h('span', { class: 'pb-text' }, t('panic.banner')), h('span', { class: 'pb-go' }, t('panic.banner_go')));
  sub('shell', ['p:room/panic/active', 'alarms', 'nav', 'conn'], () => {
    const active = S.points['room/panic/active']?.v === true || !!S.alarms['room/panic']?.active;
    b.hidden = !S.unlocked || !active || current === 'room';
  });
  return b;
}
// The panic buttons in their walk test: a press calls no help. On every screen while it lasts.
function walkTestBanner() {
  const b = h('div', { class: 'walk-banner', tid: 'walk-test-banner', role: 'status', hidden: true },
    h('strong', null, t('walk.banner')), h('span', null, t('walk.banner_detail')));
  sub('shell', ['p:room/walk_test/active', 'conn'], () => { b.hidden = !S.unlocked || S.points['room/walk_test/active']?.v !== true; });
  return b;
}

// ---- navigation --------------------------------------------------------------------------------
function go(name) {
  current = name;
  renderScreen();
}
function renderScreen() {
  clearScope('screen');
  const wrap = $('.screen-wrap');
  if (!wrap) return;
  if (!screens.has(current) || !mayView(screens.get(current))) current = 'home';
  const screen = screens.get(current);
  emit('nav');
  const sec = h('section', { class: 'screen screen-' + current, tid: 'screen-' + current });
  wrap.replaceChildren(sec);
  $('#main').scrollTop = 0;
  if (!S.meta && screen.needsMeta !== false) {
    sec.append(h('div', { class: 'loading' }, t('conn.connecting')));
    return;
  }
  screen.render(sec, nav);
}

async function switchLang() {
  const code = language() === 'pl' ? 'en' : 'pl';
  let texts;
  try { texts = await loadDict(code); } catch { return; }
  setLanguage(code, texts);
  store.set('mcw.lang', code);
  renderAll();
}

// ---- timers --------------------------------------------------------------------------------------
let ticks = 0;
setInterval(() => {
  ticks++;
  emit('second');
  if (ticks % 5 === 0) emit('tick'); // ages and clocks: every 5 s is fine enough
  if (S.unlocked && S.idleLockS > 0 && Date.now() - lastActivity > S.idleLockS * 1000) lockNow('idle');
}, 1000);

// ---- boot: texts, screens and session in parallel; the socket opens as soon as the session is known
setHandlers({ locked: lockUi, metaChanged: () => { if (ready && S.unlocked) renderAll(); }, commandFailed });
const wanted = store.get('mcw.lang') === 'en' ? 'en' : 'pl';
document.documentElement.lang = wanted;
setNight(store.get('mcw.night') === '1');
const textsP = loadDict(wanted).then((d) => [wanted, d])
  .catch(() => loadDict('pl').then((d) => ['pl', d]))
  .catch(() => ['pl', {}]);
const screensP = Promise.all(SCREEN_NAMES.map(async (name) => [name, (await import(`./screens/${name}.js`)).default]));
const sessionP = getSession().then((s) => {
  if (s && s !== 401) startSession(s);
  return s;
});
const [[lang, texts], loaded, first] = await Promise.all([textsP, screensP, sessionP]);
setLanguage(lang, texts);
screens = new Map(loaded);
ready = true;
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
