"""The consultation-room node on the simulated van's RS-485 bus, running its real firmware.

Not a model of the node: the firmware's own core (``firmware/room_node/roomnode``, the code
the RP2040 runs under MicroPython) hosted on a drop of the bus line, as the board's
``main.py`` hosts it on the hardware. This module plays the board's part: the UART (bytes
from the node's pty end into the core, its answers back onto the line), the firmware's main
loop (inputs sampled every 5 ms, the watchdog fed), the ADC reading the panic loops and the
pins of the contacts, and it watches the output pins.

The test's hands are on the inputs (press, release, cut or short a panic button's wire, the
door, the session button, someone in the room) and its eyes on the outputs and the
registers; :meth:`RoomNodeHost.hang` stops the firmware's loop, and the simulated watchdog
resets the node as the RP2040's would (the core is started anew, reporting ``watchdog``).

The firmware's clock is this machine's monotonic clock in milliseconds, not the plant's
(possibly accelerated) clock: the node times frame gaps, debounce and its output lease
against a master that lives in real time. Its ticks start five seconds before they wrap, as
on a board up for 12.4 days, so every run crosses the wrap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drivers.buses import DeviceConfig
from drivers.wakeup import woken
from roomnode import board
from roomnode.node import (
    BUTTON_DESK,
    BUTTON_DOOR,
    RESET_POWER_ON,
    RESET_WATCHDOG,
    SAFE_CALM_LIGHT,
    Node,
)
from roomnode.ticks import TICKS_MAX, TICKS_PERIOD, ticks_diff
from vansim.sim_port import SimPort

log = logging.getLogger(__name__)

PROFILE = "room_node"  # a [[device]] with this profile is served by a hosted node
BUTTONS = {"desk": BUTTON_DESK, "door": BUTTON_DOOR}
OPEN_LOOP = -1  # loop resistance of a cut wire
AT_REST_OHMS = board.R_EOL
PRESSED_OHMS = board.R_EOL + board.R_ALARM
START_TICKS = TICKS_PERIOD - 5000
OUTPUTS = ("door_sign", "recording_light", "buzzer", "calm_light")
SAFE_STATES = {"door_sign": 0, "recording_light": 0, "buzzer": 0, "calm_light": SAFE_CALM_LIGHT}
_READ_CHUNK = 512


@dataclass(frozen=True)
class Exchange:
    """One answer the node sent, and the frame it answered."""

    at: float  # clock seconds when the answer went onto the line
    request: bytes
    answer: bytes

    def reads(self, fc: int, address: int) -> bool:
        """Whether this answers a read (``fc`` 3 or 4) that starts at ``address``."""
        return (len(self.request) >= 4 and self.request[1] == fc and self.answer[1] == fc
                and (self.request[2] << 8 | self.request[3]) == address)

    def word(self, index: int) -> int:
        """Word ``index`` of a read's answer."""
        return self.answer[3 + 2 * index] << 8 | self.answer[4 + 2 * index]


class RoomNodeHost:
    """The node's board around the firmware core: ``start()`` powers it up, ``attach()``
    plugs it into its drop of the RS-485 line."""

    def __init__(self, device: DeviceConfig, *, baudrate: int = board.BAUDRATE,
                 clock: Callable[[], float] = time.monotonic, start_ticks: int = START_TICKS,
                 hold_ms: int = board.PANIC_HOLD_MS) -> None:
        self.device = device
        self.baudrate = baudrate
        self.hold_ms = hold_ms
        self._clock = clock
        self._t0 = clock()
        self._start_ticks = start_ticks & TICKS_MAX
        self.node = self._boot(RESET_POWER_ON)
        # the hands: each panic loop's resistance (ohms, OPEN_LOOP when cut) and the contacts
        self.loops = {name: AT_REST_OHMS for name in BUTTONS}
        self.door_open = False
        self.session_pressed = False
        self.occupied = False
        self.hung = False
        self.watchdog_resets = 0
        self.crashes: list[str] = []  # exceptions out of the core: a firmware bug
        self.exchanges: deque[Exchange] = deque(maxlen=20_000)
        # (clock s, outputs) at every change of the output pins, from power-up
        self.output_changes: list[tuple[float, dict[str, int]]] = [(self._t0, self.outputs())]
        self._heard = bytearray()  # the frame being heard (bytes since the last silence)
        self._heard_at = self.ticks()
        self._line: SimPort | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- life cycle -------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """Device id from the vehicle config."""
        return self.device.id

    async def start(self) -> None:
        """Power the node up: its main loop runs (attached to a line or not). Idempotent."""
        if self._task is None:
            self._task = asyncio.create_task(self._main_loop(), name=f"room node {self.id}")

    async def stop(self) -> None:
        """Unplug and power down. Idempotent."""
        self.detach()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def attach(self, port: Path | str) -> None:
        """Plug the node's RS-485 transceiver into the line's drop at ``port``."""
        self.detach()
        line = SimPort(str(port), self.baudrate, self._readable, read_chunk=_READ_CHUNK)
        line.open()
        self._line = line

    def detach(self) -> None:
        """Unplug from the line (the node itself runs on). Idempotent."""
        line, self._line = self._line, None
        if line is not None:
            line.close()

    # -- the board ----------------------------------------------------------------------------

    def ticks(self) -> int:
        """``time.ticks_ms()`` as the firmware sees it."""
        return (self._start_ticks + int((self._clock() - self._t0) * 1000)) & TICKS_MAX

    def _boot(self, cause: int) -> Node:
        return Node(self.ticks(), unit=self.device.unit, baudrate=self.baudrate,
                    reset_cause=cause, hold_ms=self.hold_ms)

    def _readable(self, data: bytes) -> None:
        """The UART's receive interrupt: bytes from the line into the core."""
        if not data or self.hung:  # a hung loop never reads its UART: the bytes are lost
            return
        now = self.ticks()
        if ticks_diff(now, self._heard_at) > self.node.slave.gap_ms:
            self._heard = bytearray()
        self._heard = (self._heard + data)[-256:]  # at most a frame's length
        self._heard_at = now
        self.node.receive(data, now)
        # the loop turns when the frame's closing silence has passed, not a sample later
        asyncio.get_running_loop().call_later(self.node.slave.gap_ms / 1000 + 0.0005,
                                              self._wake.set)

    async def _main_loop(self) -> None:
        """main.py's loop: sample, answer, drive the outputs, feed the watchdog."""
        fed = self._clock()
        while True:
            if not self.hung:
                try:
                    self._turn()
                except Exception as exc:  # a firmware bug: on the board the watchdog bites
                    log.exception("room node %s: the firmware raised", self.id)
                    self.crashes.append(repr(exc))
                    self._reset()
                fed = self._clock()
            elif self._clock() - fed >= board.WDT_TIMEOUT_MS / 1000:
                self._reset()
                fed = self._clock()
            self._wake.clear()
            await woken(self._wake, board.SAMPLE_MS / 1000)

    def _turn(self) -> None:
        now = self.ticks()
        loops = [board.adc_counts(self.loops[name]) for name in BUTTONS]
        self.node.sample(now, loops[0], loops[1], self.door_open, self.session_pressed,
                         self.occupied)
        answer = self.node.poll(now)
        if answer is not None:
            self._transmit(answer)
        outputs = self.outputs()
        if outputs != self.output_changes[-1][1]:
            self.output_changes.append((self._clock(), outputs))

    def _transmit(self, answer: bytes) -> None:
        self.exchanges.append(Exchange(self._clock(), bytes(self._heard), answer))
        if self._line is not None:  # a full or vanished line loses the answer
            self._line.send(answer)

    def _reset(self) -> None:
        """The watchdog resets the RP2040: everything but the wiring starts anew."""
        self.watchdog_resets += 1
        self.hung = False
        self._heard = bytearray()
        self.node = self._boot(RESET_WATCHDOG)
        self.output_changes.append((self._clock(), self.outputs()))

    # -- hands ------------------------------------------------------------------------------

    def set_loop(self, button: str, ohms: int) -> None:
        """The resistance of panic button ``button``'s loop (OPEN_LOOP: the wire is cut)."""
        if button not in BUTTONS:
            raise KeyError(f"the room node has no panic button {button!r}")
        self.loops[button] = ohms
        self._wake.set()

    def press(self, button: str) -> None:
        """Press (and, a latching button, keep pressed) panic button ``button``."""
        self.set_loop(button, PRESSED_OHMS)

    def release(self, button: str) -> None:
        """Panic button ``button`` back at rest (a latching one reset with its key)."""
        self.set_loop(button, AT_REST_OHMS)

    def cut(self, button: str) -> None:
        """Cut panic button ``button``'s wire."""
        self.set_loop(button, OPEN_LOOP)

    def short(self, button: str) -> None:
        """Short panic button ``button``'s wire."""
        self.set_loop(button, 0)

    def set_door(self, is_open: bool) -> None:
        self.door_open = is_open
        self._wake.set()

    def set_session_button(self, pressed: bool) -> None:
        self.session_pressed = pressed
        self._wake.set()

    def set_occupied(self, occupied: bool) -> None:
        self.occupied = occupied
        self._wake.set()

    def hang(self) -> None:
        """The firmware's loop stops turning (a bug, a brown-out): no answers, no watchdog
        feeding, until the watchdog resets the node."""
        self.hung = True

    # -- eyes -------------------------------------------------------------------------------

    def outputs(self) -> dict[str, int]:
        """The output pins now (calm light in 0.1 % of PWM duty)."""
        return dict(zip(OUTPUTS, self.node.outputs(), strict=True))

    def at_safe_states(self) -> bool:
        """Whether every output is in its safe state."""
        return self.outputs() == SAFE_STATES

    def register(self, name: str) -> int:
        """The raw value the node serves in register ``name`` now."""
        values = self.node.values()
        if name not in values:
            raise KeyError(f"the room node has no register {name!r}")
        return values[name]

    def answered_reads(self, fc: int, address: int) -> list[Exchange]:
        """The node's answers to reads of table ``fc`` from ``address``, oldest first."""
        return [x for x in self.exchanges if x.reads(fc, address)]

