"""Generator automatic start/stop on virtual time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from supervisor.power.config import GeneratorCondition, GeneratorConfig, QuietHours
from supervisor.power.generator import GeneratorController, GenEvent, GenInputs, in_quiet_hours

NOON = datetime(2026, 11, 29, 12, 0)


def config(**kw: object) -> GeneratorConfig:
    fields: dict[str, object] = {
        "start_output": "generator_start", "running_input": "generator_running",
        "start_timeout_s": 30, "retries": 2, "retry_pause_s": 60, "min_run_s": 1800,
        "warm_up_s": 120, "cool_down_s": 120,
        "quiet_hours": QuietHours(start="22:00", end="07:00"),
        "condition": (
            GeneratorCondition(kind="soc", start_value=30, stop_value=80, start_dwell_s=60,
                               stop_dwell_s=60, quiet_start_value=15, quiet_stop_value=50),
            GeneratorCondition(kind="ac_load", start_value=14, stop_value=8, start_dwell_s=60,
                               stop_dwell_s=300),
        ),
    }
    fields.update(kw)
    return GeneratorConfig(**fields)


@dataclass
class Rig:
    """The controller plus a generator that runs ``crank_s`` after being told to."""

    gen: GeneratorController
    start: datetime = NOON
    crank_s: float = 5
    fails: bool = False
    shore: bool = False
    running: bool = False
    _since: float | None = None
    events: list[tuple[float, GenEvent]] = field(default_factory=list)
    states: list[tuple[float, str]] = field(default_factory=list)

    def step(self, t: float, **values: float | None) -> None:
        if self.gen.run_output:
            self._since = t if self._since is None else self._since
            self.running = not self.fails and t - self._since >= self.crank_s
        else:
            self._since, self.running = None, False
        inp = GenInputs(now=t, local_time=self.start + timedelta(seconds=t),
                        running=self.running, shore=self.shore, **values)
        self.events += [(t, ev) for ev in self.gen.evaluate(inp)]
        if not self.states or self.states[-1][1] != self.gen.state:
            self.states.append((t, self.gen.state))

    def state(self) -> str:
        """The controller's state (a plain str: it changes between calls)."""
        return str(self.gen.state)

    def run(self, t0: int, t1: int, **values: float | None) -> None:
        for t in range(t0, t1):
            self.step(t, **values)


def test_low_soc_starts_warms_up_runs_minimum_time_and_cools_down() -> None:
    rig = Rig(GeneratorController(config()))
    rig.run(0, 59, soc=29)
    assert rig.state() == "stopped"  # dwell not over
    rig.run(59, 300, soc=29)
    assert [s for _, s in rig.states] == ["stopped", "starting", "warm_up", "running"]
    # cranks at 60 s, runs 5 s after (the rig sees the output one step later), warm-up 120 s
    assert [t for t, _ in rig.states[1:]] == [60, 66, 186]
    # SOC recovers quickly, but the minimum run time (30 min from 66 s) holds it
    rig.run(300, 1800, soc=85)
    assert rig.state() == "running"
    rig.run(1800, 2200, soc=85)
    states = dict((s, t) for t, s in rig.states)
    assert states["cool_down"] == 1866 and states["stopped"] == 1986
    assert rig.gen.total_run_s == 1986 - 66


def test_ac_input_is_ignored_during_warm_up_and_cool_down_only() -> None:
    rig = Rig(GeneratorController(config(min_run_s=0)))
    seen = set()
    for t in range(0, 600):
        rig.step(t, soc=25 if t < 200 else 90)
        seen.add((rig.gen.state, rig.gen.ac_input_ignored))
    assert ("warm_up", True) in seen and ("cool_down", True) in seen
    assert ("running", False) in seen


def test_failed_start_is_retried_then_raises_error() -> None:
    rig = Rig(GeneratorController(config()), fails=True)
    rig.run(0, 400, soc=20)
    kinds = [(t, ev.kind) for t, ev in rig.events]
    # three attempts (1 + 2 retries), 30 s timeout each, 60 s pause between
    assert kinds == [(60, "start"), (90, "start_failed"), (150, "start"), (180, "start_failed"),
                     (240, "start"), (270, "failed")]
    assert rig.state() == "error" and rig.gen.run_output is False
    rig.run(400, 1000, soc=10)
    assert rig.state() == "error"  # no auto start from error
    rig.fails = False
    rig.gen.manual_start(1000)
    rig.run(1000, 1010, soc=10)
    assert rig.state() == "warm_up"


def test_quiet_hours_have_their_own_thresholds() -> None:
    night = datetime(2026, 11, 29, 23, 0)
    rig = Rig(GeneratorController(config()), start=night)
    rig.run(0, 600, soc=25)  # 25 % would start it by day; at night the limit is 15 %
    assert rig.state() == "stopped"
    rig.run(600, 700, soc=14)
    assert rig.state() in ("warm_up", "running")
    # a condition without quiet values does not start it at night
    rig2 = Rig(GeneratorController(config()), start=night)
    rig2.run(0, 600, soc=60, ac_load=20)
    assert rig2.state() == "stopped"


def test_quiet_hours_span_midnight() -> None:
    quiet = QuietHours(start="22:00", end="07:00")
    assert in_quiet_hours(quiet, datetime(2026, 1, 1, 23, 30))
    assert in_quiet_hours(quiet, datetime(2026, 1, 1, 6, 59))
    assert not in_quiet_hours(quiet, datetime(2026, 1, 1, 7, 0))
    assert not in_quiet_hours(None, datetime(2026, 1, 1, 23, 0))


def test_shore_power_stops_it_without_waiting_for_the_minimum_run() -> None:
    rig = Rig(GeneratorController(config()))
    rig.run(0, 300, soc=20)
    assert rig.state() == "running"
    rig.shore = True
    rig.run(300, 500, soc=20)
    assert rig.state() == "stopped"
    assert any("shore" in ev.reason for _, ev in rig.events if ev.kind == "stop")


def test_manual_start_and_stop_and_auto_inhibit_after_a_manual_stop() -> None:
    rig = Rig(GeneratorController(config(min_run_s=0)))
    rig.gen.manual_start(0)
    rig.run(0, 200, soc=90)
    assert rig.state() == "running"
    assert rig.gen.reason == "manual"
    rig.gen.manual_stop(200)
    rig.run(200, 400, soc=90)
    assert rig.state() == "stopped"
    # low SOC while the crew had stopped it by hand: auto start waits until it clears once
    rig.run(400, 500, soc=20)
    rig.gen.manual_stop(500)
    rig.run(500, 800, soc=20)
    assert rig.state() == "stopped"
    rig.run(800, 900, soc=90)  # condition clears (stop dwell 60 s)
    rig.run(900, 1100, soc=20)  # and comes back: auto start again
    assert rig.state() in ("warm_up", "running")


def test_chattering_value_does_not_start_it() -> None:
    rig = Rig(GeneratorController(config()))
    for t in range(0, 3600):
        rig.step(t, soc=29 if (t // 45) % 2 else 31)  # below for 45 s at a time: < 60 s dwell
    assert rig.state() == "stopped"


def test_conflicting_conditions_keep_it_running_until_all_clear() -> None:
    rig = Rig(GeneratorController(config(min_run_s=0)))
    rig.run(0, 300, soc=25, ac_load=20)
    assert set(rig.gen.active_conditions()) == {"soc", "ac_load"}
    rig.run(300, 500, soc=90, ac_load=20)  # SOC satisfied, AC load still high
    assert rig.state() == "running"
    assert rig.gen.active_conditions() == ["ac_load"]
    rig.run(500, 1000, soc=90, ac_load=5)
    assert rig.state() == "stopped"


def test_exercise_run_after_the_interval() -> None:
    rig = Rig(GeneratorController(config(exercise_interval_days=7, exercise_duration_s=900,
                                         min_run_s=0)))
    week = 7 * 86400
    rig.step(0, soc=90)
    rig.step(week - 10, soc=90)
    assert rig.state() == "stopped"
    rig.run(week, week + 100, soc=90)
    assert rig.gen.reason == "exercise run"
    rig.run(week + 100, week + 1200, soc=90)
    assert rig.state() == "stopped"


def test_disabled_auto_start() -> None:
    rig = Rig(GeneratorController(config(), auto_enabled=False))
    rig.run(0, 600, soc=10)
    assert rig.state() == "stopped"
