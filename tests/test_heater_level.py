"""The heater's power level controller, alone and closed-loop against the van's thermal model
in virtual time (the plant of the HIL tests; a simple heater: 1-4 kW over levels 0-9)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.climate.heater_level import LevelController
from vansim.thermal import CREW, ROOM, ThermalPlant, winter_night

SET_C = 21.0
STEP_S = 30.0  # the supervisor's turn as the HIL van sees it (1 s at x30)


def controller(**kw: float) -> LevelController:
    args: dict[str, float] = {"gain_per_k": 2.0, "integral_s": 1200.0, "change_s": 60.0}
    args.update(kw)
    return LevelController(0, 9, **args)


@dataclass
class Night:
    """What a night did to the room, from the moment it first reached the set point."""

    reached_s: float | None = None
    room: list[float] = field(default_factory=list)
    crew: list[float] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)
    stops: int = 0


def heat_night(outside_c: float | None, hours: float = 5.0, start_c: float = 5.0) -> Night:
    """The room led by the controller, with the thermostat's band (start 20.7, stop 21.3) and
    the sensor's 0.1 K resolution; the heat split between the zones by their shells' losses
    as the simulator's balanced ducts split it. ``outside_c`` None: the winter night profile
    from 22:00."""
    profile = winter_night() if outside_c is None else (lambda _h: outside_c)
    plant = ThermalPlant.van(start_c=start_c, outside_profile=profile)
    ua = {name: zone.ua_w_per_k for name, zone in plant.zones.items()}
    ctl, night, on, t = controller(), Night(), False, 0.0
    while t < hours * 3600:
        temp = round(plant.temperature(ROOM), 1)
        if not on and temp <= SET_C - 0.3:
            on = True
        elif on and temp >= SET_C + 0.3:
            on, night.stops = False, night.stops + 1
            ctl.reset()
        level = ctl.step(t, SET_C - temp) if on else 0
        heat_w = 1000.0 + 3000.0 * level / 9 if on else 0.0
        for name, zone in plant.zones.items():
            zone.heater_w = heat_w * ua[name] / sum(ua.values())
        plant.step(STEP_S, (22.0 + t / 3600) % 24)
        t += STEP_S
        if night.reached_s is None and plant.temperature(ROOM) >= SET_C - 0.3:
            night.reached_s, night.stops = t, 0
        if night.reached_s is not None:
            night.room.append(plant.temperature(ROOM))
            night.crew.append(plant.temperature(CREW))
            night.levels.append(level)
    return night


@pytest.mark.parametrize("outside_c", [None, -25.0, -5.0])
def test_a_winter_night_holds_the_room_within_half_a_kelvin_without_a_stop(
        outside_c: float | None) -> None:
    night = heat_night(outside_c)
    assert night.reached_s is not None and night.reached_s < 3600
    assert min(night.room) >= SET_C - 0.5 and max(night.room) <= SET_C + 0.5
    assert night.stops == 0  # it modulated the whole night instead of cycling
    assert len(set(night.levels)) > 1  # ... between levels, not stuck at one
    # the crew area shares the balanced ducts: within 2 K of the room once warm
    assert min(night.crew[len(night.crew) // 4:]) > SET_C - 2.0


def test_in_mild_weather_the_lowest_level_is_too_much_and_the_thermostat_stops_it() -> None:
    night = heat_night(10.0, hours=3.0)
    assert night.stops >= 1
    assert min(night.levels) == 0 and max(night.room) < SET_C + 0.6


def test_a_long_warm_up_at_full_power_does_not_wind_up_into_an_overshoot() -> None:
    night = heat_night(-25.0, start_c=-20.0, hours=6.0)
    assert night.reached_s is not None
    assert max(night.room) <= SET_C + 0.5


def test_a_steady_shortfall_raises_the_level_step_by_step_at_most_every_change_s() -> None:
    ctl = controller(change_s=60.0)
    levels = [(t, ctl.step(t, 1.0)) for t in range(0, 3600, 10)]
    changes = [t for (t, a), (_, b) in itertools.pairwise(levels) if a != b]
    assert levels[0][1] == 2  # the proportional part at once: 2 levels per kelvin
    assert levels[-1][1] > 2  # the integral adds while the shortfall lasts
    assert all(b - a >= 60 for a, b in itertools.pairwise(changes))


def test_a_cap_applies_at_once_and_holds_the_integral() -> None:
    ctl = controller()
    for t in range(0, 1200, 10):
        ctl.step(t, 3.0)
    assert ctl.level == 9
    assert ctl.step(1200.0, 3.0, cap=0) == 0  # no waiting for change_s
    held = ctl.integral
    for t in range(1210, 2400, 10):
        ctl.step(t, 3.0, cap=0)
    assert ctl.integral == held


def test_reset_starts_again_from_the_lowest_level() -> None:
    ctl = controller()
    for t in range(0, 600, 10):
        ctl.step(t, 2.0)
    ctl.reset()
    assert ctl.level == 0 and ctl.integral == 0.0
    assert ctl.step(600.0, 0.0) == 0


def test_bad_tuning_and_a_nonfinite_shortfall_are_refused() -> None:
    with pytest.raises(ValueError):
        LevelController(5, 2, gain_per_k=2.0, integral_s=1200.0, change_s=60.0)
    with pytest.raises(ValueError):
        controller(integral_s=0.0)
    with pytest.raises(ValueError):
        controller().step(0.0, math.nan)


@given(st.lists(st.tuples(st.floats(0, 120), st.floats(-50, 50),
                          st.none() | st.integers(-3, 12)), max_size=200))
def test_the_level_is_always_a_whole_level_within_the_limits_and_the_cap(
        steps: list[tuple[float, float, int | None]]) -> None:
    ctl, now = controller(change_s=30.0), 0.0
    for dt, error, cap in steps:
        now += dt
        level = ctl.step(now, error, cap)
        top = 9 if cap is None else max(0, min(cap, 9))
        assert isinstance(level, int) and 0 <= level <= top
        assert 0.0 <= ctl.integral <= 9.0
