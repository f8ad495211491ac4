"""Lighting rules on the real core in virtual time: scenes, fades, auto-off, the driving
interlock and the session's calm scene (no transport, no sleep)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from virtual_core import VirtualCore, demo_config

from drivers.register_codec import Value
from supervisor.core.points import PointDef
from supervisor.core.subsystem import Clock
from supervisor.lighting.subsystem import LightingSubsystem

AWAY = 1_800_000_000.0


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.cfg = demo_config(tmp_path)
        self.t = 0.0
        self.sent = 0
        self.writes: list[tuple[str, Value]] = []
        clock = Clock(lambda: AWAY + self.t, lambda: self.t)
        self.core = VirtualCore(self.cfg, tmp_path / "db.sqlite", self.write, clock)
        section = self.cfg.section("lighting")
        assert section is not None
        self.sub = LightingSubsystem(self.core.context("lighting"), section)  # type: ignore[arg-type]
        self.points = self.core.van.points
        devices = self.core.devices
        devices.values("relays", {f"relay_{i}": False for i in range(1, 9)}, AWAY)
        devices.values("climate_relays", {f"relay_{i}": False for i in range(1, 9)}, AWAY)
        devices.values("room_node", {"calm_light": 0.0}, AWAY)
        self.driving(False)
        # the room subsystem's point (not built in this rig): no session
        self.points.define(PointDef("room/session/active", "bool"))
        self.points.update("room/session/active", False, AWAY)

    async def write(self, device: str, register: str, value: Value) -> Value | None:
        self.writes.append((register, value))
        self.core.devices.values(device, {register: value}, AWAY + self.t)
        return value

    def driving(self, on: bool) -> None:
        self.points.update("vehicle/driving", on, AWAY + self.t)

    async def at(self, t: float) -> None:
        self.t = t
        self.sub.evaluate(t)
        await self.sub.actuator.step()

    async def act(self, action: str, args: dict[str, Any]) -> str:
        self.sent += 1
        body = {"id": f"c{self.sent}", "args": args}
        result = await self.core.van.router.submit(action, json.dumps(body), "crew", "test")
        return f"{result.status}/{result.code}: {result.message}"

    def out(self, light: str) -> Value | None:
        return self.sub.ctx.outputs.actual(f"lighting/{light}")


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


async def test_a_scene_switches_relays_at_once_and_fades_the_dimmer(rig: Rig) -> None:
    await rig.at(0)
    assert "done" in await rig.act("lighting/scene", {"scene": "work"})
    seen: list[float] = []
    for i in range(1, 12):
        await rig.at(i * 0.25)
        level = rig.out("room_calm")
        assert isinstance(level, float)
        seen.append(level)
    assert rig.out("crew_ceiling") is True and rig.out("night_red") is False
    # 0 -> 80 % at 100 % per 1.5 s: about 17 % a quarter second, rising, then held
    assert seen[0] == pytest.approx(16.7, abs=0.1)
    assert seen == sorted(seen) and seen[-1] == 80.0
    assert rig.points.good("lighting/scene") == "work"


async def test_the_night_scene_is_red_only(rig: Rig) -> None:
    await rig.act("lighting/scene", {"scene": "work"})
    await rig.at(0)
    await rig.act("lighting/scene", {"scene": "night"})
    await rig.at(5)
    assert rig.out("crew_ceiling") is False and rig.out("night_red") is True


async def test_exterior_lights_switch_themselves_off_after_their_time(rig: Rig) -> None:
    await rig.act("lighting/set", {"light": "work_lights", "level": 100})
    await rig.at(0)
    assert rig.out("work_lights") is True
    off_s = rig.sub.lights["work_lights"].auto_off_s
    assert off_s is not None
    await rig.at(off_s - 1)
    assert rig.points.good("lighting/work_lights/auto_off_in") == 1
    await rig.at(off_s)
    assert rig.out("work_lights") is False
    assert rig.points.good("lighting/work_lights/level") == 0


async def test_driving_puts_the_exterior_lights_out_and_they_come_back_when_parked(
        rig: Rig) -> None:
    await rig.act("lighting/set", {"light": "work_lights", "level": 100})
    await rig.at(0)
    rig.driving(True)
    await rig.at(1)
    assert rig.out("work_lights") is False
    assert (await rig.act("lighting/set", {"light": "work_lights", "level": 100})) \
        .startswith("rejected/interlock")
    rig.driving(False)
    await rig.at(2)
    assert rig.out("work_lights") is True  # the crew's choice was kept


async def test_in_warn_mode_driving_leaves_them_on_with_a_warning(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.sub.cfg = rig.sub.cfg.model_copy(update={"exterior_when_driving": "warn"})
    await rig.act("lighting/set", {"light": "work_lights", "level": 100})
    rig.driving(True)
    await rig.at(1)
    assert rig.out("work_lights") is True
    assert "lighting/exterior_while_driving" in rig.core.van.alarms.active()


async def test_a_session_puts_the_room_in_its_calm_scene_and_gives_it_back(rig: Rig) -> None:
    await rig.act("lighting/set", {"light": "room_calm", "level": 90})
    for i in range(10):
        await rig.at(i * 0.25)
    assert rig.out("room_calm") == 90.0
    rig.points.update("room/session/active", True, AWAY + 3)
    for i in range(12, 24):
        await rig.at(i * 0.25)
    assert rig.out("room_calm") == 35.0  # the calm scene's level, faded to
    assert rig.points.good("lighting/room_calm/level") == 90  # the crew's choice stays
    rig.points.update("room/session/active", False, AWAY + 6)
    for i in range(24, 36):
        await rig.at(i * 0.25)
    assert rig.out("room_calm") == 90.0


async def test_levels_survive_a_restart_and_the_dimmer_does_not_flash(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.act("lighting/set", {"light": "room_calm", "level": 40})
    for i in range(10):
        await rig.at(i * 0.25)
    again = Rig(tmp_path)
    again.core.devices.values("room_node", {"calm_light": 40.0}, AWAY)  # as the node kept it
    await again.at(0)
    assert again.out("room_calm") == 40.0 and again.writes == []


async def test_the_rooms_lights_are_held_until_the_session_is_known(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.core.devices.values("room_node", {"calm_light": 35.0}, AWAY)  # a session's calm light
    rig.points.mark("room/session/active", "stale")  # not known yet after a restart
    await rig.at(0)
    await rig.at(0.25)
    assert rig.out("room_calm") == 35.0 and rig.writes == []  # no blink to the crew's level
