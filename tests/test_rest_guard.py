"""The roof A/C compressor's anti-short-cycle guard on virtual time (plain float seconds)."""

from __future__ import annotations

import pytest

from supervisor.climate.rest_guard import RestGuard, duration_text

REST, RUN = 240.0, 180.0  # the defaults: 4 min off, 3 min on


def rested(at: float = 0.0) -> RestGuard:
    """A guard built at ``at`` and left alone for its rest: the compressor may start."""
    guard = RestGuard(now=at - REST)
    assert guard.may_start(at) is None
    return guard


def test_a_controller_restart_counts_as_a_power_loss() -> None:
    guard = RestGuard(now=1000.0)
    assert guard.may_start(1000.0) == "compressor rest: 4 min left (controller restart)"
    assert guard.may_start(1239.0) == "compressor rest: 1 s left (controller restart)"
    assert guard.may_start(1240.0) is None


def test_without_a_construction_time_the_rest_counts_from_its_first_use() -> None:
    guard = RestGuard()
    guard.stopped(500.0)  # the caller asserts "off" at start-up: that is the first use
    assert guard.may_start(739.0) is not None
    assert guard.may_start(740.0) is None


def test_the_compressor_rests_its_minimum_off_time_after_a_stop() -> None:
    guard = rested()
    guard.started(0.0)
    guard.stopped(600.0)
    assert guard.may_start(710.0) == "compressor rest: 2 min 10 s left"
    assert guard.may_start(839.5) == "compressor rest: 1 s left"
    assert guard.may_start(840.0) is None


def test_the_compressor_runs_its_minimum_run_time_before_it_may_stop() -> None:
    guard = rested()
    assert guard.may_stop(0.0)  # not running: nothing to wait for
    guard.started(0.0)
    assert not guard.may_stop(179.9)
    assert guard.run_left(100.0) == 80.0
    assert guard.may_stop(180.0)


def test_starting_again_while_running_does_not_extend_the_minimum_run() -> None:
    guard = rested()
    guard.started(0.0)
    guard.started(100.0)  # a keep-alive re-asserting "on"
    assert guard.may_stop(180.0)


def test_stopping_again_while_off_does_not_extend_the_rest() -> None:
    guard = rested()
    guard.started(0.0)
    guard.stopped(200.0)
    guard.stopped(400.0)  # a keep-alive re-asserting "off" must not keep it resting for ever
    assert guard.may_start(440.0) is None


def test_a_power_loss_while_running_stops_it_and_starts_a_full_rest() -> None:
    guard = rested()
    guard.started(0.0)
    guard.power_lost(30.0)
    assert not guard.running
    assert guard.may_stop(30.0)
    assert guard.may_start(30.0) == "compressor rest: 4 min left (power loss)"
    assert guard.may_start(270.0) is None


def test_a_power_loss_retriggers_the_rest_when_it_was_already_off() -> None:
    guard = rested()
    guard.started(0.0)
    guard.stopped(200.0)
    guard.power_lost(400.0)  # almost rested (440) when the shore plug was pulled
    assert guard.may_start(500.0) == "compressor rest: 2 min 20 s left (power loss)"
    assert guard.may_start(640.0) is None


def test_a_power_loss_retriggers_the_rest_of_a_rested_compressor() -> None:
    guard = rested(1000.0)
    guard.power_lost(1000.0)
    assert guard.rest_left(1000.0) == REST


def test_zero_times_never_hold_it() -> None:
    guard = RestGuard(min_off_s=0, min_run_s=0, now=0.0)
    assert guard.may_start(0.0) is None
    guard.started(0.0)
    assert guard.may_stop(0.0)


def test_negative_times_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        RestGuard(min_off_s=-1)


@pytest.mark.parametrize(("seconds", "text"), [
    (130, "2 min 10 s"), (240, "4 min"), (45, "45 s"), (0.2, "1 s"), (59.01, "1 min"),
    (60, "1 min"), (3601, "60 min 1 s"),
])
def test_waits_read_as_minutes_and_seconds_rounded_up(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text
