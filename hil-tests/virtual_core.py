"""The supervisor's core without transports, for rules run in virtual time.

Points, alarms, the command router, SQLite and the output port are the real ones; device
readings are fed by the test and writes go to a function it gives (a plant model, or a check
that nothing is written), so minute- and hour-long rules run in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from supervisor.core.alarms import AlarmManager
from supervisor.core.commands import CommandRouter
from supervisor.core.config import SupervisorConfig
from supervisor.core.device_points import DevicePoints
from supervisor.core.outputs import BusWrite, GpioOutputs, OutputPort
from supervisor.core.points import PointStore
from supervisor.core.storage import Storage
from supervisor.core.subsystem import Clock, Context, make_context
from supervisor.core.van_state import VanState
from supervisor.core.vehicle import GpioPoints
from supervisor.registry import load_config

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"


def demo_config(tmp_path: Path, edit: Callable[[str], str] | None = None) -> SupervisorConfig:
    """The demo van's config, as it is or with ``edit`` applied to its text."""
    if edit is None:
        return load_config(DEMO)
    path = tmp_path / "vehicle.toml"
    path.write_text(edit(DEMO.read_text()))
    return load_config(path)


class Lines:
    """GPIO outputs as plain levels (a test may look at or hook them)."""

    def __init__(self) -> None:
        self.levels: dict[str, bool] = {}

    def set_output(self, name: str, active: bool) -> None:
        self.levels[name] = active

    def output(self, name: str) -> bool:
        return self.levels.get(name, False)


class VirtualCore:
    def __init__(self, cfg: SupervisorConfig, db: Path, bus_write: BusWrite, clock: Clock,
                 lines: GpioOutputs | None = None) -> None:
        storage = Storage(db)
        points = PointStore()
        self.devices = DevicePoints(points, cfg.device)
        self.clock = clock
        self.van = VanState(cfg, storage, points, AlarmManager(), self.devices,
                            CommandRouter(storage, clock.wall), clock.wall)
        self.io = GpioPoints(self.van, lines or Lines())
        self.io.publish_driving()
        self.port = OutputPort(bus_write, self.io, self.devices, points)

    def context(self, name: str) -> Context:
        return make_context(name, self.van, self.port, self.clock)
