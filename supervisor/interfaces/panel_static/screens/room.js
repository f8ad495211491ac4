// Consultation room: a placeholder until the room node's controls exist.
import { placeholder } from '../widgets.js';

export default {
  icon: 'door',
  needsMeta: false,
  render(sec) { sec.append(placeholder('room', 'door')); },
};
