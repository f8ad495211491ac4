"""The wall clock jumps (NTP after a night offline, a wrong RTC, daylight saving by hand): the
power rules time their delays on the monotonic clock, so no timer fires twice or never, and
quiet hours follow the new time of day."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from virtual_core import VirtualCore

from drivers.register_codec import Value
from supervisor.core.subsystem import Clock
from supervisor.power import power_config
from supervisor.power.subsystem import PowerSubsystem
from supervisor.registry import load_config

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"


async def no_write(device: str, register: str, value: Value) -> Value | None:
    raise AssertionError("the rules alone write nothing")


class Rig:
    def __init__(self, tmp_path: Path, wall: float) -> None:
        self.wall, self.mono = wall, 0.0
        cfg = load_config(DEMO)
        core = VirtualCore(cfg, tmp_path / "db.sqlite", no_write,
                           Clock(lambda: self.wall, lambda: self.mono))
        self.devices = core.devices
        self.power = PowerSubsystem(core.context("power"), power_config(cfg))
        self.events: list[dict[str, Any]] = []
        core.van.event_added.add(self.events.append)

    def at(self, mono: float, soc: float, wall_jump: float = 0.0) -> None:
        """``mono`` seconds after the start, the wall clock moved by ``wall_jump`` too."""
        self.wall += (mono - self.mono) + wall_jump
        self.mono = mono
        self.devices.values("battery", {"soc": soc, "voltage": 12.4, "current": -8.0}, self.wall)
        self.power.evaluate(mono)

    def sheds(self) -> int:
        return sum(1 for e in self.events if e.get("kind") == "power" and e["what"] == "shed")


def test_a_wall_clock_jump_forward_does_not_cut_the_shedding_delay(tmp_path: Path) -> None:
    rig = Rig(tmp_path, datetime(2026, 1, 10, 12, 0).timestamp())
    rig.at(0, soc=45)  # below the first step's 50 %: its 60 s delay starts
    rig.at(30, soc=45, wall_jump=+3600)  # NTP puts the clock an hour forward
    assert rig.sheds() == 0
    rig.at(59, soc=45)
    assert rig.sheds() == 0
    rig.at(61, soc=45)
    assert rig.sheds() == 1  # after 60 s of the van's own time, once


def test_a_wall_clock_jump_back_does_not_hold_the_timers(tmp_path: Path) -> None:
    rig = Rig(tmp_path, datetime(2026, 1, 10, 12, 0).timestamp())
    rig.at(0, soc=45)
    rig.at(30, soc=45, wall_jump=-3600)  # an hour back
    rig.at(61, soc=45)
    assert rig.sheds() == 1  # not an hour late
    for t in range(62, 400, 10):
        rig.at(t, soc=45)
    assert rig.sheds() == 1  # and not twice


def test_quiet_hours_follow_the_new_time_of_day(tmp_path: Path) -> None:
    rig = Rig(tmp_path, datetime(2026, 1, 10, 21, 0).timestamp())
    gen = rig.power.generator
    assert gen is not None
    rig.at(0, soc=25)  # below 30 % (the day's start value): the dwell starts
    rig.at(30, soc=25, wall_jump=+3600)  # now 22:00:30: quiet hours, start only below 20 %
    rig.at(200, soc=25)
    assert gen.state == "stopped"
    rig.at(230, soc=25, wall_jump=-3600)  # back to 21:03: the day's rules again
    rig.at(400, soc=25)
    assert gen.state != "stopped"
