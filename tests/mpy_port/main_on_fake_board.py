"""Run the room node's real ``main.py`` under MicroPython on a fake board (``machine_double``).

The test's steps run at the watchdog's feeds, one per turn of the main loop: ask the node
who it is, press a panic button, switch the outputs on; each step waits, turn by turn, for
what the node must do. Prints "main ok" when every step passed; an AssertionError otherwise.
Run by ``tests/test_room_node_micropython.py`` through ``run.mjs``.
"""

import sys

from mpy_port import machine_double as fake

sys.modules["machine"] = fake  # before main.py imports it

from roomnode import board  # noqa: E402
from roomnode.modbus import with_crc  # noqa: E402

try:  # noqa: SIM105  (MicroPython has no contextlib)
    from collections.abc import Iterator
except ImportError:  # MicroPython: only mypy reads the annotations
    pass

TURNS = 400  # each step must be done within this many turns of the loop (~1 ms each)


class Done(Exception):
    """Every step passed: leaves main.py's endless loop."""


def request(*body: int) -> None:
    fake.rx.extend(with_crc(bytes(body)))


def answer() -> bytes:
    return fake.sent[-1][0] if fake.sent else b""


def steps() -> "Iterator[None]":
    fake.adc_counts[board.PIN_PANIC_DESK] = board.adc_counts(board.R_EOL)
    fake.adc_counts[board.PIN_PANIC_DOOR] = board.adc_counts(board.R_EOL)
    yield
    assert fake.pins[board.PIN_DE].level == 0  # listening
    assert fake.pwms[board.PIN_CALM_LIGHT].hz == board.CALM_PWM_HZ

    request(board.UNIT, 4, 0, 16, 0, 2)
    while not fake.sent:
        yield
    assert answer() == with_crc(bytes((board.UNIT, 4, 4, 0x52, 0x4E, 1, 0)))
    assert fake.sent[-1][1] == 1  # DE was high while it went out...
    assert fake.pins[board.PIN_DE].level == 0  # ...and is low again

    fake.adc_counts[board.PIN_PANIC_DESK] = board.adc_counts(board.R_EOL + board.R_ALARM)
    for _ in range(board.ZONE_DEBOUNCE_MS + 20):  # turns of about a millisecond
        yield
    count = len(fake.sent)
    request(board.UNIT, 4, 0, 0, 0, 2)
    while len(fake.sent) == count:
        yield
    assert answer() == with_crc(bytes((board.UNIT, 4, 4, 0, 1, 0, 1)))  # latched, one press

    count = len(fake.sent)
    request(board.UNIT, 16, 0, 100, 0, 4, 8, 0, 1, 0, 1, 0, 1, 1, 0xF4)  # calm 50 %
    while len(fake.sent) == count:
        yield
    yield  # the outputs follow in the same turn as the answer
    levels = [fake.pins[p].level for p in (board.PIN_DOOR_SIGN, board.PIN_RECORDING,
                                           board.PIN_BUZZER)]
    assert levels == [1, 1, 1]
    assert fake.pwms[board.PIN_CALM_LIGHT].duty == 500 * 65535 // 1000
    raise Done


_steps = steps()


def _turn() -> None:
    if fake.feeds[0] > TURNS * 6:
        raise AssertionError("main.py: a step did not complete in time")
    next(_steps)


fake.on_feed[0] = _turn
try:
    with open("/lib/main.py") as source:
        exec(source.read(), {"__name__": "main"})
except Done:
    print("main ok", fake.feeds[0], "turns")
