"""Turns what the bus workers read into points: the bindings from device registers to points.

A subsystem binds the registers it needs to its points; the point's type, unit and enum
meanings come from the device's profile and its maximum age from the device's configured poll
period, so none of these is typed twice. Quality follows the source: a device that goes
offline makes its points stale at once; an unsupported register makes its points invalid.
The last raw value of every register is kept for the output port's read-back checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from drivers.buses import DeviceConfig
from drivers.profile import Profile, Register
from drivers.register_codec import Value
from supervisor.core.listeners import Listeners
from supervisor.core.points import (
    PointDef,
    PointSource,
    PointStore,
    PointType,
    Quality,
    Scalar,
)

Transform = Callable[[Value], Scalar | None]
# A point is stale once it missed this many polls (plus a little slack for the bus).
STALE_AFTER_POLLS = 3
STALE_SLACK_S = 0.5


def point_type(reg: Register) -> PointType:
    """The point type that shows a register's value."""
    if reg.type == "bool":
        return "bool"
    if reg.enum is not None:
        return "enum"
    if reg.type == "string":
        return "string"
    return "integer" if reg.scale == 1 and reg.type in ("u16", "s16", "u32", "s32") \
        and not reg.unit else "number"


class DevicePoints:
    """The supervisor's ReadingSink, and the device bindings every subsystem is given."""

    def __init__(self, store: PointStore, devices: Sequence[DeviceConfig] = ()) -> None:
        self.store = store
        self.devices = {d.id: d for d in devices}
        self._bindings: dict[tuple[str, str], list[tuple[str, Transform | None]]] = {}
        self.raw: dict[tuple[str, str], Value] = {}  # last good value of each register
        self.status: dict[str, dict[str, Any]] = {}
        self.health_changed = Listeners[str, dict[str, Any]]("device health")

    def profile(self, device: str) -> Profile:
        return self.devices[device].load_profile()

    def bind(self, device: str, register: str, point_id: str, *, deadband: float = 0.0,
             precision: int | None = None, description: str = "") -> PointDef:
        """Define ``point_id`` from a device register and feed it from every reading."""
        cfg = self.devices[device]
        reg = cfg.load_profile().get(register)
        period = cfg.poll_fast_s if reg.poll == "fast" else cfg.poll_slow_s
        table = self.profile(device).enum_of(register)
        pdef = PointDef(point_id, point_type(reg), reg.unit, description or cfg.label,
                        deadband=deadband, precision=precision,
                        max_age_s=STALE_AFTER_POLLS * period + STALE_SLACK_S,
                        enum=tuple(table.values()), enum_set=reg.enum or "",
                        source=PointSource(device, register, reg.table, reg.address, reg.scale,
                                           tuple(table.items())))
        self.store.define(pdef)
        transform = (lambda v: table.get(int(v), f"code_{int(v)}")) if table else None
        self.follow(device, register, point_id, transform)
        return pdef

    def follow(self, device: str, register: str, point_id: str,
               transform: Transform | None = None) -> None:
        """Feed an already defined point from a register."""
        self._bindings.setdefault((device, register), []).append((point_id, transform))

    # ---- ReadingSink ----------------------------------------------------------------

    def values(self, device: str, values: dict[str, Value | None], ts: float,
               same: Sequence[str] = ()) -> None:
        for reg in same:
            for point_id, _ in self._bindings.get((device, reg), ()):
                self.store.reread(point_id, ts)
        for reg, value in values.items():
            if value is None:
                self.raw.pop((device, reg), None)
            else:
                self.raw[(device, reg)] = value
            for point_id, transform in self._bindings.get((device, reg), ()):
                out = value if value is None or transform is None else transform(value)
                self.store.update(point_id, out, ts)

    def unavailable(self, device: str, registers: Sequence[str], quality: str) -> None:
        q: Quality = "invalid" if quality == "invalid" else "stale"
        for reg in registers:
            self.raw.pop((device, reg), None)
            for point_id, _ in self._bindings.get((device, reg), ()):
                self.store.mark(point_id, q)

    def health(self, device: str, status: dict[str, object]) -> None:
        self.status[device] = dict(status)
        self.health_changed(device, self.status[device])
