"""One shape for every subsystem (power, climate, lighting, room, comms, ...).

A subsystem is registered as a :class:`SubsystemSpec`: its config section's name and schema,
its cross-checks, and a ``build`` function. The composition root builds one :class:`Context`
per subsystem and calls ``build(ctx, section)``; in it the subsystem declares its points
(``ctx.devices.bind`` / ``ctx.points.define``), alarms, actions and outputs with their safe
states, and reads its persisted settings. Then the root runs every subsystem's
:meth:`Subsystem.run` in the supervisor's TaskGroup (restarted on failure) and, on shutdown,
calls :meth:`Subsystem.stop` before the safe states are applied.

Adding a subsystem: a package with its config schema, checks and class, and one line in
``supervisor/registry.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog
from pydantic import BaseModel

from drivers.wakeup import woken
from supervisor.core.actuator import Actuator
from supervisor.core.alarms import AlarmManager
from supervisor.core.commands import CommandRouter
from supervisor.core.config import Checker, SupervisorConfig, VehicleConfig
from supervisor.core.device_points import DevicePoints
from supervisor.core.outputs import OutputPort
from supervisor.core.points import PointStore
from supervisor.core.storage import Storage
from supervisor.core.van_state import VanState

C = TypeVar("C", bound=BaseModel)
EventSink = Callable[[dict[str, Any]], None]


class Subsystem(Protocol):
    """What the composition root runs."""

    async def run(self) -> None:
        """Control loop; beats ``ctx.heartbeat`` on every turn. Cancelled on shutdown."""

    def stop(self) -> None:
        """Shutdown begins: switch nothing on from here (the port refuses it anyway)."""


@dataclass(frozen=True)
class SubsystemSpec(Generic[C]):
    name: str  # config section, point and action prefix
    schema: type[C]
    build: Callable[[Context, C], Subsystem]
    check: Callable[[C, Checker], None] = lambda section, chk: None


class Settings:
    """A subsystem's persisted settings (SQLite, survives a power cut), in its own namespace."""

    def __init__(self, storage: Storage, namespace: str) -> None:
        self._storage = storage
        self._prefix = f"setting/{namespace}/"

    def get(self, key: str, default: Any) -> Any:
        return self._storage.get(self._prefix + key, default)

    def put(self, key: str, value: Any) -> None:
        self._storage.put(self._prefix + key, value)

    async def durable(self) -> bool:
        """Wait until everything put so far is on disk (False: not within the storage's
        bound); for what must survive a power cut before anyone is told of it."""
        return await self._storage.durable()


class Heartbeat:
    """Counts the turns of one loop; the systemd watchdog pings only while every count grows."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def beat(self) -> None:
        self.count += 1


@dataclass(frozen=True)
class Clock:
    """Wall time for timestamps and time-of-day rules, monotonic time for intervals."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


@dataclass
class Context:
    """Everything a subsystem is given; it knows no transport and no interface."""

    name: str
    config: SupervisorConfig  # the whole file (core sections: vehicle, gpio, devices)
    points: PointStore
    devices: DevicePoints
    alarms: AlarmManager
    actions: CommandRouter
    outputs: OutputPort
    settings: Settings
    event: EventSink
    clock: Clock
    log: structlog.typing.FilteringBoundLogger
    heartbeat: Heartbeat
    # a subsystem's further loops (see loop_heartbeat), watched by the watchdog as well
    loop_heartbeats: list[Heartbeat] = field(default_factory=list)

    @property
    def vehicle(self) -> VehicleConfig:
        return self.config.vehicle

    def actuator(self, stagger_s: float = 0.0) -> Actuator:
        """The one writer of this subsystem's outputs (see core/actuator.py)."""
        return Actuator(self.outputs, self.clock.monotonic, self.log, stagger_s)

    def loop_heartbeat(self, loop: str) -> Heartbeat:
        """The heartbeat of a second loop of this subsystem (asked for while it is built), so
        that either loop stuck stops the watchdog's pings."""
        heartbeat = Heartbeat(f"{self.name}:{loop}")
        self.loop_heartbeats.append(heartbeat)
        return heartbeat

    async def turns(self, wake: asyncio.Event, turn: Callable[[], Awaitable[float]],
                    heartbeat: Heartbeat | None = None) -> None:
        """A subsystem's loop, for ever: a turn, a heartbeat (the subsystem's, or the given
        loop's), then a wait for ``wake`` or for the seconds the turn returned
        (cancellation-safe; see drivers/wakeup.py)."""
        beat = (heartbeat or self.heartbeat).beat
        while True:
            wake.clear()
            period = await turn()
            beat()
            await woken(wake, period)

    def driving(self) -> bool:
        """The engine runs (vehicle/driving, from the configured ignition line)."""
        return self.points.good("vehicle/driving") is True


def section(cfg: SupervisorConfig, spec: SubsystemSpec[C]) -> C | None:
    """A subsystem's config section, typed (None when the file has none)."""
    value = cfg.section(spec.name)
    return value if isinstance(value, spec.schema) else None


def make_context(name: str, van: VanState, port: OutputPort, clock: Clock) -> Context:
    """The context of one subsystem on the shared core (also used by tests and the
    virtual-time deployment, which give it their own port and clock)."""
    return Context(name, van.cfg, van.points, van.devices, van.alarms, van.router, port,
                   Settings(van.storage, name), van.event, clock,
                   structlog.get_logger(f"supervisor.{name}"), Heartbeat(name))
