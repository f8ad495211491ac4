// Lighting: the scenes (the last one chosen pressed), each light (a relay as a switch, a dimmer
// as a 0-100 % slider with - / +; what it reads back; its auto-off countdown where it has one),
// the driving interlock (exterior lights locked while the van drives; a refused command's reason
// shown), the panel's night mode (red on black for the crew's dark-adapted eyes; switched on by
// choosing the night scene here) and the power circuits behind the lights.
// Built from points, meta and actions: the lights are the lighting/<name>/level points, the
// scenes the lighting/scene action's enum; which light is a dimmer and how it obeys the driving
// interlock, its lighting/<name>/kind and lighting/<name>/interlock points.
import { S, sub, emit, has, good, canRun, actionArg, sendCmd, isPending, nowS } from '../client.js';
import { t, tOr, num, fmtTime } from '../i18n.js';
import { h, icon, setText, val, cmdButton, circuitRow, nightButton, setNight, lightName, messageText } from '../widgets.js';

const SET = 'lighting/set';
const SCENE = 'lighting/scene';
const NIGHT_SCENE = 'night'; // choosing it puts the panel in night mode
const STEP = 10; // % per - / + press
const ANSWER_SHOWN_S = 900;

const levelOf = /^lighting\/([^/]+)\/level$/;
function lightNames() {
  return [...new Set((S.meta?.points || []).map((p) => levelOf.exec(p.id)?.[1]).filter(Boolean))];
}
const lp = (name, what) => `lighting/${name}/${what}`;
const sceneLabel = (name) => tOr('scene.' + name, name);
const level = (name) => { const v = S.points[lp(name, 'level')]?.v; return typeof v === 'number' ? v : null; };
// A dimmer as the server says; without its word, one whose level is neither off nor full.
const hint = (name, what) => S.points[lp(name, what)]?.v;
const isDimmer = (name) => hint(name, 'kind') === 'dimmer';
const driving = () => good('vehicle/driving') === true;

// ---- the answer to the last command that was refused, or a scene that left lights off --------
let answer = null; // { status, message, at, scene }
async function sendHeard(action, args, key) {
  const result = sendCmd(action, args, key);
  if (!isPending(key)) return null; // not sent (offline): the toast has told the crew
  const r = await result;
  if (r.status === 'timeout') return r;
  const skipped = r.status === 'done' && /stay off while driving\)$/.test(r.message);
  if (r.status !== 'done' || skipped) answer = { status: r.status, message: r.message, at: nowS(), scene: args.scene };
  else answer = null;
  emit('lighting-answer');
  return r;
}

function answerBox() {
  const box = h('div', { class: 'clim-answer light-answer', tid: 'lighting-answer', role: 'status', hidden: true },
    h('div', { class: 'm-label' }), h('div', { class: 'clim-answer-text', tid: 'lighting-answer-text' }));
  sub('screen', ['lighting-answer', 'tick'], () => {
    box.hidden = !answer || nowS() - answer.at > ANSWER_SHOWN_S;
    if (box.hidden) return;
    box.dataset.status = answer.status;
    setText(box.firstChild, `${t('preheat.answer')} (${fmtTime(answer.at)}): ${tOr('result.' + answer.status, answer.status)}`);
    setText(box.lastChild, messageText(answer.message, answer.scene ? { scene: () => sceneLabel(answer.scene) } : {}));
  });
  return box;
}

// ---- scenes ----------------------------------------------------------------------------------
function scenes() {
  const names = actionArg(SCENE, 'scene').enum || [];
  if (!canRun(SCENE) || !names.length) return null;
  const btns = names.map((name) => cmdButton({ testid: 'scene-' + name, label: sceneLabel(name), key: 'scene', cls: 'seg scene-btn',
    onTap: async () => {
      const r = await sendHeard(SCENE, { scene: name }, 'scene');
      if (r?.status === 'done' && name === NIGHT_SCENE) setNight(true);
    } }));
  sub('screen', ['p:lighting/scene'], () => {
    const now = S.points['lighting/scene']?.v;
    btns.forEach((b, i) => b.setAttribute('aria-pressed', String(names[i] === now)));
  });
  return h('div', { class: 'card light-scenes', tid: 'light-scenes' },
    h('h2', { class: 'card-title' }, icon('bulb'), t('lighting.scenes')),
    h('div', { class: 'clim-seg scene-seg', role: 'group', 'aria-label': t('lighting.scenes') }, btns));
}

// ---- one light -------------------------------------------------------------------------------
function autoOff(name) {
  const pid = lp(name, 'auto_off_in');
  if (!has(pid)) return null;
  const note = h('div', { class: 'clim-note light-auto-off', tid: `light-${name}-auto-off`, hidden: true }, icon('clock', 'ico small'), h('span'));
  sub('screen', ['p:' + pid, 'second', 'conn'], () => {
    const p = S.points[pid];
    // the countdown runs on between the supervisor's updates
    const left = p && typeof p.v === 'number' && p.v > 0 ? Math.max(0, p.v - Math.max(0, nowS() - p.ts)) : 0;
    note.hidden = !(left > 0);
    if (left > 0) {
      const s = Math.ceil(left);
      const text = s >= 3600 ? t('dur.hm', { h: num(Math.floor(s / 3600)), m: num(Math.floor(s / 60) % 60) })
        : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
      setText(note.lastChild, t('lighting.auto_off', { left: text }));
    }
  });
  return note;
}

function interlockNote(name) {
  const mode = hint(name, 'interlock');
  if (!mode || mode === 'none') return null;
  const note = h('div', { class: 'clim-note light-interlock', tid: `light-${name}-interlock`, hidden: true }, icon('car', 'ico small'),
    h('span', null, t(mode === 'warn' ? 'lighting.interlock_warn' : 'lighting.interlock_off')));
  sub('screen', ['p:vehicle/driving', 'conn'], () => { note.hidden = !driving(); });
  return note;
}

// A relay: a switch showing what it reads back (before the first read-back, what was chosen).
function relayControl(name) {
  const key = 'light:' + name;
  const lit = () => { const on = S.points[lp(name, 'on')]?.v; return on != null ? !!on : (level(name) ?? 0) > 0; };
  if (!canRun(SET)) return val(lp(name, 'on'));
  const b = h('button', { type: 'button', class: 'toggle light-toggle', tid: `light-${name}-toggle`, 'aria-label': lightName(name) }, val(lp(name, 'on')));
  b.addEventListener('click', () => { if (!isPending(key)) sendHeard(SET, { light: name, level: lit() ? 0 : 100 }, key); });
  sub('screen', ['p:' + lp(name, 'on'), 'p:' + lp(name, 'level'), 'pending', 'conn'], () => {
    const pend = isPending(key);
    b.disabled = !S.connected || pend;
    b.setAttribute('aria-busy', String(pend));
    b.dataset.state = pend ? 'pending' : lit() ? 'on' : 'off';
    b.setAttribute('aria-pressed', String(lit()));
  });
  return b;
}

function dimmerControl(name) {
  const key = 'light:' + name;
  const shown = h('span', { class: 'light-level', tid: `light-${name}-level` });
  if (!canRun(SET)) return h('div', { class: 'dimmer' }, val(lp(name, 'level'), { cls: 'mid' }));
  const { min = 0, max = 100 } = actionArg(SET, 'level');
  const slider = h('input', { type: 'range', class: 'slider', min: String(min), max: String(max), step: '1', tid: `light-${name}-slider`,
    'aria-label': lightName(name) });
  let dragging = false;
  const send = (v) => sendHeard(SET, { light: name, level: Math.max(min, Math.min(max, Math.round(v))) }, key);
  slider.addEventListener('input', () => { dragging = true; setText(shown, `${num(Number(slider.value))} %`); });
  slider.addEventListener('change', () => { dragging = false; send(Number(slider.value)); });
  const step = (dir) => {
    const cur = level(name) ?? 0;
    const next = dir > 0 ? Math.floor(cur / STEP) * STEP + STEP : Math.ceil(cur / STEP) * STEP - STEP;
    send(next);
  };
  const minus = cmdButton({ testid: `light-${name}-minus`, label: '−', key, cls: 'step', onTap: () => step(-1) });
  const plus = cmdButton({ testid: `light-${name}-plus`, label: '+', key, cls: 'step', onTap: () => step(1) });
  sub('screen', ['p:' + lp(name, 'level'), 'pending', 'conn'], () => {
    slider.disabled = !S.connected;
    if (dragging || isPending(key)) return;
    const v = level(name);
    slider.value = String(v ?? 0);
    setText(shown, v == null ? t('value.none') : `${num(v)} %`);
    slider.style.setProperty('--fill', `${v ?? 0}%`);
  });
  return h('div', { class: 'dimmer' }, h('div', { class: 'stepper' }, minus, slider, plus), shown);
}

function lightRow(name) {
  const dimmer = isDimmer(name);
  const control = dimmer ? dimmerControl(name) : relayControl(name);
  const row = h('div', { class: 'light' + (dimmer ? ' is-dimmer' : ''), tid: 'light-' + name },
    h('div', { class: 'light-head' },
      h('div', { class: 'c-info' }, h('div', { class: 'c-name' }, lightName(name)),
        dimmer ? h('div', { class: 'light-readback' }, h('span', { class: 'm-label' }, t('lighting.readback')), ' ', val(lp(name, 'on'))) : null),
      dimmer ? null : control),
    dimmer ? control : null,
    autoOff(name), interlockNote(name));
  sub('screen', ['p:' + lp(name, 'on')], () => { row.dataset.on = String(S.points[lp(name, 'on')]?.v === true); });
  return row;
}

// ---- the screen ------------------------------------------------------------------------------
function drivingChip() {
  const chip = h('div', { class: 'chip info', tid: 'lighting-driving', hidden: true }, icon('car'), h('span', null, t('lighting.driving')));
  sub('screen', ['p:vehicle/driving', 'conn'], () => { chip.hidden = !driving(); });
  return h('div', { class: 'chips' }, chip);
}

function nightCard() {
  return h('div', { class: 'card light-night', tid: 'light-night' },
    h('h2', { class: 'card-title' }, icon('moon'), t('night.mode')),
    h('p', { class: 'muted light-night-text' }, t('lighting.night_text')),
    nightButton('lighting-night-toggle', 'mode-tile', 'screen'));
}

function circuits() {
  const lights = S.circuits.filter((c) => c.includes('light'));
  if (!lights.length) return null;
  return h('div', { class: 'card light-circuits' }, h('h2', { class: 'card-title' }, icon('bolt'), t('lighting.circuits')),
    h('div', { class: 'circuit-list' }, lights.map((c) => circuitRow(c))));
}

export default {
  icon: 'bulb',
  render(sec) {
    const names = lightNames();
    sec.append(drivingChip(), answerBox(),
      scenes(),
      h('div', { class: 'card light-list', tid: 'light-list' }, h('h2', { class: 'card-title' }, icon('bulb'), t('lighting.lights')),
        names.length ? names.map(lightRow) : h('div', { class: 'muted' }, t('lighting.none'))),
      h('div', { class: 'flow light-flow' }, nightCard(), circuits()));
  },
};
