"""The van's thermal model (vansim.thermal) against physics, not against itself.

Expectations come from the lumped heat balance ``C dT/dt = Q + UA (T_out - T)``: the steady
state ``T_out + Q / UA``, the decay ``exp(-t / τ)`` with ``τ = C / UA``, the exchange of two
coupled zones (``τ = 1 / (k (1/C1 + 1/C2))``, the heat-capacity-weighted mean kept), energy
conservation over a step, psychrometric table values for humidity; the integrator must not
oscillate or overshoot at 60 s steps, and humidity stays within bounds whatever the inputs
(hypothesis, with the budget of testsupport.FUZZ).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testsupport import FUZZ

from vansim.thermal import (
    CREW,
    DOOR_OPEN_UA_W_PER_K,
    HUMIDITY_BASELINE_PCT,
    HUMIDITY_MAX_PCT,
    HUMIDITY_MIN_PCT,
    HUMIDITY_TAU_S,
    OCCUPANT_MOISTURE_G_PER_H,
    OCCUPANT_SENSIBLE_W,
    ROOM,
    ThermalPlant,
    Zone,
    run_for,
    summer_day,
    summer_sun,
    winter_night,
)

HEATER_MAX_W = 2000.0  # Autoterm Air 2D class diesel air heater at full output
DAY_MINUTES_H = [m / 60 for m in range(24 * 60)]  # the day sampled every minute, in hours
# Saturation water vapour over water (psychrometric tables): pressure, Pa; density, g/m3
TABLE_SATURATION_PA = {10.0: 1228.1, 20.0: 2339.3}
TABLE_SATURATION_G_PER_M3_AT_20C = 17.3


def one_zone(*, c: float = 80_000.0, ua: float = 30.0, start_c: float = 20.0,
             outside_c: float = -15.0, door_open: bool = False, heater_w: float = 0.0,
             air_volume_m3: float = 6.0) -> ThermalPlant:
    """A plant of one zone "z" and nothing else: no neighbours, no profiles."""
    zone = Zone("z", start_c, heat_capacity_j_per_k=c, ua_w_per_k=ua, door_open=door_open,
                heater_w=heater_w, air_volume_m3=air_volume_m3)
    return ThermalPlant(zones={"z": zone}, outside_c=outside_c)


def two_zone_steady_c(plant: ThermalPlant) -> tuple[float, float]:
    """Steady temperatures of the van's two zones (crew, room) under the present inputs.

    The heat balance of each zone with dT/dt = 0, a 2x2 linear system, by Cramer's rule:
        (UA1 + k) T1 - k T2 = Q1 + UA1 To
        -k T1 + (UA2 + k) T2 = Q2 + UA2 To
    """
    crew, room = plant.zone(CREW), plant.zone(ROOM)
    k = plant.coupling_w_per_k[(CREW, ROOM)]
    ua1, ua2, to = crew.shell_ua_w_per_k, room.shell_ua_w_per_k, plant.outside_c
    a, b, c, d = ua1 + k, -k, -k, ua2 + k
    r1, r2 = crew.gains_w + ua1 * to, room.gains_w + ua2 * to
    det = a * d - b * c
    return (r1 * d - b * r2) / det, (a * r2 - c * r1) / det


# -- time constant, steady state, door ----------------------------------------------------------


@pytest.mark.parametrize(("c", "ua", "door_open"), [
    (80_000.0, 30.0, False),  # the crew area's shell
    (50_000.0, 22.0, False),  # the consultation room's
    (50_000.0, 22.0, True),  # the room with its door open
])
def test_an_unheated_zone_cools_toward_outside_with_time_constant_c_over_ua(
        c: float, ua: float, door_open: bool) -> None:
    plant = one_zone(c=c, ua=ua, door_open=door_open, start_c=20.0, outside_c=-15.0)
    tau_s = c / (ua + (DOOR_OPEN_UA_W_PER_K if door_open else 0.0))
    samples = run_for(plant, 3 * tau_s, 60.0, 22.0, sample_every=1)
    excess0 = 20.0 - -15.0
    for t_s, temps in samples:
        # the exact solution; Euler's sub-steps are within a fraction of a percent of it
        expected = -15.0 + excess0 * math.exp(-t_s / tau_s)
        assert temps["z"] == pytest.approx(expected, abs=0.005 * excess0)
        assert temps["z"] >= -15.0  # never colder than the air it cools toward
    # after one time constant (the last, shorter step lands on it) e^-1 of the excess is left
    plant = one_zone(c=c, ua=ua, door_open=door_open, start_c=20.0, outside_c=-15.0)
    run_for(plant, tau_s, 60.0, 22.0)
    assert plant.temperature("z") - -15.0 == pytest.approx(excess0 / math.e, rel=0.01)
    temps_in_order = [temps["z"] for _, temps in samples]
    assert temps_in_order == sorted(temps_in_order, reverse=True)


def test_a_2kw_heater_in_minus_15_holds_the_lumped_van_at_t_out_plus_q_over_ua() -> None:
    van = ThermalPlant.van()
    c = sum(z.heat_capacity_j_per_k for z in van.zones.values())
    ua = sum(z.ua_w_per_k for z in van.zones.values())
    plant = one_zone(c=c, ua=ua, start_c=-15.0, outside_c=-15.0, heater_w=HEATER_MAX_W)
    run_for(plant, 10 * c / ua, 60.0, 0.0)  # ten time constants: within e^-10 of steady
    steady_c = -15.0 + HEATER_MAX_W / ua
    assert plant.temperature("z") == pytest.approx(steady_c, abs=0.01)
    # a realistic van: a 2 kW heater is just right for a hard winter, not an oven
    assert 18.0 <= steady_c <= 28.0


def test_the_two_zone_van_with_its_heater_split_settles_where_the_heat_balance_says() -> None:
    plant = ThermalPlant.van(start_c=-15.0, outside_c=-15.0)
    plant.zone(CREW).heater_w = 0.6 * HEATER_MAX_W  # the duct outlets: 60 % crew, 40 % room
    plant.zone(ROOM).heater_w = 0.4 * HEATER_MAX_W
    run_for(plant, 12 * 3600.0, 60.0, 18.0)
    crew_c, room_c = two_zone_steady_c(plant)
    assert plant.temperature(CREW) == pytest.approx(crew_c, abs=0.02)
    assert plant.temperature(ROOM) == pytest.approx(room_c, abs=0.02)
    for steady in (crew_c, room_c):
        assert 15.0 <= steady <= 30.0  # warm enough to sit in, without a thermostat


def test_an_open_door_loses_heat_much_faster() -> None:
    closed, opened = ThermalPlant.van(start_c=20.0, outside_c=-15.0), ThermalPlant.van(
        start_c=20.0, outside_c=-15.0)
    opened.zone(ROOM).door_open = True
    run_for(closed, 300.0, 10.0, 12.0)
    run_for(opened, 300.0, 10.0, 12.0)
    drop_closed = 20.0 - closed.temperature(ROOM)
    drop_open = 20.0 - opened.temperature(ROOM)
    # at first the loss is proportional to the conductance: (UA + door) / UA times faster;
    # over 5 min the open room nears the outside, so less than that but by far more
    ua = opened.zone(ROOM).ua_w_per_k
    assert drop_open > 3 * drop_closed
    assert drop_open < (ua + DOOR_OPEN_UA_W_PER_K) / ua * drop_closed
    # the neighbour loses heat through the partition too, but less than the room
    assert closed.temperature(CREW) > opened.temperature(CREW) > opened.temperature(ROOM)


# -- coupling and energy ----------------------------------------------------------------------


def test_coupled_zones_converge_to_their_heat_capacity_weighted_mean() -> None:
    c1, c2, k = 80_000.0, 50_000.0, 12.0
    plant = ThermalPlant(
        zones={"a": Zone("a", 25.0, heat_capacity_j_per_k=c1, ua_w_per_k=0.0),
               "b": Zone("b", 5.0, heat_capacity_j_per_k=c2, ua_w_per_k=0.0)},
        coupling_w_per_k={("a", "b"): k})  # no shell: only the partition
    mean_c = (c1 * 25.0 + c2 * 5.0) / (c1 + c2)
    tau_s = 1 / (k * (1 / c1 + 1 / c2))
    samples = run_for(plant, 10 * tau_s, 60.0, 0.0)
    for t_s, temps in samples:
        # the heat one gives the other gets: the weighted mean never moves
        assert (c1 * temps["a"] + c2 * temps["b"]) / (c1 + c2) == pytest.approx(mean_c,
                                                                               abs=1e-9)
        assert temps["b"] <= temps["a"]  # no overtaking
        expected_gap = 20.0 * math.exp(-t_s / tau_s)
        assert temps["a"] - temps["b"] == pytest.approx(expected_gap, abs=0.005 * 20.0)
    assert plant.temperature("a") == pytest.approx(mean_c, abs=0.01)
    assert plant.temperature("b") == pytest.approx(mean_c, abs=0.01)


def test_a_step_conserves_energy() -> None:
    """Heat stored = heat put in - heat lost to the outside; the partition moves heat only."""
    plant = ThermalPlant.van(outside_c=-10.0)
    crew, room = plant.zone(CREW), plant.zone(ROOM)
    crew.temperature_c, room.temperature_c = 24.0, 12.0  # heat flows through the partition
    crew.heater_w, crew.occupants, crew.solar_gain_w = 1500.0, 2, 150.0
    room.cooling_w, room.occupants, room.door_open = 300.0, 1, True
    dt_s = 60.0
    before = plant.temperatures()
    plant.step(dt_s, 10.0)
    after = plant.temperatures()
    stored_j = sum(z.heat_capacity_j_per_k * (after[n] - before[n])
                   for n, z in plant.zones.items())
    put_in_j = dt_s * sum(z.gains_w for z in plant.zones.values())

    def lost_j(temps: dict[str, float]) -> float:
        """Heat through the shells in the step, were the zones at ``temps`` throughout."""
        return dt_s * sum(z.shell_ua_w_per_k * (temps[n] - plant.outside_c)
                          for n, z in plant.zones.items())

    # each zone's temperature moves one way in the step, so its loss lies between the loss
    # at the start and at the end: a bracket whatever the integration scheme
    lost_at_start_j, lost_at_end_j = lost_j(before), lost_j(after)
    assert all(after[n] != before[n] for n in plant.zones)
    low_j, high_j = sorted((lost_at_start_j, lost_at_end_j))
    assert put_in_j - high_j <= stored_j <= put_in_j - low_j
    # and close to the loss at the mean temperature (trapezoid rule)
    lost_mean_j = (lost_at_start_j + lost_at_end_j) / 2
    assert stored_j == pytest.approx(put_in_j - lost_mean_j,
                                     abs=0.01 * (abs(put_in_j) + abs(lost_mean_j)))


# -- the integrator -----------------------------------------------------------------------------


def test_at_60s_steps_the_van_warms_monotonically_to_its_steady_state() -> None:
    plant = ThermalPlant.van(start_c=-15.0, outside_c=-15.0)
    plant.zone(CREW).heater_w = HEATER_MAX_W  # all the heat in the crew area
    plant.zone(ROOM).door_open = True  # and the room's door left open: the stiffest case
    steady = dict(zip((CREW, ROOM), two_zone_steady_c(plant), strict=True))
    samples = run_for(plant, 8 * 3600.0, 60.0, 0.0)
    for name in (CREW, ROOM):
        temps = [s[1][name] for s in samples]
        # started at rest with constant heat in: every zone rises, never past its steady state
        assert all(b >= a for a, b in itertools.pairwise(temps))
        assert max(temps) <= steady[name] + 1e-9
        assert temps[-1] == pytest.approx(steady[name], abs=0.05)


@pytest.mark.parametrize(("start_c", "heater_w"), [(20.0, 0.0), (-15.0, 1000.0)])
def test_a_stiff_zone_does_not_oscillate_at_60s_steps(start_c: float, heater_w: float) -> None:
    # bare air, door open: C / G = 10 kJ/K / 180 W/K = 56 s, shorter than the step, where a
    # plain 60 s Euler step would overshoot and ring
    plant = one_zone(c=10_000.0, ua=30.0, start_c=start_c, door_open=True, heater_w=heater_w)
    g = 30.0 + DOOR_OPEN_UA_W_PER_K
    assert plant.stable_substep_s() <= 10_000.0 / g
    steady_c = -15.0 + heater_w / g
    samples = run_for(plant, 1800.0, 60.0, 0.0)
    gaps = [temps["z"] - steady_c for _, temps in samples]
    assert all(gap * gaps[0] >= 0 for gap in gaps)  # never crosses the steady state
    assert all(abs(b) <= abs(a) for a, b in itertools.pairwise(gaps))
    assert gaps[-1] == pytest.approx(0.0, abs=1e-6)


def test_the_step_length_does_not_change_the_result() -> None:
    def heated_van() -> ThermalPlant:
        plant = ThermalPlant.van(start_c=5.0, outside_profile=winter_night())
        plant.zone(CREW).heater_w, plant.zone(ROOM).heater_w = 1200.0, 800.0
        return plant

    fine, coarse = heated_van(), heated_van()
    run_for(fine, 2 * 3600.0, 1.0, 3.0)
    run_for(coarse, 2 * 3600.0, 60.0, 3.0)
    for name in (CREW, ROOM):
        assert coarse.temperature(name) == pytest.approx(fine.temperature(name), abs=0.05)


# -- humidity -----------------------------------------------------------------------------------


def test_warming_the_air_dries_it_as_the_saturation_pressure_says() -> None:
    # bare air warmed 10 -> 20 °C in ten seconds: no time for ventilation to matter
    plant = one_zone(c=10_000.0, ua=0.0, start_c=10.0, heater_w=10_000.0)
    plant.zone("z").humidity_pct = 80.0
    plant.step(10.0, 12.0)
    assert plant.temperature("z") == pytest.approx(20.0)
    # same water, warmer air: RH scales with p_sat(10 °C) / p_sat(20 °C)
    expected = 80.0 * TABLE_SATURATION_PA[10.0] / TABLE_SATURATION_PA[20.0]
    assert plant.humidity("z") == pytest.approx(expected, abs=0.5)


def test_an_occupant_raises_humidity_to_where_breath_and_ventilation_balance() -> None:
    plant = one_zone(c=50_000.0, ua=0.0, start_c=20.0, air_volume_m3=5.0)
    zone = plant.zone("z")
    zone.occupants = 1
    zone.cooling_w = OCCUPANT_SENSIBLE_W  # hold 20 °C: only the breath changes anything
    run_for(plant, 10 * HUMIDITY_TAU_S, 60.0, 9.0)
    assert plant.temperature("z") == pytest.approx(20.0)
    # dRH/dt = breath (as % of what the air holds) - (RH - baseline) / tau = 0
    breath_pct_per_s = 100.0 * OCCUPANT_MOISTURE_G_PER_H / 3600.0 / (
        5.0 * TABLE_SATURATION_G_PER_M3_AT_20C)
    expected = HUMIDITY_BASELINE_PCT + HUMIDITY_TAU_S * breath_pct_per_s
    assert plant.humidity("z") == pytest.approx(expected, abs=0.5)


@dataclass
class Inputs:
    dt_s: float
    outside_c: float
    heater_w: tuple[float, float]
    cooling_w: tuple[float, float]
    occupants: tuple[int, int]
    door_open: tuple[bool, bool]
    solar_gain_w: tuple[float, float]


def pair(values: st.SearchStrategy[float]) -> st.SearchStrategy[tuple[float, float]]:
    return st.tuples(values, values)


inputs = st.builds(
    Inputs,
    dt_s=st.floats(0.0, 60.0),
    outside_c=st.floats(-30.0, 45.0),
    heater_w=pair(st.floats(0.0, 4000.0)),
    cooling_w=pair(st.floats(0.0, 2500.0)),
    occupants=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    door_open=st.tuples(st.booleans(), st.booleans()),
    solar_gain_w=pair(st.floats(0.0, 800.0)),
)


@FUZZ
@given(start_c=st.floats(-25.0, 45.0), start_rh=st.floats(HUMIDITY_MIN_PCT, HUMIDITY_MAX_PCT),
       steps=st.lists(inputs, min_size=1, max_size=60))
def test_humidity_stays_within_its_bounds_whatever_the_inputs(
        start_c: float, start_rh: float, steps: list[Inputs]) -> None:
    plant = ThermalPlant.van(start_c=start_c)
    for zone in plant.zones.values():
        zone.humidity_pct = start_rh
    clock_h = 0.0
    for step in steps:
        plant.outside_c = step.outside_c
        for i, name in enumerate((CREW, ROOM)):
            zone = plant.zone(name)
            zone.heater_w, zone.cooling_w = step.heater_w[i], step.cooling_w[i]
            zone.occupants, zone.door_open = step.occupants[i], step.door_open[i]
            zone.solar_gain_w = step.solar_gain_w[i]
        plant.step(step.dt_s, clock_h)
        clock_h += step.dt_s / 3600.0
        for zone in plant.zones.values():
            assert HUMIDITY_MIN_PCT <= zone.humidity_pct <= HUMIDITY_MAX_PCT
            assert math.isfinite(zone.temperature_c)


# -- weather ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "min_c", "min_h", "max_c", "max_h"), [
    (winter_night(), -15.0, 4.0, -8.0, 12.0),
    (summer_day(), 22.0, 5.0, 32.0, 15.0),
])
def test_the_outside_profiles_hit_their_stated_extremes(
        profile: Callable[[float], float], min_c: float, min_h: float, max_c: float,
        max_h: float) -> None:
    day = [(h, profile(h)) for h in DAY_MINUTES_H]
    coldest, warmest = min(day, key=lambda s: s[1]), max(day, key=lambda s: s[1])
    assert coldest[0] == min_h and coldest[1] == pytest.approx(min_c)
    assert warmest[0] == max_h and warmest[1] == pytest.approx(max_c)
    # smooth (no jump from one minute to the next) and the same tomorrow
    assert all(abs(b[1] - a[1]) < 0.05 for a, b in itertools.pairwise(day))
    assert all(profile(h + 24.0) == pytest.approx(c) for h, c in day[::60])


def test_the_summer_sun_shines_from_dawn_to_dusk_and_peaks_in_the_early_afternoon() -> None:
    sun = summer_sun()
    day = [(h, sun(h)) for h in DAY_MINUTES_H]
    assert all(0.0 <= f <= 1.0 for _, f in day)
    assert all(f == 0.0 for h, f in day if h <= 5.0 or h >= 21.0)
    peak_h, peak = max(day, key=lambda s: s[1])
    assert peak_h == 13.0 and peak == pytest.approx(1.0)


def test_a_parked_van_in_the_summer_sun_gets_hotter_than_the_air_but_within_the_bound() -> None:
    sunny = ThermalPlant.van(start_c=22.0, outside_profile=summer_day(), sun_profile=summer_sun())
    shaded = ThermalPlant.van(start_c=22.0, outside_profile=summer_day())
    sunny_day = run_for(sunny, 24 * 3600.0, 60.0, 5.0, sample_every=10)
    shaded_day = run_for(shaded, 24 * 3600.0, 60.0, 5.0, sample_every=10)
    peak_sunny = max(temps[ROOM] for _, temps in sunny_day)
    peak_shaded = max(temps[ROOM] for _, temps in shaded_day)
    assert peak_sunny > 32.0  # a greenhouse in the afternoon
    assert peak_shaded <= 32.0  # without sun no zone can beat the warmest air
    # the hottest zone loses heat through the partition, so it is at most Q_sun / UA above
    # the warmest air outside
    bound_c = 32.0 + max(z.solar_peak_w / z.ua_w_per_k for z in sunny.zones.values())
    assert all(t <= bound_c for _, temps in sunny_day for t in temps.values())


# -- run_for and the API -------------------------------------------------------------------------


def test_run_for_samples_every_n_steps_and_hands_on_step_the_clock_past_midnight() -> None:
    plant = ThermalPlant.van(outside_profile=winter_night())
    calls: list[tuple[float, float]] = []
    samples = run_for(plant, 2 * 3600.0 + 30.0, 60.0, 23.5,
                      on_step=lambda t, clock: calls.append((t, clock)), sample_every=10)
    assert len(calls) == 121  # 120 whole steps and the 30 s left over
    assert calls[0] == (0.0, 23.5)
    assert calls[60][0] == 3600.0 and calls[60][1] == pytest.approx(24.5)
    assert [t for t, _ in samples] == [0.0, *(600.0 * i for i in range(1, 13)), 7230.0]
    assert samples[-1][1] == plant.temperatures()
    # the profile was read during the last step, 01:30 the next morning
    assert plant.outside_c == pytest.approx(winter_night()(1.5), abs=0.01)


def test_step_zero_only_reads_the_profiles() -> None:
    plant = ThermalPlant.van(start_c=20.0, outside_profile=winter_night(),
                             sun_profile=summer_sun())
    plant.step(0.0, 13.0)
    assert plant.outside_c == pytest.approx(winter_night()(13.0))
    assert plant.zone(CREW).solar_gain_w == pytest.approx(plant.zone(CREW).solar_peak_w)
    assert plant.temperatures() == {CREW: 20.0, ROOM: 20.0}


def test_nonsense_is_refused() -> None:
    def zone(name: str) -> Zone:
        return Zone(name, 20.0, heat_capacity_j_per_k=50_000.0, ua_w_per_k=20.0)

    with pytest.raises(ValueError, match="no zone 'c'"):
        ThermalPlant(zones={"a": zone("a")}, coupling_w_per_k={("a", "c"): 10.0})
    with pytest.raises(ValueError, match="once"):
        ThermalPlant(zones={"a": zone("a"), "b": zone("b")},
                     coupling_w_per_k={("a", "b"): 10.0, ("b", "a"): 10.0})
    with pytest.raises(ValueError, match="filed under"):
        ThermalPlant(zones={"a": zone("b")})
    with pytest.raises(ValueError, match="heat capacity"):
        Zone("a", 20.0, heat_capacity_j_per_k=0.0, ua_w_per_k=20.0)
    with pytest.raises(ValueError, match="backwards"):
        ThermalPlant.van().step(-1.0, 0.0)
    with pytest.raises(KeyError, match="no zone 'galley'"):
        ThermalPlant.van().temperature("galley")
