// Comms: the path to HQ (end to end: HQ's echo came back or not, the round trip), the LTE
// router or modem (signal, network, operator, registration, WAN, mobile data today; which of
// the two answers, the modem's health), where the van is
// (the source, the exact position kept on board, the GPS receiver) and the router watchdog
// (the crew switches it off and on; its power cycles in the last hour), and the history of all
// of it. Each card shows only what this van has.
import { has, sub, onClear, loadEvents } from '../client.js';
import { t } from '../i18n.js';
import { h, card, metric, switchButton, eventList, every } from '../widgets.js';

// the link's history: HQ lost and back (its alarm), the router's power cycles, the watchdog
// switched off and on
const commsEvent = (e) => e.kind === 'comms' || (e.kind === 'alarm' && String(e.alarm).startsWith('comms/'));
const metrics = (...rows) => h('div', { class: 'metrics' }, ...rows);
const cardIf = (pid, ...args) => (has(pid) ? card(...args) : null);

function watchdog() {
  if (!has('comms/watchdog/enabled')) return null;
  return card('comms.watchdog', 'shield', metrics(
    h('div', { class: 'metric' }, h('div', { class: 'm-label' }, t('comms.watchdog_enabled')),
      switchButton({ testid: 'comms-watchdog', pid: 'comms/watchdog/enabled', action: 'comms/watchdog',
        args: (on) => ({ enabled: on }) })),
    metric('comms.cycles', 'comms/watchdog/cycles_last_hour')),
  h('p', { class: 'clim-note' }, t('comms.watchdog_note')));
}

export default {
  icon: 'signal',
  render(sec) {
    sec.append(h('div', { class: 'grid' },
      cardIf('comms/hq/state', 'comms.hq', 'globe', metrics(
        metric('comms.hq_state', 'comms/hq/state', { mcls: 'wide' }),
        metric('comms.rtt', 'comms/hq/rtt_ms'))),
      cardIf('comms/lte/signal_dbm', 'comms.lte', 'signal', metrics(
        metric('comms.signal', 'comms/lte/signal_dbm'),
        metric('comms.network', 'comms/lte/network_type'),
        metric('comms.lte_source', 'comms/lte/source'),
        metric('comms.modem', 'comms/modem/state'),
        metric('comms.operator', 'comms/lte/operator'),
        metric('comms.registration', 'comms/lte/registration', { mcls: 'wide' }),
        metric('comms.wan', 'comms/lte/wan_up'),
        metric('comms.wan_ip', 'comms/lte/wan_ip'),
        metric('comms.data_today', 'comms/lte/data_today_mb'))),
      cardIf('comms/position/source', 'comms.position', 'car', metrics(
        metric('comms.source', 'comms/position/source', { mcls: 'wide' }),
        metric('comms.lat', 'comms/position/exact_lat'),
        metric('comms.lon', 'comms/position/exact_lon'),
        metric('comms.gps', 'comms/gps/state'),
        metric('comms.satellites', 'comms/gps/satellites'),
        metric('comms.speed', 'comms/gps/speed_kmh'))),
      watchdog(),
      card('comms.history', 'globe', eventList(commsEvent))));
    // a change of the link is logged (its alarm): reload the log shortly after
    let timer = 0;
    sub('screen', ['p:comms/hq/state', 'p:comms/watchdog/enabled', 'p:comms/watchdog/cycles_last_hour'], () => {
      clearTimeout(timer); timer = setTimeout(loadEvents, 800);
    });
    onClear('screen', () => clearTimeout(timer));
    loadEvents();
    every(30000, loadEvents);
  },
};
