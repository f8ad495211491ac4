"""The README's "adding a subsystem" example, for real: a package-sized subsystem plugs into the
core with no change to any other file (its config section, checks, points, output, action)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from virtual_core import Lines, VirtualCore

from drivers.register_codec import Value
from supervisor.core.commands import ON_BOARD, ActionSpec, ArgSpec
from supervisor.core.config import Checker, ConfigError, Name, Strict, load_config
from supervisor.core.outputs import OutputDef
from supervisor.core.subsystem import Clock, Context, SubsystemSpec, section


class WaterConfig(Strict):
    tank: Name
    pump: Name


def check(cfg: WaterConfig, chk: Checker) -> None:
    chk.register("tank", cfg.tank, "humidity")  # a sensor register stands in for the level
    chk.line("pump", cfg.pump, "output")


class Water:
    def __init__(self, ctx: Context, cfg: WaterConfig) -> None:
        self.ctx = ctx
        ctx.devices.bind(cfg.tank, "humidity", "water/level", deadband=1, precision=0)
        ctx.outputs.declare(OutputDef("water/pump", False, line=cfg.pump))
        self.pump = ctx.actuator()
        self.wanted = bool(ctx.settings.get("pump", False))
        ctx.actions.register(ActionSpec("water/pump", self._switch, ON_BOARD,
                                        {"on": ArgSpec("bool")}, "Water pump on or off"))

    async def _switch(self, args: dict[str, Any]) -> str:
        self.wanted = args["on"]
        self.ctx.settings.put("pump", self.wanted)
        self.pump.want("water/pump", self.wanted)
        await self.pump.confirm("water/pump", self.wanted, timeout_s=5)
        return "pump on" if self.wanted else "pump off"

    async def run(self) -> None:
        while True:
            self.pump.want("water/pump", self.wanted)
            await self.pump.step()
            self.ctx.heartbeat.beat()
            await asyncio.sleep(0.01)  # the loop period

    def stop(self) -> None:
        """Nothing to do: the port refuses every write but safe states from here."""


WATER = SubsystemSpec("water", WaterConfig, Water, check)

VAN = """
[vehicle]
id = "test-van"

[[gpio.line]]
name = "pump"
pin = 5
direction = "output"

[[bus]]
name = "rs485"
type = "rtu"
port = "/dev/null"

[[device]]
id = "tank"
profile = "xy_md02"
bus = "rs485"
unit = 1

[water]
tank = "tank"
pump = "{pump}"
"""


async def never(device: str, register: str, value: Value) -> Value | None:
    raise AssertionError("the pump is a GPIO line")


async def test_a_new_subsystem_runs_on_the_core(tmp_path: Path) -> None:
    path = tmp_path / "van.toml"
    path.write_text(VAN.format(pump="pump"))
    cfg = load_config(path, [WATER])
    water_cfg = section(cfg, WATER)
    assert water_cfg is not None and water_cfg.tank == "tank"
    lines = Lines()
    core = VirtualCore(cfg, tmp_path / "db.sqlite", never, Clock(), lines)
    water = WATER.build(core.context("water"), water_cfg)
    meta = core.van.meta()
    assert {"id": "water/pump", "roles": ["crew", "technician"]}.items() <= next(
        a for a in meta["actions"] if a["id"] == "water/pump").items()
    level = next(p for p in meta["points"] if p["id"] == "water/level")
    assert level["unit"] == "%"
    # the register behind it, for a technician's raw view (mcwctl points)
    assert level["source"] == {"device": "tank", "register": "humidity", "table": "input",
                               "address": 2, "scale": 10}
    loop = asyncio.create_task(water.run())
    try:
        result = await core.van.router.submit("water/pump", b'{"id":"w1","args":{"on":true}}',
                                              "crew", "panel")
        assert (result.status, result.message) == ("done", "pump on")
        assert lines.levels["pump"] is True
        assert core.van.points.good("io/pump") is True
    finally:
        loop.cancel()


def test_its_config_errors_name_file_key_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "van.toml"
    path.write_text(VAN.format(pump="pumpp"))
    with pytest.raises(ConfigError) as err:
        load_config(path, [WATER])
    assert str(err.value) == f"{path}: water.pump: no gpio.line named 'pumpp'"
