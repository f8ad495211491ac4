// Diagnostics (technicians): supervisor state, every device's health and errors (failing ones
// first; a tap shows the device: its read blocks, the health changes this page has seen, a raw
// register read), the outputs' self-test with its progress, recent commands.
import { S, sub, emit, onClear, clearScope, deviceIds, deviceMeta, loadEvents, loadRegisters, nowS, sendCmd, isPending, canRun } from '../client.js';
import { t, tOr, num, fmtTime, unitText, language } from '../i18n.js';
import { h, setText, card, kv, ago, eventList, every, confirmDialog, icon, numberField } from '../widgets.js';

const ERROR_KINDS = ['timeout', 'framing', 'exception', 'connection'];
const TABLES = ['holding', 'input', 'coil', 'discrete'];
// failing devices first: the order of the list
const STATE_RANK = { offline: 0, unknown: 1, degraded: 2, online: 3 };
const HISTORY_PER_DEVICE = 50; // health changes kept per device (page memory is not a log)
const MAX_ADDRESS = 65535; // a raw read: diag/read's limits (Modbus addresses, one request)
const MAX_COUNT = 125;
const MAX_CHIPS = 200; // register names listed to tap at once (a profile may have 2000)
const SELF_TEST_POLL_MS = 1000; // the event log is read this often while a self-test runs
const SELF_TEST_GIVE_UP_MS = 10 * 60 * 1000; // no answer and no audit event by then: stop asking

const errorTotal = (d) => ERROR_KINDS.reduce((n, k) => n + (Number(d?.errors?.[k]) || 0), 0);
const wrongIdentity = (d) => (Array.isArray(d?.wrong_identity) ? d.wrong_identity.length > 0 : !!d?.wrong_identity);
const timeWithSeconds = (ts) => new Date(ts * 1000).toLocaleTimeString(language() === 'pl' ? 'pl-PL' : 'en-GB', { hourCycle: 'h23' });

// ---- health changes seen since the page opened ---------------------------------------------------
// The supervisor's event log has each device's health changes (kind device), read with the
// device's log; the page also keeps the changes of its live device status, to the second. A scope of its own that no screen change clears: the
// changes are recorded whichever screen is shown.
const healthLog = new Map(); // device id -> [{ ts, state, wrong, error }], oldest first
function recordHealth() {
  for (const [id, d] of Object.entries(S.devices)) {
    const list = healthLog.get(id) || [];
    const last = list[list.length - 1];
    const state = d?.state || 'unknown';
    const wrong = wrongIdentity(d);
    if (last && last.state === state && last.wrong === wrong) continue;
    list.push({ ts: nowS(), state, wrong, error: d?.last_error || '', first: !last });
    if (list.length > HISTORY_PER_DEVICE) list.splice(0, list.length - HISTORY_PER_DEVICE);
    healthLog.set(id, list);
  }
}
sub('diag-health', ['devices'], recordHealth);

// ---- the status card ------------------------------------------------------------------------------
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

// ---- the device list ------------------------------------------------------------------------------
function deviceRow(id, open) {
  const m = deviceMeta(id);
  const state = h('span', { class: 'dev-state' });
  const wrong = h('span', { class: 'chip warn dev-wrong', tid: `device-${id}-wrong`, hidden: true }, t('diag.wrong_device'));
  const lat = h('span');
  const errs = h('span', { tid: `device-${id}-errors` });
  const lastOk = h('span');
  const lastErr = h('div', { class: 'dev-err', tid: `device-${id}-last-error` });
  // the whole row is the tap target: big, as the crew's panel wants
  const el = h('div', { class: 'device tappable', tid: 'device-' + id, role: 'button', tabindex: '0',
    onclick: () => open(id), onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') open(id); } },
  h('div', { class: 'dev-name' }, h('strong', null, m.label || id),
    h('span', { class: 'muted' }, [id, m.profile, m.bus && `${m.bus}${m.unit != null ? ' #' + m.unit : ''}`].filter(Boolean).join(' · '))),
  h('span', { class: 'dev-badges' }, wrong, state),
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
      wrong.hidden = !wrongIdentity(d);
      setText(lat, d.latency_ms != null ? `${num(d.latency_ms, 1)} ${unitText('ms')}` : t('value.none'));
      setText(lastOk, d.last_ok ? `${fmtTime(d.last_ok)} (${ago(d.last_ok)})` : t('value.none'));
      const e = d.errors || {};
      errs.replaceChildren(...ERROR_KINDS.map((k) => h('span', { class: e[k] ? 'err-n bad' : 'err-n' }, `${t('err.' + k)} ${num(e[k] || 0)}`)));
      lastErr.hidden = !d.last_error;
      setText(lastErr, d.last_error ? t('diag.last_error', { e: d.last_error }) : '');
    },
  };
}

// Failing devices first (offline, unknown, degraded, online), then the most errors, then the
// configured order.
function sortedIds() {
  const ids = deviceIds();
  const rank = (id) => STATE_RANK[S.devices[id]?.state] ?? STATE_RANK.unknown;
  return ids.map((id, i) => [id, i]).sort(([a, i], [b, j]) => rank(a) - rank(b)
    || (wrongIdentity(S.devices[b]) - wrongIdentity(S.devices[a]))
    || errorTotal(S.devices[b]) - errorTotal(S.devices[a]) || i - j).map(([id]) => id);
}

function devices(open, scope) {
  const table = h('div', { class: 'devices', tid: 'device-list' });
  const rows = new Map();
  sub(scope, ['devices', 'tick', 'conn'], () => {
    const order = sortedIds();
    for (const id of order) {
      let r = rows.get(id);
      if (!r) { r = deviceRow(id, open); rows.set(id, r); }
      r.paint();
    }
    // re-order only on a change of order (moving nodes costs a layout)
    const now = [...table.children].map((el) => el.dataset.testid);
    if (now.join('|') !== order.map((id) => 'device-' + id).join('|')) table.replaceChildren(...order.map((id) => rows.get(id).el));
  });
  return table;
}

// ---- a device's detail ----------------------------------------------------------------------------
function blocksView(id, scope) {
  const box = h('div', { class: 'dev-blocks', tid: 'device-blocks' });
  sub(scope, ['devices'], () => {
    const blocks = Array.isArray(S.devices[id]?.blocks) ? S.devices[id].blocks : [];
    if (!blocks.length) { box.replaceChildren(h('div', { class: 'muted' }, t('diag.no_blocks'))); return; }
    box.replaceChildren(...blocks.map(([table, start, count]) => h('div', { class: 'dev-block', tid: `block-${table}-${start}` },
      h('strong', null, tOr('diag.table.' + table, table)), ' ',
      t('diag.block_range', { start: num(start), end: num(start + count - 1), count: num(count) }),
      h('span', { class: 'muted' }, ` (0x${Number(start).toString(16).padStart(4, '0')})`))));
  });
  return box;
}

function healthView(id, scope) {
  const box = h('div', { class: 'events', tid: 'device-health-history' });
  sub(scope, ['devices', 'tick'], () => {
    const list = (healthLog.get(id) || []).slice().reverse();
    if (!list.length) { box.replaceChildren(h('div', { class: 'muted' }, t('diag.no_changes'))); return; }
    box.replaceChildren(...list.map((c) => h('div', { class: 'event health-change', 'data-state': c.state },
      h('span', { class: 'ev-time' }, timeWithSeconds(c.ts)), icon(c.state === 'online' && !c.wrong ? 'check' : 'warn'),
      h('div', { class: 'ev-body' },
        h('div', null, (c.first ? t('diag.first_seen') + ': ' : '') + tOr('dev.' + c.state, c.state) + (c.wrong ? ' · ' + t('diag.wrong_device') : '')),
        c.error && c.state !== 'online' ? h('div', { class: 'ev-detail' }, c.error) : null))));
  });
  return box;
}

// "relays holding 32768+1: 0x00c8 = software_version 2.0" (diag/read's answer) in its parts.
function parseRead(message) {
  const m = /^(\S+) (\w+) (\d+)\+(\d+): (.*?)(?: = (\S+) (.*))?$/.exec(message || '');
  if (!m) return null;
  return { table: m[2], address: Number(m[3]), count: Number(m[4]), words: m[5], name: m[6] || '', value: m[7] ?? '' };
}

// The register to read by name is tapped from the device's list (its profile's readable
// registers, asked of the server); typing into the field, where there is a keyboard, narrows the
// list and names one as well. Address and count are entered on a keypad (numberField).
function readForm(id, scope) {
  const key = 'diag-read:' + id;
  let mode = 'name';
  let table = 'holding';
  let names = null; // the device's readable registers once loaded ([] when they cannot be)
  const nameInput = h('input', { type: 'text', class: 'text-in', tid: 'diag-read-register', autocomplete: 'off', spellcheck: 'false',
    placeholder: t('diag.read.register_hint'), 'aria-label': t('diag.read.register') });
  const address = numberField({ testid: 'diag-read-address', label: t('diag.read.address'), min: 0, max: MAX_ADDRESS, value: 0 });
  const count = numberField({ testid: 'diag-read-count', label: t('diag.read.count'), min: 1, max: MAX_COUNT, value: 1 });
  const result = h('div', { class: 'read-result', tid: 'diag-read-result', hidden: true });
  const modeBtn = (m) => h('button', { type: 'button', class: 'btn', tid: 'diag-read-mode-' + m, onclick: () => { mode = m; paint(); } }, t('diag.read.mode_' + m));
  const tableBtn = (tb) => h('button', { type: 'button', class: 'btn', tid: 'diag-read-table-' + tb, onclick: () => { table = tb; paint(); } }, tOr('diag.table.' + tb, tb));
  const modes = h('div', { class: 'seg' }, modeBtn('name'), modeBtn('address'));
  const tables = h('div', { class: 'seg' }, TABLES.map(tableBtn));
  const chips = h('div', { class: 'reg-chips reg-list', tid: 'diag-read-names' }, h('div', { class: 'muted' }, t('diag.read.names_loading')));
  let typed = ''; // what was typed (not tapped) into the field: the list's filter
  const pick = (name) => { nameInput.value = name; paintNames(); };
  function paintNames() {
    if (names === null) return;
    if (!names.length) { chips.replaceChildren(h('div', { class: 'muted' }, t('diag.read.names_unknown'))); return; }
    const chosen = nameInput.value.trim();
    const fitting = names.filter((r) => r.name.includes(typed));
    const shown = fitting.slice(0, MAX_CHIPS).map((r) => h('button', { type: 'button', class: 'btn chip-btn', tid: 'diag-read-name-' + r.name,
      'aria-pressed': String(r.name === chosen), onclick: () => pick(r.name) },
    h('span', null, r.name), h('span', { class: 'chip-where' }, `${tOr('diag.table.' + r.table, r.table)} ${r.address}`)));
    if (fitting.length > MAX_CHIPS) shown.push(h('div', { class: 'muted' }, t('diag.read.names_more', { n: num(fitting.length - MAX_CHIPS) })));
    if (!fitting.length) shown.push(h('div', { class: 'muted' }, t('diag.read.names_none', { text: typed })));
    chips.replaceChildren(...shown);
  }
  nameInput.addEventListener('input', () => { typed = nameInput.value.trim(); paintNames(); });
  loadRegisters(id).then((list) => { names = list; }, () => { names = []; }).then(paintNames);
  const byName = h('div', { class: 'read-row' }, h('label', { class: 'field' }, h('span', { class: 'm-label' }, t('diag.read.register')), nameInput), chips);
  const byAddress = h('div', { class: 'read-row' }, tables,
    h('div', { class: 'read-nums' },
      h('div', { class: 'field' }, h('span', { class: 'm-label' }, t('diag.read.address')), address.el),
      h('div', { class: 'field' }, h('span', { class: 'm-label' }, t('diag.read.count')), count.el)));
  const go = h('button', { type: 'button', class: 'btn primary big', tid: 'diag-read-go' }, icon('pulse'), h('span', null, t('diag.read.go')));
  go.addEventListener('click', async () => {
    if (isPending(key)) return;
    let args;
    if (mode === 'name') {
      const name = nameInput.value.trim();
      if (!name) { showResult({ status: 'rejected', code: 'bad_request', message: t('diag.read.pick_name') }); return; }
      args = { device: id, register: name };
    } else {
      args = { device: id, table, address: address.value, count: count.value }; // in range: the keypad takes no other
    }
    result.hidden = false;
    result.dataset.status = 'pending';
    result.replaceChildren(h('div', { class: 'muted' }, t('diag.read.reading')));
    showResult(await sendCmd('diag/read', args, key));
  });
  function showResult(r) {
    result.hidden = false;
    result.dataset.status = r.status;
    if (r.status !== 'done') {
      result.replaceChildren(h('div', { class: 'read-bad' }, `${tOr('result.' + r.status, r.status)} (${r.code})`), r.message ? h('div', { class: 'ev-detail' }, r.message) : null);
      return;
    }
    const p = parseRead(r.message);
    if (!p) { result.replaceChildren(h('div', { tid: 'diag-read-message' }, r.message)); return; }
    result.replaceChildren(
      h('div', { class: 'metrics' },
        kv(t('diag.read.where'), `${tOr('diag.table.' + p.table, p.table)} ${num(p.address)} (0x${p.address.toString(16).padStart(4, '0')}) +${num(p.count)}`),
        kv(t('diag.read.words'), p.words, '', 'diag-read-words'),
        p.name ? kv(t('diag.read.value'), `${p.name} = ${p.value}`, 'ok', 'diag-read-value') : null),
      h('div', { class: 'ev-detail', tid: 'diag-read-message' }, r.message));
  }
  function paint() {
    for (const b of modes.children) b.setAttribute('aria-pressed', String(b.dataset.testid === 'diag-read-mode-' + mode));
    for (const b of tables.children) b.setAttribute('aria-pressed', String(b.dataset.testid === 'diag-read-table-' + table));
    byName.hidden = mode !== 'name';
    byAddress.hidden = mode !== 'address';
  }
  sub(scope, ['pending', 'conn'], () => {
    go.disabled = !S.connected || isPending(key);
    go.classList.toggle('pending', isPending(key));
    paint();
  });
  return h('div', { class: 'read-form', tid: 'diag-read-form' }, modes, byName, byAddress, go, result);
}

// The device's past in the supervisor's event log: its health changes and the commands that
// went to it (reads, writes).
const aboutDevice = (id) => (e) => (e.kind === 'device' && e.device === id)
  || (e.kind === 'command' && (e.args?.device === id || e.action === `device/${id}/write`));

function detail(id, back, scope) {
  const m = deviceMeta(id);
  const head = h('div', { class: 'detail-head' },
    h('button', { type: 'button', class: 'btn big back-btn', tid: 'device-back', onclick: back }, icon('back'), h('span', null, t('diag.back'))),
    h('h2', { class: 'detail-title' }, m.label || id, h('span', { class: 'muted' }, ' · ' + id)));
  const row = deviceRow(id, () => {});
  sub(scope, ['devices', 'tick', 'conn'], () => row.paint());
  const cards = [head, h('div', { class: 'devices' }, row.el),
    card('diag.blocks', null, blocksView(id, scope)),
    card('diag.health_history', null, h('div', { class: 'muted note' }, t('diag.health_note')), healthView(id, scope))];
  if (canRun('diag/read')) cards.push(card('diag.read.title', null, readForm(id, scope)));
  cards.push(card('diag.device_log', null, eventList(aboutDevice(id))));
  return h('div', { class: 'device-detail', tid: 'device-detail-' + id }, cards);
}

// ---- the self-test --------------------------------------------------------------------------------
// One run at a time, kept beyond the screen (it takes a while; the technician may look
// elsewhere). Its progress comes from the event log: the page is not pushed events, it reads
// /api/events, so it asks every second while the test runs. The run's first event (what:
// started) gives the total and the outputs in the order they are tested (the first 64 of them),
// shown as still to test; then one self_test event per output. Its end is the command's answer
// or, should that be late, the command's audit event in the log.
const MAX_PLANNED = 64; // outputs the start event lists at most (supervisor/core/self_test.py)
const selfTest = { running: false, only: '', after: 0, outcomes: new Map(), total: null, planned: [], end: null, timer: 0, startedAt: 0 };

// The run's start: its total and the outputs it goes through. The first one seen after the run
// was asked for is the page's (two runs at once are not told apart).
function takeStart(e) {
  if (selfTest.total != null || !Number.isInteger(e.total) || e.total < 0) return;
  selfTest.total = e.total;
  selfTest.planned = (Array.isArray(e.outputs) ? e.outputs : []).filter((o) => typeof o === 'string').slice(0, MAX_PLANNED);
}

async function fetchEvents(limit) {
  const r = await fetch('/api/events?limit=' + limit, { cache: 'no-store', credentials: 'same-origin' });
  if (!r.ok) throw new Error(String(r.status));
  const d = await r.json();
  return Array.isArray(d) ? d : [];
}
function finishSelfTest(end) {
  if (!selfTest.running) return;
  selfTest.running = false;
  clearInterval(selfTest.timer);
  selfTest.end = end;
  // the answer's sum is the total too, should the start event have been missed (over 200
  // events since the run began: the page reads the newest 200)
  const summary = /^(\d+) ok, (\d+) failed, (\d+) skipped/.exec(end.message || '');
  if (summary) selfTest.total = Number(summary[1]) + Number(summary[2]) + Number(summary[3]);
  pollSelfTest(); // the last outcomes, should they have come after the last look
  emit('selftest');
}
async function pollSelfTest() {
  let events;
  try { events = await fetchEvents(200); } catch { return; }
  for (const e of events.slice().reverse()) { // oldest first
    if (!(Number(e.id) > selfTest.after)) continue;
    if (e.kind === 'self_test' && e.what === 'started') takeStart(e);
    else if (e.kind === 'self_test' && typeof e.output === 'string') selfTest.outcomes.set(e.output, { result: e.result, detail: e.detail || '' });
    else if (selfTest.running && e.kind === 'command' && e.action === 'diag/self_test' && e.source === 'panel') {
      finishSelfTest({ status: e.status, code: e.code, message: e.message || '' });
    }
  }
  if (selfTest.running && Date.now() - selfTest.startedAt > SELF_TEST_GIVE_UP_MS) finishSelfTest({ status: 'timeout', code: 'timeout', message: '' });
  emit('selftest');
}
async function startSelfTest(only) {
  if (selfTest.running) return;
  let after = 0;
  try { after = Math.max(0, ...(await fetchEvents(1)).map((e) => Number(e.id) || 0)); } catch { /* the first events then count too */ }
  Object.assign(selfTest, { running: true, only, after, outcomes: new Map(), total: null, planned: [], end: null, startedAt: Date.now() });
  selfTest.timer = setInterval(pollSelfTest, SELF_TEST_POLL_MS);
  emit('selftest');
  const r = await sendCmd('diag/self_test', only ? { only } : {}, 'diag-selftest');
  // a timeout here is the page's patience, not the test's end: the audit event will tell
  if (r.status !== 'timeout') finishSelfTest(r);
}

const ST_DETAILS = { 'switched and back': 'diag.st.detail.ok', 'not switched by a self-test': 'diag.st.detail.excluded',
  'not an on/off output, or its state is not known now': 'diag.st.detail.not_switch' };
function stDetail(detail) {
  if (ST_DETAILS[detail]) return t(ST_DETAILS[detail]);
  const locked = /^locked by (.+)$/.exec(detail);
  return locked ? t('diag.st.detail.locked', { lock: locked[1] }) : detail;
}

function selfTestCard() {
  const only = h('input', { type: 'text', class: 'text-in', tid: 'selftest-only', autocomplete: 'off', spellcheck: 'false',
    placeholder: t('diag.st.only_hint'), 'aria-label': t('diag.st.only') });
  only.value = selfTest.only;
  const preset = (glob, label) => h('button', { type: 'button', class: 'btn', tid: 'selftest-preset-' + (glob === '' ? 'all' : glob.replace(/[^a-z]+/g, '-').replace(/-$/, '')),
    onclick: () => { only.value = glob; } }, label);
  const start = h('button', { type: 'button', class: 'btn danger big', tid: 'selftest-start' }, icon('test'), h('span', null, t('diag.st.start')));
  start.addEventListener('click', async () => {
    if (selfTest.running || !(await confirmDialog('self_test'))) return;
    startSelfTest(only.value.trim());
  });
  const progress = h('div', { class: 'st-progress', tid: 'selftest-progress' });
  const bar = h('div', { class: 'bar' }, h('div', { class: 'bar-fill' }));
  const final = h('div', { class: 'st-final', tid: 'selftest-result', hidden: true });
  const list = h('div', { class: 'events st-list', tid: 'selftest-outputs' });
  sub('screen', ['selftest', 'conn', 'pending'], () => {
    start.disabled = selfTest.running || !S.connected;
    start.classList.toggle('pending', selfTest.running);
    const n = selfTest.outcomes.size;
    const started = selfTest.running || selfTest.end;
    progress.hidden = !started;
    bar.hidden = !started || !selfTest.total;
    progress.dataset.done = String(n);
    progress.dataset.total = selfTest.total != null ? String(selfTest.total) : '';
    progress.dataset.running = String(selfTest.running);
    setText(progress, !started ? '' : selfTest.total != null
      ? t('diag.st.progress', { n: num(n), total: num(selfTest.total) })
      : t('diag.st.progress_unknown', { n: num(n) }));
    bar.firstChild.style.width = selfTest.total ? `${Math.min(100, (100 * n) / selfTest.total)}%` : '0';
    // while it runs, the outputs still to test follow those done (in the order they are tested)
    const pending = selfTest.running ? selfTest.planned.filter((o) => !selfTest.outcomes.has(o)) : [];
    const unlisted = selfTest.running && selfTest.total != null ? selfTest.total - n - pending.length : 0;
    const rows = [...selfTest.outcomes, ...pending.map((o) => [o, { result: 'pending', detail: '' }])].map(([output, o]) => h('div', { class: 'event st-out', 'data-result': o.result, tid: 'selftest-out-' + output.replaceAll('/', '-') },
      icon(o.result === 'ok' ? 'check' : o.result === 'failed' ? 'x' : o.result === 'pending' ? 'clock' : 'info'),
      h('div', { class: 'ev-body' }, h('div', null, h('strong', null, output), ' · ', tOr('diag.st.result.' + o.result, o.result)),
        o.detail ? h('div', { class: 'ev-detail' }, stDetail(o.detail)) : null)));
    if (unlisted > 0) rows.push(h('div', { class: 'event muted', tid: 'selftest-more' }, t('diag.st.more', { n: num(unlisted) })));
    list.replaceChildren(...rows);
    const end = selfTest.end;
    final.hidden = !end;
    if (!end) return;
    final.dataset.status = end.status;
    final.dataset.code = end.code || '';
    const failed = [...selfTest.outcomes].filter(([, o]) => o.result === 'failed').map(([id]) => id);
    const count = (r) => [...selfTest.outcomes.values()].filter((o) => o.result === r).length;
    let text;
    if (end.status === 'done') text = t('diag.st.done', { ok: num(count('ok')), skipped: num(count('skipped')) });
    else if (end.code === 'self_test_failed') text = t('diag.st.failed', { outputs: failed.join(', ') || end.message });
    else text = tOr('diag.st.code.' + end.code, `${tOr('result.' + end.status, end.status)}: ${end.message || end.code}`);
    setText(final, text);
  });
  return card('diag.st.title', 'test',
    h('p', { class: 'muted note' }, t('diag.st.explain')),
    h('div', { class: 'read-row' }, h('label', { class: 'field' }, h('span', { class: 'm-label' }, t('diag.st.only')), only),
      h('div', { class: 'reg-chips' }, preset('', t('diag.st.all')), preset('power/circuit/*', t('diag.st.circuits')))),
    start, progress, bar, final, list);
}

// ---- the screen ------------------------------------------------------------------------------------
export default {
  icon: 'pulse',
  roles: ['technician'],
  render(sec) {
    // the list, or one device's detail, in a part of the screen of its own scope
    const view = h('div', { class: 'diag-view' });
    onClear('screen', () => clearScope('diag-view'));
    const showList = () => {
      clearScope('diag-view');
      view.replaceChildren(card('diag.devices', null, h('p', { class: 'muted note' }, t('diag.devices_hint')), devices(showDevice, 'diag-view')));
    };
    const showDevice = (id) => {
      clearScope('diag-view');
      view.replaceChildren(detail(id, showList, 'diag-view'));
      sec.closest('#main')?.scrollTo(0, 0);
      loadEvents();
    };
    showList();
    sec.append(card('diag.status', 'pulse', status()), view);
    if (canRun('diag/self_test')) sec.append(selfTestCard());
    sec.append(card('diag.commands', null, eventList((e) => e.kind === 'command')));
    loadEvents();
    every(30000, loadEvents);
  },
};
