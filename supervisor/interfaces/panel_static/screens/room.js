// Consultation room. The panic first: red and unmistakable while one is raised (which button,
// since when, and how far its call for help has got, exactly as the supervisor says: stored ->
// sent -> received by HQ, or NOT DELIVERED with the phone numbers to call; "sent" is never shown
// as delivered), cancelled only with the PIN entered again. Then the session (what it does,
// start and end, with or without a recording, how long it has run: room/session/since is a
// local point, the panel has it, MQTT never), the room (door, someone inside, the panic
// buttons' wiring and their tamper alarms) and the walk test of the panic buttons (its TEST
// banner is the shell's, on every screen).
// Built from points, meta and actions: the buttons are the room/panic/<name>/zone points.
import { S, sub, has, canRun, sendCmd, nowS, pointMeta, shownQuality } from '../client.js';
import { t, tOr, fmtTime, fmtAge, enumText } from '../i18n.js';
import { h, icon, setText, val, metric, cmdButton, switchButton, confirmDialog } from '../widgets.js';
import { askPin } from '../pin.js';

const PANIC_ALARM = 'room/panic';
const TAMPER = 'room/panic_tamper_';
const zoneOf = /^room\/panic\/([^/]+)\/zone$/;

// The panic buttons, in the meta's order.
function buttons() {
  return [...new Set((S.meta?.points || []).map((p) => zoneOf.exec(p.id)?.[1]).filter(Boolean))];
}
// A button for the crew: its text, else the label its zone point's description carries
// ("Panic button Under the desk: wiring").
function buttonLabel(name) {
  const d = (pointMeta(`room/panic/${name}/zone`).description || '').replace(/^Panic button /, '').replace(/: wiring$/, '');
  return tOr('panic_button.' + name, d || name);
}
const sourceLabel = (source) => (source === 'duress' ? t('panic.source_duress') : buttonLabel(source));
const value = (pid) => S.points[pid]?.v;

// H:MM:SS of a running session.
function clock(sec) {
  const s = Math.max(0, Math.floor(sec));
  const two = (n) => String(n).padStart(2, '0');
  return `${Math.floor(s / 3600)}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`;
}

// ---- panic ---------------------------------------------------------------------------------
function panicCard() {
  const ico = h('span', { class: 'panic-ico' }, icon('shield', 'ico xl'));
  const title = h('h2', { class: 'panic-title', tid: 'panic-title' });
  const source = h('div', { class: 'panic-line', tid: 'panic-source' });
  const since = h('div', { class: 'panic-line', tid: 'panic-since' });
  const delivery = val('room/panic/delivery', { cls: 'panic-delivery-val' });
  const deliveryBox = h('div', { class: 'panic-delivery', tid: 'panic-delivery' },
    h('div', { class: 'm-label' }, t('panic.delivery')), delivery);
  const lost = h('div', { class: 'panic-lost', tid: 'panic-not-delivered', role: 'alert', hidden: true },
    h('strong', null, t('panic.not_delivered')), h('div', null, t('panic.not_delivered_detail')));
  const cancel = canRun('room/panic_ack')
    ? cmdButton({ testid: 'panic-cancel', label: t('panic.cancel'), ico: 'lock', key: 'panic-ack', cls: 'big panic-cancel',
      onTap: async () => { if (await askPin('panic_ack')) sendCmd('room/panic_ack', {}, 'panic-ack'); } })
    : null;
  const quiet = h('div', { class: 'ok-line', tid: 'panic-none' }, icon('check'), h('span', null, t('panic.none')));
  const el = h('div', { class: 'card room-panic', tid: 'panic-card' },
    h('div', { class: 'panic-head' }, ico, h('div', { class: 'panic-body' }, title, quiet, source, since)),
    deliveryBox, lost, cancel ? h('div', { class: 'panic-actions' }, cancel) : null);
  sub('screen', ['p:room/panic/active', 'p:room/panic/source', 'p:room/panic/since', 'p:room/panic/delivery', 'alarms', 'conn', 'tick'], () => {
    const alarm = S.alarms[PANIC_ALARM];
    const active = value('room/panic/active') === true || !!alarm?.active;
    const where = value('room/panic/delivery');
    el.dataset.active = String(active);
    el.dataset.delivery = active ? String(where ?? '') : '';
    el.setAttribute('role', active ? 'alert' : 'status');
    setText(title, t(active ? 'panic.active' : 'panic.title'));
    quiet.hidden = active;
    source.hidden = since.hidden = deliveryBox.hidden = !active;
    lost.hidden = !(active && where === 'not_delivered');
    if (cancel) cancel.hidden = !active;
    if (!active) return;
    const src = value('room/panic/source');
    setText(source, src ? t('panic.source', { button: sourceLabel(src) }) : '');
    source.hidden = !src;
    const at = value('room/panic/since') || alarm?.since;
    setText(since, at ? t('panic.since', { time: fmtTime(at), age: fmtAge(nowS() - at) }) : '');
    since.hidden = !at;
  });
  return el;
}

// ---- session -------------------------------------------------------------------------------
const EFFECTS = ['door_sign', 'doorbell', 'masking', 'light', 'climate', 'recording'];

function sessionCard() {
  const active = () => value('room/session/active') === true;
  const recording = () => value('room/session/recording') === true;
  const state = val('room/session/active', { cls: 'mid', fmt: (v) => [t(v ? 'session.on' : 'session.off'), ''] });
  const timer = h('div', { class: 'session-timer', tid: 'session-timer', hidden: true });
  const rec = h('div', { class: 'session-rec', tid: 'session-recording', hidden: true }, icon('rec', 'ico'), h('span', null, t('session.recording')));
  const may = canRun('room/session');
  const send = (args) => sendCmd('room/session', args, 'session');
  const start = may ? cmdButton({ testid: 'session-start', label: t('session.start'), ico: 'door', key: 'session', cls: 'primary big', onTap: () => send({ on: true }) }) : null;
  const startRec = may ? cmdButton({ testid: 'session-start-recording', label: t('session.start_recording'), ico: 'rec', key: 'session', cls: 'big',
    onTap: async () => { if (await confirmDialog('session_recording')) send({ on: true, recording: true }); } }) : null;
  const stop = may ? cmdButton({ testid: 'session-stop', label: t('session.stop'), ico: 'x', key: 'session', cls: 'danger big',
    onTap: async () => { if (await confirmDialog('session_end')) send({ on: false }); } }) : null;
  const recOn = may ? cmdButton({ testid: 'session-recording-start', label: t('session.recording_start'), ico: 'rec', key: 'session', cls: 'big',
    onTap: async () => { if (await confirmDialog('session_recording')) send({ on: true, recording: true }); } }) : null;
  const recOff = may ? cmdButton({ testid: 'session-recording-stop', label: t('session.recording_stop'), ico: 'x', key: 'session', cls: 'big',
    onTap: () => send({ on: true, recording: false }) }) : null;
  const effects = h('ul', { class: 'session-effects', tid: 'session-effects' },
    EFFECTS.map((e) => h('li', { 'data-effect': e }, icon(e === 'recording' ? 'rec' : 'check', 'ico small'), h('span', null, t('session.does_' + e)))));
  const el = h('div', { class: 'card room-session', tid: 'session-card' },
    h('h2', { class: 'card-title' }, icon('door'), t('session.title')),
    h('div', { class: 'session-now' }, h('div', { tid: 'session-state' }, state), timer, rec),
    may ? h('div', { class: 'session-buttons' }, start, startRec, stop, recOn, recOff) : null,
    h('div', { class: 'm-label' }, t('session.what')), effects);
  sub('screen', ['p:room/session/active', 'p:room/session/since', 'p:room/session/recording', 'second', 'conn'], () => {
    const on = active();
    el.dataset.active = String(on);
    const since = value('room/session/since');
    timer.hidden = !(on && since > 0);
    if (!timer.hidden) setText(timer, clock(nowS() - since));
    timer.dataset.quality = shownQuality(S.points['room/session/since']);
    rec.hidden = !(on && recording());
    if (!may) return;
    start.hidden = startRec.hidden = on;
    stop.hidden = !on;
    recOn.hidden = !on || recording();
    recOff.hidden = !on || !recording();
    // the recording line says "only when recording" until one runs
    effects.lastChild.dataset.on = String(on && recording());
  });
  return el;
}

// ---- the room ------------------------------------------------------------------------------
function roomCard(nav) {
  const zones = buttons().map((name) => {
    const pid = `room/panic/${name}/zone`;
    return h('div', { class: 'metric' }, h('div', { class: 'm-label' }, buttonLabel(name)),
      val(pid, { after: (e, p) => { e.dataset.state = p?.v ?? ''; } }));
  });
  const tamper = h('div', { class: 'tamper-list', tid: 'tamper-list' });
  const toAlarms = h('button', { type: 'button', class: 'btn', tid: 'tamper-to-alarms', hidden: true, onclick: () => nav.go('alarms') }, icon('bell'), h('span', null, t('co.to_alarms')));
  sub('screen', ['alarms', 'tick'], () => {
    const rows = Object.entries(S.alarms).filter(([id, a]) => id.startsWith(TAMPER) && a && (a.active || !a.acked));
    tamper.replaceChildren(...rows.map(([id, a]) => {
      const name = id.slice(TAMPER.length);
      const zone = value(`room/panic/${name}/zone`);
      const how = zone === 'tamper_open' || zone === 'tamper_short' ? enumText(pointMeta(`room/panic/${name}/zone`).enum_set, zone) : '';
      return h('div', { class: `tamper alarm sev-warning${a.active ? '' : ' cleared'}`, tid: 'tamper-' + name, 'data-active': String(!!a.active) },
        h('span', { class: 'a-ico' }, icon('warn', 'ico')),
        h('div', { class: 'a-body' },
          h('div', { class: 'a-text' }, t('tamper.text', { button: buttonLabel(name) })),
          h('div', { class: 'a-meta' }, [how, a.since ? t('alarms.since', { time: fmtTime(a.since), age: fmtAge(nowS() - a.since) }) : '',
            t(a.active ? 'alarms.state_active' : 'alarms.state_cleared')].filter(Boolean).join(' · '))));
    }));
    toAlarms.hidden = !rows.length;
  });
  return h('div', { class: 'card room-state', tid: 'room-state' },
    h('h2', { class: 'card-title' }, icon('home'), t('room.state')),
    h('div', { class: 'metrics' },
      metric('room.door', 'room/door', { after: (e, p) => { e.dataset.state = p?.v ?? ''; } }),
      metric('room.occupancy', 'room/occupancy')),
    zones.length ? h('div', { class: 'm-label room-sub' }, t('room.buttons')) : null,
    zones.length ? h('div', { class: 'metrics' }, zones) : null,
    tamper, toAlarms);
}

// ---- walk test -----------------------------------------------------------------------------
function walkTestCard() {
  const pid = 'room/walk_test/active';
  if (!has(pid)) return null;
  const last = h('div', { class: 'walk-last', tid: 'walk-test-last', hidden: true });
  const el = h('div', { class: 'card room-walk', tid: 'walk-test-card' },
    h('h2', { class: 'card-title' }, icon('test'), t('walk.title')),
    h('div', { class: 'walk-row' }, h('p', { class: 'walk-text' }, t('walk.text')),
      switchButton({ testid: 'walk-test', pid, action: 'room/walk_test', args: (on) => ({ on }) })),
    last);
  // the last test press stays shown after its alarm cleared on release
  sub('screen', ['p:' + pid, 'p:room/walk_test/last_button', 'p:room/walk_test/last_at', 'conn'], () => {
    el.dataset.active = String(value(pid) === true);
    const button = value('room/walk_test/last_button');
    const at = value('room/walk_test/last_at');
    last.hidden = !button;
    if (button) setText(last, t('walk.last', { what: buttonLabel(button), time: at ? fmtTime(at) : '' }));
  });
  return el;
}

export default {
  icon: 'door',
  render(sec, nav) {
    if (!has('room/panic/active') && !has('room/session/active')) {
      sec.append(h('div', { class: 'card' }, t('room.none')));
      return;
    }
    sec.append(panicCard(),
      h('div', { class: 'flow room-flow' }, sessionCard(), roomCard(nav), walkTestCard()));
  },
};
