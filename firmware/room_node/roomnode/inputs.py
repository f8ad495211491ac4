"""The node's inputs: supervised panic loops read through the ADC, and debounced contacts.

A panic button on a double-end-of-line loop tells four things apart by the loop's resistance
(:mod:`roomnode.board` has the resistors and the bands): at rest, pressed, wire cut, wire
shorted. A cut or a short is a tamper, never mistaken for "at rest", so a button somebody
disabled does not look like a quiet room.
"""

from roomnode import board
from roomnode.ticks import ticks_diff

# zone states: the codes of the profile's enum zone_state
NORMAL = 0
ALARM = 1
TAMPER_OPEN = 2
TAMPER_SHORT = 3


def classify(counts: int) -> int:
    """The zone state an ADC reading (``read_u16()``) of a loop shows."""
    if counts < board.SHORT_BELOW:
        return TAMPER_SHORT
    if counts < board.ALARM_FROM:
        return NORMAL
    if counts < board.OPEN_FROM:
        return ALARM
    return TAMPER_OPEN


class Zone:
    """One panic loop: its state changes once a reading has held ``debounce_ms``; entering
    ALARM needs ``hold_ms`` if longer (hold-to-activate: a brush against the button is not a
    panic). :meth:`update` says when a press happened."""

    def __init__(self, now_ms: int, debounce_ms: int = board.ZONE_DEBOUNCE_MS,
                 hold_ms: int = board.PANIC_HOLD_MS) -> None:
        self.state = NORMAL
        self.debounce_ms = debounce_ms
        self.alarm_ms = hold_ms if hold_ms > debounce_ms else debounce_ms
        self._reading = NORMAL
        self._since = now_ms

    def update(self, counts: int, now_ms: int) -> bool:
        """Take one ADC reading; True when it completes a press (the state became ALARM)."""
        reading = classify(counts)
        if reading != self._reading:
            self._reading = reading
            self._since = now_ms
        if reading == self.state:
            return False
        needed = self.alarm_ms if reading == ALARM else self.debounce_ms
        if ticks_diff(now_ms, self._since) < needed:
            return False
        self.state = reading
        return reading == ALARM

    def tampered(self) -> bool:
        """Whether the loop is cut or shorted (as debounced)."""
        return self.state in (TAMPER_OPEN, TAMPER_SHORT)


class Contact:
    """A digital input whose level is taken once it has held ``debounce_ms``."""

    def __init__(self, now_ms: int, debounce_ms: int, level: bool = False) -> None:
        self.level = level
        self.debounce_ms = debounce_ms
        self._reading = level
        self._since = now_ms

    def update(self, level: bool, now_ms: int) -> bool:
        """Take one reading; True when the debounced level has just become active."""
        if level != self._reading:
            self._reading = level
            self._since = now_ms
        if level == self.level or ticks_diff(now_ms, self._since) < self.debounce_ms:
            return False
        self.level = level
        return level
