"""The ``[power]`` section of the vehicle config: its schema and its cross-checks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from supervisor.core.config import Checker, Name, PointId, Strict

# Device roles of the power subsystem; the profile of each device says which it can serve.
DEVICE_ROLES = ("battery_monitor", "system", "inverter", "solar", "ac_meter")


class Circuit(Strict):
    """A switchable load. Circuits are data: the load manager decides from these fields."""

    name: Name
    device: Name
    output: Name
    label: str = ""
    nominal_current_a: float = Field(default=0.0, ge=0, le=500)
    safe_state: bool = False
    # 0 is never shed; 8 is shed first. Only the shed steps' priorities are ever shed.
    priority: int = Field(default=0, ge=0, le=8)
    kind: Literal["dc", "ac"] = "dc"
    allowed: Literal["always", "parked", "driving"] = "always"
    # Point id of a lock: while it reads true the circuit is never cut (a diesel heater in
    # its after-run), neither by shedding, the low-voltage disconnect nor a command.
    lock: PointId | None = None
    default_on: bool = False  # wanted state until the crew chooses (then persisted)


class ShedStep(Strict):
    """One priority step of load shedding, with its own thresholds (per 12 V nominal)."""

    priority: int = Field(ge=1, le=8)
    shed_voltage_per_12v: float = Field(ge=9, le=15)
    restore_voltage_per_12v: float = Field(ge=9, le=15)
    shed_soc: float | None = Field(default=None, ge=0, le=100)
    restore_soc: float | None = Field(default=None, ge=0, le=100)


class SheddingConfig(Strict):
    """Timing after emergency-vehicle load-manager practice (NFPA 1901 style)."""

    delay_s: float = Field(default=60.0, ge=0, le=3600)  # below a step's threshold this long
    min_off_s: float = Field(default=300.0, ge=0, le=86400)  # a shed step stays off this long
    restore_hold_s: float = Field(default=60.0, ge=0, le=3600)  # and until restore held
    stagger_s: float = Field(default=2.0, ge=0, le=60)  # between switch-ons (inrush)
    # Voltage compensation: V - I * R (I < 0 when discharging), the rest voltage, so a heavy
    # load does not look like an empty battery.
    compensation_ohm: float = Field(default=0.01, ge=0, le=1)
    use_soc: bool = True  # use SOC (when the monitor's value is good) instead of voltage
    lvd_voltage_per_12v: float = Field(default=11.5, ge=9, le=13)
    lvd_delay_s: float = Field(default=10.0, ge=0, le=600)
    ac_input_delay_s: float = Field(default=5.0, ge=0, le=600)
    ac_input_restore_margin: float = Field(default=0.9, gt=0, le=1)
    override_s: float = Field(default=900.0, ge=60, le=14400)
    step: tuple[ShedStep, ...] = ()


class GeneratorCondition(Strict):
    """One reason to run the generator, with start/stop values and dwell times."""

    kind: Literal["soc", "voltage", "ac_load", "inverter_overload", "inverter_high_temperature",
                  "climate_demand"]
    start_value: float
    stop_value: float
    start_dwell_s: float = Field(default=60.0, ge=0, le=86400)
    stop_dwell_s: float = Field(default=60.0, ge=0, le=86400)
    # In quiet hours: other values, or none (the condition does not start the generator).
    quiet_start_value: float | None = None
    quiet_stop_value: float | None = None


class QuietHours(Strict):
    start: str = Field(default="22:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str = Field(default="07:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class GeneratorConfig(Strict):
    start_output: Name  # GPIO output line that runs the generator (held while it should run)
    running_input: Name  # GPIO input line: the generator is running
    auto_start: bool = True  # crew may switch automatic start off (persisted)
    start_timeout_s: float = Field(default=30.0, ge=1, le=600)
    retries: int = Field(default=2, ge=0, le=10)
    retry_pause_s: float = Field(default=60.0, ge=0, le=3600)
    min_run_s: float = Field(default=1800.0, ge=0, le=86400)
    warm_up_s: float = Field(default=120.0, ge=0, le=3600)
    cool_down_s: float = Field(default=120.0, ge=0, le=3600)
    stop_on_shore: bool = True
    exercise_interval_days: float = Field(default=0.0, ge=0, le=90)  # 0: no exercise runs
    exercise_duration_s: float = Field(default=900.0, ge=60, le=14400)
    quiet_hours: QuietHours | None = None
    condition: tuple[GeneratorCondition, ...] = ()


class PowerConfig(Strict):
    battery_monitor: Name | None = None
    system: Name | None = None
    inverter: Name | None = None
    solar: Name | None = None
    ac_meter: Name | None = None  # meter on the shore/generator AC input
    capacity_ah: float = Field(default=200.0, gt=0, le=5000)  # if the monitor does not say
    low_soc_warning: float = Field(default=30.0, ge=0, le=100)
    low_soc_critical: float = Field(default=15.0, ge=0, le=100)
    soc_hysteresis: float = Field(default=3.0, ge=0, le=20)
    # Per 12 V of nominal battery voltage; 11.8 V on 12 V is 23.6 V on 24 V.
    low_voltage_per_12v: float = Field(default=11.8, ge=9, le=14)
    low_voltage_delay_s: float = Field(default=120.0, ge=0, le=3600)
    high_battery_temperature: float = Field(default=45.0, ge=20, le=80)
    shore_current_limit_a: float = Field(default=16.0, ge=1, le=100)  # until the crew sets it
    shore_current_limit_min_a: float = Field(default=3.0, ge=1, le=100)
    shore_current_limit_max_a: float = Field(default=32.0, ge=1, le=100)
    shedding: SheddingConfig = SheddingConfig()
    generator: GeneratorConfig | None = None
    circuit: tuple[Circuit, ...] = ()


def check_power(cfg: PowerConfig, chk: Checker) -> None:
    """Rules that span several keys of [power] and the core sections."""
    for role in DEVICE_ROLES:
        device = getattr(cfg, role)
        if device is not None:
            chk.role(role, device, role)
    if cfg.low_soc_critical >= cfg.low_soc_warning:
        chk.fail("low_soc_critical", "must be below power.low_soc_warning")
    names: set[str] = set()
    for i, circuit in enumerate(cfg.circuit):
        key = f"circuit[{i}]"
        if circuit.name in names:
            chk.fail(f"{key}.name", f"circuit {circuit.name!r} is defined twice")
        names.add(circuit.name)
        chk.device(f"{key}.device", circuit.device)
        chk.register(f"{key}.output", circuit.device, circuit.output, switch=True)
        if circuit.lock is not None and circuit.lock.startswith("io/"):
            chk.line(f"{key}.lock", circuit.lock.removeprefix("io/"), "input")
    _check_shedding(cfg, chk)
    lo, hi = cfg.shore_current_limit_min_a, cfg.shore_current_limit_max_a
    if not lo <= cfg.shore_current_limit_a <= hi:
        chk.fail("shore_current_limit_a", f"must be within {lo}..{hi}")
    if cfg.generator is not None:
        _check_generator(cfg.generator, chk)


def _check_shedding(cfg: PowerConfig, chk: Checker) -> None:
    priorities = [st.priority for st in cfg.shedding.step]
    for i, step in enumerate(cfg.shedding.step):
        key = f"shedding.step[{i}]"
        if priorities.count(step.priority) > 1:
            chk.fail(f"{key}.priority", f"priority {step.priority} has two steps")
        if step.restore_voltage_per_12v <= step.shed_voltage_per_12v:
            chk.fail(f"{key}.restore_voltage_per_12v",
                     "must be above shed_voltage_per_12v (hysteresis)")
        if (step.shed_soc is None) != (step.restore_soc is None):
            chk.fail(f"{key}.restore_soc", "shed_soc and restore_soc go together")
        if step.shed_soc is not None and step.restore_soc is not None \
                and step.restore_soc <= step.shed_soc:
            chk.fail(f"{key}.restore_soc", "must be above shed_soc (hysteresis)")
    for i, circuit in enumerate(cfg.circuit):
        if circuit.priority and circuit.priority not in priorities:
            chk.fail(f"circuit[{i}].priority",
                     f"no power.shedding.step for priority {circuit.priority}")


def _check_generator(gen: GeneratorConfig, chk: Checker) -> None:
    chk.line("generator.start_output", gen.start_output, "output")
    chk.line("generator.running_input", gen.running_input, "input")
    for i, cond in enumerate(gen.condition):
        key = f"generator.condition[{i}]"
        falling = cond.kind in ("soc", "voltage")  # start when low, stop when high again
        for start, stop, what in ((cond.start_value, cond.stop_value, ""),
                                  (cond.quiet_start_value, cond.quiet_stop_value, "quiet_")):
            if start is None or stop is None:
                if (start is None) != (stop is None):
                    chk.fail(f"{key}.{what}stop_value",
                             f"{what}start_value and {what}stop_value go together")
                continue
            if (stop <= start) if falling else (stop >= start):
                rule = "above" if falling else "below"
                chk.fail(f"{key}.{what}stop_value",
                         f"must be {rule} {what}start_value for {cond.kind}")
