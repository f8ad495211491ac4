"""Vehicle configuration: one TOML file describes one van.

Validated at start-up before anything touches an output. Unknown keys are refused. Every error
names the file, the key path and the rule, e.g.::

    config/demo.toml: device[3].unit: unit id 1 is used twice on bus 'rs485' (also device[2])

``${NAME}`` and ``${NAME:-default}`` in the file are replaced from the environment before
parsing, so ports and paths can be overridden without editing the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.profile import ProfileError, load_profile

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
Role = Literal["hq", "crew", "technician"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VehicleConfig(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    name: str = ""
    battery_nominal_voltage: Literal[12, 24, 48] = 12


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: Path | None = None
    keepalive_s: int = Field(default=30, ge=5, le=600)
    # Role granted to commands arriving over MQTT; the broker ACL limits who can publish them.
    role: Role = "hq"
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=600)


class StorageConfig(_Strict):
    path: Path = Path("/var/lib/mcw/mcw.sqlite")


class LogConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


class GpioLine(_Strict):
    name: Name
    pin: int = Field(ge=0, le=53)
    direction: Literal["input", "output"]
    # What the supervisor does with the line; "generic" lines are only published as io/<name>.
    role: Literal[
        "generic", "ignition", "door", "status_lamp", "generator_start", "generator_running"
    ] = "generic"
    active: Literal["high", "low"] = "high"
    debounce_ms: int = Field(default=50, ge=0, le=10_000)
    safe_state: bool = False
    label: str = ""


class GpioConfig(_Strict):
    # native: the controller's GPIO chip; mock: gpiozero's mock pins; sim: mock pins driven by
    # the simulated van over a Unix socket.
    backend: Literal["native", "mock", "sim"] = "native"
    sim_socket: Path | None = None
    line: tuple[GpioLine, ...] = ()


class TcpBus(_Strict):
    name: Name
    type: Literal["tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    timeout_s: float = Field(default=1.0, gt=0, le=30)


class RtuBus(_Strict):
    name: Name
    type: Literal["rtu"]
    port: str
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(default=0.3, gt=0, le=10)


Bus = Annotated[TcpBus | RtuBus, Field(discriminator="type")]


class DeviceConfig(_Strict):
    id: Name
    profile: str
    bus: Name
    unit: int = Field(ge=0, le=247)
    label: str = ""
    poll_fast_s: float = Field(default=1.0, ge=0.05, le=3600)
    poll_slow_s: float = Field(default=5.0, ge=0.05, le=3600)


class Circuit(_Strict):
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
    lock: str | None = Field(default=None, pattern=r"^[a-z0-9_]+(/[a-z0-9_]+)+$")
    default_on: bool = False  # wanted state until the crew chooses (then persisted)


class ShedStep(_Strict):
    """One priority step of load shedding, with its own thresholds (per 12 V nominal)."""

    priority: int = Field(ge=1, le=8)
    shed_voltage_per_12v: float = Field(ge=9, le=15)
    restore_voltage_per_12v: float = Field(ge=9, le=15)
    shed_soc: float | None = Field(default=None, ge=0, le=100)
    restore_soc: float | None = Field(default=None, ge=0, le=100)


class SheddingConfig(_Strict):
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


class GeneratorCondition(_Strict):
    """One reason to run the generator, with start/stop values and dwell times."""

    kind: Literal["soc", "voltage", "ac_load", "inverter_overload", "inverter_high_temperature"]
    start_value: float
    stop_value: float
    start_dwell_s: float = Field(default=60.0, ge=0, le=86400)
    stop_dwell_s: float = Field(default=60.0, ge=0, le=86400)
    # In quiet hours: other values, or none (the condition does not start the generator).
    quiet_start_value: float | None = None
    quiet_stop_value: float | None = None


class QuietHours(_Strict):
    start: str = Field(default="22:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str = Field(default="07:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class GeneratorConfig(_Strict):
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


class PowerConfig(_Strict):
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
    climate_load_a: float = Field(default=0.0, ge=0, le=500)  # for "runtime with A/C"
    shedding: SheddingConfig = SheddingConfig()
    generator: GeneratorConfig | None = None
    circuit: tuple[Circuit, ...] = ()


PIN_HASH = r"^pbkdf2_sha256\$[0-9]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$"
PinHash = Annotated[str, Field(pattern=PIN_HASH)]


class PanelConfig(_Strict):
    """The crew's touch panel, served by the supervisor itself."""

    enabled: bool = True
    # The crew network only (the kiosk on the controller uses 127.0.0.1); never all interfaces
    # by default.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    crew_pin_hash: PinHash  # `mcwctl hash-pin` makes one
    technician_pin_hash: PinHash
    idle_lock_s: float = Field(default=300.0, ge=30, le=86400)
    session_s: float = Field(default=12 * 3600.0, ge=60, le=7 * 86400)
    max_attempts: int = Field(default=5, ge=1, le=20)  # wrong PINs before a lockout
    lockout_s: float = Field(default=60.0, ge=5, le=3600)
    history_interval_s: float = Field(default=60.0, ge=1, le=3600)
    history_days: float = Field(default=7.0, gt=0, le=90)


class ClimateSensor(_Strict):
    name: Name
    device: Name


class ClimateConfig(_Strict):
    sensor: tuple[ClimateSensor, ...] = ()


class SupervisorConfig(_Strict):
    vehicle: VehicleConfig
    mqtt: MqttConfig = MqttConfig()
    storage: StorageConfig = StorageConfig()
    log: LogConfig = LogConfig()
    gpio: GpioConfig = GpioConfig()
    bus: tuple[Bus, ...] = ()
    device: tuple[DeviceConfig, ...] = ()
    power: PowerConfig = PowerConfig()
    climate: ClimateConfig = ClimateConfig()
    panel: PanelConfig | None = None

    def device_by_id(self, device_id: str) -> DeviceConfig:
        return next(d for d in self.device if d.id == device_id)

    def bus_by_name(self, name: str) -> TcpBus | RtuBus:
        return next(b for b in self.bus if b.name == name)


class ConfigError(Exception):
    """The configuration is unusable; the message names file, key and rule."""

    def __init__(self, file: Path | str, key: str, rule: str) -> None:
        self.file, self.key, self.rule = str(file), key, rule
        super().__init__(f"{file}: {key}: {rule}" if key else f"{file}: {rule}")


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(text: str, path: Path) -> str:
    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(path, "", f"environment variable {name} is not set and has no default")

    return _ENV.sub(repl, text)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("tcp", "rtu"):  # pydantic's discriminator tag, not a key in the file
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def load_config(path: Path | str) -> SupervisorConfig:
    """Read, expand, parse and validate a vehicle config file; raise ConfigError if unusable."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read file: {exc.strerror}") from exc
    try:
        data = tomllib.loads(_expand_env(text, path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from exc
    try:
        config = SupervisorConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        rule = err["msg"]
        if err["type"] == "extra_forbidden":
            rule = "unknown key (not part of the config schema)"
        elif err["type"] == "missing":
            rule = "required key is missing"
        raise ConfigError(path, _key_path(err["loc"]), rule) from exc
    _cross_check(config, path)
    return config


def check_on_target(cfg: SupervisorConfig, path: Path | str) -> None:
    """Checks that only make sense on the machine that runs the supervisor (files exist)."""
    secret = cfg.mqtt.password_file
    if secret is not None:
        try:
            secret.read_text()
        except OSError as exc:
            raise ConfigError(path, "mqtt.password_file",
                              f"cannot read {secret}: {exc.strerror}") from exc


def _cross_check(cfg: SupervisorConfig, path: Path) -> None:
    """Rules that span several keys: references, duplicates, profile facts."""
    buses = {b.name: (i, b) for i, b in enumerate(cfg.bus)}
    if len(buses) != len(cfg.bus):
        _dup_error(path, "bus", [b.name for b in cfg.bus], "bus name")
    devices = {d.id: d for d in cfg.device}
    if len(devices) != len(cfg.device):
        _dup_error(path, "device", [d.id for d in cfg.device], "device id")

    units: dict[tuple[str, int], int] = {}
    for i, dev in enumerate(cfg.device):
        key = f"device[{i}]"
        if dev.bus not in buses:
            raise ConfigError(path, f"{key}.bus", f"no bus named {dev.bus!r}")
        try:
            profile = load_profile(dev.profile)
        except ProfileError as exc:
            raise ConfigError(path, f"{key}.profile", str(exc)) from exc
        bus = buses[dev.bus][1]
        if profile.device.transport != bus.type:
            raise ConfigError(
                path,
                f"{key}.bus",
                f"profile {dev.profile} speaks {profile.device.transport}, "
                f"bus {bus.name} is {bus.type}",
            )
        if (dev.bus, dev.unit) in units:
            other = units[(dev.bus, dev.unit)]
            raise ConfigError(
                path,
                f"{key}.unit",
                f"unit id {dev.unit} is used twice on bus {dev.bus!r} (also device[{other}])",
            )
        units[(dev.bus, dev.unit)] = i

    pins: dict[int, int] = {}
    names: set[str] = set()
    for i, line in enumerate(cfg.gpio.line):
        if line.pin in pins:
            raise ConfigError(
                path,
                f"gpio.line[{i}].pin",
                f"GPIO pin {line.pin} is used twice (also gpio.line[{pins[line.pin]}])",
            )
        if line.name in names:
            raise ConfigError(
                path, f"gpio.line[{i}].name", f"line name {line.name!r} is used twice"
            )
        pins[line.pin] = i
        names.add(line.name)
        wanted = "output" if line.role in ("status_lamp", "generator_start") else "input"
        if line.role != "generic" and line.direction != wanted:
            raise ConfigError(
                path, f"gpio.line[{i}].role", f"role {line.role} needs direction {wanted}"
            )
    if cfg.gpio.backend == "sim" and cfg.gpio.sim_socket is None:
        raise ConfigError(path, "gpio.sim_socket", "required when gpio.backend is 'sim'")

    role_needs = {
        "battery_monitor": {"voltage", "current", "soc"},
        "system": {"active_input_source"},
        "inverter": {"mode", "state"},
        "solar": {"pv_power", "battery_current"},
        "ac_meter": {"current", "active_power"},
    }
    for role, needed in role_needs.items():
        ref = getattr(cfg.power, role)
        if ref is None:
            continue
        if ref not in devices:
            raise ConfigError(path, f"power.{role}", f"no device with id {ref!r}")
        missing = needed - load_profile(devices[ref].profile).names()
        if missing:
            raise ConfigError(
                path,
                f"power.{role}",
                f"device {ref!r} (profile {devices[ref].profile}) "
                f"lacks {', '.join(sorted(missing))}",
            )
    if cfg.power.low_soc_critical >= cfg.power.low_soc_warning:
        raise ConfigError(path, "power.low_soc_critical", "must be below power.low_soc_warning")

    circuit_names: set[str] = set()
    for i, circuit in enumerate(cfg.power.circuit):
        key = f"power.circuit[{i}]"
        if circuit.name in circuit_names:
            raise ConfigError(path, f"{key}.name", f"circuit {circuit.name!r} is defined twice")
        circuit_names.add(circuit.name)
        if circuit.device not in devices:
            raise ConfigError(path, f"{key}.device", f"no device with id {circuit.device!r}")
        profile = load_profile(devices[circuit.device].profile)
        if circuit.output not in profile.names():
            raise ConfigError(
                path, f"{key}.output", f"profile {profile.name} has no register {circuit.output!r}"
            )
        reg = profile.get(circuit.output)
        if reg.access != "rw" or reg.type != "bool":
            raise ConfigError(path, f"{key}.output", f"{circuit.output} is not a switchable output")

    _check_power(cfg, path)

    for i, sensor in enumerate(cfg.climate.sensor):
        if sensor.device not in devices:
            raise ConfigError(
                path, f"climate.sensor[{i}].device", f"no device with id {sensor.device!r}"
            )


def _check_power(cfg: SupervisorConfig, path: Path) -> None:
    power = cfg.power
    lines = {ln.name: ln for ln in cfg.gpio.line}
    priorities = [st.priority for st in power.shedding.step]
    for i, step in enumerate(power.shedding.step):
        key = f"power.shedding.step[{i}]"
        if priorities.count(step.priority) > 1:
            raise ConfigError(path, f"{key}.priority", f"priority {step.priority} has two steps")
        if step.restore_voltage_per_12v <= step.shed_voltage_per_12v:
            raise ConfigError(path, f"{key}.restore_voltage_per_12v",
                              "must be above shed_voltage_per_12v (hysteresis)")
        if (step.shed_soc is None) != (step.restore_soc is None):
            raise ConfigError(path, f"{key}.restore_soc", "shed_soc and restore_soc go together")
        if step.shed_soc is not None and step.restore_soc is not None \
                and step.restore_soc <= step.shed_soc:
            raise ConfigError(path, f"{key}.restore_soc", "must be above shed_soc (hysteresis)")
    for i, circuit in enumerate(power.circuit):
        lock = circuit.lock or ""
        if lock.startswith("io/") and lock.removeprefix("io/") not in lines:
            raise ConfigError(path, f"power.circuit[{i}].lock", f"no gpio.line for {lock}")
        if circuit.priority and circuit.priority not in priorities:
            raise ConfigError(path, f"power.circuit[{i}].priority",
                              f"no power.shedding.step for priority {circuit.priority}")
    lo, hi = power.shore_current_limit_min_a, power.shore_current_limit_max_a
    if not lo <= power.shore_current_limit_a <= hi:
        raise ConfigError(path, "power.shore_current_limit_a", f"must be within {lo}..{hi}")
    gen = power.generator
    if gen is None:
        return
    for key, name, role in (("start_output", gen.start_output, "generator_start"),
                            ("running_input", gen.running_input, "generator_running")):
        if name not in lines or lines[name].role != role:
            raise ConfigError(path, f"power.generator.{key}",
                              f"needs a gpio.line named {name!r} with role {role}")
    for i, cond in enumerate(gen.condition):
        key = f"power.generator.condition[{i}]"
        falling = cond.kind in ("soc", "voltage")  # start when low, stop when high again
        for start, stop, what in ((cond.start_value, cond.stop_value, ""),
                                  (cond.quiet_start_value, cond.quiet_stop_value, "quiet_")):
            if start is None or stop is None:
                if (start is None) != (stop is None):
                    raise ConfigError(path, f"{key}.{what}stop_value",
                                      f"{what}start_value and {what}stop_value go together")
                continue
            if (stop <= start) if falling else (stop >= start):
                rule = "above" if falling else "below"
                raise ConfigError(path, f"{key}.{what}stop_value",
                                  f"must be {rule} {what}start_value for {cond.kind}")


def _dup_error(path: Path, section: str, names: list[str], what: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(path, f"{section}[{i}]", f"{what} {name!r} is used twice")
        seen.add(name)
