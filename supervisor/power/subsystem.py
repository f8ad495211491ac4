"""Power subsystem: the van never runs out of power by surprise.

One subsystem in which load shedding, the generator and the runtime forecast work together:

* monitoring of the battery, the AC input (shore/generator meter, MultiPlus), solar and the
  inverter, bound from device registers to points by the tables below (data);
* the load manager (``load_manager.py``) decides which circuits may be on; the actuator here
  switches them, offs at once and ons staggered against inrush, each confirmed by read-back;
* the generator controller (``generator.py``) runs the generator through GPIO, and keeps the
  MultiPlus off the AC input during warm-up and cool-down;
* the runtime forecast (``runtime_forecast.py``) publishes the runtime now and "what if";
* alarms in Polish and English; crew settings persisted in SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog

from drivers.errors import WriteError
from drivers.register_codec import Value
from supervisor.core.alarms import AlarmDef, AlarmManager
from supervisor.core.commands import ActionSpec, ArgSpec, CommandFailed, CommandRouter
from supervisor.core.config import Circuit, PowerConfig, VehicleConfig
from supervisor.core.device_points import DevicePoints, Transform
from supervisor.core.points import PointDef, PointStore, PointType, Scalar
from supervisor.core.storage import Storage
from supervisor.power.generator import GEN_STATES, GeneratorController, GenEvent, GenInputs
from supervisor.power.load_manager import LoadEvent, LoadInputs, LoadManager
from supervisor.power.runtime_forecast import RuntimeForecast

log = structlog.get_logger("supervisor.power.subsystem")

Writer = Callable[[str, str, Value], Awaitable[Value | None]]
EventSink = Callable[[dict[str, Any]], None]
GpioSetter = Callable[[str, bool], None]

AC_SOURCES = {0: "unknown", 1: "grid", 2: "generator", 3: "shore", 240: "none"}
INVERTER_MODES = {1: "charger_only", 2: "inverter_only", 3: "on", 4: "off"}
MODE_CODES = {name: code for code, name in INVERTER_MODES.items()}
INVERTER_STATES = {0: "off", 1: "low_power", 2: "fault", 3: "bulk", 4: "absorption",
                   5: "float", 6: "storage", 7: "equalize", 8: "passthru", 9: "inverting",
                   10: "power_assist", 11: "power_supply", 252: "external_control"}
SOLAR_STATES = {0: "off", 2: "fault", 3: "bulk", 4: "absorption", 5: "float", 6: "storage",
                7: "equalize", 252: "external_control"}
CREW_ROLES = frozenset({"crew", "technician", "hq"})
LOOP_S = 0.5
WRITE_RETRY_S = 5.0
ALARM_HYSTERESIS_C = 3.0

FAST, SLOW = 3.5, 15.0  # max ages (s) after which a point is stale without fresh readings

# fmt: off
# (role in power config, register, point, type, unit, deadband, max age, enum table)
BINDINGS: list[tuple[str, str, str, PointType, str, float, float, dict[int, str] | None]] = [
    ("battery_monitor", "voltage", "power/battery/voltage", "number", "V", 0.01, FAST, None),
    ("battery_monitor", "current", "power/battery/current", "number", "A", 0.1, FAST, None),
    ("battery_monitor", "power", "power/battery/power", "number", "W", 5, FAST, None),
    ("battery_monitor", "soc", "power/battery/soc", "number", "%", 0.1, FAST, None),
    ("battery_monitor", "time_to_go", "power/battery/time_to_go", "number", "s", 60, SLOW, None),
    ("battery_monitor", "temperature", "power/battery/temperature", "number", "degC", 0.2,
     SLOW, None),
    ("system", "active_input_source", "power/ac/source", "enum", "", 0, FAST, AC_SOURCES),
    ("system", "ac_consumption_l1", "power/ac/consumption", "number", "W", 10, FAST, None),
    ("inverter", "mode", "power/inverter/mode", "enum", "", 0, SLOW, INVERTER_MODES),
    ("inverter", "state", "power/inverter/state", "enum", "", 0, FAST, INVERTER_STATES),
    ("inverter", "ac_in_current_limit", "power/inverter/ac_in_current_limit", "number", "A",
     0.1, SLOW, None),
    ("inverter", "ac_in_current", "power/inverter/ac_in_current", "number", "A", 0.1, FAST,
     None),
    ("inverter", "ac_out_current", "power/inverter/ac_out_current", "number", "A", 0.1, FAST,
     None),
    ("inverter", "ac_out_power", "power/inverter/ac_out_power", "number", "W", 10, FAST, None),
    ("inverter", "overload_alarm", "power/inverter/overload", "integer", "", 0, SLOW, None),
    ("inverter", "high_temperature_alarm", "power/inverter/high_temperature", "integer", "", 0,
     SLOW, None),
    ("solar", "pv_power", "power/solar/power", "number", "W", 5, FAST, None),
    ("solar", "battery_current", "power/solar/current", "number", "A", 0.1, FAST, None),
    ("solar", "state", "power/solar/state", "enum", "", 0, SLOW, SOLAR_STATES),
    ("solar", "yield_today", "power/solar/yield_today", "number", "kWh", 0.01, SLOW, None),
    ("ac_meter", "voltage", "power/ac/input_voltage", "number", "V", 1, SLOW, None),
    ("ac_meter", "current", "power/ac/input_current", "number", "A", 0.1, FAST, None),
    ("ac_meter", "active_power", "power/ac/input_power", "number", "W", 10, FAST, None),
    ("ac_meter", "import_active_energy", "power/ac/input_energy", "number", "kWh", 0.01, SLOW,
     None),
]

ALARMS = [
    AlarmDef("power/low_soc", "warning", "Niski poziom naładowania akumulatora",
             "Battery state of charge low"),
    AlarmDef("power/critical_soc", "critical", "Krytycznie niski poziom naładowania akumulatora",
             "Battery state of charge critically low", latching=True),
    AlarmDef("power/low_voltage", "critical", "Niskie napięcie akumulatora",
             "Battery voltage low", latching=True),
    AlarmDef("power/high_battery_temperature", "critical", "Wysoka temperatura akumulatora",
             "Battery temperature high", latching=True),
    AlarmDef("power/inverter_overload", "warning", "Przeciążenie falownika", "Inverter overload"),
    AlarmDef("power/inverter_high_temperature", "warning", "Wysoka temperatura falownika",
             "Inverter temperature high"),
    AlarmDef("power/generator_failed", "critical", "Agregat nie uruchomił się",
             "Generator failed to start", latching=True),
    AlarmDef("power/shore_lost", "warning", "Zanik zasilania z przyłącza zewnętrznego",
             "Shore power lost", latching=True),
    AlarmDef("power/load_shed", "warning", "Odłączono odbiorniki, aby oszczędzać akumulator",
             "Loads shed to save the battery"),
    AlarmDef("power/shed_override", "info", "Odłączanie odbiorników wstrzymane przez załogę",
             "Load shedding suspended by the crew"),
]
# fmt: on


def _enum(table: dict[int, str]) -> Transform:
    return lambda v: table.get(int(v), f"code_{int(v)}")


class PowerSubsystem:
    def __init__(self, cfg: PowerConfig, vehicle: VehicleConfig, store: PointStore,
                 devices: DevicePoints, alarms: AlarmManager, write: Writer,
                 wall: Callable[[], float], storage: Storage, events: EventSink,
                 set_gpio: GpioSetter, ignition_line: str | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.alarms = alarms
        self.storage = storage
        self._write = write
        self._wall = wall
        self._event = events
        self._set_gpio = set_gpio
        self._ignition = ignition_line
        self.nominal_v = float(vehicle.battery_nominal_voltage)
        self.low_voltage = cfg.low_voltage_per_12v * self.nominal_v / 12
        self._low_voltage_since: float | None = None
        self._last_source: Scalar | None = None
        self.circuits = {c.name: c for c in cfg.circuit}
        self.wanted = {c.name: bool(storage.get(f"setting/circuit/{c.name}", c.default_on))
                       for c in cfg.circuit}
        self.shore_limit = float(storage.get("setting/shore_current_limit_a",
                                             cfg.shore_current_limit_a))
        self.inverter_mode = str(storage.get("setting/inverter_mode", "on"))
        self.loads = LoadManager(cfg.circuit, cfg.shedding, self.nominal_v)
        self.generator: GeneratorController | None = None
        if cfg.generator is not None:
            self.generator = GeneratorController(
                cfg.generator, auto_enabled=bool(storage.get("setting/generator_auto",
                                                             cfg.generator.auto_start)))
        self.forecast = RuntimeForecast(cfg.capacity_ah, cfg.low_soc_critical)
        self._retry_at: dict[str, float] = {}  # circuits whose last write failed
        self._last_on = float("-inf")
        self._wake = asyncio.Event()
        self._define_points(devices)
        for adef in ALARMS:
            alarms.define(adef)

    # ---- points ------------------------------------------------------------------------

    def _define_points(self, devices: DevicePoints) -> None:
        for role, reg, pid, ptype, unit, deadband, max_age, table in BINDINGS:
            device = getattr(self.cfg, role)
            if device is None:
                continue
            enum = tuple(table.values()) if table else ()
            self.store.define(PointDef(pid, ptype, unit, deadband=deadband, max_age_s=max_age,
                                       enum=enum))
            devices.bind(device, reg, pid, _enum(table) if table else None)
        for c in self.cfg.circuit:
            label = c.label or c.name
            self.store.define(PointDef(f"power/circuit/{c.name}", "bool",
                                       description=label, max_age_s=FAST))
            devices.bind(c.device, c.output, f"power/circuit/{c.name}")
            self.store.define(PointDef(f"power/circuit/{c.name}/wanted", "bool",
                                       description=f"{label}: chosen by the crew"))
            self.store.define(PointDef(f"power/circuit/{c.name}/shed", "string",
                                       description=f"{label}: why it is shed ('' if not)"))
            self.store.define(PointDef(f"power/runtime/with/{c.name}", "number", "s",
                                       f"Runtime with {label} on", deadband=60))
        derived: list[tuple[str, PointType, str, str, float]] = [
            ("power/runtime", "number", "s", "Runtime until the floor SOC (null: charging)", 60),
            ("power/load/average_current", "number", "A", "Smoothed net battery load", 0.1),
            ("power/shed/steps", "integer", "", "Shed priority steps", 0),
            ("power/shed/override", "bool", "", "Shedding suspended by the crew", 0),
            ("power/shed/override_until", "number", "s", "End of the override (epoch s)", 0),
            ("power/shore/current_limit", "number", "A", "Shore input limit set by the crew", 0),
            ("power/inverter/mode_setting", "enum", "", "Inverter mode chosen by the crew", 0),
            ("vehicle/driving", "bool", "", "Ignition on: driving", 0),
        ]
        if self.cfg.climate_load_a:
            derived.append(("power/runtime/with_climate", "number", "s",
                            "Runtime with the air conditioning on", 60))
        if self.generator is not None:
            derived += [
                ("power/generator/state", "enum", "", "Generator state", 0),
                ("power/generator/reason", "string", "", "Why it runs, stopped or failed", 0),
                ("power/generator/auto", "bool", "", "Automatic start enabled", 0),
                ("power/generator/run_time_total", "number", "s", "Total run time", 60),
            ]
        enums: dict[str, tuple[str, ...]] = {"power/generator/state": GEN_STATES,
                                             "power/inverter/mode_setting": tuple(MODE_CODES)}
        for pid, ptype, unit, description, deadband in derived:
            self.store.define(PointDef(pid, ptype, unit, description, deadband=deadband,
                                       enum=enums.get(pid, ())))

    def _publish(self, now: float) -> None:
        put = self.store.update
        for name in self.circuits:
            put(f"power/circuit/{name}/wanted", self.wanted[name], now)
            put(f"power/circuit/{name}/shed", self.loads.shed_reason(name) or "", now)
        put("power/shed/steps", self.loads.shed_step_count(), now)
        put("power/shed/override", self.loads.override_active(now), now)
        put("power/shed/override_until", self.loads.override_until or 0, now)
        put("power/shore/current_limit", self.shore_limit, now)
        put("power/inverter/mode_setting", self.inverter_mode, now)
        put("vehicle/driving", self._driving(), now)
        gen = self.generator
        if gen is not None:
            put("power/generator/state", gen.state, now)
            put("power/generator/reason", gen.reason, now)
            put("power/generator/auto", gen.auto_enabled, now)
            run = gen.total_run_s + (now - gen.run_started if gen.run_started else 0)
            put("power/generator/run_time_total", round(run), now)
        self._publish_forecast(now)

    def _publish_forecast(self, now: float) -> None:
        current = self._num("power/battery/current")
        if current is not None:
            self.forecast.update(now, current)
        soc = self._num("power/battery/soc")
        ttg = self._num("power/battery/time_to_go")
        runtime = self.forecast.runtime_s(soc, ttg)
        known = soc is not None  # with a SOC, "no runtime" means charging: no limit
        put = self.store.update
        put("power/runtime", _rounded(runtime), now, known)
        put("power/load/average_current", _rounded(self.forecast.load_a, 1), now)
        for name, circuit in self.circuits.items():
            extra = 0.0 if self._actual(name) else self._dc_amps(circuit)
            put(f"power/runtime/with/{name}",
                _rounded(self.forecast.runtime_s(soc, ttg, extra_a=extra)), now, known)
        if self.cfg.climate_load_a:
            put("power/runtime/with_climate",
                _rounded(self.forecast.runtime_s(soc, ttg, extra_a=self.cfg.climate_load_a)),
                now, known)

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
        return self._ignition is not None and self.store.good(f"io/{self._ignition}") is True

    def _ac_source(self) -> Scalar | None:
        return self.store.good("power/ac/source")

    def _locked(self) -> frozenset[str]:
        return frozenset(c.name for c in self.cfg.circuit
                         if c.lock is not None and self.store.good(c.lock) is True)

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
        self.alarms.set("power/load_shed", bool(shed), now, ", ".join(shed))
        self.alarms.set("power/shed_override", self.loads.override_active(now), now)
        self._publish(now)

    def _battery_alarms(self, now: float) -> None:
        soc = self._num("power/battery/soc")
        if soc is not None:
            hyst = self.cfg.soc_hysteresis
            for aid, limit in (("power/low_soc", self.cfg.low_soc_warning),
                               ("power/critical_soc", self.cfg.low_soc_critical)):
                state = self.alarms.states.get(aid)
                active = state is not None and state.active
                self.alarms.set(aid, soc < limit or (active and soc < limit + hyst), now,
                                f"SOC {soc:.0f} %")
        volts = self._num("power/battery/voltage")
        if volts is not None:
            if volts < self.low_voltage:
                if self._low_voltage_since is None:
                    self._low_voltage_since = now
                if now - self._low_voltage_since >= self.cfg.low_voltage_delay_s:
                    self.alarms.set("power/low_voltage", True, now, f"{volts:.2f} V")
            else:
                self._low_voltage_since = None
                self.alarms.set("power/low_voltage", False, now)
        temp = self._num("power/battery/temperature")
        if temp is not None:
            limit = self.cfg.high_battery_temperature
            active = "power/high_battery_temperature" in self.alarms.active()
            self.alarms.set("power/high_battery_temperature",
                            temp > limit or (active and temp > limit - ALARM_HYSTERESIS_C),
                            now, f"{temp:.1f} °C")

    def _inverter_and_shore_alarms(self, now: float) -> None:
        for aid, pid in (("power/inverter_overload", "power/inverter/overload"),
                         ("power/inverter_high_temperature", "power/inverter/high_temperature")):
            level = self._num(pid)
            if level is not None:
                self.alarms.set(aid, level >= 1, now, "alarm" if level >= 2 else "warning")
        source = self._ac_source()
        if source is None:
            return
        if source == "shore":
            self.alarms.set("power/shore_lost", False, now)
        elif self._last_source == "shore":
            self.alarms.set("power/shore_lost", True, now, f"AC input now: {source}")
        self._last_source = source

    def _load_event(self, event: LoadEvent, now: float) -> None:
        log.info("load_" + event.kind, circuits=list(event.circuits), reason=event.reason)
        self._event({"kind": "power", "what": event.kind, "circuits": list(event.circuits),
                     "step": event.step, "reason": event.reason})
        self._wake.set()

    def _evaluate_generator(self, now: float) -> None:
        gen = self.generator
        assert gen is not None and self.cfg.generator is not None
        running = self.store.good(f"io/{self.cfg.generator.running_input}") is True
        overload = self._num("power/inverter/overload")
        inp = GenInputs(
            now=now, local_time=datetime.fromtimestamp(now), running=running,
            shore=self._ac_source() == "shore", soc=self._num("power/battery/soc"),
            voltage=self._num("power/battery/voltage"),
            ac_load=self._num("power/inverter/ac_out_current"), inverter_overload=overload,
            inverter_high_temperature=self._num("power/inverter/high_temperature"))
        for event in gen.evaluate(inp):
            self._generator_event(event, now)
        self._set_gpio(self.cfg.generator.start_output, gen.run_output)
        self.alarms.set("power/generator_failed", gen.state == "error", now, gen.reason)

    def _generator_event(self, event: GenEvent, now: float) -> None:
        log.info("generator_" + event.kind, reason=event.reason)
        self._event({"kind": "generator", "what": event.kind, "reason": event.reason})
        self._wake.set()

    # ---- the actuator ------------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate and switch outputs every half second (and at once after a decision)."""
        while True:
            now = self._wall()
            self.evaluate(now)
            await self.actuate(now)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), LOOP_S)

    async def actuate(self, now: float) -> None:
        """Switch circuits towards what the load manager wants: offs first, ons staggered."""
        actual = {name: self._actual(name) for name in self.circuits}
        desired = self.loads.desired(self.wanted, actual, self._load_inputs(now))
        for name, on in desired.items():  # offs first, all at once: cutting is always safe
            if actual[name] is True and not on and self._may_write(name, now):
                await self._switch(name, False, now)
        stagger = self.cfg.shedding.stagger_s
        for name, on in desired.items():  # ons one at a time, against inrush
            if actual[name] is False and on and self._may_write(name, now):
                if now - self._last_on < stagger:
                    break
                await self._switch(name, True, now)
                self._last_on = now
        await self._enforce_inverter_mode()

    def _may_write(self, name: str, now: float) -> bool:
        return now >= self._retry_at.get(name, now)

    async def _switch(self, name: str, on: bool, now: float) -> None:
        circuit = self.circuits[name]
        try:
            back = await self._write(circuit.device, circuit.output, on)
        except WriteError as exc:
            back = None
            log.warning("circuit_write_failed", circuit=name, error=str(exc))
        if back is on:
            self._retry_at.pop(name, None)
        else:
            self._retry_at[name] = now + WRITE_RETRY_S

    async def _enforce_inverter_mode(self) -> None:
        if self.cfg.inverter is None:
            return
        gen = self.generator
        mode = "inverter_only" if gen is not None and gen.ac_input_ignored \
            and self.inverter_mode == "on" else self.inverter_mode
        current = self.store.good("power/inverter/mode")
        if current is not None and current != mode:
            with contextlib.suppress(WriteError):
                await self._write(self.cfg.inverter, "mode", MODE_CODES[mode])

    async def apply_settings(self) -> None:
        """At start: put the crew's persisted settings back into the devices."""
        if self.cfg.inverter is None:
            return
        try:
            await self._write(self.cfg.inverter, "ac_in_current_limit", self.shore_limit)
        except WriteError as exc:
            log.warning("shore_limit_not_applied", error=str(exc))

    def safe_outputs(self) -> list[tuple[str, str, bool]]:
        """(device, register, safe value) of every output this subsystem owns."""
        return [(c.device, c.output, c.safe_state) for c in self.cfg.circuit]

    # ---- actions ------------------------------------------------------------------------------

    def actions(self, router: CommandRouter) -> None:
        reg = router.register
        if self.circuits:
            reg(ActionSpec(
                "power/circuit", self._circuit_action, CREW_ROLES,
                {"circuit": ArgSpec("enum", enum=tuple(self.circuits)), "on": ArgSpec("bool")},
                "Switch a load circuit on or off (confirmed by reading the relay back)"))
            reg(ActionSpec(
                "power/shed_override", self._override_action, CREW_ROLES,
                {"active": ArgSpec("bool")},
                f"Suspend load shedding for {self.cfg.shedding.override_s / 60:.0f} min "
                "(or end the suspension)"))
        if self.cfg.inverter is not None:
            reg(ActionSpec(
                "power/inverter/mode", self._mode_action, CREW_ROLES,
                {"mode": ArgSpec("enum", enum=tuple(MODE_CODES))},
                "MultiPlus mode: on, off, charger only, inverter only"))
            reg(ActionSpec(
                "power/shore/current_limit", self._limit_action, CREW_ROLES,
                {"amps": ArgSpec("number", min=self.cfg.shore_current_limit_min_a,
                                 max=self.cfg.shore_current_limit_max_a)},
                "Shore input current limit: the breaker size of the hook-up"))
        if self.generator is not None:
            reg(ActionSpec(
                "power/generator", self._generator_action, CREW_ROLES,
                {"command": ArgSpec("enum", enum=("start", "stop"))},
                "Start or stop the generator by hand"))
            reg(ActionSpec(
                "power/generator/auto", self._generator_auto_action, CREW_ROLES,
                {"enabled": ArgSpec("bool")}, "Enable or disable automatic generator start"))

    async def _circuit_action(self, args: dict[str, Any]) -> str:
        name: str = args["circuit"]
        on: bool = args["on"]
        circuit = self.circuits[name]
        now = self._wall()
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
        self.storage.put(f"setting/circuit/{name}", on)
        try:
            back = await self._write(circuit.device, circuit.output, on)
        except WriteError as exc:
            self._wake.set()  # the actuator keeps trying the crew's choice
            raise CommandFailed(exc.code, str(exc)) from exc
        self.store.update(f"power/circuit/{name}/wanted", on, now)
        if back is not on:
            raise CommandFailed("not_confirmed", f"{name}: relay reads {back} after writing {on}")
        return f"{name} {'on' if on else 'off'}"

    async def _override_action(self, args: dict[str, Any]) -> str:
        now = self._wall()
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
        back = await self._checked(self.cfg.inverter, "mode", MODE_CODES[mode])
        if back != MODE_CODES[mode]:
            raise CommandFailed("not_confirmed", f"inverter reads mode {back}")
        self.inverter_mode = mode
        self.storage.put("setting/inverter_mode", mode)
        return f"inverter mode {mode}"

    async def _limit_action(self, args: dict[str, Any]) -> str:
        assert self.cfg.inverter is not None
        amps = round(float(args["amps"]), 1)
        back = await self._checked(self.cfg.inverter, "ac_in_current_limit", amps)
        if not isinstance(back, int | float) or abs(back - amps) > 0.05:
            raise CommandFailed("not_confirmed", f"inverter reads limit {back}")
        self.shore_limit = amps
        self.storage.put("setting/shore_current_limit_a", amps)
        return f"shore current limit {amps:g} A"

    async def _generator_action(self, args: dict[str, Any]) -> str:
        assert self.generator is not None
        now = self._wall()
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
        self.storage.put("setting/generator_auto", self.generator.auto_enabled)
        self.evaluate(self._wall())
        return f"automatic start {'enabled' if args['enabled'] else 'disabled'}"

    async def _checked(self, device: str, register: str, value: Value) -> Value | None:
        try:
            return await self._write(device, register, value)
        except WriteError as exc:
            raise CommandFailed(exc.code, str(exc)) from exc


def _rounded(value: float | None, digits: int = 0) -> float | None:
    return None if value is None else round(value, digits)

