// Lighting: the light circuits as big switches. (Scenes come in a later version.)
import { S } from '../client.js';
import { t } from '../i18n.js';
import { h, circuitRow, laterCard } from '../widgets.js';

export default {
  icon: 'bulb',
  render(sec) {
    const lights = S.circuits.filter((c) => c.includes('light'));
    sec.append(h('div', { class: 'tiles' }, lights.length
      ? lights.map((c) => circuitRow(c, { tile: true }))
      : h('div', { class: 'card' }, t('lighting.none'))), laterCard('lighting.later'));
  },
};
