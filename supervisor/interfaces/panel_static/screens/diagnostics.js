// Diagnostics (technicians): supervisor state, every device's health and errors, recent commands.
import { S, sub, deviceIds, deviceMeta, loadEvents } from '../client.js';
import { t, tOr, num, fmtTime, unitText } from '../i18n.js';
import { h, setText, card, kv, ago, eventList, every } from '../widgets.js';

const ERROR_KINDS = ['timeout', 'framing', 'exception', 'connection'];

function status() {
  const st = h('div', { class: 'metrics' });
  sub('screen', ['status', 'conn', 'devices'], () => {
    const state = S.status.state;
    st.replaceChildren(
      kv(t('diag.supervisor'), state ? tOr('sup.' + state, state) : t('value.none'), state === 'ready' ? 'ok' : 'warn', 'supervisor-state'),
      kv(t('diag.connection'), t(S.connected ? 'diag.connected' : 'diag.disconnected'), S.connected ? 'ok' : 'crit'),
      kv(t('diag.version'), S.status.version || S.meta?.version || t('value.none')),
      kv(t('diag.vehicle'), S.vehicle?.id || t('value.none')),
      kv(t('diag.role'), tOr('role.' + S.role, S.role || '')),
      kv(t('diag.devices_ok'), `${num(Object.values(S.devices).filter((d) => d.state === 'online').length)} / ${num(deviceIds().length)}`));
  });
  return st;
}

function deviceRow(id) {
  const m = deviceMeta(id);
  const state = h('span', { class: 'dev-state' });
  const lat = h('span');
  const errs = h('span');
  const lastOk = h('span');
  const lastErr = h('div', { class: 'dev-err' });
  const el = h('div', { class: 'device', tid: 'device-' + id },
    h('div', { class: 'dev-name' }, h('strong', null, m.label || id),
      h('span', { class: 'muted' }, [id, m.profile, m.bus && `${m.bus}${m.unit != null ? ' #' + m.unit : ''}`].filter(Boolean).join(' · '))),
    state,
    h('div', { class: 'dev-stats' },
      h('span', null, h('span', { class: 'm-label' }, t('diag.latency')), ' ', lat),
      h('span', null, h('span', { class: 'm-label' }, t('diag.last_ok')), ' ', lastOk),
      h('span', null, h('span', { class: 'm-label' }, t('diag.errors')), ' ', errs)),
    lastErr);
  return {
    el,
    paint() {
      const d = S.devices[id] || {};
      const st = d.state || 'unknown';
      el.dataset.state = st;
      el.classList.toggle('stale', !S.connected);
      setText(state, tOr('dev.' + st, st));
      setText(lat, d.latency_ms != null ? `${num(d.latency_ms, 1)} ${unitText('ms')}` : t('value.none'));
      setText(lastOk, d.last_ok ? `${fmtTime(d.last_ok)} (${ago(d.last_ok)})` : t('value.none'));
      const e = d.errors || {};
      errs.replaceChildren(...ERROR_KINDS.map((k) => h('span', { class: e[k] ? 'err-n bad' : 'err-n' }, `${t('err.' + k)} ${num(e[k] || 0)}`)));
      lastErr.hidden = !d.last_error;
      setText(lastErr, d.last_error ? t('diag.last_error', { e: d.last_error }) : '');
    },
  };
}

function devices() {
  const table = h('div', { class: 'devices' });
  const rows = new Map();
  sub('screen', ['devices', 'tick', 'conn'], () => {
    for (const id of deviceIds()) {
      let r = rows.get(id);
      if (!r) { r = deviceRow(id); rows.set(id, r); table.append(r.el); }
      r.paint();
    }
  });
  return table;
}

export default {
  icon: 'pulse',
  roles: ['technician'],
  render(sec) {
    sec.append(card('diag.status', 'pulse', status()), card('diag.devices', null, devices()),
      card('diag.commands', null, eventList((e) => e.kind === 'command')));
    loadEvents();
    every(30000, loadEvents);
  },
};
