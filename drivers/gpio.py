"""GPIO lines through gpiozero: inputs with debounce in our code, outputs with safe states.

gpiozero calls back on its own threads; the callbacks only hand the edge to the event loop
with ``call_soon_threadsafe`` and never block. Debounce runs on the loop: an edge (re)starts a
timer and the level is accepted when it has held for the line's debounce time.

Backends: ``native`` (the controller's GPIO chip, gpiozero's default factory), ``mock``
(gpiozero's mock pins) and ``sim`` (mock pins whose input levels come from the simulated van
over a Unix socket, which is also told every output level).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

log = structlog.get_logger("drivers.gpio")

Backend = Literal["native", "mock", "sim"]


@dataclass(frozen=True)
class LineSpec:
    name: str
    pin: int
    direction: Literal["input", "output"]
    active_high: bool
    debounce_s: float
    safe_state: bool


InputCallback = Callable[[str, bool], None]


class GpioBridge:
    """Owns the gpiozero devices of the configured lines."""

    def __init__(
        self,
        lines: Sequence[LineSpec],
        backend: Backend,
        on_input: InputCallback,
        sim_socket: Path | None = None,
    ) -> None:
        self._specs = {line.name: line for line in lines}
        self._on_input = on_input
        self._sim_socket = sim_socket
        self._backend = backend
        self._loop: asyncio.AbstractEventLoop | None = None
        self._factory: Any = None
        if backend in ("mock", "sim") and lines:
            from gpiozero.pins.mock import MockFactory

            self._factory = MockFactory()
        self._inputs: dict[str, Any] = {}
        self._outputs: dict[str, Any] = {}
        self._accepted: dict[str, bool] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._writer: asyncio.StreamWriter | None = None
        self.connected = backend != "sim"

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Claim the pins: outputs start in their safe state, inputs report their level."""
        self._loop = loop
        if not self._specs:
            return
        # loaded only for a van with GPIO lines (a Modbus-only controller does without it)
        from gpiozero import DigitalInputDevice, DigitalOutputDevice

        for spec in self._specs.values():
            if spec.direction == "output":
                self._outputs[spec.name] = DigitalOutputDevice(
                    spec.pin,
                    active_high=spec.active_high,
                    initial_value=spec.safe_state,
                    pin_factory=self._factory,
                )
            else:
                dev = DigitalInputDevice(
                    spec.pin,
                    pull_up=None,
                    active_state=spec.active_high,
                    bounce_time=None,
                    pin_factory=self._factory,
                )
                name = spec.name
                dev.when_activated = lambda n=name: self._edge_from_thread(n)
                dev.when_deactivated = lambda n=name: self._edge_from_thread(n)
                self._inputs[name] = dev
                self._accepted[name] = bool(dev.is_active)
                self._on_input(name, self._accepted[name])

    def close(self) -> None:
        """Put every output in its safe state and release the pins."""
        self.apply_safe_states()
        for dev in [*self._inputs.values(), *self._outputs.values()]:
            dev.close()
        for timer in self._timers.values():
            timer.cancel()
        if self._writer is not None:
            self._writer.close()

    # ---- outputs -------------------------------------------------------------

    def set_output(self, name: str, active: bool) -> None:
        dev = self._outputs[name]
        if bool(dev.value) != active:
            dev.value = active
        self._send_level(name)

    def output(self, name: str) -> bool:
        return bool(self._outputs[name].value)

    def apply_safe_states(self) -> None:
        for name, dev in self._outputs.items():
            dev.value = self._specs[name].safe_state
            self._send_level(name)

    def _physical(self, name: str) -> bool:
        spec = self._specs[name]
        return bool(self._outputs[name].value) == spec.active_high

    def _send_level(self, name: str) -> None:
        if self._writer is None or self._writer.is_closing():
            return
        msg = {"pin": self._specs[name].pin, "level": self._physical(name)}
        self._writer.write((json.dumps(msg) + "\n").encode())

    # ---- inputs ---------------------------------------------------------------

    def _edge_from_thread(self, name: str) -> None:
        # gpiozero's thread: hand over, never block here
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._edge, name)

    def _edge(self, name: str) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        assert self._loop is not None
        delay = self._specs[name].debounce_s
        self._timers[name] = self._loop.call_later(delay, self._settle, name)

    def _settle(self, name: str) -> None:
        self._timers.pop(name, None)
        level = bool(self._inputs[name].is_active)
        if level != self._accepted[name]:
            self._accepted[name] = level
            self._on_input(name, level)

    # ---- simulated van link -------------------------------------------------------

    async def run(self) -> None:
        """For the sim backend: keep the link to the simulated van up; otherwise idle."""
        if self._backend != "sim" or self._sim_socket is None:
            await asyncio.Event().wait()
            return
        by_pin = {spec.pin: spec for spec in self._specs.values()}
        backoff = 0.2
        while True:
            try:
                reader, self._writer = await asyncio.open_unix_connection(str(self._sim_socket))
            except OSError:
                await asyncio.sleep(backoff)  # retry delay while the simulator is not up
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            self.connected = True
            log.info("gpio_sim_connected", socket=str(self._sim_socket))
            for name in self._outputs:
                self._send_level(name)
            try:
                while line := await reader.readline():
                    self._apply_sim_message(line, by_pin)
            except (OSError, ValueError) as exc:
                log.warning("gpio_sim_link_error", error=str(exc))
            finally:
                self.connected = False
                with contextlib.suppress(OSError):
                    self._writer.close()
                self._writer = None
            log.warning("gpio_sim_disconnected")

    def _apply_sim_message(self, line: bytes, by_pin: dict[int, LineSpec]) -> None:
        msg = json.loads(line)
        spec = by_pin.get(int(msg["pin"]))
        if spec is None or spec.direction != "input":
            return
        pin = self._factory.pin(spec.pin)
        if msg["level"]:
            pin.drive_high()
        else:
            pin.drive_low()
