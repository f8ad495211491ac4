"""GPIO through gpiozero's mock pins: debounce of inputs, safe states of outputs.

A real thread drives the mock input pins, as gpiozero's own threads deliver edges on the
controller; the bridge must hand them to the event loop and accept a level only once it has
held for the line's debounce time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from testsupport import wait_until

from drivers.gpio import GpioBridge, LineSpec

DOOR_DEBOUNCE_S = 0.05
MARKER_DEBOUNCE_S = 0.15  # longer than the door's: when it reports, the door's timer has run
WAIT_S = 5.0

LINES = [
    LineSpec(name="side_door", pin=22, direction="input", active_high=True,
             debounce_s=DOOR_DEBOUNCE_S, safe_state=False),
    LineSpec(name="ignition", pin=17, direction="input", active_high=True,
             debounce_s=MARKER_DEBOUNCE_S, safe_state=False),
    LineSpec(name="status_lamp", pin=27, direction="output", active_high=True,
             debounce_s=0.0, safe_state=False),
    LineSpec(name="comms", pin=5, direction="output", active_high=False,
             debounce_s=0.0, safe_state=True),
    LineSpec(name="gen_run", pin=23, direction="output", active_high=True,
             debounce_s=0.0, safe_state=False),
]


@dataclass
class Change:
    line: str
    level: bool
    thread: int
    at: float  # loop time, which is time.monotonic()


class Inputs:
    """The on_input callback: every accepted change, with the thread and time it came on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.changes: list[Change] = []

    def __call__(self, line: str, level: bool) -> None:
        self.changes.append(Change(line, level, threading.get_ident(), self.loop.time()))

    def of(self, line: str) -> list[bool]:
        return [c.level for c in self.changes if c.line == line]


@dataclass
class Gpio:
    bridge: GpioBridge
    inputs: Inputs
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bridge.close()

    def pin(self, number: int) -> Any:
        # the bridge's own MockFactory: the only way to reach its mock pins
        return self.bridge._factory.pin(number)


@pytest.fixture
async def gpio() -> AsyncIterator[Gpio]:
    loop = asyncio.get_running_loop()
    inputs = Inputs(loop)
    bridge = GpioBridge(LINES, "mock", inputs)
    bridge.open(loop)
    whole = Gpio(bridge, inputs)
    try:
        yield whole
    finally:
        whole.close()


async def drive(actions: Callable[[], None]) -> threading.Thread:
    """Run ``actions`` on a thread of its own (as gpiozero delivers edges) and wait for it."""
    thread = threading.Thread(target=actions, name="pin-driver")
    thread.start()
    await asyncio.to_thread(thread.join, WAIT_S)
    assert not thread.is_alive()
    return thread


async def test_bouncing_contact_gives_one_change_after_the_debounce_time(gpio: Gpio) -> None:
    assert gpio.inputs.of("side_door") == [False]  # reported once at open
    door = gpio.pin(22)
    last_edge: list[float] = []

    def bounce() -> None:
        for _ in range(5):  # a door contact chattering, all within microseconds
            door.drive_high()
            door.drive_low()
        door.drive_high()  # and then it stays closed
        last_edge.append(time.monotonic())

    driver = await drive(bounce)
    await wait_until(lambda: len(gpio.inputs.of("side_door")) > 1, WAIT_S, "door change")
    # all edges are on the loop and the timer that reported has run: nothing else can come
    assert gpio.inputs.of("side_door") == [False, True]
    change = gpio.inputs.changes[-1]
    assert change.thread == threading.get_ident() != driver.ident  # on the loop's thread
    assert change.at >= last_edge[0] + DOOR_DEBOUNCE_S - 0.001  # held for the debounce time


async def test_a_glitch_shorter_than_the_debounce_is_ignored(gpio: Gpio) -> None:
    door, ignition = gpio.pin(22), gpio.pin(17)

    def glitch_then_marker() -> None:
        door.drive_high()  # a spike on the door line
        door.drive_low()
        ignition.drive_high()  # a real change on a line with a longer debounce

    await drive(glitch_then_marker)
    await wait_until(lambda: gpio.inputs.of("ignition") == [False, True], WAIT_S, "ignition")
    # the door's timer was due before the ignition's: it has run and found the level unchanged
    assert gpio.inputs.of("side_door") == [False]


async def test_a_level_that_holds_is_reported_each_time_it_changes(gpio: Gpio) -> None:
    door = gpio.pin(22)
    await drive(door.drive_high)
    await wait_until(lambda: gpio.inputs.of("side_door") == [False, True], WAIT_S, "closed")
    await drive(door.drive_low)
    await wait_until(lambda: gpio.inputs.of("side_door") == [False, True, False], WAIT_S,
                     "open again")


async def test_outputs_start_in_their_safe_state(gpio: Gpio) -> None:
    for line in LINES:
        if line.direction != "output":
            continue
        assert gpio.bridge.output(line.name) is line.safe_state, line.name
        # the pin's electrical level: active-low "comms" is on with its pin low
        assert gpio.pin(line.pin).state == (line.safe_state == line.active_high), line.name


async def test_closing_puts_outputs_back_in_their_safe_state(gpio: Gpio) -> None:
    gpio.bridge.set_output("comms", False)
    gpio.bridge.set_output("gen_run", True)
    assert gpio.pin(5).state is True and gpio.pin(23).state is True
    pins = {line.name: gpio.pin(line.pin) for line in LINES if line.direction == "output"}
    gpio.close()
    assert pins["comms"].state is False  # on again (active low)
    assert pins["gen_run"].state is False
