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
