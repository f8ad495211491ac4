// Climate: the consultation room's temperature and humidity, and what the air conditioning
// costs in battery runtime. (Heating and air conditioning control come in a later version.)
import { has } from '../client.js';
import { h, card, metric, laterCard } from '../widgets.js';

export default {
  icon: 'thermo',
  render(sec) {
    sec.append(h('div', { class: 'grid climate-grid' },
      card('climate.room', 'thermo', h('div', { class: 'metrics two' },
        metric('climate.temperature', 'climate/room/temperature', { cls: 'huge', always: true }),
        metric('climate.humidity', 'climate/room/humidity', { cls: 'huge', always: true }))),
      has('power/runtime/with_climate') ? card('climate.what_if', 'battery', h('div', { class: 'metrics' },
        metric('power.runtime', 'power/runtime', { cls: 'big' }),
        metric('home.runtime_climate', 'power/runtime/with_climate', { cls: 'big' }))) : null,
      laterCard('climate.later')));
  },
};
