"""The output port: the one way anything in the supervisor switches hardware.

Every output (a Modbus register or a GPIO line) is declared once with its safe state and an
optional lock (a point that, while true, forbids driving the output to its safe state: a
diesel heater in its after-run must keep its power). Writes return the read-back.

Safe states are applied at start-up, on shutdown and on any later request; a locked output is
left alone and gets its safe state when the lock ends (unless its subsystem has taken it over
by then). Once :meth:`shutdown` is called no write other than a safe state is let through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from drivers.errors import WriteError
from drivers.register_codec import Value
from supervisor.core.device_points import DevicePoints
from supervisor.core.points import PointStore

log = structlog.get_logger("supervisor.outputs")


@dataclass(frozen=True)
class OutputDef:
    """One output. Exactly one of (device, register) or line is set.

    ``safe`` is the value applied when the supervisor starts, stops or loses control; None
    declares "hold": the output keeps its value (a setting such as a current limit, where
    any value is as safe as another)."""

    id: str
    safe: Value | None
    device: str | None = None
    register: str | None = None
    line: str | None = None
    lock: str | None = None  # point id; while it reads true the safe state waits
    # switched on and off by the technician's self-test (False where a quick toggle does
    # harm: a compressor's minimum off time, the LTE router's supply, a node's handshake)
    self_test: bool = True

    @property
    def target(self) -> str:
        return f"{self.device}.{self.register}" if self.line is None else f"gpio:{self.line}"


def same_value(a: Value | None, b: Value | None, scale: float) -> bool:
    """Whether two values of a register of ``scale`` are equal within its resolution."""
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) \
            or not isinstance(b, int | float):
        return a == b
    return abs(a - b) <= 0.5 / abs(scale)


class GpioOutputs(Protocol):
    def set_output(self, name: str, active: bool) -> None: ...
    def output(self, name: str) -> bool: ...


BusWrite = Callable[[str, str, Value], Awaitable[Value | None]]


class OutputPort:
    def __init__(self, bus_write: BusWrite, gpio: GpioOutputs, devices: DevicePoints,
                 store: PointStore) -> None:
        self._bus_write = bus_write
        self._gpio = gpio
        self._devices = devices
        self._store = store
        self.outputs: dict[str, OutputDef] = {}
        self.pending_safe: set[str] = set()  # locked when their safe state was asked for
        self.shutting_down = False

    def declare(self, out: OutputDef) -> None:
        if out.id in self.outputs:
            raise ValueError(f"output {out.id} is declared twice")
        if (out.line is None) == (out.device is None or out.register is None):
            raise ValueError(f"output {out.id}: a device register or a GPIO line, not both")
        self.outputs[out.id] = out

    # ---- reading ----------------------------------------------------------------------

    def actual(self, output_id: str) -> Value | None:
        """The output's value as last read back or polled (None: not known now)."""
        out = self.outputs[output_id]
        if out.line is not None:
            return self._gpio.output(out.line)
        assert out.device is not None and out.register is not None
        return self._devices.raw.get((out.device, out.register))

    def locked(self, output_id: str) -> bool:
        """Whether the output's lock is set; a lock that cannot be read now counts as set
        (cutting a heater's power in its after-run is the one thing never to risk)."""
        lock = self.outputs[output_id].lock
        return lock is not None and self._store.good(lock) is not False

    def same(self, output_id: str, a: Value | None, b: Value | None) -> bool:
        """Whether two values of this output are equal within its register's resolution."""
        out = self.outputs[output_id]
        scale = 1.0
        if out.device is not None and out.register is not None:
            scale = self._devices.profile(out.device).get(out.register).scale
        return same_value(a, b, scale)

    # ---- writing ----------------------------------------------------------------------

    async def write(self, output_id: str, value: Value) -> Value | None:
        """Write an output and return its read-back (WriteError if it could not be)."""
        out = self.outputs[output_id]
        if self.shutting_down and not self.same(output_id, value, out.safe):
            raise WriteError("shutting_down", "the supervisor is shutting down")
        if out.line is not None:
            return self.write_line(output_id, bool(value))
        assert out.device is not None and out.register is not None
        if not isinstance(value, str):  # the device's own limits, from its profile
            refused = self._devices.profile(out.device).check_write(out.register, value)
            if refused is not None:
                raise WriteError("out_of_range", f"{out.device}: {refused}")
        return await self._bus_write(out.device, out.register, value)

    def write_line(self, output_id: str, active: bool) -> bool:
        """Set a GPIO output at once (no bus in between) and return its read-back."""
        out = self.outputs[output_id]
        assert out.line is not None
        if self.shutting_down and active != out.safe:
            raise WriteError("shutting_down", "the supervisor is shutting down")
        self._gpio.set_output(out.line, active)
        return self._gpio.output(out.line)

    async def apply_safe_states(self, why: str, ids: set[str] | None = None) -> list[str]:
        """Drive outputs (all, or ``ids``) to their safe states, confirmed by read-back;
        locked ones are left alone until their lock ends. Returns the unconfirmed ids."""
        chosen = [o for o in self.outputs.values()
                  if o.safe is not None and (ids is None or o.id in ids)]
        for out in chosen:
            if self.locked(out.id):
                self.pending_safe.add(out.id)
                log.warning("safe_state_deferred", why=why, output=out.id, lock=out.lock)
        todo = [o for o in chosen if o.id not in self.pending_safe]
        results = await asyncio.gather(*(self._safe(o) for o in todo), return_exceptions=True)
        failed = []
        for out, res in zip(todo, results, strict=True):
            if isinstance(res, BaseException) or not self.same(out.id, res, out.safe):
                failed.append(out.id)
                log.error("safe_state_not_confirmed", why=why, output=out.id,
                          target=out.target, wanted=out.safe, result=str(res))
        log.info("safe_states_applied", why=why, outputs=len(todo), unconfirmed=len(failed),
                 deferred=sorted(self.pending_safe))
        return failed

    async def _safe(self, out: OutputDef) -> Value | None:
        assert out.safe is not None
        return await self.write(out.id, out.safe)

    def release(self, ids: set[str]) -> None:
        """A subsystem has taken these outputs over: forget their deferred safe states."""
        self.pending_safe -= ids

    async def settle_deferred(self) -> None:
        """Apply the deferred safe states whose lock has ended (called every tick)."""
        ready = {i for i in self.pending_safe if not self.locked(i)}
        if ready:
            self.pending_safe -= ready
            await self.apply_safe_states("lock ended", ready)

    def shutdown(self) -> None:
        """From now on only safe states are written (shutdown is final)."""
        self.shutting_down = True
