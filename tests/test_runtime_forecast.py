"""Runtime forecast: a number the crew can trust, and honest "what if" figures."""

import pytest

from supervisor.power.runtime_forecast import RuntimeForecast


def test_runtime_from_capacity_soc_and_smoothed_load() -> None:
    fc = RuntimeForecast(capacity_ah=200, floor_soc=15)
    for t in range(0, 3600, 10):
        fc.update(t, -10.0)
    # (80 - 15) % of 200 Ah = 130 Ah at 10 A = 13 h
    assert fc.runtime_s(80) == pytest.approx(13 * 3600, rel=0.01)
    # with the A/C (45 A more): 130 / 55 = 2 h 22 min
    assert fc.runtime_s(80, extra_a=45) == pytest.approx(130 / 55 * 3600, rel=0.01)


def test_a_short_spike_barely_moves_the_forecast() -> None:
    fc = RuntimeForecast(capacity_ah=200, floor_soc=15)
    for t in range(0, 3600, 10):
        fc.update(t, -10.0)
    for t in range(3600, 3630, 10):  # a kettle for 30 s
        fc.update(t, -100.0)
    assert fc.load_a is not None and fc.load_a < 20


def test_trusted_monitor_time_to_go_is_used_and_charging_has_no_limit() -> None:
    fc = RuntimeForecast(capacity_ah=200, floor_soc=15)
    fc.update(0, -10.0)
    assert fc.runtime_s(80, monitor_ttg_s=20000) == 20000
    # what-if from the same base: 10 A now, 30 A more -> a quarter of the monitor's figure
    assert fc.runtime_s(80, monitor_ttg_s=20000, extra_a=30) == pytest.approx(5000)
    assert fc.runtime_s(80, monitor_ttg_s=0) == pytest.approx(13 * 3600, rel=0.01)
    charging = RuntimeForecast(capacity_ah=200, floor_soc=15)
    charging.update(0, 15.0)
    assert charging.runtime_s(80) is None
    # charging at 15 A, but 45 A of A/C would still drain it at 30 A
    assert charging.runtime_s(80, extra_a=45) == pytest.approx(130 / 30 * 3600, rel=0.01)
    assert fc.runtime_s(None) is None
