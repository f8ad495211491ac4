"""Power scenarios: the real supervisor process, the simulated plant, asserted on MQTT.

The rules' minutes are shortened to seconds through the environment (FAST_POWER); the rules
themselves, and their minute-long defaults, are tested in virtual time in tests/.
"""

from __future__ import annotations

import signal
import sqlite3
from datetime import datetime, timedelta
from typing import Any

import pytest

from conftest import FAST_POWER, Van, settled, start_van
from harness import wait_until


def shed(van: Van, circuit: str) -> bool:
    return bool(van.monitor.value(f"power/circuit/{circuit}/shed"))


def events(van: Van, kind: str) -> list[dict[str, Any]]:
    return [v for t, v, _ in van.monitor.messages if t == "event" and v.get("kind") == kind]


async def test_low_battery_sheds_in_priority_order_starts_generator_and_restores(
    fast_van: Van,
) -> None:
    van, mon, plant = fast_van, fast_van.monitor, fast_van.sim.plant
    await mon.command("power/circuit", {"id": "on-1", "args": {"circuit": "sockets_12v",
                                                               "on": True}})
    plant.battery.soc = 45.0  # below step 8 (50 %), above step 6 (35 %)
    await wait_until(lambda: shed(van, "sockets_12v"), what="step 8 shed")
    await wait_until(lambda: van.sim.relay("relays", "relay_5") is False, what="relay off")
    assert not shed(van, "fridge")
    assert (mon.latest.get("alarm/power/load_shed") or {}).get("active")
    plant.battery.soc = 14.0  # below every step and below both generator thresholds
    await wait_until(lambda: shed(van, "interior_lights"), what="step 4 shed")
    await wait_until(lambda: mon.value("power/generator/state") in ("warm_up", "running"),
                     what="generator auto-start")
    assert van.sim.output_active("generator_start") is True
    await wait_until(lambda: mon.value("power/ac/source") == "generator", what="on generator")
    plant.battery.soc = 90.0  # charged
    await wait_until(lambda: not shed(van, "sockets_12v"), timeout=60, what="all restored")
    await wait_until(lambda: mon.value("power/generator/state") == "stopped", timeout=60,
                     what="generator stopped after min run and cool-down")
    def done(what: str) -> list[list[str]]:
        return [e["circuits"] for e in events(van, "power") if e["what"] == what]

    restored = [["interior_lights", "heater"], ["exterior_lights", "fridge"],
                ["sockets_12v", "water_heater"]]
    # the events come on their own topic: the last one may follow the points
    await wait_until(lambda: len(done("restore")) >= len(restored), what="restore events")
    assert done("shed") == [
        ["sockets_12v", "water_heater"], ["exterior_lights", "fridge"],
        ["interior_lights", "heater"]]  # the heater's circuit: it is idle, not locked
    assert done("restore") == restored
    gen = [e["what"] for e in events(van, "generator")]
    assert gen[:2] == ["start", "started"] and gen[-2:] == ["stop", "stopped"]
    # the crew's sockets are back (the relay follows the restore, staggered against inrush)
    await wait_until(lambda: van.sim.relay("relays", "relay_5") is True, what="sockets on")


async def test_generator_that_fails_to_start_raises_an_alarm(fast_van: Van) -> None:
    van, mon = fast_van, fast_van.monitor
    van.sim.plant.generator.fails_to_start = True
    van.sim.plant.battery.soc = 12.0
    await wait_until(lambda: mon.value("power/generator/state") == "error", timeout=60,
                     what="generator error")
    alarm = mon.latest["alarm/power/generator_failed"]
    assert alarm["active"] and alarm["severity"] == "critical"
    assert van.sim.plant.generator.starts == 3  # one try and two retries
    assert van.sim.output_active("generator_start") is False
    kinds = [e["what"] for e in events(van, "generator")]
    assert kinds.count("start_failed") == 2 and kinds[-1] == "failed"


async def test_shore_plug_pulled_raises_shore_lost(fast_van: Van) -> None:
    van, mon = fast_van, fast_van.monitor
    van.sim.plant.shore_connected = True
    await wait_until(lambda: mon.value("power/ac/source") == "shore", what="on shore")
    van.sim.plant.shore_connected = False
    await wait_until(lambda: (mon.latest.get("alarm/power/shore_lost") or {}).get("active"),
                     what="shore lost alarm")
    assert mon.latest["alarm/power/shore_lost"]["text_pl"].startswith("Zanik")


async def test_crew_override_brings_shed_loads_back_for_a_while(fast_van: Van) -> None:
    van, mon = fast_van, fast_van.monitor
    van.sim.plant.battery.soc = 40.0
    await wait_until(lambda: shed(van, "water_heater"), what="step 8 shed")
    result = await mon.command("power/circuit", {"id": "w1", "args": {
        "circuit": "water_heater", "on": True}})
    assert (result["status"], result["code"]) == ("rejected", "circuit_shed")
    result = await mon.command("power/shed_override", {"id": "o1", "args": {"active": True}})
    assert result["status"] == "done"
    await wait_until(lambda: not shed(van, "sockets_12v"), what="restored by the override")
    assert (mon.latest.get("alarm/power/shed_override") or {}).get("active")
    assert mon.value("power/shed/override") is True
    result = await mon.command("power/shed_override", {"id": "o2", "args": {"active": False}})
    assert result["status"] == "done"
    await wait_until(lambda: shed(van, "sockets_12v"), what="shed again after the override")
    audit = [e for e in events(van, "command") if e["action"] == "power/shed_override"]
    assert [e["command"] for e in audit] == ["o1", "o2"]


async def test_quiet_hours_raise_the_bar_for_the_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now()
    quiet = {"MCW_QUIET_START": f"{(now - timedelta(hours=1)):%H:%M}",
             "MCW_QUIET_END": f"{(now + timedelta(hours=2)):%H:%M}"}
    async with start_van(monkeypatch, {**FAST_POWER, **quiet}) as van:
        van.sim.plant.battery.soc = 25.0  # would start it by day (30 %), not at night (20 %)
        await wait_until(lambda: shed(van, "exterior_lights"), what="steps shed meanwhile")
        assert van.monitor.value("power/generator/state") == "stopped"
        van.sim.plant.battery.soc = 18.0
        await wait_until(lambda: van.monitor.value("power/generator/state") != "stopped",
                         what="started below the quiet-hours threshold")


async def test_crew_settings_survive_a_power_cut(fast_van: Van) -> None:
    van, mon, plant = fast_van, fast_van.monitor, fast_van.sim.plant
    result = await mon.command("power/shore/current_limit", {"id": "l1", "args": {"amps": 10}})
    assert result["status"] == "done"
    assert plant.inverter.ac_in_current_limit_a == pytest.approx(10)
    result = await mon.command("power/circuit", {"id": "e1", "args": {
        "circuit": "exterior_lights", "on": True}})
    assert result["status"] == "done"
    result = await mon.command("power/inverter/mode", {"id": "m1", "args": {
        "mode": "charger_only"}})
    assert result["status"] == "done"
    assert plant.inverter.mode == "charger_only"
    bad = await mon.command("power/shore/current_limit", {"id": "l2", "args": {"amps": 99}})
    assert (bad["status"], bad["code"]) == ("rejected", "out_of_range")
    # the controller loses power without warning; meanwhile the MultiPlus is reset and the
    # relay board powers up with every relay off
    assert await van.supervisor.stop(signal.SIGKILL) == -signal.SIGKILL
    plant.inverter.ac_in_current_limit_a = 16.0
    van.sim.override("relays", "relay_1", False)
    van.sim.override("relays", "relay_1", None)
    van.supervisor.start()
    await settled(van)
    await wait_until(lambda: plant.inverter.ac_in_current_limit_a == pytest.approx(10),
                     what="limit re-applied")
    await wait_until(lambda: van.sim.relay("relays", "relay_1") is True,
                     what="the crew's choice came back")
    assert mon.value("power/shore/current_limit") == 10
    assert mon.value("power/inverter/mode_setting") == "charger_only"


async def test_a_restart_after_a_crash_blinks_nothing_a_reboot_starts_safe(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    result = await mon.command("power/circuit", {"id": "w1", "args": {
        "circuit": "exterior_lights", "on": True}})
    assert result["status"] == "done"
    # the supervisor crashes and systemd starts it again: same boot of the controller
    assert await van.supervisor.stop(signal.SIGKILL) == -signal.SIGKILL
    before = len(sim.writes_to("relays", "relay_1"))

    def readies() -> int:
        return sum(1 for line in van.supervisor.log_lines()
                   if line.get("event") == "supervisor_ready")

    started = readies()
    van.supervisor.start()
    await wait_until(lambda: readies() > started, what="ready again")
    await settled(van)
    assert sim.writes_to("relays", "relay_1")[before:] == []  # never switched off, not even once
    assert sim.relay("relays", "relay_1") is True
    # a power cut: the controller boots again (a new boot id), the outputs' states are unknown
    assert await van.supervisor.stop(signal.SIGKILL) == -signal.SIGKILL
    with sqlite3.connect(van.run_dir / "mcw.sqlite") as db:
        db.execute("UPDATE kv SET value = '\"an earlier boot\"' WHERE key = 'boot_id'")
    before = len(sim.writes_to("relays", "relay_1"))
    van.supervisor.start()
    await wait_until(lambda: (0,) in sim.writes_to("relays", "relay_1")[before:],
                     what="the safe state first")
    await wait_until(lambda: sim.relay("relays", "relay_1") is True,
                     what="then the crew's choice")
