// Power: battery, circuits, shore input and its current limit, generator, inverter, solar,
// and the 24 h charts of SOC and battery power.
import { S, sub, onClear, has, good, canRun, actionArg, pointMeta, sendCmd, loadHistory, nowS } from '../client.js';
import { t, num, fmtTime, unitText, enumText } from '../i18n.js';
import { h, icon, setText, card, metric, val, cmdButton, switchButton, circuitRow, overrideButton, confirmDialog, every } from '../widgets.js';
import { lineChart } from '../chart.js';

const BREAKERS = [6, 10, 13, 16, 25, 32]; // common shore-post fuses (A)
const HISTORY_MS = 300000;
const CHARTS = {
  soc: { point: 'power/battery/soc', title: 'chart.soc', yMin: 0, yMax: 100, ticks: [0, 25, 50, 75, 100], fmt: (v) => num(v) + unitText('%') },
  power: { point: 'power/battery/power', title: 'chart.power', split: true, minSpan: 200, fmt: (v) => num(v, 0, 'exceptZero') },
};

function circuits() {
  const shedInfo = h('div', { class: 'shed-steps' });
  sub('screen', ['p:power/shed/steps', 'conn'], () => {
    const n = good('power/shed/steps');
    shedInfo.hidden = !n;
    setText(shedInfo, n ? t('power.shed_steps', { n: num(n) }) : '');
  });
  return h('div', { class: 'card circuits-card' },
    h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, icon('bolt'), t('power.circuits')), overrideButton(false)),
    shedInfo,
    h('div', { class: 'circuit-list' }, S.circuits.map((c) => circuitRow(c, { whatIf: true }))));
}

// The shore limit: a stepper and the usual breaker sizes, within the action's range.
function shoreLimit() {
  const action = 'power/shore/current_limit';
  const shown = val('power/shore/current_limit', { cls: 'big', fmt: (v) => [num(v), unitText('A')] });
  if (!canRun(action)) return h('div', { class: 'limit' }, h('div', { class: 'm-label' }, t('shore.limit')), shown);
  const { min = 3, max = 32 } = actionArg(action, 'amps');
  const cur = () => good('power/shore/current_limit') ?? S.points['power/shore/current_limit']?.v;
  const set = (a) => sendCmd(action, { amps: Math.max(min, Math.min(max, a)) }, 'shore');
  const sizes = BREAKERS.filter((a) => a >= min && a <= max);
  const presets = sizes.map((a) => cmdButton({ testid: 'shore-limit-' + a, label: t('shore.preset', { a: num(a) }), key: 'shore', cls: 'preset', onTap: () => set(a) }));
  sub('screen', ['p:power/shore/current_limit'], () => {
    presets.forEach((b, i) => b.setAttribute('aria-pressed', String(sizes[i] === cur())));
  });
  return h('div', { class: 'limit' },
    h('div', { class: 'm-label' }, t('shore.limit')),
    h('div', { class: 'stepper' },
      cmdButton({ testid: 'shore-limit-minus', label: '−', key: 'shore', cls: 'step', onTap: () => set((cur() ?? min) - 1) }),
      shown,
      cmdButton({ testid: 'shore-limit-plus', label: '+', key: 'shore', cls: 'step', onTap: () => set((cur() ?? min) + 1) })),
    h('div', { class: 'presets' }, presets));
}

function shore() {
  if (!has('power/ac/source') && !has('power/shore/current_limit')) return null;
  // how close the input current is to the limit (a blown shore fuse is the risk)
  const bar = h('div', { class: 'bar' }, h('div', { class: 'bar-fill' }));
  sub('screen', ['p:power/ac/input_current', 'p:power/shore/current_limit', 'conn'], () => {
    const i = good('power/ac/input_current');
    const l = good('power/shore/current_limit');
    const r = i != null && l ? Math.min(1, i / l) : 0;
    bar.firstChild.style.width = (r * 100).toFixed(0) + '%';
    bar.dataset.level = i == null ? 'stale' : r > 0.95 ? 'crit' : r > 0.8 ? 'warn' : 'ok';
  });
  return card('power.shore', 'plug',
    h('div', { class: 'metrics' },
      metric('power.source', 'power/ac/source', { mcls: 'wide' }),
      metric('power.input_voltage', 'power/ac/input_voltage'),
      metric('power.input_current', 'power/ac/input_current'),
      metric('power.input_power', 'power/ac/input_power')),
    has('power/ac/input_current') ? bar : null,
    shoreLimit());
}

function generator() {
  if (!has('power/generator/state')) return null;
  const may = canRun('power/generator');
  const state = val('power/generator/state', { cls: 'mid' });
  sub('screen', ['p:power/generator/state', 'conn'], () => { state.dataset.gen = S.points['power/generator/state']?.v || ''; });
  return card('power.generator', 'gen',
    h('div', { class: 'metrics' },
      h('div', { class: 'metric wide' }, h('div', { class: 'm-label' }, t('gen.state')), state),
      metric('gen.reason', 'power/generator/reason', { mcls: 'wide' }),
      // an hour meter, like the generator's own
      metric('gen.run_total', 'power/generator/run_time_total', { fmt: (v) => [t('dur.hours', { h: num(v / 3600, 1) }), ''] })),
    may ? h('div', { class: 'btn-row' },
      cmdButton({ testid: 'gen-start', label: t('gen.start'), ico: 'gen', key: 'gen', cls: 'primary',
        onTap: () => sendCmd('power/generator', { command: 'start' }, 'gen') }),
      cmdButton({ testid: 'gen-stop', label: t('gen.stop'), ico: 'x', key: 'gen', cls: 'danger',
        onTap: async () => { if (await confirmDialog('gen_stop')) sendCmd('power/generator', { command: 'stop' }, 'gen'); } })) : null,
    has('power/generator/auto') ? h('div', { class: 'switch-row' }, h('span', null, t('gen.auto')),
      switchButton({ testid: 'gen-auto', pid: 'power/generator/auto', action: 'power/generator/auto', args: (enabled) => ({ enabled }) })) : null);
}

function inverter() {
  if (!has('power/inverter/mode') && !has('power/inverter/mode_setting')) return null;
  const action = 'power/inverter/mode';
  const modes = actionArg(action, 'mode').enum || [];
  // the buttons name the modes as the mode points do
  const set = pointMeta('power/inverter/mode_setting').enum_set ?? pointMeta('power/inverter/mode').enum_set;
  const btns = canRun(action) ? modes.map((m) => cmdButton({ testid: 'inverter-mode-' + m, label: enumText(set, m), key: 'inv',
    cls: 'seg' + (m === 'off' ? ' seg-off' : ''),
    onTap: async () => { if (m !== 'off' || (await confirmDialog('inv_off'))) sendCmd(action, { mode: m }, 'inv'); } })) : [];
  sub('screen', ['p:power/inverter/mode_setting', 'p:power/inverter/mode'], () => {
    const chosen = S.points['power/inverter/mode_setting']?.v ?? S.points['power/inverter/mode']?.v;
    btns.forEach((b, i) => b.setAttribute('aria-pressed', String(modes[i] === chosen)));
  });
  return card('power.inverter', 'wave',
    h('div', { class: 'metrics' },
      metric('inv.mode', 'power/inverter/mode'),
      metric('inv.state', 'power/inverter/state'),
      metric('inv.out_power', 'power/inverter/ac_out_power')),
    btns.length ? [h('div', { class: 'm-label' }, t('inv.choose')), h('div', { class: 'segmented' }, btns)] : null);
}

function solar() {
  if (!has('power/solar/power')) return null;
  return card('power.solar', 'sun', h('div', { class: 'metrics' },
    metric('power.solar_power', 'power/solar/power', { cls: 'big' }),
    metric('power.solar_state', 'power/solar/state')));
}

function chartCard(kind) {
  const c = CHARTS[kind];
  const box = h('div', { class: 'chart-box' });
  const note = h('div', { class: 'chart-note' });
  const draw = () => {
    const d = S.hist[kind];
    if (!d) { setText(note, t('chart.loading')); return; }
    setText(note, d.error ? t('chart.error') : t('chart.updated', { time: fmtTime(d.at / 1000, false) }));
    const to = nowS();
    lineChart(box, { t: d.t || [], v: d.v || [], from: to - 86400, to, yMin: c.yMin, yMax: c.yMax, ticks: c.ticks,
      split: c.split, minSpan: c.minSpan, fmtY: c.fmt, fmtX: (e) => fmtTime(e, false), empty: t(d.error ? 'chart.error' : 'chart.empty'), title: t(c.title) });
  };
  sub('screen', ['hist', 'chart'], draw);
  // the chart is drawn for its width in pixels: redraw when that changes
  let w = 0;
  const ro = new ResizeObserver(() => { if (box.clientWidth && box.clientWidth !== w) { w = box.clientWidth; draw(); } });
  ro.observe(box);
  onClear('screen', () => ro.disconnect());
  return h('div', { class: 'card chart-card' },
    h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, t(c.title)),
      kind === 'power' ? h('div', { class: 'legend' }, h('span', { class: 'lg pos' }, t('chart.charging')), h('span', { class: 'lg neg' }, t('chart.discharging'))) : null),
    h('figure', { class: 'chart', tid: 'chart-' + kind }, box), note);
}
const loadCharts = (force) => Promise.all(Object.entries(CHARTS).map(([kind, c]) => loadHistory(kind, c.point, HISTORY_MS, force)));

export default {
  icon: 'bolt',
  render(sec) {
    sec.append(
      h('div', { class: 'flow' },
        card('power.battery', 'battery', h('div', { class: 'metrics' },
          metric('power.soc', 'power/battery/soc', { cls: 'big' }),
          metric('power.voltage', 'power/battery/voltage'),
          metric('power.current', 'power/battery/current', { signed: true }),
          metric('power.power', 'power/battery/power', { signed: true }),
          metric('power.temperature', 'power/battery/temperature'),
          metric('power.runtime', 'power/runtime', { mcls: 'wide' }))),
        circuits(), shore(), generator(), inverter(), solar()),
      h('div', { class: 'grid charts' }, chartCard('soc'), chartCard('power')));
    loadCharts(false);
    every(HISTORY_MS, () => loadCharts(true));
  },
};
