// Alarms: active and latched alarms, most severe first, each acknowledged here (a panic is
// cancelled, with the PIN entered again, as on the room screen); the event log.
import { S, sub, onClear, nowS, canRun, isPending, sendCmd, shownAlarms, loadEvents } from '../client.js';
import { t, tOr, fmtAge, fmtTime } from '../i18n.js';
import { h, icon, setText, tid, card, alarmText, eventList, every } from '../widgets.js';
import { askPin } from '../pin.js';

const PANIC = 'room/panic'; // acknowledged by cancelling the panic: room/panic_ack, PIN again

function alarmRow(id) {
  const text = h('div', { class: 'a-text' });
  const meta = h('div', { class: 'a-meta' });
  const sev = h('span', { class: 'a-sev' });
  const ico = h('span', { class: 'a-ico' });
  const key = 'ack:' + id;
  const panic = id === PANIC;
  const ack = canRun(panic ? 'room/panic_ack' : 'alarm/ack')
    ? h('button', { type: 'button', class: 'btn ack', tid: 'ack-' + tid(id) }, icon(panic ? 'lock' : 'check'), h('span', null, t(panic ? 'panic.cancel' : 'alarms.ack')))
    : null;
  ack?.addEventListener('click', async () => {
    if (isPending(key)) return;
    if (!panic) sendCmd('alarm/ack', { alarm: id }, key);
    else if (await askPin('panic_ack')) sendCmd('room/panic_ack', {}, key);
  });
  const el = h('div', { class: 'alarm', tid: 'alarm-' + tid(id) }, ico, h('div', { class: 'a-body' }, h('div', { class: 'a-top' }, sev, text), meta), ack);
  return {
    el,
    paint(a) {
      el.className = `alarm sev-${a.severity}${a.active ? '' : ' cleared'}`;
      el.dataset.severity = a.severity;
      el.dataset.active = String(!!a.active);
      el.dataset.acked = String(!!a.acked);
      const icoName = a.severity === 'info' ? 'info' : 'warn';
      if (ico.dataset.i !== icoName) { ico.dataset.i = icoName; ico.replaceChildren(icon(icoName, 'ico')); }
      setText(sev, tOr('sev.' + a.severity, a.severity));
      setText(text, alarmText(a) + (a.detail ? ` (${a.detail})` : ''));
      const bits = [];
      if (a.since) bits.push(t('alarms.since', { time: fmtTime(a.since), age: fmtAge(nowS() - a.since) }));
      bits.push(t(a.active ? 'alarms.state_active' : 'alarms.state_cleared'));
      if (a.acked) bits.push(t('alarms.acked'));
      setText(meta, bits.join(' · '));
      if (!ack) return;
      const pend = isPending(key);
      ack.hidden = !!a.acked;
      ack.classList.toggle('pending', pend);
      ack.disabled = pend || !S.connected;
    },
  };
}

export default {
  icon: 'bell',
  render(sec) {
    const list = h('div', { class: 'alarm-list' });
    const empty = h('div', { class: 'ok-line big-ok' }, icon('check'), t('alarms.none'));
    const rows = new Map();
    // rows are kept and re-painted, not rebuilt, so a button is not replaced under a finger
    sub('screen', ['alarms', 'conn', 'pending', 'tick'], () => {
      const items = shownAlarms();
      for (const [id, r] of rows) if (!S.alarms[id]) { r.el.remove(); rows.delete(id); }
      items.forEach((a, i) => {
        let r = rows.get(a.id);
        if (!r) { r = alarmRow(a.id); rows.set(a.id, r); }
        r.paint(a);
        if (list.children[i] !== r.el) list.insertBefore(r.el, list.children[i] || null);
      });
      empty.hidden = items.length > 0;
    });
    sec.append(card('alarms.active', 'bell', empty, list), card('alarms.history', null, eventList((e) => !['command', 'device', 'self_test'].includes(e.kind))));
    // an alarm change is logged too: reload the log shortly after a burst of changes
    let timer = 0;
    sub('screen', ['alarms'], () => { clearTimeout(timer); timer = setTimeout(loadEvents, 800); });
    onClear('screen', () => clearTimeout(timer));
    loadEvents();
    every(30000, loadEvents);
  },
};
