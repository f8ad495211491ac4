// Home: battery and runtime, the power source, the alarms at a glance, night mode and override.
import { S, sub, has, connDown, offlineDevices, shownAlarms } from '../client.js';
import { t, num } from '../i18n.js';
import { h, icon, setText, val, metric, nightButton, overrideButton, alarmText } from '../widgets.js';

// The power source as the crew thinks of it: the shore cable, the generator, or the battery.
function sourceKind(v) {
  if (v === 'shore' || v === 'grid') return 'shore';
  if (v === 'generator') return 'generator';
  return 'battery';
}
const SOURCE_ICON = { shore: 'plug', generator: 'gen', battery: 'battery' };

function chips(nav) {
  const chip = h('button', { type: 'button', class: 'chip warn', tid: 'status-chip', hidden: true }, icon('warn'), h('span'));
  chip.addEventListener('click', () => { if (S.role === 'technician') nav.go('diagnostics'); });
  const drive = h('div', { class: 'chip info', tid: 'driving-chip', hidden: true }, icon('car'), h('span', null, t('home.driving')));
  sub('screen', ['conn', 'devices', 'status', 'second'], () => {
    const off = offlineDevices();
    let text = '';
    if (connDown()) text = t('home.chip_conn');
    else if (off.length) text = t('home.chip_offline', { list: off.join(', ') });
    chip.hidden = !text;
    setText(chip.lastChild, text);
  });
  sub('screen', ['p:vehicle/driving', 'conn'], () => { drive.hidden = S.points['vehicle/driving']?.v !== true; });
  return h('div', { class: 'chips' }, chip, drive);
}

function battery() {
  const gauge = h('div', { class: 'gauge' }, h('div', { class: 'gauge-fill' }));
  const soc = val('power/battery/soc', {
    cls: 'huge',
    after: (e, p, q) => {
      const v = p && typeof p.v === 'number' ? p.v : 0;
      gauge.firstChild.style.width = Math.max(0, Math.min(100, v)) + '%';
      gauge.dataset.level = q !== 'good' ? 'stale' : v < 20 ? 'crit' : v < 40 ? 'warn' : 'ok';
    },
  });
  return h('div', { class: 'card battery' },
    h('h2', { class: 'card-title' }, icon('battery'), t('home.battery')),
    h('div', { class: 'soc-row' }, soc, metric('home.battery_power', 'power/battery/power', { mcls: 'compact', signed: true })),
    gauge,
    h('div', { class: 'runtime' },
      h('div', { class: 'm-label' }, t('home.runtime')),
      h('div', { tid: 'runtime-now', class: 'rt-now' }, val('power/runtime', { cls: 'big' })),
      has('power/runtime/with_climate')
        ? h('div', { tid: 'runtime-climate', class: 'rt-climate' }, h('span', { class: 'm-label' }, t('home.runtime_climate')), ' ', val('power/runtime/with_climate'))
        : null));
}

function source() {
  const srcIco = h('span', { class: 'src-ico' });
  const input = has('power/ac/input_power') ? h('span', { class: 'src-in' }, t('home.input'), ' ', val('power/ac/input_power')) : null;
  const el = h('div', { class: 'card source' },
    h('h2', { class: 'card-title' }, t('home.source')),
    h('div', { class: 'src-row' }, srcIco, h('div', { class: 'src-text' },
      val('power/ac/source', { cls: 'mid', fmt: (v) => [t('source.' + sourceKind(v)), ''] }),
      h('div', { class: 'src-detail' },
        input,
        has('power/solar/power') ? h('span', null, icon('sun', 'ico small'), ' ', val('power/solar/power')) : null))));
  sub('screen', ['p:power/ac/source', 'conn'], () => {
    const kind = sourceKind(S.points['power/ac/source']?.v);
    if (srcIco.dataset.kind !== kind) { srcIco.dataset.kind = kind; srcIco.replaceChildren(icon(SOURCE_ICON[kind], 'ico xl')); }
    el.dataset.source = kind;
    if (input) input.hidden = kind === 'battery';
  });
  return el;
}

function alarms(nav) {
  const list = h('div', { class: 'alarm-summary' });
  const el = h('button', { type: 'button', class: 'card alarms-card', tid: 'home-alarms', onclick: () => nav.go('alarms') },
    h('h2', { class: 'card-title' }, icon('bell'), t('home.alarms')), list);
  sub('screen', ['alarms'], () => {
    const shown = shownAlarms();
    el.dataset.severity = shown[0]?.severity || 'none';
    if (!shown.length) { list.replaceChildren(h('div', { class: 'ok-line' }, icon('check'), t('alarms.none'))); return; }
    const max = innerHeight >= 700 ? 5 : 2; // what fits beside the battery card
    list.replaceChildren(...shown.slice(0, max).map((a) => h('div', { class: 'as-row sev-' + a.severity },
      icon(a.severity === 'info' ? 'info' : 'warn'), h('span', null, alarmText(a)))),
    ...(shown.length > max ? [h('div', { class: 'as-more' }, t('home.more_alarms', { n: num(shown.length - max) }))] : []));
  });
  return el;
}

export default {
  icon: 'home',
  render(sec, nav) {
    const modes = h('div', { class: 'modes' }, nightButton('home-night-toggle', 'mode-tile', 'screen'), overrideButton(true));
    sec.append(chips(nav), h('div', { class: 'home-grid' }, battery(), h('div', { class: 'home-side' }, source(), alarms(nav), modes)));
  },
};
