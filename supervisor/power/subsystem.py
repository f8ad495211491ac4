"""Power subsystem: the van never runs out of power by surprise.

One subsystem in which load shedding, the generator and the runtime forecast work together:

* monitoring of the battery, the AC input (shore/generator meter, MultiPlus), solar and the
  inverter, bound from device registers to points by ``bindings.py`` (data);
* the load manager (``load_manager.py``) decides which circuits may be on; the subsystem's
  actuator (the one writer of its outputs) switches them, offs at once and ons staggered
  against inrush, each confirmed by read-back; commands only change what is wanted;
* the generator controller (``generator.py``) runs the generator through GPIO, and keeps the
  MultiPlus off the AC input during warm-up and cool-down;
* the runtime forecast (``runtime_forecast.py``) publishes the runtime now and "what if";
* alarms in Polish and English; crew settings persisted in SQLite.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drivers.errors import WriteError
from drivers.register_codec import Value
from supervisor.climate.subsystem import EXTRA_CURRENT as CLIMATE_EXTRA
from supervisor.climate.subsystem import NEEDS_GENERATOR as CLIMATE_NEEDS_GENERATOR
from supervisor.core.commands import ON_BOARD, ActionSpec, ArgSpec, CommandFailed
from supervisor.core.outputs import OutputDef
from supervisor.core.points import PointDef, PointType, Scalar
from supervisor.core.subsystem import Context
from supervisor.power.bindings import ALARMS, BINDINGS
from supervisor.power.config import Circuit, PowerConfig
from supervisor.power.generator import GEN_STATES, GeneratorController, GenEvent, GenInputs
from supervisor.power.load_manager import LoadEvent, LoadInputs, LoadManager
from supervisor.power.runtime_forecast import RuntimeForecast

LOOP_S = 0.5
CONFIRM_S = 15.0  # a command waits this long for its output's read-back (stagger included)
ALARM_HYSTERESIS_C = 3.0


class PowerSubsystem:
    def __init__(self, ctx: Context, cfg: PowerConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.store = ctx.points
        self.alarms = ctx.alarms
        self.settings = ctx.settings
        self._wall = ctx.clock.wall  # timestamps and the time of day
        self._mono = ctx.clock.monotonic  # every delay and duration of the rules
        self.nominal_v = float(ctx.vehicle.battery_nominal_voltage)
        self.low_voltage = cfg.low_voltage_per_12v * self.nominal_v / 12
        self._low_voltage_since: float | None = None
        self._last_source: Scalar | None = None
        self.circuits = {c.name: c for c in cfg.circuit}
        self.wanted = {c.name: bool(ctx.settings.get(f"circuit/{c.name}", c.default_on))
                       for c in cfg.circuit}
        self.shore_limit = float(ctx.settings.get("shore_current_limit_a",
                                                  cfg.shore_current_limit_a))
        self.inverter_mode = str(ctx.settings.get("inverter_mode", "on"))
        self.loads = LoadManager(cfg.circuit, cfg.shedding, self.nominal_v)
        self.generator: GeneratorController | None = None
        if cfg.generator is not None:
            self.generator = GeneratorController(
                cfg.generator, auto_enabled=bool(ctx.settings.get("generator_auto",
                                                                  cfg.generator.auto_start)))
        self.forecast = RuntimeForecast(cfg.capacity_ah, cfg.low_soc_critical)
        self.actuator = ctx.actuator(cfg.shedding.stagger_s)
        self._define_points()
        self._declare_outputs()
        for adef in ALARMS:
            ctx.alarms.define(adef)
        self._register_actions()

    # ---- points and outputs ---------------------------------------------------------------

    def _define_points(self) -> None:
        devices = self.ctx.devices
        for role, reg, pid, deadband, precision in BINDINGS:
            device = getattr(self.cfg, role)
            if device is not None:
                devices.bind(device, reg, pid, deadband=deadband, precision=precision)
        for c in self.cfg.circuit:
            label = c.label or c.name
            devices.bind(c.device, c.output, f"power/circuit/{c.name}", description=label)
            self.store.define(PointDef(f"power/circuit/{c.name}/wanted", "bool",
                                       description=f"{label}: chosen by the crew"))
            self.store.define(PointDef(f"power/circuit/{c.name}/shed", "string",
                                       description=f"{label}: why it is shed ('' if not)"))
            self.store.define(PointDef(f"power/runtime/with/{c.name}", "number", "s",
                                       f"Runtime with {label} on", deadband=60, precision=0))
        derived: list[tuple[str, PointType, str, str, float]] = [
            ("power/runtime", "number", "s", "Runtime until the floor SOC (null: charging)", 60),
            ("power/load/average_current", "number", "A", "Smoothed net battery load", 0.1),
            ("power/shed/steps", "integer", "", "Shed priority steps", 0),
            ("power/shed/override", "bool", "", "Shedding suspended by the crew", 0),
            ("power/shed/override_until", "number", "s", "End of the override (epoch s)", 0),
            ("power/shore/current_limit", "number", "A", "Shore input limit set by the crew", 0),
        ]
        if self.cfg.inverter is not None:
            derived.append(("power/inverter/mode_setting", "enum", "",
                            "Inverter mode chosen by the crew", 0))
        derived.append(("power/runtime/with_climate", "number", "s",
                        "Runtime with the climate running what it is asked for", 60))
        if self.generator is not None:
            derived += [
                ("power/generator/state", "enum", "", "Generator state", 0),
                ("power/generator/reason", "string", "", "Why it runs, stopped or failed", 0),
                ("power/generator/auto", "bool", "", "Automatic start enabled", 0),
                ("power/generator/run_time_total", "number", "s", "Total run time", 60),
            ]
        enums: dict[str, tuple[str, tuple[str, ...]]] = {
            "power/generator/state": ("generator_state", GEN_STATES),
            "power/inverter/mode_setting": ("inverter_mode", self._inverter_modes())}
        for pid, ptype, unit, description, deadband in derived:
            enum_set, values = enums.get(pid, ("", ()))
            self.store.define(PointDef(pid, ptype, unit, description, deadband=deadband,
                                       enum=values, enum_set=enum_set,
                                       precision=1 if unit == "A" else 0))

    def _inverter_modes(self) -> tuple[str, ...]:
        if self.cfg.inverter is None:
            return ()
        return tuple(self.ctx.devices.profile(self.cfg.inverter).enum_of("mode").values())

    def _declare_outputs(self) -> None:
        declare = self.ctx.outputs.declare
        for c in self.cfg.circuit:
            declare(OutputDef(f"power/circuit/{c.name}", c.safe_state, device=c.device,
                              register=c.output, lock=c.lock))
        if self.cfg.inverter is not None:
            # settings: any value is as safe as another, the supervisor leaves them as they are
            declare(OutputDef("power/inverter/mode", None, device=self.cfg.inverter,
                              register="mode"))
            declare(OutputDef("power/inverter/ac_in_current_limit", None,
                              device=self.cfg.inverter, register="ac_in_current_limit"))
        gen = self.cfg.generator
        if gen is not None:
            line = next(ln for ln in self.ctx.config.gpio.line if ln.name == gen.start_output)
            declare(OutputDef("power/generator/run", line.safe_state, line=gen.start_output))

    def _publish(self, now: float) -> None:
        """The subsystem's own points; ``now`` is the rules' (monotonic) time."""
        ts = self._wall()

        def put(pid: str, value: Scalar | None) -> None:
            self.store.update(pid, value, ts)

        for name in self.circuits:
            put(f"power/circuit/{name}/wanted", self.wanted[name])
            put(f"power/circuit/{name}/shed", self.loads.shed_reason(name) or "")
        put("power/shed/steps", self.loads.shed_step_count())
        put("power/shed/override", self.loads.override_active(now))
        until = self.loads.override_until
        put("power/shed/override_until", 0 if until is None else round(ts + until - now))
        put("power/shore/current_limit", self.shore_limit)
        if self.cfg.inverter is not None:
            put("power/inverter/mode_setting", self.inverter_mode)
        gen = self.generator
        if gen is not None:
            put("power/generator/state", gen.state)
            put("power/generator/reason", gen.reason)
            put("power/generator/auto", gen.auto_enabled)
            run = gen.total_run_s + (now - gen.run_started if gen.run_started else 0)
            put("power/generator/run_time_total", round(run))
        self._publish_forecast(now)

    def _publish_forecast(self, now: float) -> None:
        current = self._num("power/battery/current")
        if current is not None:
            self.forecast.update(now, current)
        soc = self._num("power/battery/soc")
        ttg = self._num("power/battery/time_to_go")
        runtime = self.forecast.runtime_s(soc, ttg)
        known = soc is not None  # with a SOC, "no runtime" means charging: no limit
        ts = self._wall()

        def put(pid: str, value: Scalar | None, none_ok: bool = False) -> None:
            self.store.update(pid, value, ts, none_ok)

        put("power/runtime", _rounded(runtime), known)
        put("power/load/average_current", _rounded(self.forecast.load_a, 1))
        for name, circuit in self.circuits.items():
            extra = 0.0 if self._actual(name) else self._dc_amps(circuit)
            put(f"power/runtime/with/{name}",
                _rounded(self.forecast.runtime_s(soc, ttg, extra_a=extra)), known)
        # the climate subsystem says what it would add (heater, A/C through the inverter)
        climate = self._num(CLIMATE_EXTRA)
        put("power/runtime/with_climate",
            _rounded(self.forecast.runtime_s(soc, ttg, extra_a=climate or 0.0)),
            known and climate is not None)

    def _dc_amps(self, circuit: Circuit) -> float:
        """Battery current a circuit adds: AC loads through the inverter (90 % efficient)."""
        if circuit.kind == "dc":
            return circuit.nominal_current_a
        volts = self._num("power/battery/voltage") or self.nominal_v
        return circuit.nominal_current_a * 230 / 0.9 / volts

    # ---- helpers on points -----------------------------------------------------------------

    def _num(self, pid: str) -> float | None:
        value = self.store.good(pid)
        return float(value) if isinstance(value, int | float) and not isinstance(
            value, bool) else None

    def _actual(self, name: str) -> bool | None:
        value = self.store.good(f"power/circuit/{name}")
        return value if isinstance(value, bool) else None

    def _driving(self) -> bool:
        return self.ctx.driving()

    def _ac_source(self) -> Scalar | None:
        return self.store.good("power/ac/source")

    def _locked(self) -> frozenset[str]:
        """Circuits whose lock is set; a lock that cannot be read counts as set (a heater
        whose state is unknown may be burning)."""
        return frozenset(c.name for c in self.cfg.circuit
                         if c.lock is not None and self.store.good(c.lock) is not False)

    def _load_inputs(self, now: float) -> LoadInputs:
        source = self._ac_source()
        ac_current = self._num("power/ac/input_current")
        if ac_current is None:
            ac_current = self._num("power/inverter/ac_in_current")
        return LoadInputs(
            now=now, voltage=self._num("power/battery/voltage"),
            current=self._num("power/battery/current"), soc=self._num("power/battery/soc"),
            ac_input_current=ac_current, ac_source_active=source in ("shore", "generator",
                                                                     "grid"),
            ac_input_limit=self.shore_limit, driving=self._driving(), locked=self._locked())

    # ---- the rules, once per loop -------------------------------------------------------------

    def evaluate(self, now: float) -> None:
        """Alarms, load manager, generator and forecast on the current points."""
        self._battery_alarms(now)
        self._inverter_and_shore_alarms(now)
        for event in self.loads.evaluate(self._load_inputs(now)):
            self._load_event(event, now)
        if self.generator is not None:
            self._evaluate_generator(now)
        shed = [n for n in self.circuits if self.loads.shed_reason(n)]
        self.alarms.set("power/load_shed", bool(shed), self._wall(), ", ".join(shed))
        self.alarms.set("power/shed_override", self.loads.override_active(now), self._wall())
        self._publish(now)

    def _battery_alarms(self, now: float) -> None:
        soc = self._num("power/battery/soc")
        if soc is not None:
            hyst = self.cfg.soc_hysteresis
            for aid, limit in (("power/low_soc", self.cfg.low_soc_warning),
                               ("power/critical_soc", self.cfg.low_soc_critical)):
                state = self.alarms.states.get(aid)
                active = state is not None and state.active
                self.alarms.set(aid, soc < limit or (active and soc < limit + hyst), self._wall(),
                                f"SOC {soc:.0f} %")
        volts = self._num("power/battery/voltage")
        if volts is not None:
            if volts < self.low_voltage:
                if self._low_voltage_since is None:
                    self._low_voltage_since = now
                if now - self._low_voltage_since >= self.cfg.low_voltage_delay_s:
                    self.alarms.set("power/low_voltage", True, self._wall(), f"{volts:.2f} V")
            else:
                self._low_voltage_since = None
                self.alarms.set("power/low_voltage", False, self._wall())
        temp = self._num("power/battery/temperature")
        if temp is not None:
            limit = self.cfg.high_battery_temperature
            active = "power/high_battery_temperature" in self.alarms.active()
            self.alarms.set("power/high_battery_temperature",
                            temp > limit or (active and temp > limit - ALARM_HYSTERESIS_C),
                            self._wall(), f"{temp:.1f} °C")

    def _inverter_and_shore_alarms(self, now: float) -> None:
        for aid, pid in (("power/inverter_overload", "power/inverter/overload"),
                         ("power/inverter_high_temperature", "power/inverter/high_temperature")):
            level = self._num(pid)
            if level is not None:
                self.alarms.set(aid, level >= 1, self._wall(), "alarm" if level >= 2 else "warning")
        source = self._ac_source()
        if source is None:
            return
        if source == "shore":
            self.alarms.set("power/shore_lost", False, self._wall())
        elif self._last_source == "shore":
            self.alarms.set("power/shore_lost", True, self._wall(), f"AC input now: {source}")
        self._last_source = source

    def _load_event(self, event: LoadEvent, now: float) -> None:
        self.ctx.log.info("load_" + event.kind, circuits=list(event.circuits), reason=event.reason)
        self.ctx.event({"kind": "power", "what": event.kind, "circuits": list(event.circuits),
                        "step": event.step, "reason": event.reason})

    def _evaluate_generator(self, now: float) -> None:
        gen = self.generator
        assert gen is not None and self.cfg.generator is not None
        running = self.store.good(f"io/{self.cfg.generator.running_input}") is True
        overload = self._num("power/inverter/overload")
        inp = GenInputs(
            now=now, local_time=datetime.fromtimestamp(self._wall()), running=running,
            shore=self._ac_source() == "shore", soc=self._num("power/battery/soc"),
            voltage=self._num("power/battery/voltage"),
            ac_load=self._num("power/inverter/ac_out_current"), inverter_overload=overload,
            inverter_high_temperature=self._num("power/inverter/high_temperature"),
            climate_demand=_flag(self.store.good(CLIMATE_NEEDS_GENERATOR)))
        for event in gen.evaluate(inp):
            self._generator_event(event, now)
        self.alarms.set("power/generator_failed", gen.state == "error", self._wall(), gen.reason)

    def _generator_event(self, event: GenEvent, now: float) -> None:
        self.ctx.log.info("generator_" + event.kind, reason=event.reason)
        self.ctx.event({"kind": "generator", "what": event.kind, "reason": event.reason})

    # ---- the actuator ------------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate and write outputs every half second (and at once when woken)."""
        await self.ctx.turns(self.actuator.wake, self._turn)

    async def _turn(self) -> float:
        await self.step()
        return LOOP_S

    async def step(self) -> None:
        """One turn: the rules on the current points, then the writer. Rules time their
        delays on the monotonic clock (a wall clock set an hour forward or back fires no timer
        twice or never); only quiet hours and timestamps follow the wall clock."""
        now = self._mono()
        self.evaluate(now)
        self._set_targets(now)
        await self.actuator.step()

    def stop(self) -> None:
        """Nothing here switches anything on once shutdown began (the port refuses it too)."""

    def _set_targets(self, now: float) -> None:
        """What every output should be now: circuits from the load manager, the crew's
        settings, the generator's run line."""
        actual = {name: self._actual(name) for name in self.circuits}
        desired = self.loads.desired(self.wanted, actual, self._load_inputs(now))
        for name, on in desired.items():
            self.actuator.want(f"power/circuit/{name}", on, inrush=True)
        if self.cfg.inverter is not None:
            gen = self.generator
            mode = "inverter_only" if gen is not None and gen.ac_input_ignored \
                and self.inverter_mode == "on" else self.inverter_mode
            code = self.ctx.devices.profile(self.cfg.inverter).code_of("mode", mode)
            self.actuator.want("power/inverter/mode", code)
            self.actuator.want("power/inverter/ac_in_current_limit", self.shore_limit)
        if self.generator is not None:
            self.actuator.want("power/generator/run", self.generator.run_output)

    async def _confirm(self, output_id: str, value: Value) -> Value | None:
        """Wake the actuator and wait for it to write ``value`` and read it back."""
        self._set_targets(self._mono())
        try:
            return await self.actuator.confirm(output_id, value, CONFIRM_S)
        except WriteError as exc:
            raise CommandFailed(exc.code, str(exc)) from exc

    # ---- actions ------------------------------------------------------------------------------

    def _register_actions(self) -> None:
        reg = self.ctx.actions.register
        if self.circuits:
            reg(ActionSpec(
                "power/circuit", self._circuit_action, ON_BOARD,
                {"circuit": ArgSpec("enum", enum=tuple(self.circuits)), "on": ArgSpec("bool")},
                "Switch a load circuit on or off (confirmed by reading the relay back)"))
            reg(ActionSpec(
                "power/shed_override", self._override_action, ON_BOARD,
                {"active": ArgSpec("bool")},
                f"Suspend load shedding for {self.cfg.shedding.override_s / 60:.0f} min "
                "(or end the suspension)"))
        if self.cfg.inverter is not None:
            reg(ActionSpec(
                "power/inverter/mode", self._mode_action, ON_BOARD,
                {"mode": ArgSpec("enum", enum=self._inverter_modes())},
                "MultiPlus mode: on, off, charger only, inverter only"))
            reg(ActionSpec(
                "power/shore/current_limit", self._limit_action, ON_BOARD,
                {"amps": ArgSpec("number", min=self.cfg.shore_current_limit_min_a,
                                 max=self.cfg.shore_current_limit_max_a)},
                "Shore input current limit: the breaker size of the hook-up"))
        if self.generator is not None:
            reg(ActionSpec(
                "power/generator", self._generator_action, ON_BOARD,
                {"command": ArgSpec("enum", enum=("start", "stop"))},
                "Start or stop the generator by hand"))
            reg(ActionSpec(
                "power/generator/auto", self._generator_auto_action, ON_BOARD,
                {"enabled": ArgSpec("bool")}, "Enable or disable automatic generator start"))

    async def _circuit_action(self, args: dict[str, Any]) -> str:
        name: str = args["circuit"]
        on: bool = args["on"]
        circuit = self.circuits[name]
        if not on and name in self._locked():
            raise CommandFailed("interlock", f"{name} must not be cut now (lock "
                                f"{circuit.lock} is set)", "rejected")
        if on and not self.loads.allowed(name, self._driving()):
            raise CommandFailed("not_allowed", f"{name} is not allowed while "
                                f"{'driving' if self._driving() else 'parked'}", "rejected")
        reason = self.loads.shed_reason(name)
        if on and reason:
            raise CommandFailed("circuit_shed", f"{name} is shed ({reason}); the shedding "
                                "override brings it back", "rejected")
        self.wanted[name] = on
        self.settings.put(f"circuit/{name}", on)
        self.store.update(f"power/circuit/{name}/wanted", on, self._wall())
        await self._confirm(f"power/circuit/{name}", on)
        return f"{name} {'on' if on else 'off'}"

    async def _override_action(self, args: dict[str, Any]) -> str:
        now = self._mono()
        start = self.loads.start_override if args["active"] else self.loads.end_override
        for event in start(now):
            self._load_event(event, now)
        self.evaluate(now)
        if args["active"]:
            return f"shedding suspended for {self.cfg.shedding.override_s / 60:.0f} min"
        return "shedding active again"

    async def _mode_action(self, args: dict[str, Any]) -> str:
        assert self.cfg.inverter is not None
        mode: str = args["mode"]
        self.inverter_mode = mode
        self.settings.put("inverter_mode", mode)
        await self._confirm("power/inverter/mode",
                            self.ctx.devices.profile(self.cfg.inverter).code_of("mode", mode))
        return f"inverter mode {mode}"

    async def _limit_action(self, args: dict[str, Any]) -> str:
        amps = round(float(args["amps"]), 1)
        self.shore_limit = amps
        self.settings.put("shore_current_limit_a", amps)
        await self._confirm("power/inverter/ac_in_current_limit", amps)
        return f"shore current limit {amps:g} A"

    async def _generator_action(self, args: dict[str, Any]) -> str:
        assert self.generator is not None
        now = self._mono()
        if args["command"] == "start":
            event = self.generator.manual_start(now)
        else:
            event = self.generator.manual_stop(now)
        self._generator_event(event, now)
        self.evaluate(now)
        return f"generator {args['command']} requested ({self.generator.state})"

    async def _generator_auto_action(self, args: dict[str, Any]) -> str:
        assert self.generator is not None
        self.generator.auto_enabled = bool(args["enabled"])
        self.settings.put("generator_auto", self.generator.auto_enabled)
        self.evaluate(self._mono())
        return f"automatic start {'enabled' if args['enabled'] else 'disabled'}"


def _flag(value: Scalar | None) -> float | None:
    """A bool point as a condition value (None: unknown, the condition holds)."""
    return None if not isinstance(value, bool) else float(value)


def _rounded(value: float | None, digits: int = 0) -> float | None:
    return None if value is None else round(value, digits)



def build(ctx: Context, cfg: PowerConfig) -> PowerSubsystem:
    """The registry's entry point (see supervisor/registry.py)."""
    return PowerSubsystem(ctx, cfg)
