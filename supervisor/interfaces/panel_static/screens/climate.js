// Climate: the CO detector first (red and unmistakable in an alarm), one card per thermostat
// zone (temperature, humidity, set point with - / +, mode, preset, what it asks for and why),
// the diesel heater, the roof A/C (why it is refused or resting), the outside temperature,
// the battery runtime with the climate running, and the pre-heat planner (what it will cost the
// battery, shown as the crew sets it up) with the supervisor's answer.
// Built from points, meta and actions only: the zones are the climate/<zone>/mode points, the
// choices are the actions' argument enums, numbers, units and enum texts come from the meta.
import { S, sub, emit, has, good, canRun, actionArg, pointMeta, sendCmd, isPending, nowS } from '../client.js';
import { t, tOr, num, fmtTime, unitText, enumText, reasonText } from '../i18n.js';
import { h, icon, setText, metric, val, cmdButton, confirmDialog, alarmText } from '../widgets.js';

const STEP_K = 0.5; // a set point press, and the pre-heat temperature's step
const PREHEAT = 'climate/preheat';
const PREHEAT_CANCEL = 'climate/preheat_cancel';
// Start offsets offered for a pre-heat when the action's meta gives no later bound
// (the supervisor rejects, with its reason, a start beyond what it allows).
const PREHEAT_MAX_HOURS = 24;
const PREHEAT_STEP_MIN = 10;
const ANSWER_SHOWN_S = 900; // an answer is news for a quarter of an hour

const zoneOf = /^climate\/([^/]+)\/mode$/;
// The thermostat zones, in the meta's order: every zone publishes its mode.
function zoneNames() {
  const ids = [...(S.meta?.points || []).map((p) => p.id), ...Object.keys(S.points)];
  return [...new Set(ids.map((id) => zoneOf.exec(id)?.[1]).filter(Boolean))];
}
// A zone's name for the crew: its text, else the label its points' descriptions start with.
function zoneLabel(zone) {
  const desc = pointMeta(`climate/${zone}/mode`).description || '';
  return tOr('zone.' + zone, desc.includes(': ') ? desc.slice(0, desc.indexOf(': ')) : zone);
}
const zp = (zone, what) => `climate/${zone}/${what}`;
const value = (pid) => good(pid) ?? S.points[pid]?.v;
const clamp = (v, min, max) => Math.max(min, Math.min(max, v));
// a temperature the crew picks, with the unit of the point it is compared with
const withUnit = (v, pid) => [num(v, 1), unitText(pointMeta(pid).unit)].filter(Boolean).join('\u00a0');

// The supervisor's reasons (English text) in the crew's language (i18n.js reasonText).
const reasonFmt = (v) => [v === '' ? '' : reasonText(v, zoneLabel), ''];

// A reason with its label, hidden while it is empty (when there is nothing to explain).
function note(labelKey, pid) {
  const m = metric(labelKey, pid, { mcls: 'wide', fmt: reasonFmt });
  if (m) sub('screen', ['p:' + pid], () => { m.hidden = !S.points[pid]?.v; });
  return m;
}

function titled(titleText, ico, attrs, ...kids) {
  return h('div', { ...attrs, class: 'card ' + (attrs.class || '') },
    h('h2', { class: 'card-title' }, ico ? icon(ico) : null, titleText), kids);
}

// ---- the answer to a command ---------------------------------------------------------------
// The supervisor answers every command with a message (a pre-heat's tells its battery cost):
// sendCmd's result, kept to be shown; a failure is also the app's toast.
let answer = null; // { status, message, at }: the last pre-heat answer, kept across screens
async function sendHeard(action, args, key) {
  const result = sendCmd(action, args, key);
  if (!isPending(key)) return; // not sent (offline): the toast has told the crew
  answer = null;
  emit('climate-answer');
  const { status, message } = await result;
  if (status === 'timeout') return; // no answer heard: the toast says so
  answer = { status, message, at: nowS() };
  emit('climate-answer');
}

// ---- CO ------------------------------------------------------------------------------------
function carbonMonoxide(nav) {
  if (!has('climate/co/state')) return null;
  const alarmLine = h('div', { class: 'co-alarm-text', tid: 'co-alarm-text' });
  const locked = h('div', { class: 'co-locked', tid: 'co-locked' });
  const toAlarms = h('button', { type: 'button', class: 'btn', tid: 'co-to-alarms', onclick: () => nav.go('alarms') }, icon('bell'), h('span', null, t('co.to_alarms')));
  const ico = h('span', { class: 'co-ico' }, icon('warn', 'ico xl'));
  const reenable = reenableControl();
  const el = h('div', { class: 'card clim-co', tid: 'co-card' },
    ico,
    h('div', { class: 'co-body' },
      h('div', { class: 'co-head' }, h('span', { class: 'co-title' }, t('co.title')), val('climate/co/state', { cls: 'mid' })),
      alarmLine, locked, reenable?.wait),
    h('div', { class: 'co-actions' }, toAlarms, reenable?.button));
  sub('screen', ['p:climate/co/state', 'p:climate/co/heater_locked', 'p:climate/co/reenable_in', 'alarms', 'conn'], () => {
    const state = S.points['climate/co/state']?.v;
    const alarm = S.alarms['climate/co'];
    const inAlarm = state === 'alarm' || !!alarm?.active;
    const isLocked = S.points['climate/co/heater_locked']?.v === true;
    el.dataset.alarm = String(inAlarm);
    el.dataset.state = state || '';
    el.setAttribute('role', inAlarm ? 'alert' : 'status');
    ico.hidden = !inAlarm && state === 'clear';
    alarmLine.hidden = !inAlarm;
    setText(alarmLine, inAlarm ? t('co.alarm_text') : '');
    locked.hidden = !isLocked;
    setText(locked, isLocked ? t('co.locked') : '');
    // the alarm is acknowledged on the alarms screen
    toAlarms.hidden = !(inAlarm || (alarm && !alarm.acked));
    reenable?.paint(isLocked && !inAlarm);
  });
  return el;
}

// Where the supervisor offers it (an action without arguments): allowing the heater again
// after a CO lockout, confirmed first, with the time the air must still stay clear.
function reenableControl() {
  const action = 'climate/heater_reenable';
  const spec = S.actions[action];
  if (!canRun(action) || Object.values(spec.args || {}).some((a) => a.required)) return null;
  const button = cmdButton({ testid: 'co-reenable', label: t('co.reenable'), ico: 'check', key: 'reenable',
    onTap: async () => { if (await confirmDialog('heater_reenable')) sendCmd(action, {}, 'reenable'); } });
  const pid = 'climate/co/reenable_in';
  const wait = has(pid) ? h('div', { class: 'co-locked', tid: 'co-reenable-in' }, t('co.reenable_in'), ' ', val(pid)) : null;
  return {
    button, wait,
    paint(show) {
      button.hidden = !show;
      if (wait) wait.hidden = !show || !(S.points[pid]?.v > 0);
    },
  };
}

// ---- a zone --------------------------------------------------------------------------------
// A choice among an action's enum values (mode, preset), the point's current value pressed;
// only the value for a role that may not choose.
function choice(zone, what, action, arg, labelKey) {
  const pid = zp(zone, what);
  if (!has(pid)) return null;
  const values = actionArg(action, arg).enum || [];
  const zoneOk = (actionArg(action, 'zone').enum || [zone]).includes(zone);
  if (!canRun(action) || !values.length || !zoneOk) return metric(labelKey, pid);
  const set = pointMeta(pid).enum_set;
  const key = `${what}:${zone}`;
  const btns = values.map((v) => cmdButton({ testid: `climate-${zone}-${what}-${v}`, label: enumText(set, v), key, cls: 'seg',
    onTap: () => { if (S.points[pid]?.v !== v) sendCmd(action, { zone, [arg]: v }, key); } }));
  sub('screen', ['p:' + pid], () => {
    const now = S.points[pid]?.v;
    btns.forEach((b, i) => b.setAttribute('aria-pressed', String(values[i] === now)));
  });
  return h('div', { class: 'clim-choice' }, h('div', { class: 'm-label' }, t(labelKey)),
    h('div', { class: 'clim-seg', role: 'group', 'aria-label': t(labelKey), tid: `climate-${zone}-${what}` }, btns));
}

// The set point in force, and - / + in half kelvins within the action's range.
function setpoint(zone) {
  const pid = zp(zone, 'setpoint');
  if (!has(pid)) return null;
  const shown = val(pid, { cls: 'big' });
  const action = 'climate/setpoint';
  const zoneOk = (actionArg(action, 'zone').enum || [zone]).includes(zone);
  const label = h('div', { class: 'm-label' }, t('climate.setpoint'));
  if (!canRun(action) || !zoneOk) return h('div', { class: 'clim-sp' }, label, shown);
  const { min = 7, max = 35 } = actionArg(action, 'celsius');
  const key = 'setpoint:' + zone;
  // from the shown value to the next half kelvin up or down (21.3 -> 21.5 or 21.0)
  const step = (dir) => {
    const cur = value(pid);
    if (typeof cur !== 'number') return;
    const halves = cur / STEP_K;
    const next = clamp((dir > 0 ? Math.floor(halves + 1e-6) + 1 : Math.ceil(halves - 1e-6) - 1) * STEP_K, min, max);
    if (next !== cur) sendCmd(action, { zone, celsius: next }, key);
  };
  return h('div', { class: 'clim-sp' }, label,
    h('div', { class: 'stepper' },
      cmdButton({ testid: `climate-${zone}-setpoint-minus`, label: '−', key, cls: 'step', onTap: () => step(-1) }),
      shown,
      cmdButton({ testid: `climate-${zone}-setpoint-plus`, label: '+', key, cls: 'step', onTap: () => step(1) })));
}

// What the thermostat asks for and why.
function demand(zone) {
  const pid = zp(zone, 'demand');
  if (!has(pid)) return null;
  const why = has(zp(zone, 'reason')) ? val(zp(zone, 'reason'), { cls: 'clim-why', fmt: reasonFmt }) : null;
  const state = val(pid, { cls: 'mid', after: (e, p) => { e.dataset.demand = p?.v ?? ''; } });
  return h('div', { class: 'clim-demand' }, h('div', { class: 'm-label' }, t('climate.demand')), h('div', { class: 'clim-demand-row' }, state, why));
}

// A planned or running pre-heat of the zone.
function preheatNote(zone) {
  const pid = zp(zone, 'preheat_start');
  if (!has(pid)) return null;
  const note = h('div', { class: 'clim-note', tid: `climate-${zone}-preheat`, hidden: true }, icon('thermo', 'ico small'), h('span'));
  sub('screen', ['p:' + pid, 'tick'], () => {
    const start = S.points[pid]?.v;
    note.hidden = !(start > 0);
    if (start > 0) setText(note.lastChild, t(start <= nowS() ? 'preheat.running' : 'preheat.planned_at', { time: fmtTime(start) }));
  });
  return note;
}

function zoneCard(zone) {
  return titled(zoneLabel(zone), 'thermo', { class: 'clim-zone', tid: 'climate-zone-' + zone },
    h('div', { class: 'clim-now' },
      metric('climate.temperature', zp(zone, 'temperature'), { cls: 'huge' }),
      metric('climate.humidity', zp(zone, 'humidity'), { cls: 'big' })),
    setpoint(zone),
    choice(zone, 'mode', 'climate/mode', 'mode', 'climate.mode'),
    choice(zone, 'preset', 'climate/preset', 'preset', 'climate.preset'),
    demand(zone),
    preheatNote(zone));
}

// ---- equipment -----------------------------------------------------------------------------
const stateVal = (pid) => val(pid, { cls: 'mid', after: (e, p) => { e.dataset.state = p?.v ?? ''; } });

function heater() {
  if (!has('climate/heater/state')) return null;
  const err = h('div', { class: 'clim-alert crit', tid: 'heater-error', hidden: true }, icon('warn'), h('div', null, h('strong'), h('div', { class: 'clim-alert-detail' })));
  sub('screen', ['p:climate/heater/error', 'alarms', 'conn'], () => {
    const code = S.points['climate/heater/error']?.v;
    const fault = S.alarms['climate/heater/fault'];
    err.hidden = !code;
    setText(err.querySelector('strong'), code ? t('heater.error', { code: String(code) }) : '');
    // the fault alarm says what the code means
    setText(err.querySelector('.clim-alert-detail'), code && fault ? [alarmText(fault), fault.detail].filter(Boolean).join(': ') : '');
  });
  const keep = has('climate/heater/keep_power') ? h('div', { class: 'clim-note', tid: 'heater-keep-power', hidden: true }, icon('lock', 'ico small'), h('span', null, t('heater.keep_power'))) : null;
  if (keep) sub('screen', ['p:climate/heater/keep_power'], () => { keep.hidden = S.points['climate/heater/keep_power']?.v !== true; });
  return titled(t('heater.title'), 'sun', { class: 'clim-heater', tid: 'heater-card' },
    h('div', { class: 'metrics' },
      h('div', { class: 'metric wide' }, h('div', { class: 'm-label' }, t('heater.state')), stateVal('climate/heater/state')),
      note('heater.reason', 'climate/heater/reason'),
      metric('heater.level', 'climate/heater/level'),
      metric('heater.voltage', 'climate/heater/voltage')),
    err, keep);
}

function airConditioner() {
  if (!has('climate/ac/state')) return null;
  const reason = has('climate/ac/reason') ? h('div', { class: 'clim-reason', tid: 'ac-reason' }, val('climate/ac/reason', { fmt: reasonFmt })) : null;
  const waiting = has('climate/ac/waiting_for_power')
    ? h('div', { class: 'clim-note', tid: 'ac-waiting', hidden: true }, icon('plug', 'ico small'), h('span', null, t('ac.waiting'))) : null;
  const el = titled(t('ac.title'), 'wave', { class: 'clim-ac', tid: 'ac-card' },
    h('div', { class: 'metrics' },
      h('div', { class: 'metric wide' }, h('div', { class: 'm-label' }, t('ac.state')), stateVal('climate/ac/state')),
      metric('ac.relay', 'climate/ac/relay')),
    reason, waiting);
  sub('screen', ['p:climate/ac/state', 'p:climate/ac/reason', 'p:climate/ac/waiting_for_power', 'conn'], () => {
    const state = S.points['climate/ac/state']?.v;
    // why it does not cool when asked to: the crew must see it at once
    const loud = state === 'refused' || state === 'resting' || state === 'blocked';
    el.dataset.state = state || '';
    if (reason) {
      reason.hidden = !S.points['climate/ac/reason']?.v;
      reason.classList.toggle('loud', loud);
    }
    if (waiting) waiting.hidden = S.points['climate/ac/waiting_for_power']?.v !== true;
  });
  return el;
}

function outside() {
  if (!has('climate/outside/temperature')) return null;
  return titled(t('climate.outside'), 'sun', { class: 'clim-outside' }, h('div', { class: 'metrics' },
    metric('climate.temperature', 'climate/outside/temperature', { cls: 'big' }),
    metric('climate.humidity', 'climate/outside/humidity')));
}

function runtime() {
  if (!has('power/runtime/with_climate')) return null;
  return titled(t('climate.what_if'), 'battery', { class: 'clim-runtime' }, h('div', { class: 'metrics' },
    metric('power.runtime', 'power/runtime', { cls: 'big', mcls: 'wide' }),
    metric('climate.runtime_with', 'power/runtime/with_climate', { cls: 'big', mcls: 'wide' })));
}

// ---- pre-heat ------------------------------------------------------------------------------
function stepper(testid, label, shown, dec, inc) {
  const b = (sfx, text, fn) => h('button', { type: 'button', class: 'btn step', tid: `${testid}-${sfx}`, 'aria-label': `${label} ${text}`, onclick: fn }, text);
  return h('div', { class: 'clim-field' }, h('div', { class: 'm-label' }, label),
    h('div', { class: 'stepper' }, b('minus', '−', dec), shown, b('plus', '+', inc)));
}
// What a pre-heat of so many minutes costs the battery, from what the supervisor publishes: one
// heater start and an hour of heating (Ah); null when it does not say.
const COST_POINTS = ['climate/preheat/start_ah', 'climate/preheat/ah_per_h'];
function preheatAh(minutes) {
  const [start, perHour] = COST_POINTS.map((pid) => {
    const p = S.points[pid];
    return p && p.q !== 'invalid' && typeof p.v === 'number' && isFinite(p.v) ? p.v : null;
  });
  return start == null || perHour == null ? null : start + perHour * minutes / 60;
}
const fmtMinutes = (m) => (m < 60 ? t('dur.m', { m: num(m) }) : m % 60 ? t('dur.hm', { h: num(Math.floor(m / 60)), m: num(m % 60) }) : t('dur.h', { h: num(m / 60) }));

function preheat(zones) {
  const planned = zones.filter((z) => has(zp(z, 'preheat_start')));
  const may = canRun(PREHEAT);
  if (!may && !planned.length) return null;
  const kids = [];
  if (may) {
    const choices = (actionArg(PREHEAT, 'zone').enum || zones).filter((z) => zones.includes(z));
    const { min: minMin = 10, max: maxMin = 120 } = actionArg(PREHEAT, 'minutes');
    const { min: minC = 7, max: maxC = 35 } = actionArg(PREHEAT, 'celsius');
    const startMax = actionArg(PREHEAT, 'start').max;
    const st = { zone: choices[0], hours: 0, minutes: clamp(30, minMin, maxMin), celsius: null };
    // the zone's set point until the crew picks a temperature
    const temp = () => st.celsius ?? clamp(Math.round((value(zp(st.zone, 'setpoint')) ?? 21) / STEP_K) * STEP_K, minC, maxC);
    const maxHours = () => (startMax ? Math.max(0, Math.floor((startMax - nowS()) / 3600)) : PREHEAT_MAX_HOURS);
    const startShown = h('span', { class: 'clim-field-val', tid: 'preheat-start' });
    const durShown = h('span', { class: 'clim-field-val', tid: 'preheat-duration' });
    const tempShown = h('span', { class: 'clim-field-val', tid: 'preheat-temperature' });
    const cost = h('div', { class: 'clim-note clim-cost', tid: 'preheat-cost' }, icon('battery', 'ico small'), h('span'));
    const zoneBtns = choices.map((z) => h('button', { type: 'button', class: 'btn seg', tid: 'preheat-zone-' + z, onclick: () => { st.zone = z; paint(); } }, zoneLabel(z)));
    const paint = () => {
      zoneBtns.forEach((b, i) => b.setAttribute('aria-pressed', String(choices[i] === st.zone)));
      setText(startShown, st.hours ? t('preheat.in', { h: num(st.hours), time: fmtTime(nowS() + st.hours * 3600) }) : t('preheat.now'));
      setText(durShown, fmtMinutes(st.minutes));
      setText(tempShown, withUnit(temp(), zp(st.zone, 'setpoint')));
      const ah = preheatAh(st.minutes);
      cost.dataset.known = String(ah != null);
      setText(cost.lastChild, ah == null ? t('preheat.cost_unknown') : t('preheat.cost', { ah: num(ah, 1) }));
    };
    const change = (fn) => () => { fn(); paint(); };
    kids.push(
      choices.length > 1 ? h('div', { class: 'clim-field' }, h('div', { class: 'm-label' }, t('preheat.zone')), h('div', { class: 'clim-seg' }, zoneBtns)) : null,
      stepper('preheat-start', t('preheat.start'), startShown,
        change(() => { st.hours = Math.max(0, st.hours - 1); }), change(() => { st.hours = Math.min(maxHours(), st.hours + 1); })),
      stepper('preheat-duration', t('preheat.duration'), durShown,
        change(() => { st.minutes = clamp(st.minutes - PREHEAT_STEP_MIN, minMin, maxMin); }),
        change(() => { st.minutes = clamp(st.minutes + PREHEAT_STEP_MIN, minMin, maxMin); })),
      stepper('preheat-temperature', t('preheat.temperature'), tempShown,
        change(() => { st.celsius = clamp(temp() - STEP_K, minC, maxC); }), change(() => { st.celsius = clamp(temp() + STEP_K, minC, maxC); })),
      cost,
      cmdButton({ testid: 'preheat-send', label: t('preheat.send'), ico: 'check', key: 'preheat', cls: 'primary clim-send',
        onTap: () => sendHeard(PREHEAT, { zone: st.zone, start: st.hours ? Math.round(nowS() + st.hours * 3600) : 0, minutes: st.minutes, celsius: temp() }, 'preheat') }));
    sub('screen', ['tick', ...COST_POINTS.map((pid) => 'p:' + pid), ...choices.map((z) => 'p:' + zp(z, 'setpoint'))], paint);
  }
  // the supervisor's answer: what was planned and what it costs the battery, or why not
  const ans = h('div', { class: 'clim-answer', tid: 'preheat-answer', role: 'status', hidden: true },
    h('div', { class: 'm-label' }), h('div', { class: 'clim-answer-text', tid: 'preheat-answer-text' }));
  sub('screen', ['climate-answer', 'tick'], () => {
    ans.hidden = !answer || nowS() - answer.at > ANSWER_SHOWN_S;
    if (ans.hidden) return;
    ans.dataset.status = answer.status;
    setText(ans.firstChild, `${t('preheat.answer')} (${fmtTime(answer.at)}): ${tOr('result.' + answer.status, answer.status)}`);
    setText(ans.lastChild, answer.message);
  });
  // planned pre-heats, each with its cancel
  const rows = planned.map((z) => {
    const pid = zp(z, 'preheat_start');
    const text = h('span');
    const info = h('div', { class: 'clim-plan-text' }, h('strong', null, zoneLabel(z)), text);
    const cancel = canRun(PREHEAT_CANCEL)
      ? cmdButton({ testid: 'preheat-cancel-' + z, label: t('preheat.cancel'), ico: 'x', key: 'preheat-cancel:' + z, cls: 'danger',
        onTap: () => sendHeard(PREHEAT_CANCEL, { zone: z }, 'preheat-cancel:' + z) }) : null;
    const row = h('div', { class: 'clim-plan', tid: 'preheat-planned-' + z, hidden: true }, info, cancel);
    sub('screen', ['p:' + pid, 'tick'], () => {
      const start = S.points[pid]?.v;
      row.hidden = !(start > 0);
      if (start > 0) setText(text, t(start <= nowS() ? 'preheat.running' : 'preheat.planned_at', { time: fmtTime(start) }));
    });
    return row;
  });
  return titled(t('preheat.title'), 'thermo', { class: 'clim-preheat', tid: 'preheat-card' }, rows, kids, ans);
}

export default {
  icon: 'thermo',
  render(sec, nav) {
    const zones = zoneNames();
    sec.append(
      carbonMonoxide(nav),
      h('div', { class: 'clim-zones' }, zones.map(zoneCard)),
      h('div', { class: 'flow clim-flow' }, airConditioner(), heater(), preheat(zones), runtime(), outside()));
  },
};
