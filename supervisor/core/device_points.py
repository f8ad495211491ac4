"""Turns what the bus workers read into points: the bindings from device registers to points.

Subsystems bind the registers they need to their points (with an optional transform, e.g. an
enum code to its name). Quality follows the source: a device that goes offline makes its
points stale at once; an unsupported register makes its points invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from drivers.register_codec import Value
from supervisor.core.points import PointStore, Quality, Scalar

Transform = Callable[[Value], Scalar | None]
HealthListener = Callable[[str, dict[str, Any]], None]


class DevicePoints:
    """The supervisor's ReadingSink."""

    def __init__(self, store: PointStore) -> None:
        self.store = store
        self._bindings: dict[tuple[str, str], list[tuple[str, Transform | None]]] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self._health_listeners: list[HealthListener] = []

    def bind(
        self, device: str, register: str, point_id: str, transform: Transform | None = None
    ) -> None:
        self._bindings.setdefault((device, register), []).append((point_id, transform))

    def on_health(self, listener: HealthListener) -> None:
        self._health_listeners.append(listener)

    # ---- ReadingSink ----------------------------------------------------------------

    def values(self, device: str, values: dict[str, Value | None], ts: float) -> None:
        for reg, value in values.items():
            for point_id, transform in self._bindings.get((device, reg), ()):
                out = value if value is None or transform is None else transform(value)
                self.store.update(point_id, out, ts)

    def unavailable(self, device: str, registers: Sequence[str], quality: str) -> None:
        q: Quality = "invalid" if quality == "invalid" else "stale"
        for reg in registers:
            for point_id, _ in self._bindings.get((device, reg), ()):
                self.store.mark(point_id, q)

    def health(self, device: str, status: dict[str, object]) -> None:
        self.status[device] = dict(status)
        for listener in self._health_listeners:
            listener(device, self.status[device])
