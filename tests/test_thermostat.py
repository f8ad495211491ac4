"""Climate zone thermostat on virtual time: an hour of a noisy sensor replayed in milliseconds.

Times are plain floats in seconds; steps spaced by more than the minimum cycle (300 s) show a
rule on its own, closer ones show the minimum cycle at work."""

from __future__ import annotations

import inspect
import json
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testsupport import FUZZ

from supervisor.climate.thermostat import (
    MODES,
    PRESETS,
    Decision,
    Demand,
    Mode,
    Preset,
    Thermostat,
    ThermostatConfig,
    ZoneSettings,
)

CFG = ThermostatConfig()
MIN_CYCLE = CFG.min_cycle_s
APART = MIN_CYCLE + 100  # steps this far apart are never held by the minimum cycle
Reading = tuple[float, float | None]  # (time, temperature)


def zone(mode: Mode, cfg: ThermostatConfig = CFG) -> Thermostat:
    """A zone in ``mode`` at the comfort preset (21 °C)."""
    return Thermostat(cfg, ZoneSettings(mode=mode))


def replay(th: Thermostat, readings: Iterable[Reading]) -> list[tuple[float, Decision]]:
    return [(t, th.step(t, temp)) for t, temp in readings]


def demands(th: Thermostat, temps: Iterable[float | None]) -> list[Demand]:
    """The demand after each temperature, the steps ``APART`` from each other."""
    return [d.demand for _, d in replay(th, ((i * APART, t) for i, t in enumerate(temps)))]


@dataclass(frozen=True)
class Change:
    t: float
    old: Demand | None
    new: Demand
    reason: str


def changes(log: list[tuple[float, Decision]]) -> list[Change]:
    """Each change of demand (the first decision included)."""
    out: list[Change] = []
    old: Demand | None = None
    for t, d in log:
        if d.demand != old:
            out.append(Change(t, old, d.demand, d.reason))
        old = d.demand
    return out


def switched(log: list[tuple[float, Decision]]) -> list[Change]:
    """The changes that start or stop heating or cooling (what the minimum cycle guards)."""
    return [c for c in changes(log) if {c.old, c.new} & {"heat", "cool"}]


def every(seconds: float, until: float, temp: float | None) -> list[Reading]:
    return [(float(t), temp) for t in range(0, int(until), int(seconds))]


# ---- hysteresis --------------------------------------------------------------------------------


def test_heating_starts_at_set_point_minus_cold_tolerance_and_stops_at_plus_hot() -> None:
    temps = [21.0, 20.8, 20.7, 21.0, 21.29, 21.3, 20.9, 20.71]
    assert demands(zone("heat"), temps) == [
        "idle", "idle", "heat", "heat", "heat", "idle", "idle", "idle"]


def test_cooling_mirrors_heating() -> None:
    temps = [21.0, 21.2, 21.3, 21.0, 20.71, 20.7, 21.1, 21.29]
    assert demands(zone("cool"), temps) == [
        "idle", "idle", "cool", "cool", "cool", "idle", "idle", "idle"]


def test_auto_heats_like_heat_and_cools_only_from_set_point_plus_deadband() -> None:
    temps = [20.7, 21.29, 21.3, 21.9, 22.0, 21.41, 21.4, 20.8, 20.7]
    assert demands(zone("auto"), temps) == [
        "heat", "heat", "idle", "idle", "cool", "cool", "idle", "idle", "heat"]


def test_reasons_say_why_the_zone_does_what_it_does() -> None:
    th = zone("heat")
    temps = [20.0, 21.5]
    reasons = [d.reason for _, d in replay(th, ((i * APART, t) for i, t in enumerate(temps)))]
    assert reasons == ["heat", "satisfied"]


def test_fan_only_runs_the_fan_whatever_the_temperature() -> None:
    assert demands(zone("fan_only"), [30.0, 21.0, 10.0]) == ["fan", "fan", "fan"]


# ---- the minimum cycle and safety --------------------------------------------------------------


def test_heating_runs_its_minimum_cycle_even_when_the_room_is_warm_at_once() -> None:
    log = replay(zone("heat"), [(0, 20.0), (60, 22.0), (299, 22.0), (300, 22.0)])
    assert [(t, d.demand, d.reason) for t, d in log] == [
        (0, "heat", "heat"), (60, "heat", "min_cycle"), (299, "heat", "min_cycle"),
        (300, "idle", "satisfied")]


def test_a_sensor_dropping_out_while_heating_switches_off_at_once() -> None:
    th = zone("heat")
    log = replay(th, [(0, 20.0), (10, None), (20, 18.0), (309, 18.0), (310, 18.0)])
    assert [(t, d.demand, d.reason) for t, d in log] == [
        (0, "heat", "heat"),
        (10, "idle", "sensor"),  # ten seconds into a minimum cycle: off regardless
        (20, "idle", "min_cycle"),  # the heater just went off: it rests a full cycle
        (309, "idle", "min_cycle"),
        (310, "heat", "heat")]
    assert log[1][1].assert_now


def test_an_infinite_or_nan_reading_counts_as_a_dead_sensor() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        assert zone("heat").step(0, bad) == Decision("idle", "sensor", True)


def test_a_dead_sensor_in_a_freezing_van_heats_nothing() -> None:
    # the frost guard needs a temperature too: a stale one is never acted on
    assert demands(zone("off"), [-10.0, None]) == ["heat", "idle"]


def test_mode_off_stops_heating_at_once() -> None:
    th = zone("heat")
    th.step(0, 19.0)
    th.set_mode("off")
    assert th.step(10, 19.0) == Decision("idle", "off", True)


def test_other_crew_changes_wait_for_the_minimum_cycle() -> None:
    th = zone("heat")
    th.step(0, 19.0)
    th.set_mode("fan_only")  # the crew wants air, not heat: the heater finishes its cycle
    assert th.step(10, 19.0) == Decision("heat", "min_cycle", False)
    assert th.step(300, 19.0) == Decision("fan", "fan", True)


def test_the_fan_going_on_and_off_does_not_delay_heating() -> None:
    th = zone("heat")
    replay(th, [(0, 20.0), (300, 21.5)])  # heated, then rests from 300
    th.set_mode("fan_only")
    assert th.step(350, 21.5).demand == "fan"  # the fan starts and stops at once...
    th.set_mode("heat")
    assert th.step(400, 20.0) == Decision("fan", "min_cycle", False)  # the heater rests
    assert th.step(600, 20.0).demand == "heat"  # ...and its rest still ends at 600


def test_the_minimum_cycle_runs_on_decisions_and_has_no_read_back_input() -> None:
    # step() takes the time and the temperature only: what a relay reads back cannot reach
    # the minimum-cycle timer, however it behaves
    assert list(inspect.signature(Thermostat.step).parameters) == ["self", "now", "temperature"]


@dataclass
class Relay:
    """A heater relay that drops out by itself at ``drop_at`` (vibration, a loose contact)."""

    drop_at: float | None = None
    on: bool = False
    history: list[tuple[float, bool]] = field(default_factory=list)

    def tick(self, t: float, d: Decision) -> None:
        if self.drop_at is not None and t >= self.drop_at and self.on:
            self.on, self.drop_at = False, None
            self.history.append((t, False))
        if d.assert_now:
            self.on = d.demand == "heat"
            self.history.append((t, self.on))


def drive(relay: Relay) -> list[tuple[float, Decision]]:
    """Heating from t=0 (the room at 20 °C), warm (21.5 °C) from t=400; a step each 10 s."""
    th = zone("heat")
    log: list[tuple[float, Decision]] = []
    for t in range(0, 1000, 10):
        d = th.step(t, 20.0 if t < 400 else 21.5)
        relay.tick(t, d)
        log.append((float(t), d))
    return log


def test_a_relay_drop_out_is_put_back_by_the_keep_alive_without_restarting_the_cycle() -> None:
    steady, dropping = Relay(), Relay(drop_at=100)
    assert drive(dropping) == drive(steady)  # the decisions do not depend on the relay at all
    assert dropping.history == [(0, True), (100, False), (300, True), (400, False),
                                (700, False)]
    # heating stops at 400, when the room is warm: its cycle counts from the start at 0, not
    # from the re-assertion at 300 (that would hold it on until 600)


@pytest.mark.parametrize(("mode", "temp", "demand"), [
    ("off", 20.0, "idle"), ("heat", 15.0, "heat"), ("cool", 30.0, "cool"),
    ("fan_only", 20.0, "fan"), ("heat", 25.0, "idle")])
def test_keep_alive_reasserts_off_as_well_as_on(mode: Mode, temp: float, demand: Demand) -> None:
    log = replay(zone(mode), every(10, 1000, temp))
    assert {d.demand for _, d in log} == {demand}
    assert [t for t, d in log if d.assert_now] == [0, 300, 600, 900]


def test_a_change_is_asserted_at_once_and_restarts_the_keep_alive() -> None:
    log = replay(zone("heat"), [(0, 20.0), (100, 22.0), (350, 22.0), (400, 22.0),
                                (649, 22.0), (650, 22.0)])
    assert [(t, d.demand) for t, d in log if d.assert_now] == [
        (0, "heat"), (350, "idle"), (650, "idle")]


def test_a_set_point_raised_during_the_minimum_off_time_waits_for_it_to_end() -> None:
    th = zone("heat")
    th.step(0, 20.0)
    assert th.step(300, 21.5).demand == "idle"  # warm: heating stops, a rest begins
    th.set_setpoint(24.0)
    assert th.step(360, 21.5) == Decision("idle", "min_cycle", False)
    assert th.hold_left(360) == 240
    assert th.step(599, 21.5).demand == "idle"
    assert th.step(600, 21.5) == Decision("heat", "heat", True)


def test_a_noisy_sensor_at_the_tolerance_edge_switches_no_more_often_than_the_min_cycle() -> None:
    noise = random.Random(20261129)
    hour = [(float(t), 20.7 + noise.gauss(0, 0.3)) for t in range(3600)]
    guarded = switched(replay(zone("heat"), hour))
    assert 2 <= len(guarded) <= 3600 / MIN_CYCLE + 1
    assert all(b.t - a.t >= MIN_CYCLE for a, b in pairwise(guarded))
    # the same hour without a minimum cycle: the guard above is what keeps the heater calm
    unguarded = switched(replay(zone("heat", ThermostatConfig(min_cycle_s=0)), hour))
    assert len(unguarded) > 10 * len(guarded)


def test_a_hot_blast_during_heating_never_turns_heating_straight_into_cooling() -> None:
    # the door opens on a summer street while auto heats a cold room
    log = replay(zone("auto"), [(0, 19.0), *every(10, 1200, 30.0)[1:]])
    assert [(c.t, c.new, c.reason) for c in changes(log)] == [
        (0, "heat", "heat"), (300, "idle", "changeover"), (600, "cool", "cool")]


def test_switching_heat_to_cool_mode_passes_through_idle() -> None:
    th = zone("heat")
    log = replay(th, [(0, 19.0)])
    th.set_mode("cool")
    log += replay(th, [(300, 25.0), (599, 25.0), (600, 25.0)])
    assert [(c.t, c.new) for c in changes(log)] == [(0, "heat"), (300, "idle"), (600, "cool")]


actions = st.lists(st.tuples(
    st.floats(1, 400),  # seconds since the previous step
    st.none() | st.floats(-25, 45),  # the reading
    st.none() | st.sampled_from(MODES) | st.floats(7, 35)),  # a crew change, if any
    max_size=60)


@FUZZ
@given(steps=actions)
def test_no_reading_or_crew_change_makes_heat_and_cool_touch_or_cycle_fast(
    steps: list[tuple[float, float | None, Mode | float | None]],
) -> None:
    th, t = zone("auto"), 0.0
    log: list[tuple[float, Decision]] = []
    for dt, temp, crew in steps:
        if isinstance(crew, str):
            th.set_mode(crew)
        elif crew is not None:
            th.set_setpoint(crew)
        t += dt
        log.append((t, th.step(t, temp)))
    guarded = switched(log)
    assert not any({c.old, c.new} == {"heat", "cool"} for c in guarded)
    for a, b in pairwise(guarded):
        # only a dead sensor and the off switch may stop a cycle short; nothing starts one
        assert b.t - a.t >= MIN_CYCLE or (b.new == "idle" and b.reason in {"sensor", "off"})


# ---- frost guard -------------------------------------------------------------------------------


AT_REST = {"off": ("idle", "off"), "cool": ("idle", "satisfied"), "fan_only": ("fan", "fan")}


@pytest.mark.parametrize("mode", AT_REST)
def test_frost_guard_heats_a_zone_that_would_not_heat_from_five_to_seven_degrees(
    mode: Mode,
) -> None:
    log = replay(zone(mode), ((i * APART, t) for i, t in enumerate([6.0, 5.0, 6.9, 7.0, 6.0])))
    rest, frost = AT_REST[mode], ("heat", "frost")
    assert [(d.demand, d.reason) for _, d in log] == [rest, frost, frost, rest, rest]


def test_frost_guard_keeps_the_minimum_cycle() -> None:
    th = zone("cool")
    th.step(0, 25.0)  # cooling
    assert th.step(10, 4.0) == Decision("cool", "min_cycle", False)
    assert th.step(300, 4.0).demand == "idle"  # never straight from cooling to heating
    assert th.step(600, 4.0) == Decision("heat", "frost", True)


# ---- presets, set point and limits -------------------------------------------------------------


@pytest.mark.parametrize(("preset", "target"), [
    ("comfort", 21.0), ("eco", 18.0), ("away", 7.0), ("session", 22.0)])
def test_each_preset_sets_its_temperature(preset: Preset, target: float) -> None:
    th = zone("heat")
    th.set_preset(preset)
    assert th.target() == target


def test_a_manual_set_point_leaves_the_preset_and_comes_back_without_one() -> None:
    th = zone("heat")
    th.set_setpoint(23.5)
    assert (th.settings.preset, th.target()) == (None, 23.5)
    th.set_preset("eco")
    assert th.target() == 18.0
    th.set_preset(None)
    assert th.target() == 23.5


def test_crew_changes_are_made_in_the_settings_the_caller_persists() -> None:
    saved = ZoneSettings()
    th = Thermostat(CFG, saved)
    th.set_mode("auto")
    th.set_setpoint(19)
    th.set_fan_cap(2)
    assert saved == ZoneSettings(mode="auto", preset=None, setpoint_c=19.0, fan_cap=2)


@pytest.mark.parametrize("celsius", [6.9, 35.1, -40.0, math.nan, math.inf])
def test_a_set_point_outside_seven_to_thirty_five_is_refused_with_the_limits(
    celsius: float,
) -> None:
    th = zone("heat")
    with pytest.raises(ValueError, match=re.escape("outside the limits 7-35 °C")):
        th.set_setpoint(celsius)
    assert (th.settings.preset, th.target()) == ("comfort", 21.0)  # nothing changed


@pytest.mark.parametrize("celsius", [7, 7.0, 35.0, 22.5])
def test_set_points_at_and_inside_the_limits_are_taken(celsius: float) -> None:
    th = zone("heat")
    th.set_setpoint(celsius)
    assert th.target() == celsius


@pytest.mark.parametrize(("setter", "value", "message"), [
    ("set_mode", "turbo", "mode 'turbo' is not one of off, heat, cool, auto, fan_only"),
    ("set_preset", "party", "preset 'party' is not one of comfort, eco, away, session"),
    ("set_fan_cap", 0, "fan cap 0 is not a whole number from 1"),
    ("set_setpoint", "22", "set point '22' is not a number"),
])
def test_unknown_crew_choices_are_refused_clearly(setter: str, value: object,
                                                  message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(zone("heat"), setter)(value)


@pytest.mark.parametrize(("tuning", "message"), [
    ({"presets": {"comfort": 21.0}}, "presets must name exactly"),
    ({"presets": {"comfort": 40.0, "eco": 18.0, "away": 7.0, "session": 22.0}},
     "preset comfort 40.0 °C is outside"),
    ({"auto_deadband_k": 0.2}, "auto_deadband_k must exceed hot_tolerance_k"),
    ({"frost_below_c": 8.0}, "frost_below_c must be below frost_setpoint_c"),
    ({"cold_tolerance_k": math.nan}, "tolerances must not be negative"),
    ({"keep_alive_s": 0.0}, "keep_alive_s must be positive"),
])
def test_an_impossible_tuning_is_refused_when_the_config_is_read(
    tuning: dict[str, Any], message: str,
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        replace(CFG, **tuning)


def test_settings_built_wrong_in_code_are_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("set point 50.0 °C is outside")):
        Thermostat(CFG, ZoneSettings(setpoint_c=50.0))


# ---- saved settings and restarts ---------------------------------------------------------------


def test_after_a_restart_a_zone_saved_off_stays_off() -> None:
    saved = json.loads(json.dumps(ZoneSettings(mode="off").to_dict()))
    th = Thermostat(CFG, ZoneSettings.from_dict(saved, CFG))
    assert th.step(0, 12.0) == Decision("idle", "off", True)


def test_after_a_restart_a_zone_saved_heating_heats_at_once() -> None:
    saved = json.loads(json.dumps(ZoneSettings(mode="heat", preset="session").to_dict()))
    th = Thermostat(CFG, ZoneSettings.from_dict(saved, CFG))
    assert th.step(0, 12.0) == Decision("heat", "heat", True)


valid_settings = st.builds(
    ZoneSettings, mode=st.sampled_from(MODES), preset=st.none() | st.sampled_from(PRESETS),
    setpoint_c=st.floats(CFG.min_setpoint_c, CFG.max_setpoint_c),
    fan_cap=st.none() | st.integers(1, 10))


@FUZZ
@given(settings=valid_settings)
def test_saved_settings_come_back_exactly(settings: ZoneSettings) -> None:
    text = json.dumps(settings.to_dict())
    assert ZoneSettings.parse(json.loads(text), CFG) == (settings, ())


@pytest.mark.parametrize(("saved", "expected"), [
    (None, ZoneSettings()),
    ("heat", ZoneSettings()),
    ([], ZoneSettings()),
    ({}, ZoneSettings()),
    ({"mode": "heat", "preset": "party", "setpoint_c": 19, "fan_cap": 3},
     ZoneSettings(mode="heat", setpoint_c=19.0, fan_cap=3)),
    ({"mode": "HEAT", "preset": None, "setpoint_c": 19.5, "fan_cap": None},
     ZoneSettings(preset=None, setpoint_c=19.5)),
    ({"mode": "cool", "preset": None, "setpoint_c": "19", "fan_cap": True},
     ZoneSettings(mode="cool", preset=None)),
    ({"mode": "auto", "preset": "eco", "setpoint_c": 1e400, "fan_cap": 2.0},
     ZoneSettings(mode="auto", preset="eco")),
    ({"mode": "heat", "setpoint_c": 10**400}, ZoneSettings(mode="heat")),
])
def test_corrupt_saved_settings_fall_back_field_by_field(saved: object,
                                                         expected: ZoneSettings) -> None:
    assert ZoneSettings.from_dict(saved, CFG) == expected


def test_what_was_replaced_is_told_for_the_log() -> None:
    _, problems = ZoneSettings.parse({"mode": "turbo", "preset": "eco", "setpoint_c": 99},
                                     CFG)
    assert problems == (
        "mode 'turbo' is not one of off, heat, cool, auto, fan_only: 'off' used",
        "set point 99 °C is outside the limits 7-35 °C: 21.0 used",
        "fan_cap missing: None used")


def test_the_default_set_point_fits_narrower_limits() -> None:
    cfg = ThermostatConfig(min_setpoint_c=7.0, max_setpoint_c=20.0,
                           presets={"comfort": 20.0, "eco": 18.0, "away": 7.0, "session": 20.0})
    assert ZoneSettings.from_dict({"setpoint_c": 26.0}, cfg).setpoint_c == 20.0


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["mode", "preset", "setpoint_c", "fan_cap"]) | st.text(max_size=8),
        inner, max_size=6),
    max_leaves=20)


@FUZZ
@given(saved=json_like | st.fixed_dictionaries({}, optional={
    "mode": json_like | st.sampled_from(MODES), "preset": json_like | st.sampled_from(PRESETS),
    "setpoint_c": json_like, "fan_cap": json_like}))
def test_any_saved_value_gives_valid_settings_and_never_stops_the_van(saved: object) -> None:
    settings = ZoneSettings.from_dict(saved, CFG)
    assert settings.check(CFG) == ()
    Thermostat(CFG, settings).step(0, 20.0)


# ---- taking over after a restart ---------------------------------------------------------------

@pytest.mark.parametrize(("mode", "temp", "keeps"), [
    ("heat", 21.1, True),  # inside the band: the heater found running goes on
    ("heat", 21.3, False),  # at the band's stop: stopped as ever
    ("off", 21.1, False),  # the crew's off wins
    ("off", 6.0, True),  # ... but the frost guard's band still wants it
    ("cool", 21.1, False),  # a cooling zone does not keep a heater
])
def test_resume_takes_over_running_equipment_only_where_a_band_wants_it(
        mode: Mode, temp: float, keeps: bool) -> None:
    th = zone(mode)
    assert th.step(0.0, temp).demand != "heat"  # a fresh start inside the band: at rest
    th.resume("heat")
    assert (th.step(1.0, temp).demand == "heat") is keeps
    assert th.step(2.0, None).reason == "sensor"  # a lost sensor stops it at once


def test_resume_changes_nothing_over_a_demand_already_decided() -> None:
    th = zone("heat")
    assert th.step(0.0, 20.0).demand == "heat"
    th.resume("heat")
    assert th.hold_left(1.0) == MIN_CYCLE - 1.0  # the timer of its own start stands
