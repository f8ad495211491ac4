// Texts and numbers for the crew: the dictionary of the chosen language (i18n/<lang>.json) and
// locale-aware formatting of numbers, durations, times, units, enum values and point values.
// Nothing here knows a point id: how a point is shown comes from its meta.

const LOCALE = { pl: 'pl-PL', en: 'en-GB' };
// Decimals shown for a unit when the server's meta gives no precision for the point.
const UNIT_DECIMALS = { V: 2, A: 1, W: 0, '%': 0, degC: 1, kWh: 2, Hz: 1 };

let lang = 'pl';
let dict = {};
const numberFormats = new Map();
const timeFormats = new Map();

export const language = () => lang;

export async function loadDict(code) {
  const r = await fetch(new URL(`i18n/${code}.json`, import.meta.url));
  if (!r.ok) throw new Error('i18n ' + r.status);
  return r.json();
}

export function setLanguage(code, texts) {
  lang = code;
  dict = texts;
  numberFormats.clear();
  timeFormats.clear();
}

export function t(key, params) {
  let s = dict[key];
  if (s == null) { console.warn('i18n: missing', key); s = key; }
  return params ? s.replace(/\{(\w+)\}/g, (_, k) => (params[k] ?? '')) : s;
}
// For keys made from data (an action id, a device state): the data itself when there is no text.
export const tOr = (key, fallback) => dict[key] ?? fallback;

export function num(v, decimals = 0, signDisplay = 'auto') {
  const k = `${decimals}|${signDisplay}`;
  let f = numberFormats.get(k);
  if (!f) {
    f = new Intl.NumberFormat(LOCALE[lang], { minimumFractionDigits: decimals, maximumFractionDigits: decimals, signDisplay });
    numberFormats.set(k, f);
  }
  return f.format(v);
}

// A duration to come (runtime): minutes, hours, days.
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

// An age (how old a value is): one unit, rounded down.
export function fmtAge(sec) {
  sec = Math.max(0, Math.round(sec));
  if (sec < 60) return t('dur.s', { s: num(sec) });
  if (sec < 3600) return t('dur.m', { m: num(Math.floor(sec / 60)) });
  if (sec < 172800) return t('dur.h', { h: num(Math.floor(sec / 3600)) });
  return t('dur.d', { d: num(Math.floor(sec / 86400)) });
}

// Epoch seconds as a local time; with the date when it is not today (or when asked).
export function fmtTime(epoch, withDate) {
  const d = new Date(epoch * 1000);
  const full = withDate ?? d.toDateString() !== new Date().toDateString();
  let f = timeFormats.get(full);
  if (!f) {
    f = new Intl.DateTimeFormat(LOCALE[lang], full
      ? { day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }
      : { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    timeFormats.set(full, f);
  }
  return f.format(d);
}

export const unitText = (u) => (u ? tOr('unit.' + u, u) : '');

// An enum value: its text in its set (one device's meaning), else the shared word, else the value.
export const enumText = (set, v) => (set ? dict[`enum.${set}.${v}`] : null) ?? dict[`enum.${v}`] ?? String(v);

function decimals(meta) {
  if (Number.isInteger(meta.precision)) return meta.precision;
  return UNIT_DECIMALS[meta.unit] ?? (meta.type === 'integer' ? 0 : 1);
}

// A point's value as [text, unit] from its meta; `signed` shows "+" too (charging/discharging).
export function pointText(meta, v, signed = false) {
  if (typeof v === 'boolean' || meta.type === 'bool') return [t(v ? 'state.on' : 'state.off'), ''];
  if (meta.type === 'enum') return [enumText(meta.enum_set, v), ''];
  if (typeof v === 'string') return [v === '' ? t('value.none') : v, ''];
  if (meta.unit === 's') return [fmtDur(v), ''];
  return [num(v, decimals(meta), signed ? 'exceptZero' : 'auto'), unitText(meta.unit)];
}

// ---- the supervisor's reasons ----------------------------------------------------------------
// Why the heater, the A/C or a zone does what it does comes as the supervisor's English text
// (climate/heater/reason, climate/ac/reason, climate/<zone>/reason). One row per text it makes:
// a pattern of the whole text and the key of its template in every i18n/<lang>.json. The
// pattern's named groups fill the template's {placeholders}:
//   zones  a list of zone names ("room, crew"), each shown as the caller's zone label;
//   why    another reason (a cause in brackets, a power circuit's shed reason), looked up here
//          again, else shown as it came;
//   light, scene, …  shown as the caller's names.<group> gives it, where it gives one; a group
//          named in the plural (lights) is a list ("a, b") of what names.<singular> gives;
//   other  a plain number is shown with the language's decimal sign, anything else as it came.
// The first row that matches wins; a text no row matches is shown as it came (a reason added to
// the supervisor after this table). A new reason: one row here and its key in each language.
const REASONS = [
  // a zone's thermostat (supervisor/climate/thermostat.py): codes
  [/^sensor$/, 'climate.why.sensor'],
  [/^off$/, 'climate.why.off'],
  [/^frost$/, 'climate.why.frost'],
  [/^heat$/, 'climate.why.heat'],
  [/^cool$/, 'climate.why.cool'],
  [/^fan$/, 'climate.why.fan'],
  [/^satisfied$/, 'climate.why.satisfied'],
  [/^changeover$/, 'climate.why.changeover'],
  [/^min_cycle$/, 'climate.why.min_cycle'],
  [/^pre-heat$/, 'climate.why.pre-heat'],
  // the heater and the A/C (supervisor/climate/subsystem.py)
  [/^heating (?<zones>.+)$/, 'reason.heating'],
  [/^cooling (?<zones>.+)$/, 'reason.cooling'],
  [/^ventilation (?<zones>.+)$/, 'reason.ventilation'],
  [/^(?<zones>.+) too warm$/, 'reason.too_warm'],
  [/^no temperature reading in (?<zones>.+)$/, 'reason.no_temperature'],
  [/^power shed: (?<why>.+)$/, 'reason.power_shed'],
  [/^the A\/C runs in the same zone$/, 'reason.ac_same_zone'],
  [/^the heater runs in the same zone$/, 'reason.heater_same_zone'],
  [/^CO alarm: combustion stopped$/, 'reason.co_alarm'],
  [/^the CO alarm cannot be read: no combustion$/, 'reason.co_unknown'],
  [/^the CO detector reports a fault: no combustion$/, 'reason.co_fault'],
  [/^locked out after a CO alarm: re-enable it on board once the air is checked$/, 'reason.co_locked'],
  [/^no battery reading$/, 'reason.no_battery'],
  [/^on battery below (?<min>[\d.]+) % SOC \((?<soc>[\d.]+) %\)$/, 'reason.battery_low'],
  [/^no reading of the inverter's load$/, 'reason.no_inverter_load'],
  [/^no AC power \(the inverter is (?<state>[a-z_]+)\)$/, 'reason.no_ac_power'],
  [/^waiting for the heater's first answer$/, 'reason.heater_first_answer'],
  [/^the heater stopped by itself \(E(?<code>\d+)\): not started again until a climate setting changes or its alarm is acknowledged$/, 'reason.heater_stopped_itself'],
  [/^the heater did not react to its start: not started again until a climate setting changes or its alarm is acknowledged$/, 'reason.heater_no_reaction'],
  [/^the inverter has no headroom \((?<load>[\d.]+) A \+ (?<ac>[\d.]+) A > (?<max>[\d.]+) A\)$/, 'reason.no_headroom'],
  // rests between a stop and the next start (supervisor/climate/rest_guard.py) and their causes
  [/^heater rest: (?<left>.+?) left$/, 'reason.heater_rest'],
  [/^heater rest: (?<left>.+?) left \((?<why>[^()]+)\)$/, 'reason.heater_rest_after'],
  [/^compressor rest: (?<left>.+?) left$/, 'reason.compressor_rest'],
  [/^compressor rest: (?<left>.+?) left \((?<why>[^()]+)\)$/, 'reason.compressor_rest_after'],
  [/^power loss$/, 'reason.power_loss'],
  [/^controller restart$/, 'reason.controller_restart'],
  // lighting (supervisor/lighting/subsystem.py): the driving interlock
  [/^(?<light>.+): exterior lights stay off while driving$/, 'reason.exterior_driving'],
  [/^scene (?<scene>.+?) \((?<lights>.+) stay off while driving\)$/, 'reason.scene_skipped'],
];
const PLAIN_NUMBER = /^-?\d+(?:\.(\d+))?$/;

// A reason in the chosen language; zoneName(name) gives a zone's label (default: its text);
// names.<group>(part) shows the part a pattern's group of that name captured (light, scene).
export function reasonText(text, zoneName = (z) => tOr('zone.' + z, z), names = {}) {
  const s = String(text ?? '');
  for (const [pattern, key] of REASONS) {
    const m = pattern.exec(s);
    if (!m || dict[key] == null) continue;
    const parts = {};
    for (const [name, part] of Object.entries(m.groups || {})) {
      if (part === undefined) continue;
      const n = PLAIN_NUMBER.exec(part);
      const one = names[name.replace(/s$/, '')];
      if (name === 'zones') parts[name] = part.split(', ').map(zoneName).join(', ');
      else if (name === 'why') parts[name] = reasonText(part, zoneName, names);
      else if (one && names[name] == null && name.endsWith('s')) parts[name] = part.split(', ').map(one).join(', ');
      else if (names[name]) parts[name] = names[name](part);
      else parts[name] = n ? num(Number(part), n[1]?.length ?? 0) : part;
    }
    return t(key, parts);
  }
  return s;
}
