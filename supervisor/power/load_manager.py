"""Load manager: which circuits may be on, from the battery, the AC input and the crew.

Pure logic on (inputs, time) -> decisions, so minute-long rules are tested in virtual time.

* **Priority shedding** (emergency-vehicle practice): circuits carry a priority 0-8; each shed
  step covers one priority. Steps shed one at a time, least important first, when the battery
  (SOC where the monitor is trusted, else voltage compensated for the current) stays below
  the step's threshold for the delay. A shed step stays off at least ``min_off_s`` and until
  its restore threshold has held for ``restore_hold_s``; steps restore in reverse order, so a
  less important step never comes back while a more important one is still off.
* **Low-voltage disconnect**: below the cut-off for its delay, every sheddable step goes off
  at once (they then restore through the normal rules).
* **AC input limit**: AC circuits are shed one at a time while the shore/generator input
  current stays over the configured limit.
* **Crew override**: suspends shedding (not the low-voltage disconnect) for a while.
* **Locks**: a circuit whose lock is set (a diesel heater in its after-run) is never cut.
* **Driving / parked**: circuits may be allowed only while parked or only while driving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from supervisor.power.config import Circuit, SheddingConfig, ShedStep


@dataclass(frozen=True)
class LoadInputs:
    """What the load manager looks at; ``None`` means not known well enough to act on."""

    now: float
    voltage: float | None
    current: float | None  # battery current, negative when discharging
    soc: float | None
    ac_input_current: float | None
    ac_source_active: bool
    ac_input_limit: float | None
    driving: bool = False
    locked: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LoadEvent:
    """A shed or restore decision, with the reason the crew and the log see."""

    kind: str  # shed | restore | override_started | override_ended
    circuits: tuple[str, ...]
    reason: str
    step: int | None = None


@dataclass
class _StepState:
    spec: ShedStep
    shed: bool = False
    shed_at: float = 0.0
    below_since: float | None = None
    above_since: float | None = None
    reason: str = ""


@dataclass
class LoadManager:
    circuits: tuple[Circuit, ...]
    timing: SheddingConfig
    nominal_voltage: float = 12.0
    steps: list[_StepState] = field(init=False)
    ac_shed: list[str] = field(default_factory=list)  # in the order they were shed
    override_until: float | None = None
    _lvd_below_since: float | None = None
    _ac_over_since: float | None = None
    _ac_ok_since: float | None = None
    _ac_last_change: float = float("-inf")

    def __post_init__(self) -> None:
        # shed order: the least important (highest number) first
        ordered = sorted(self.timing.step, key=lambda s: -s.priority)
        self.steps = [_StepState(spec) for spec in ordered]
        self._by_name = {c.name: c for c in self.circuits}

    # ---- questions ---------------------------------------------------------------------

    @property
    def scale(self) -> float:
        return self.nominal_voltage / 12.0

    def override_active(self, now: float) -> bool:
        return self.override_until is not None and now < self.override_until

    def shed_reason(self, name: str) -> str | None:
        """Why the circuit is shed now, or None when it is not."""
        circuit = self._by_name[name]
        if name in self.ac_shed:
            return "AC input over its limit"
        for st in self.steps:
            if st.shed and circuit.priority == st.spec.priority:
                return st.reason
        return None

    def allowed(self, name: str, driving: bool) -> bool:
        """Whether the circuit may be on in the present driving state."""
        rule = self._by_name[name].allowed
        return rule == "always" or (rule == "driving") == driving

    def desired(self, wanted: Mapping[str, bool], actual: Mapping[str, bool | None],
                inp: LoadInputs) -> dict[str, bool]:
        """The state each circuit should be in now."""
        out: dict[str, bool] = {}
        for c in self.circuits:
            on = wanted.get(c.name, False) and self.allowed(c.name, inp.driving)
            if self.shed_reason(c.name) is not None:
                on = False
            if c.name in inp.locked and actual.get(c.name) is not False:
                on = True  # never cut while locked (a heater burning or running on)
            out[c.name] = on
        return out

    def shed_step_count(self) -> int:
        return sum(1 for st in self.steps if st.shed)

    # ---- the crew override ----------------------------------------------------------------

    def start_override(self, now: float) -> list[LoadEvent]:
        """Suspend shedding for ``override_s``; everything shed comes back (staggered)."""
        self.override_until = now + self.timing.override_s
        restored = self._restore_all()
        return [LoadEvent("override_started", restored,
                          f"crew override for {self.timing.override_s / 60:.0f} min")]

    def end_override(self, now: float, why: str = "ended by the crew") -> list[LoadEvent]:
        if self.override_until is None:
            return []
        self.override_until = None
        for st in self.steps:
            st.below_since = st.above_since = None
        return [LoadEvent("override_ended", (), why)]

    def _restore_all(self) -> tuple[str, ...]:
        names: list[str] = list(self.ac_shed)
        for st in self.steps:
            if st.shed:
                names += self._step_circuits(st)
            st.shed, st.below_since, st.above_since = False, None, None
        self.ac_shed.clear()
        return tuple(names)

    # ---- evaluation ----------------------------------------------------------------------

    def evaluate(self, inp: LoadInputs) -> list[LoadEvent]:
        """Apply the rules once; returns what was shed or restored (and why)."""
        events: list[LoadEvent] = []
        if self.override_until is not None and inp.now >= self.override_until:
            events += self.end_override(inp.now, "override time is over")
        events += self._low_voltage_disconnect(inp)
        if not self.override_active(inp.now):
            events += self._battery_steps(inp)
            events += self._ac_input(inp)
        return events

    def _metric(self, st: _StepState, inp: LoadInputs) -> tuple[bool, bool, str] | None:
        """(below the shed threshold, at/above the restore threshold, description)."""
        spec = st.spec
        if self.timing.use_soc and inp.soc is not None and spec.shed_soc is not None \
                and spec.restore_soc is not None:
            return (inp.soc < spec.shed_soc, inp.soc >= spec.restore_soc,
                    f"SOC {inp.soc:.1f} %")
        if inp.voltage is None or inp.current is None:
            return None
        volts = inp.voltage - inp.current * self.timing.compensation_ohm
        return (volts < spec.shed_voltage_per_12v * self.scale,
                volts >= spec.restore_voltage_per_12v * self.scale,
                f"battery {volts:.2f} V (load-compensated)")

    def _battery_steps(self, inp: LoadInputs) -> list[LoadEvent]:
        shed = [st for st in self.steps if st.shed]
        waiting = [st for st in self.steps if not st.shed]
        events: list[LoadEvent] = []
        if waiting:  # only the next step in shed order may go
            st = waiting[0]
            # A more important step's condition pulls this one along: priority order holds
            # even when steps judge by different measures (SOC here, voltage there).
            judged = [(w, self._metric(w, inp)) for w in waiting]
            trigger = next(((w, m) for w, m in judged if m is not None and m[0]), None)
            if trigger is None:
                st.below_since = None  # fine, or unknown battery: neither shed nor restore
            else:
                st.below_since = inp.now if st.below_since is None else st.below_since
                if inp.now - st.below_since >= self.timing.delay_s:
                    src, (_, _, what) = trigger
                    limit = self._threshold_text(src, what)
                    events.append(self._shed_step(
                        st, inp.now, f"{what} below {limit} for {self.timing.delay_s:.0f} s"))
                    return events
        if shed:  # only the last shed step (the most important one off) may return
            st = shed[-1]
            metric = self._metric(st, inp)
            if metric is None or not metric[1]:
                st.above_since = None
                return events
            st.above_since = inp.now if st.above_since is None else st.above_since
            held = inp.now - st.above_since >= self.timing.restore_hold_s
            if held and inp.now - st.shed_at >= self.timing.min_off_s:
                st.shed, st.above_since, st.below_since = False, None, None
                events.append(LoadEvent(
                    "restore", self._step_circuits(st),
                    f"{metric[2]} back above the restore level for "
                    f"{self.timing.restore_hold_s:.0f} s", st.spec.priority))
        return events

    def _threshold_text(self, st: _StepState, described: str) -> str:
        if described.startswith("SOC"):
            return f"{st.spec.shed_soc:.0f} %"
        return f"{st.spec.shed_voltage_per_12v * self.scale:.2f} V"

    def _shed_step(self, st: _StepState, now: float, reason: str) -> LoadEvent:
        st.shed, st.shed_at, st.reason = True, now, reason
        st.below_since = st.above_since = None
        return LoadEvent("shed", self._step_circuits(st), reason, st.spec.priority)

    def _step_circuits(self, st: _StepState) -> tuple[str, ...]:
        return tuple(c.name for c in self.circuits if c.priority == st.spec.priority)

    def _low_voltage_disconnect(self, inp: LoadInputs) -> list[LoadEvent]:
        cutoff = self.timing.lvd_voltage_per_12v * self.scale
        if inp.voltage is None or inp.voltage >= cutoff:
            self._lvd_below_since = None
            return []
        if self._lvd_below_since is None:
            self._lvd_below_since = inp.now
        if inp.now - self._lvd_below_since < self.timing.lvd_delay_s:
            return []
        self._lvd_below_since = None
        reason = (f"low-voltage disconnect: battery {inp.voltage:.2f} V below "
                  f"{cutoff:.2f} V for {self.timing.lvd_delay_s:.0f} s")
        return [self._shed_step(st, inp.now, reason) for st in self.steps if not st.shed]

    def _ac_input(self, inp: LoadInputs) -> list[LoadEvent]:
        if not inp.ac_source_active or inp.ac_input_limit is None \
                or inp.ac_input_current is None:
            self._ac_over_since = self._ac_ok_since = None
            if self.ac_shed and not inp.ac_source_active:
                names = tuple(self.ac_shed)
                self.ac_shed.clear()
                return [LoadEvent("restore", names, "AC input source gone: limit no longer "
                                  "applies")]
            return []
        now, limit = inp.now, inp.ac_input_limit
        if inp.ac_input_current > limit:
            self._ac_ok_since = None
            self._ac_over_since = now if self._ac_over_since is None else self._ac_over_since
            # one circuit per delay: give the last cut time to show in the current
            if now - self._ac_over_since >= self.timing.ac_input_delay_s \
                    and now - self._ac_last_change >= self.timing.ac_input_delay_s:
                candidates = sorted(
                    (c for c in self.circuits if c.kind == "ac" and c.priority > 0
                     and c.name not in self.ac_shed and c.name not in inp.locked),
                    key=lambda c: -c.priority)
                if candidates:
                    name = candidates[0].name
                    self.ac_shed.append(name)
                    self._ac_last_change = now
                    return [LoadEvent("shed", (name,),
                                      f"AC input {inp.ac_input_current:.1f} A over the "
                                      f"{limit:.0f} A limit")]
            return []
        self._ac_over_since = None
        if not self.ac_shed:
            return []
        last = self._by_name[self.ac_shed[-1]]
        fits = inp.ac_input_current + last.nominal_current_a \
            <= limit * self.timing.ac_input_restore_margin
        if not fits:
            self._ac_ok_since = None
            return []
        self._ac_ok_since = now if self._ac_ok_since is None else self._ac_ok_since
        if now - self._ac_ok_since >= self.timing.restore_hold_s:
            self.ac_shed.pop()
            self._ac_ok_since = None
            self._ac_last_change = now
            return [LoadEvent("restore", (last.name,),
                              f"AC input has room for {last.nominal_current_a:.1f} A")]
        return []
