"""The room node's inputs: supervised panic loops (bands, debounce, hold-to-activate, tamper),
the latch and its acknowledgement, the session button, the door and occupancy contacts."""

from __future__ import annotations

import pytest
from room_node_rig import AT_REST, CUT, PRESSED, SHORTED, Rig

from roomnode import board
from roomnode.inputs import ALARM, NORMAL, TAMPER_OPEN, TAMPER_SHORT, classify
from roomnode.node import ERR_WIRE_FAULT

DEBOUNCE = board.ZONE_DEBOUNCE_MS
# the first sample sees a change one sample period after it happened: it counts from there
SETTLE = DEBOUNCE + board.SAMPLE_MS
DESK, DOOR = 1, 2  # bits of panic_latched


@pytest.mark.parametrize(("ohms", "state"), [
    (0, TAMPER_SHORT), (1500, TAMPER_SHORT),
    (board.R_EOL, NORMAL),
    (board.R_EOL * 95 // 100, NORMAL), (board.R_EOL * 105 // 100, NORMAL),  # 5 % resistors
    (board.R_EOL + board.R_ALARM, ALARM),
    ((board.R_EOL + board.R_ALARM) * 90 // 100, ALARM),
    ((board.R_EOL + board.R_ALARM) * 110 // 100, ALARM),
    (30_000, TAMPER_OPEN), (-1, TAMPER_OPEN),
])
def test_loop_resistance_bands(ohms: int, state: int) -> None:
    assert classify(board.adc_counts(ohms)) == state


@pytest.mark.parametrize(("counts", "state"), [
    (board.SHORT_BELOW - 1, TAMPER_SHORT), (board.SHORT_BELOW, NORMAL),
    (board.ALARM_FROM - 1, NORMAL), (board.ALARM_FROM, ALARM),
    (board.OPEN_FROM - 1, ALARM), (board.OPEN_FROM, TAMPER_OPEN), (65535, TAMPER_OPEN),
])
def test_band_bounds(counts: int, state: int) -> None:
    assert classify(counts) == state


def test_the_bands_keep_a_margin_around_each_loop() -> None:
    """Resistors of 5 % and a few percent of ADC error stay inside their band."""
    margin = 65535 * 4 // 100
    assert board.SHORT_BELOW + margin < AT_REST < board.ALARM_FROM - margin
    assert board.ALARM_FROM + margin < PRESSED < board.OPEN_FROM - margin


def test_a_press_latches_once_it_has_held_the_debounce_time() -> None:
    rig = Rig()
    rig.loops[0] = PRESSED
    rig.run(DEBOUNCE)
    assert rig.value("panic_latched") == 0 and rig.value("panic_desk") == NORMAL
    rig.run(board.SAMPLE_MS)
    assert rig.value("panic_latched") == DESK
    assert rig.value("panic_presses") == 1
    assert rig.value("panic_desk") == ALARM and rig.value("panic_door") == NORMAL


def test_a_glitch_shorter_than_the_debounce_is_no_press() -> None:
    rig = Rig()
    rig.loops[1] = PRESSED
    rig.run(DEBOUNCE - board.SAMPLE_MS)
    rig.loops[1] = AT_REST
    rig.run(200)
    assert rig.value("panic_latched") == 0 and rig.value("panic_presses") == 0


def test_a_bouncing_contact_is_one_press() -> None:
    rig = Rig()
    for _ in range(6):  # 60 ms of bouncing, then pressed
        rig.loops[1] = PRESSED
        rig.run(board.SAMPLE_MS)
        rig.loops[1] = AT_REST
        rig.run(board.SAMPLE_MS)
    rig.loops[1] = PRESSED
    rig.run(200)
    assert rig.value("panic_latched") == DOOR and rig.value("panic_presses") == 1


def test_hold_to_activate() -> None:
    rig = Rig(hold_ms=500)
    rig.loops[0] = PRESSED
    rig.run(400)  # a brush against the button
    rig.loops[0] = AT_REST
    rig.run(100)
    assert rig.value("panic_presses") == 0 and rig.value("panic_desk") == NORMAL
    rig.loops[0] = PRESSED
    rig.run(500)
    assert rig.value("panic_presses") == 0
    rig.run(board.SAMPLE_MS)
    assert rig.value("panic_presses") == 1 and rig.value("panic_latched") == DESK


@pytest.mark.parametrize(("counts", "state"), [(CUT, TAMPER_OPEN), (SHORTED, TAMPER_SHORT)])
def test_a_cut_or_shorted_wire_is_a_tamper_not_a_press(counts: int, state: int) -> None:
    rig = Rig()
    rig.loops[1] = counts
    rig.run(SETTLE)
    assert rig.value("panic_door") == state
    assert rig.value("errors") & ERR_WIRE_FAULT
    assert rig.value("panic_latched") == 0 and rig.value("panic_presses") == 0
    rig.loops[1] = AT_REST  # repaired
    rig.run(SETTLE)
    assert rig.value("panic_door") == NORMAL
    assert not rig.value("errors") & ERR_WIRE_FAULT


def press_and_release(rig: Rig, button: int) -> None:
    rig.loops[button] = PRESSED
    rig.run(DEBOUNCE + 20)
    rig.loops[button] = AT_REST
    rig.run(DEBOUNCE + 20)


def test_the_latch_outlives_the_press_until_acknowledged() -> None:
    rig = Rig()
    press_and_release(rig, 0)
    rig.run(60_000)
    assert rig.value("panic_latched") == DESK  # a press between two polls is never lost
    rig.write(105, DESK)
    assert rig.value("panic_latched") == 0  # at rest already: cleared at once
    assert rig.value("panic_presses") == 1


def test_an_acknowledgement_while_pressed_clears_only_at_release() -> None:
    rig = Rig()
    rig.loops[0] = PRESSED  # a latching panic button stays pressed until reset with its key
    rig.run(SETTLE)
    rig.write(105, DESK)
    rig.run(5_000)
    assert rig.value("panic_latched") == DESK
    rig.loops[0] = AT_REST
    rig.run(SETTLE)
    assert rig.value("panic_latched") == 0


def test_an_acknowledgement_never_clears_a_later_press() -> None:
    rig = Rig()
    rig.write(105, DESK | DOOR)  # nothing latched: nothing to deliver
    press_and_release(rig, 0)
    assert rig.value("panic_latched") == DESK


def test_each_bit_is_acknowledged_on_its_own() -> None:
    rig = Rig()
    press_and_release(rig, 0)
    press_and_release(rig, 1)
    assert rig.value("panic_latched") == DESK | DOOR
    rig.write(105, DOOR)
    assert rig.value("panic_latched") == DESK
    assert rig.value("panic_presses") == 2


def test_a_tampered_button_stays_latched_until_it_is_normal() -> None:
    rig = Rig()
    rig.loops[1] = PRESSED
    rig.run(SETTLE)
    rig.loops[1] = CUT  # the wire is cut while the alarm stands
    rig.run(SETTLE)
    rig.write(105, DOOR)
    assert rig.value("panic_latched") == DOOR
    rig.loops[1] = AT_REST
    rig.run(SETTLE)
    assert rig.value("panic_latched") == 0


def test_every_press_counts_also_while_latched() -> None:
    rig = Rig()
    for _ in range(3):
        press_and_release(rig, 1)
    assert rig.value("panic_presses") == 3 and rig.value("panic_latched") == DOOR


def test_press_counters_wrap() -> None:
    rig = Rig()
    rig.node.panic_presses = 0xFFFF
    rig.node.session_presses = 0xFFFF
    press_and_release(rig, 0)
    rig.session = True
    rig.run(board.SESSION_DEBOUNCE_MS + board.SAMPLE_MS)
    assert rig.value("panic_presses") == 0 and rig.value("session_presses") == 0


def test_the_session_button_counts_debounced_presses() -> None:
    rig = Rig()
    rig.session = True
    rig.run(board.SESSION_DEBOUNCE_MS - board.SAMPLE_MS)
    rig.session = False  # a bounce
    rig.run(board.SAMPLE_MS)
    rig.session = True
    rig.run(2_000)  # held: one press
    rig.session = False
    rig.run(100)
    assert rig.value("session_presses") == 1
    rig.session = True
    rig.run(100)
    assert rig.value("session_presses") == 2


@pytest.mark.parametrize(("attribute", "register", "debounce"), [
    ("door_open", "door", board.DOOR_DEBOUNCE_MS),
    ("occupied", "occupancy", board.OCCUPANCY_DEBOUNCE_MS),
])
def test_contacts_are_debounced(attribute: str, register: str, debounce: int) -> None:
    rig = Rig()
    setattr(rig, attribute, True)
    rig.run(debounce)
    assert rig.value(register) == 0
    rig.run(board.SAMPLE_MS)
    assert rig.value(register) == 1
    setattr(rig, attribute, False)
    rig.run(debounce + board.SAMPLE_MS)
    assert rig.value(register) == 0
