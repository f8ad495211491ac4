"""Generator automatic start/stop, after Victron's generator start/stop, as a state machine.

Pure logic on (inputs, time). Conditions (SOC, battery voltage, AC load, inverter overload or
high temperature) each have start and stop values with dwell times, and other values (or none)
in quiet hours. A run lasts at least ``min_run_s``; warm-up and cool-down keep the AC input
ignored; a generator not running within ``start_timeout_s`` is tried ``retries`` more times and
then the controller stops in ``error`` with an alarm. Shore power stops it. Manual start/stop
and periodic exercise runs are supported.

States: stopped -> starting -> warm_up -> running -> cool_down -> stopped; error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Literal

from supervisor.power.config import GeneratorCondition, GeneratorConfig, QuietHours

GenState = Literal["stopped", "starting", "warm_up", "running", "cool_down", "error"]
GEN_STATES: tuple[GenState, ...] = ("stopped", "starting", "warm_up", "running", "cool_down",
                                    "error")
FALLING = ("soc", "voltage")  # start when low; the others start when high


@dataclass(frozen=True)
class GenInputs:
    now: float
    local_time: datetime
    running: bool
    shore: bool
    soc: float | None = None
    voltage: float | None = None
    ac_load: float | None = None
    inverter_overload: float | None = None
    inverter_high_temperature: float | None = None
    climate_demand: float | None = None  # 1: the A/C is asked for and needs the generator

    def value(self, kind: str) -> float | None:
        value: float | None = getattr(self, kind)
        return value


@dataclass(frozen=True)
class GenEvent:
    kind: str  # start | started | stop | stopped | start_failed | failed | manual
    reason: str


@dataclass
class _Cond:
    spec: GeneratorCondition
    active: bool = False
    since: float | None = None  # beyond the threshold that changes ``active``, since


def in_quiet_hours(quiet: QuietHours | None, local: datetime) -> bool:
    """Whether ``local`` falls in the quiet hours (which may span midnight)."""
    if quiet is None:
        return False
    start = time.fromisoformat(quiet.start)
    end = time.fromisoformat(quiet.end)
    now = local.time()
    return start <= now < end if start <= end else now >= start or now < end


@dataclass
class GeneratorController:
    cfg: GeneratorConfig
    auto_enabled: bool = True
    state: GenState = "stopped"
    reason: str = ""
    run_output: bool = False
    attempts: int = 0
    since: float = 0.0  # entry time of the current state
    run_started: float | None = None
    last_run_end: float | None = None
    total_run_s: float = 0.0
    manual: Literal["start", "stop"] | None = None
    exercise_until: float | None = None
    _conds: list[_Cond] = field(init=False)
    _retry_at: float | None = None
    _inhibit_auto: bool = False  # after a manual stop, until every condition has cleared

    def __post_init__(self) -> None:
        self._conds = [_Cond(spec) for spec in self.cfg.condition]

    # ---- questions -------------------------------------------------------------------------

    @property
    def ac_input_ignored(self) -> bool:
        """Warm-up and cool-down: the inverter/charger must not load the generator."""
        return self.state in ("warm_up", "cool_down")

    def active_conditions(self) -> list[str]:
        return [c.spec.kind for c in self._conds if c.active]

    # ---- crew commands -----------------------------------------------------------------------

    def manual_start(self, now: float) -> GenEvent:
        self.manual = "start"
        self._inhibit_auto = False
        if self.state == "error":
            self._enter("stopped", now)
            self.attempts = 0
        return GenEvent("manual", "manual start by the crew")

    def manual_stop(self, now: float) -> GenEvent:
        self.manual = "stop"
        self.exercise_until = None
        self._inhibit_auto = any(c.active for c in self._conds)
        return GenEvent("manual", "manual stop by the crew")

    # ---- evaluation ----------------------------------------------------------------------------

    def evaluate(self, inp: GenInputs) -> list[GenEvent]:
        """Apply the rules once; returns what happened."""
        self._update_conditions(inp)
        want, why = self._want_run(inp)
        events: list[GenEvent] = []
        now = inp.now
        if self.state == "stopped":
            if want and (self._retry_at is None or now >= self._retry_at):
                self._retry_at = None
                self._crank(now, why, events)
        elif self.state == "starting":
            if inp.running:
                self._enter("warm_up", now)
                self.run_started = now
                events.append(GenEvent("started", f"running after {self.attempts} start(s)"))
            elif not want:
                self._stop_now(now, events, why or "no longer needed")
            elif now - self.since >= self.cfg.start_timeout_s:
                self._start_failed(now, events)
        elif self.state in ("warm_up", "running", "cool_down"):
            self._run_phases(inp, want, why, events)
        return events

    def _run_phases(self, inp: GenInputs, want: bool, why: str,
                    events: list[GenEvent]) -> None:
        now = inp.now
        if not inp.running:  # it stopped by itself (out of fuel, fault)
            self._account_run(now)
            self.run_output = False
            self._start_failed(now, events, "generator stopped by itself")
            return
        if self.state == "warm_up" and now - self.since >= self.cfg.warm_up_s:
            self._enter("running", now)
        if self.state == "cool_down":
            if want:
                self._enter("running", now)
                self.reason = why
            elif now - self.since >= self.cfg.cool_down_s:
                self._stop_now(now, events, self.reason)
            return
        if want:
            self.reason = why
            return
        forced = self.manual == "stop" or (inp.shore and self.cfg.stop_on_shore)
        min_run_done = self.run_started is not None and \
            now - self.run_started >= self.cfg.min_run_s
        if forced or min_run_done:
            self.reason = "shore power" if inp.shore and self.cfg.stop_on_shore else (
                "manual stop" if self.manual == "stop" else "conditions cleared")
            self._enter("cool_down", now)
            events.append(GenEvent("stop", f"cool-down: {self.reason}"))

    def _want_run(self, inp: GenInputs) -> tuple[bool, str]:
        if inp.shore and self.cfg.stop_on_shore:
            return False, "shore power"
        if self.manual == "stop":
            return False, "manual stop"
        if self.manual == "start":
            return True, "manual"
        if self.exercise_until is not None:
            if inp.now < self.exercise_until:
                return True, "exercise run"
            self.exercise_until = None
        if self.state == "error" or not self.auto_enabled or self._inhibit_auto:
            return False, ""
        active = self.active_conditions()
        if active:
            return True, f"condition: {', '.join(active)}"
        if self._exercise_due(inp):
            self.exercise_until = inp.now + self.cfg.exercise_duration_s
            return True, "exercise run"
        return False, ""

    def _exercise_due(self, inp: GenInputs) -> bool:
        interval = self.cfg.exercise_interval_days * 86400
        if interval <= 0 or in_quiet_hours(self.cfg.quiet_hours, inp.local_time):
            return False
        last = self.last_run_end if self.last_run_end is not None else self.since
        return inp.now - last >= interval

    def _update_conditions(self, inp: GenInputs) -> None:
        quiet = in_quiet_hours(self.cfg.quiet_hours, inp.local_time)
        for cond in self._conds:
            spec = cond.spec
            start, stop = spec.start_value, spec.stop_value
            if quiet:
                if spec.quiet_start_value is None or spec.quiet_stop_value is None:
                    cond.active, cond.since = False, None  # this condition sleeps at night
                    continue
                start, stop = spec.quiet_start_value, spec.quiet_stop_value
            value = inp.value(spec.kind)
            if value is None:
                cond.since = None  # no trustworthy value: hold the present decision
                continue
            falling = spec.kind in FALLING
            if not cond.active:
                beyond = value <= start if falling else value >= start
                dwell = spec.start_dwell_s
            else:
                beyond = value >= stop if falling else value <= stop
                dwell = spec.stop_dwell_s
            if not beyond:
                cond.since = None
                continue
            cond.since = inp.now if cond.since is None else cond.since
            if inp.now - cond.since >= dwell:
                cond.active, cond.since = not cond.active, None
        if self._inhibit_auto and not any(c.active for c in self._conds):
            self._inhibit_auto = False

    # ---- transitions -----------------------------------------------------------------------------

    def _enter(self, state: GenState, now: float) -> None:
        self.state, self.since = state, now

    def _crank(self, now: float, why: str, events: list[GenEvent]) -> None:
        self.attempts += 1
        self.run_output = True
        self.reason = why
        self._enter("starting", now)
        events.append(GenEvent("start", f"start attempt {self.attempts}: {why}"))

    def _start_failed(self, now: float, events: list[GenEvent],
                      what: str = "not running") -> None:
        self.run_output = False
        if self.attempts <= self.cfg.retries:
            self._enter("stopped", now)
            self._retry_at = now + self.cfg.retry_pause_s
            events.append(GenEvent("start_failed",
                                   f"{what} after attempt {self.attempts}; retry in "
                                   f"{self.cfg.retry_pause_s:.0f} s"))
            return
        self._enter("error", now)
        self.manual = None
        events.append(GenEvent("failed", f"{what} after {self.attempts} attempt(s)"))

    def _stop_now(self, now: float, events: list[GenEvent], why: str) -> None:
        self._account_run(now)
        self.run_output = False
        self.attempts = 0
        self.manual = None  # a manual run or stop ends here (a stop may leave auto inhibited)
        self._enter("stopped", now)
        events.append(GenEvent("stopped", why))

    def _account_run(self, now: float) -> None:
        if self.run_started is not None:
            self.total_run_s += now - self.run_started
            self.run_started = None
        self.last_run_end = now
