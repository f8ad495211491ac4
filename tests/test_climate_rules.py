"""Climate rules in virtual time on the demo van's config: what the crew would notice of the
heater, the A/C, the CO interlock, the frost guard and the pre-heat (no transport, no sleep).

The heater driver is the real one, not running: the rules set what it should do
(``heater.wanted``) and the test plays the heater's status replies."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testsupport import FUZZ
from virtual_core import DEMO, VirtualCore, demo_config

from drivers.autoterm import HeaterStatus, WantedMode
from drivers.register_codec import Value
from supervisor.climate import climate_config
from supervisor.climate.subsystem import EXTRA_CURRENT, ClimateSubsystem, restore_preheat
from supervisor.core.subsystem import Clock
from supervisor.power import power_config
from supervisor.power.subsystem import PowerSubsystem
from supervisor.registry import load_config

AWAY = 1_800_000_000.0  # wall clock at virtual time 0


async def no_write(device: str, register: str, value: Value) -> Value | None:
    raise AssertionError("the rules themselves write nothing (the actuator does)")


class Rig:
    """The climate subsystem on the demo config with a hand-driven clock and readings."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 db: str = "db.sqlite", edit: Callable[[str], str] | None = None,
                 heard: bool = True) -> None:
        """``heard``: the heater has answered once (standby) before the first turn."""
        monkeypatch.setenv("MCW_CO_CLEAR_S", "60")
        monkeypatch.setenv("MCW_CLIMATE_MIN_CYCLE_S", "300")
        self.cfg = demo_config(tmp_path, edit)
        self.t = 0.0
        self.sent = 0
        clock = Clock(lambda: AWAY + self.t, lambda: self.t)
        self.core = VirtualCore(self.cfg, tmp_path / db, no_write, clock)
        # the power subsystem defines the battery and AC points the climate reads
        self.power = PowerSubsystem(self.core.context("power"), power_config(self.cfg))
        self.sub = ClimateSubsystem(self.core.context("climate"), climate_config(self.cfg))
        self.points = self.core.van.points
        self.alarms = self.core.van.alarms
        self.air(crew=20.0, room=20.0, outside=-10.0)
        self.points.update("io/co_alarm", False, AWAY)
        self.battery(soc=80.0, source="none")
        if heard:
            self.sub._on_heater_status(status("standby", (0, 1)))

    def air(self, **celsius: float) -> None:
        devices = {"crew": "crew_climate", "room": "room_climate", "outside": "outside_climate"}
        for where, value in celsius.items():
            self.core.devices.values(devices[where], {"temperature": value, "humidity": 45.0},
                                     AWAY + self.t)

    def battery(self, soc: float, source: str, inverter_a: float = 1.0) -> None:
        self.points.update("power/battery/soc", soc, AWAY + self.t)
        self.points.update("power/battery/voltage", 13.1, AWAY + self.t)
        self.points.update("power/ac/source", source, AWAY + self.t)
        self.points.update("power/inverter/ac_out_current", inverter_a, AWAY + self.t)

    def at(self, t: float) -> None:
        """Move the clock to ``t`` and let the rules run once."""
        self.t = t
        self.sub.evaluate(t)

    async def act(self, action: str, args: dict[str, Any]) -> str:
        self.sent += 1
        body = {"id": f"c{self.sent}", "args": args}
        result = await self.core.van.router.submit(action, json.dumps(body), "crew", "test")
        return f"{result.status}/{result.code}: {result.message}"

    def heater(self) -> WantedMode | None:
        assert self.sub.heater is not None
        wanted = self.sub.heater.wanted
        return None if wanted is None else wanted.mode

    def ac_wanted(self) -> object:
        return self.sub.actuator.target("climate/ac")

    def value(self, point: str) -> object:
        return self.points.good(point)


def status(state: str, code: tuple[int, int], error: int = 0) -> HeaterStatus:
    return HeaterStatus(state=state, state_code=code, error=error, intake_c=18,  # type: ignore[arg-type]
                        external_c=None, voltage_v=12.8, flame_c=20.0)


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    return Rig(tmp_path, monkeypatch)


async def heating_the_crew_area(rig: Rig, celsius: float = 15.0) -> None:
    """The crew area cold at ``celsius``, switched to heat: the heater is asked to heat."""
    await rig.act("climate/mode", {"zone": "crew", "mode": "heat"})
    rig.air(crew=celsius)
    rig.at(1)
    assert rig.heater() == "heat"


async def test_a_cold_zone_in_heat_mode_runs_the_heater_harder_the_colder_it_is(rig: Rig) -> None:
    rig.air(crew=15.0)
    assert "done" in await rig.act("climate/mode", {"zone": "crew", "mode": "heat"})
    rig.at(1)
    assert rig.heater() == "heat"
    assert rig.sub.heater is not None and rig.sub.heater.wanted is not None
    assert rig.sub.heater.wanted.level == 9  # 6 K short of 21 °C: full power
    assert rig.value("climate/crew/demand") == "heat"
    rig.air(crew=21.4)  # above the hot tolerance: satisfied, but the minimum cycle holds it
    rig.at(100)
    assert rig.heater() == "heat"
    rig.at(400)
    assert rig.heater() == "off"
    assert rig.value("climate/crew/demand") == "idle"


async def test_a_sensor_that_drops_out_stops_the_heating_at_once_with_an_alarm(rig: Rig) -> None:
    await heating_the_crew_area(rig)
    rig.core.devices.unavailable("crew_climate", ["temperature", "humidity"], "stale")
    rig.at(2)  # within the minimum cycle: a stale reading stops it all the same
    assert rig.heater() == "off"
    assert "climate/crew/sensor" in rig.alarms.active()
    rig.air(crew=15.0)
    rig.at(3)
    assert "climate/crew/sensor" not in rig.alarms.active()


async def test_an_implausible_reading_is_no_reading(rig: Rig) -> None:
    await rig.act("climate/mode", {"zone": "crew", "mode": "heat"})
    rig.air(crew=-55.0)  # a broken wire reads like this, not a van at -55 °C
    rig.at(1)
    assert rig.heater() == "off"
    assert "climate/crew/sensor" in rig.alarms.active()


async def test_co_stops_combustion_runs_the_fan_and_locks_the_heater_out(rig: Rig) -> None:
    await heating_the_crew_area(rig)
    rig.points.update("io/co_alarm", True, AWAY + 2)
    rig.at(2)  # within the heater's minimum cycle: CO overrides it
    assert rig.heater() == "off"
    assert rig.sub.actuator.target("climate/ventilation") is True
    alarm = rig.alarms.states["climate/co"]
    assert alarm.active and rig.alarms.defs["climate/co"].severity == "critical"
    rig.points.update("io/co_alarm", False, AWAY + 10)
    rig.at(10)
    assert rig.heater() == "off"  # clear, but locked out
    assert rig.value("climate/co/state") == "clearing"
    assert rig.sub.actuator.target("climate/ventilation") is True  # airing until lifted
    rig.alarms.ack("climate/co")  # from HQ, say: the acknowledgement lifts nothing
    rig.at(100)
    assert rig.heater() == "off"
    assert (await rig.act("climate/heater_reenable", {})).startswith("done/")
    rig.at(101)
    assert rig.value("climate/co/state") == "clear"
    assert rig.sub.actuator.target("climate/ventilation") is False
    # lifted, but the heater rests its 5 minutes after the stop at t=2 before a new start
    assert rig.heater() == "off"
    assert rig.value("climate/heater/reason") == "heater rest: 3 min 21 s left"
    rig.at(302)
    assert rig.heater() == "heat"


async def test_the_heater_is_reenabled_only_on_board_after_the_clear_time(rig: Rig) -> None:
    rig.points.update("io/co_alarm", True, AWAY)
    rig.at(1)
    rig.points.update("io/co_alarm", False, AWAY + 2)
    rig.at(2)
    rig.at(30)
    answer = await rig.act("climate/heater_reenable", {})
    assert answer.startswith("rejected/co_not_clear") and "28 s of the 60 s" in answer
    rig.at(63)
    body = json.dumps({"id": "hq-1", "args": {}})
    hq = await rig.core.van.router.submit("climate/heater_reenable", body, "hq", "mqtt")
    assert (hq.status, hq.code) == ("rejected", "forbidden")  # somebody must be on board
    assert rig.sub.co_lockout
    assert (await rig.act("climate/heater_reenable", {})).startswith("done/")
    assert not rig.sub.co_lockout


async def test_a_restart_keeps_the_co_lockout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Rig(tmp_path, monkeypatch)
    first.points.update("io/co_alarm", True, AWAY)
    first.at(1)
    assert first.core.van.storage.flush()
    first.core.van.storage.close()
    again = Rig(tmp_path, monkeypatch)  # the contact reads clear at once after the restart
    await again.act("climate/mode", {"zone": "crew", "mode": "heat"})
    again.air(crew=15.0)
    again.at(1)
    assert again.heater() == "off" and again.value("climate/co/heater_locked") is True


async def test_a_short_co_pulse_between_two_turns_is_not_missed(rig: Rig) -> None:
    await rig.act("climate/mode", {"zone": "crew", "mode": "heat"})
    rig.air(crew=15.0)
    rig.at(1)
    rig.points.update("io/co_alarm", True, AWAY + 1.2)  # while a relay write is awaited
    rig.points.update("io/co_alarm", False, AWAY + 1.6)
    rig.at(2)
    assert rig.heater() == "off" and rig.sub.co_lockout


async def test_a_co_detector_fault_allows_no_combustion(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fault_line = ('[[gpio.line]]\nname = "co_fault"\npin = 26\ndirection = "input"\n'
                  'active = "high"\n\n')

    def with_fault_contact(text: str) -> str:
        text = text.replace('[[gpio.line]]\nname = "co_alarm"',
                            fault_line + '[[gpio.line]]\nname = "co_alarm"', 1)
        return text.replace('input = "co_alarm"\n',
                            'input = "co_alarm"\nfault_input = "co_fault"\n', 1)

    rig = Rig(tmp_path, monkeypatch, edit=with_fault_contact)
    rig.points.update("io/co_fault", False, AWAY)
    await heating_the_crew_area(rig)
    rig.points.update("io/co_fault", True, AWAY + 2)  # the detector says it is faulty
    rig.at(2)
    assert rig.heater() == "off" and rig.value("climate/co/state") == "fault"
    assert "climate/co_fault" in rig.alarms.active()
    rig.points.update("io/co_fault", False, AWAY + 3)
    rig.at(3)
    assert "heater rest" in str(rig.value("climate/heater/reason"))  # after its stop at t=2
    rig.at(302)
    assert rig.heater() == "heat"  # a fault is no CO: no lockout to lift


async def test_an_unreadable_co_contact_allows_no_combustion(rig: Rig) -> None:
    await rig.act("climate/mode", {"zone": "crew", "mode": "heat"})
    rig.air(crew=15.0)
    rig.points.mark("io/co_alarm", "stale")
    rig.at(1)
    assert rig.heater() == "off"
    assert rig.value("climate/co/state") == "unknown"


async def test_a_burning_or_cooling_heater_locks_its_power_and_unknown_counts(
        rig: Rig) -> None:
    rig.sub._on_heater_status(None)  # no answer from it
    rig.at(1)
    assert rig.points.values["climate/heater/keep_power"].quality == "good"  # published
    assert rig.value("climate/heater/keep_power") is None  # unknown: the lock counts as set
    for state, code, locked in (("running", (3, 0), True), ("cooling", (3, 4), True),
                                ("standby", (0, 1), False)):
        rig.sub._on_heater_status(status(state, code))
        rig.at(rig.t + 1)
        assert rig.value("climate/heater/keep_power") is locked, state


async def test_a_shed_heater_circuit_stops_the_heater_first(rig: Rig) -> None:
    rig.air(crew=15.0)
    await rig.act("climate/mode", {"zone": "crew", "mode": "heat"})
    rig.at(1)
    assert rig.heater() == "heat"
    rig.points.update("power/circuit/heater/shed", "step 4: SOC 14 %", AWAY + 2)
    rig.at(2)
    assert rig.heater() == "off"
    assert "shed" in str(rig.value("climate/heater/reason"))


async def test_a_heater_fault_is_an_alarm_with_its_code(rig: Rig) -> None:
    rig.sub._on_heater_status(status("off", (0, 1), error=13))
    rig.at(1)
    state = rig.alarms.states["climate/heater/fault"]
    assert state.active and "E13" in state.detail and "no_start" in state.detail
    rig.sub._on_heater_status(None)
    rig.at(2)
    assert "climate/heater/offline" not in rig.alarms.active()  # one poll is no outage
    rig.at(13)
    assert "climate/heater/offline" in rig.alarms.active()


async def hot_room_cooling(rig: Rig, soc: float, source: str, inverter_a: float = 1.0) -> None:
    """The room at 28 °C in mode cool, past the compressor's rest after the start."""
    await rig.act("climate/mode", {"zone": "room", "mode": "cool"})
    rig.air(room=28.0)
    rig.battery(soc=soc, source=source, inverter_a=inverter_a)
    rig.at(300)  # the controller has been up longer than a compressor rest


async def test_ac_on_battery_is_refused_below_its_soc_and_says_why(rig: Rig) -> None:
    await hot_room_cooling(rig, soc=50.0, source="none")
    assert rig.ac_wanted() is False
    assert rig.value("climate/ac/state") == "refused"
    assert "60 %" in str(rig.value("climate/ac/reason"))
    assert rig.value("climate/ac/needs_generator") is True
    rig.battery(soc=50.0, source="generator")
    rig.at(301)
    assert rig.ac_wanted() is True and rig.value("climate/ac/state") == "cooling"
    assert rig.value("climate/ac/needs_generator") is True  # keep the generator running


async def test_ac_on_the_inverter_needs_headroom(rig: Rig) -> None:
    await hot_room_cooling(rig, soc=90.0, source="none", inverter_a=9.0)  # 9 A + 6 A > 13 A
    assert rig.ac_wanted() is False and "headroom" in str(rig.value("climate/ac/reason"))
    rig.battery(soc=90.0, source="none", inverter_a=2.0)
    rig.at(301)
    assert rig.ac_wanted() is True
    rig.battery(soc=90.0, source="none", inverter_a=8.0)  # 2 A of others + its own 6 A
    rig.at(302)
    assert rig.ac_wanted() is True  # its own load is not counted against it


async def test_the_compressor_rests_after_a_stop_and_after_a_relay_drop(rig: Rig) -> None:
    await hot_room_cooling(rig, soc=90.0, source="shore")
    assert rig.ac_wanted() is True
    rig.core.devices.values("climate_relays", {"relay_2": True}, AWAY + 305)
    rig.at(305)  # the rules see it on
    # the relay drops out (a brown-out on the board) and comes back at once
    rig.core.devices.values("climate_relays", {"relay_2": False}, AWAY + 310)
    rig.at(310)
    rig.core.devices.values("climate_relays", {"relay_2": True}, AWAY + 311)
    rig.at(311)
    # the compressor stopped without us: it rests again before the next start
    assert rig.ac_wanted() is False
    assert rig.value("climate/ac/state") == "resting"
    assert "rest" in str(rig.value("climate/ac/reason"))
    rig.at(311 + 240)
    assert rig.ac_wanted() is True


async def test_heater_and_ac_never_run_in_one_zone_at_once(rig: Rig) -> None:
    rig.battery(soc=90.0, source="shore")
    rig.air(room=28.0, crew=22.0)
    await rig.act("climate/mode", {"zone": "room", "mode": "cool"})
    await rig.act("climate/mode", {"zone": "crew", "mode": "heat"})
    rig.at(300)
    assert rig.ac_wanted() is True
    rig.air(crew=15.0)  # the crew area gets cold: the heater would blow into the room too
    rig.at(301)
    assert rig.heater() == "off"
    assert "A/C" in str(rig.value("climate/heater/reason"))


async def test_frost_guard_heats_a_parked_van_with_climate_off(rig: Rig) -> None:
    rig.air(crew=4.0, room=6.0)
    rig.at(1)
    assert rig.value("climate/crew/mode") == "off"
    assert rig.heater() == "heat"
    assert rig.value("climate/crew/reason") == "frost"


async def test_the_crews_choices_come_back_after_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Rig(tmp_path, monkeypatch)
    await first.act("climate/mode", {"zone": "room", "mode": "heat"})
    await first.act("climate/setpoint", {"zone": "room", "celsius": 23.5})
    await first.act("climate/mode", {"zone": "crew", "mode": "off"})
    assert first.core.van.storage.flush()
    first.core.van.storage.close()
    again = Rig(tmp_path, monkeypatch)
    again.at(1)
    assert again.value("climate/room/mode") == "heat"
    assert again.value("climate/room/setpoint") == 23.5
    assert again.value("climate/room/preset") == "manual"
    assert again.value("climate/crew/mode") == "off"  # a saved "off" stays off


async def test_a_setpoint_outside_the_limits_is_rejected_and_changes_nothing(rig: Rig) -> None:
    answer = await rig.act("climate/setpoint", {"zone": "room", "celsius": 40})
    assert answer.startswith("rejected/")
    rig.at(1)
    assert rig.value("climate/room/setpoint") == 21.0


async def test_preheat_runs_the_heater_from_its_start_and_tells_the_cost(rig: Rig) -> None:
    answer = await rig.act("climate/preheat", {"zone": "room", "start": AWAY + 3600,
                                               "minutes": 30, "celsius": 22})
    assert answer.startswith("done/") and "Ah" in answer
    rig.air(room=12.0, crew=12.0)
    rig.at(1800)
    assert rig.heater() == "off"  # not yet
    rig.at(3601)
    assert rig.heater() == "heat"
    assert rig.value("climate/room/setpoint") == 22.0
    rig.at(3600 + 30 * 60 + 1)
    assert rig.value("climate/room/preheat_start") == 0  # done
    rig.at(3600 + 40 * 60)  # past the minimum cycle
    assert rig.heater() == "off"


async def test_the_climates_extra_draw_is_told_to_the_power_forecast(rig: Rig) -> None:
    rig.at(1)
    assert rig.value(EXTRA_CURRENT) == 0.0  # climate off: it costs nothing
    await rig.act("climate/mode", {"zone": "room", "mode": "cool"})
    rig.air(room=21.0)
    rig.at(2)
    extra = rig.value(EXTRA_CURRENT)
    # 6 A at 230 V through a 90 % inverter from a 13.1 V battery
    assert extra == pytest.approx(6 * 230 / 0.9 / 13.1, abs=0.1)


async def test_a_low_voltage_disconnect_waits_for_the_heaters_run_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The battery collapses while the heater cools down after a stop: the load manager's
    low-voltage disconnect cuts everything sheddable, but not the heater's power until its
    run-on has ended (its keep_power lock, published by the climate, holds it)."""
    rig = Rig(tmp_path, monkeypatch)
    power = rig.power
    rig.sub._on_heater_status(status("cooling", (3, 4)))
    for t in range(0, 40):
        rig.core.devices.values("battery", {"soc": 20.0, "voltage": 11.0, "current": -30.0},
                                AWAY + t)
        rig.at(float(t))
        power.evaluate(float(t))
    targets = power.loads.desired(power.wanted, {"heater": True, "fridge": True},
                                  power._load_inputs(40.0))
    assert power.loads.shed_reason("fridge")  # the disconnect happened
    assert targets["heater"] is True  # but not to the heater running on
    rig.sub._on_heater_status(status("standby", (0, 1)))
    rig.at(41)
    targets = power.loads.desired(power.wanted, {"heater": True, "fridge": True},
                                  power._load_inputs(41.0))
    assert targets["heater"] is False  # run-on over: now it goes too


async def test_the_ac_waits_while_the_heater_still_burns_off_in_its_zone(rig: Rig) -> None:
    rig.sub._on_heater_status(status("shutting_down", (4, 0)))  # told off, still burning off
    await hot_room_cooling(rig, soc=90.0, source="shore")
    assert rig.ac_wanted() is False and rig.value("climate/ac/state") == "blocked"
    rig.sub._on_heater_status(status("standby", (0, 1)))
    rig.at(302)
    assert rig.ac_wanted() is True


async def test_without_a_reading_of_the_inverters_load_the_ac_stays_off(rig: Rig) -> None:
    await hot_room_cooling(rig, soc=90.0, source="none")
    rig.points.mark("power/inverter/ac_out_current", "stale")
    rig.at(301)
    assert rig.ac_wanted() is False
    assert "inverter" in str(rig.value("climate/ac/reason"))


async def test_a_blind_zone_stops_the_heater_that_blows_into_it(rig: Rig) -> None:
    await heating_the_crew_area(rig, 12.0)
    rig.core.devices.unavailable("room_climate", ["temperature", "humidity"], "stale")
    rig.at(2)  # the crew area is still cold, but the room (the child) is not watched
    assert rig.heater() == "off"
    assert "room" in str(rig.value("climate/heater/reason"))


async def test_switching_a_zone_off_cancels_its_planned_preheat(rig: Rig) -> None:
    await rig.act("climate/preheat", {"zone": "room", "start": 0, "minutes": 30,
                                      "celsius": 22})
    await rig.act("climate/mode", {"zone": "room", "mode": "off"})
    rig.air(room=12.0, crew=12.0)
    rig.at(400)
    assert rig.value("climate/room/preheat_start") == 0
    assert rig.heater() == "off"


async def test_preheat_does_not_chatter_at_its_set_point(rig: Rig) -> None:
    await rig.act("climate/preheat", {"zone": "room", "start": 0, "minutes": 60,
                                      "celsius": 22})
    steps = [(21.0, "heat"), (22.05, "heat"), (21.95, "heat"), (22.4, "idle"), (21.9, "idle"),
             (21.6, "heat")]
    for t, (celsius, expected) in enumerate(steps, start=1):
        rig.air(room=celsius, crew=21.5)
        rig.at(t)
        assert rig.value("climate/room/demand") == expected, celsius


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.just(10**400) | st.floats()
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


@FUZZ
@given(saved=json_values | st.dictionaries(st.sampled_from(["room", "crew", "cab"]),
                                           json_values, max_size=3))
def test_any_saved_preheat_is_restored_or_dropped_never_raised(saved: Any) -> None:
    """Whatever a corrupted card holds for the pre-heat plans, the van starts: every plan it
    keeps names a zone, lasts at most the longest pre-heat and heats to 7-35 °C."""
    cfg = climate_config(load_config(DEMO))
    zones = {z.name: z for z in cfg.zone}
    longest = cfg.preheat.max_duration_s
    for zone, plan in restore_preheat(saved, zones, longest).items():
        assert zone in zones and 0 < plan.end - plan.start <= longest
        assert 7 <= plan.setpoint_c <= 35


async def test_the_heater_rests_after_a_stop_before_another_zone_starts_it(rig: Rig) -> None:
    await heating_the_crew_area(rig)
    rig.air(crew=21.4)
    rig.at(400)  # the crew area is warm: stopped (after the thermostat's minimum cycle)
    assert rig.heater() == "off"
    await rig.act("climate/mode", {"zone": "room", "mode": "heat"})
    rig.air(room=15.0)
    rig.at(460)  # a minute later the room asks: a start now would be the second in 7 min
    assert rig.heater() == "off"
    assert rig.value("climate/heater/reason") == "heater rest: 4 min left"
    rig.at(700)
    assert rig.heater() == "heat"


async def test_the_first_zone_asking_leads_the_level_and_a_warm_neighbour_caps_it(
        rig: Rig) -> None:
    rig.air(room=20.6, crew=15.0)  # the room (first in heater.zones) just asks
    for zone in ("room", "crew"):
        await rig.act("climate/mode", {"zone": zone, "mode": "heat"})
    rig.at(1)
    assert rig.sub.heater is not None and rig.sub.heater.wanted is not None
    assert rig.sub.heater.wanted.level == 1  # 0.4 K short: the room's level, not the crew's
    rig.air(room=20.6, crew=21.5)  # the crew area is already above its set point + tolerance
    rig.at(2)
    assert rig.sub.heater.wanted.level == 0  # held at the lowest, at once


async def test_a_restart_takes_over_a_heater_heating_inside_its_band(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, monkeypatch)
    for zone in ("room", "crew"):
        await rig.act("climate/mode", {"zone": zone, "mode": "heat"})
    again = Rig(tmp_path, monkeypatch, heard=False)  # the controller restarts
    again.air(room=21.1, crew=21.1)  # inside the band: a fresh start would leave it at rest
    again.at(1)
    assert again.sub.heater is not None and again.sub.heater.wanted is None  # left alone
    again.sub._on_heater_status(status("running", (3, 0)))  # its first answer: heating
    again.at(2)
    assert again.heater() == "heat"  # taken over, not stopped
    again.air(room=21.4, crew=21.4)  # the band's stop still works
    again.at(3)
    assert again.heater() == "off"


async def test_a_heater_that_stopped_by_itself_waits_for_the_crew(rig: Rig) -> None:
    await heating_the_crew_area(rig)
    heater = rig.sub.heater
    assert heater is not None
    # flame-out after the heater's own retries: it reports E29 and stands by; its driver
    # refuses to start it again while heat is still wanted
    rig.sub._on_heater_status(status("standby", (0, 1), error=29))
    heater.start_blocked = "stopped_itself"
    rig.at(2)
    assert rig.heater() == "off"
    assert "stopped by itself (E29)" in str(rig.value("climate/heater/reason"))
    assert "climate/heater/fault" in rig.alarms.active()
    rig.at(1000)  # the thermostat still asks; nothing is started again on its own
    assert rig.heater() == "off"
    rig.alarms.ack("climate/heater/fault")  # the crew or HQ has seen it: one more try
    rig.at(1001)
    assert rig.heater() == "heat"
    heater.start_blocked = "stopped_itself"  # it fails again
    rig.at(1002)
    assert rig.heater() == "off"
    await rig.act("climate/preset", {"zone": "crew", "preset": "comfort"})  # asked anew
    rig.at(1400)
    assert rig.heater() == "heat"


async def test_the_ac_stops_and_rests_when_the_inverter_goes_off(rig: Rig) -> None:
    await hot_room_cooling(rig, soc=90.0, source="none")
    assert rig.ac_wanted() is True
    rig.points.update("power/inverter/state", "off", AWAY + 310)  # someone switched it off
    rig.at(310)
    assert rig.ac_wanted() is False
    assert rig.value("climate/ac/reason") == "no AC power (the inverter is off)"
    rig.points.update("power/inverter/state", "inverting", AWAY + 320)
    rig.at(320)  # power is back, but the compressor stopped with it: it rests first
    assert rig.ac_wanted() is False
    assert "(power loss)" in str(rig.value("climate/ac/reason"))
    rig.at(320 + 240)
    assert rig.ac_wanted() is True


async def test_a_room_far_too_cold_stops_the_compressor_within_its_minimum_run(
        rig: Rig) -> None:
    await hot_room_cooling(rig, soc=90.0, source="shore")
    assert rig.ac_wanted() is True
    rig.air(room=20.5)  # satisfied, but within its 3 min minimum run: it runs on
    rig.at(301)
    assert rig.ac_wanted() is True
    rig.air(room=19.1)  # 21 - 0.3 - 1.5 K: too cold for anyone's sake
    rig.at(302)
    assert rig.ac_wanted() is False
