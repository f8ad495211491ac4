// Comms (LTE, Wi-Fi): a placeholder until the router's points exist.
import { placeholder } from '../widgets.js';

export default {
  icon: 'signal',
  needsMeta: false,
  render(sec) { sec.append(placeholder('comms', 'signal')); },
};
