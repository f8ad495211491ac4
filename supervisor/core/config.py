"""Vehicle configuration: one TOML file describes one van.

The core sections (vehicle, mqtt, storage, log, gpio, bus, device, access, panel) are defined
here; every subsystem brings its own section's schema and cross-checks (see
``supervisor/core/subsystem.py``), and :func:`load_config` assembles the whole file from them.

Validated at start-up before anything touches an output. Unknown keys are refused. Every error
names the file, the key path and the rule, e.g.::

    config/demo.toml: device[3].unit: unit id 1 is used twice on bus 'rs485' (also device[2])

``${NAME}`` and ``${NAME:-default}`` in the file are replaced from the environment before
parsing, so ports and paths can be overridden without editing the file.

Hostile files are refused as cleanly as mistaken ones: at most MAX_FILE_BYTES, keys of at most
MAX_KEY_PARTS dotted parts (TOML's reader slows down with the square of a key's parts), no
NaN or infinity, no NUL in any text.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)

from drivers.buses import Bus, DeviceConfig, Name, RtuBus, Strict, TcpBus
from drivers.profile import Profile, ProfileError, Register

if TYPE_CHECKING:
    from supervisor.core.subsystem import SubsystemSpec

__all__ = ["Name", "Role", "Strict"]

MAX_FILE_BYTES = 1024 * 1024  # a vehicle config is a few KiB
MAX_KEY_PARTS = 32  # ours have at most 4 (power.generator.quiet_hours.start)

Role = Literal["hq", "crew", "technician"]
PointId = Annotated[str, Field(pattern=r"^[a-z0-9_]+(/[a-z0-9_]+)+$", max_length=120)]


# a van's id: in its MQTT topics (mcw/v1/{id}/...), and checked by HQ's side on what it reads
VEHICLE_ID = r"[a-z0-9][a-z0-9-]{0,31}"


class VehicleConfig(Strict):
    id: str = Field(pattern=f"^{VEHICLE_ID}$")
    name: str = ""
    battery_nominal_voltage: Literal[12, 24, 48] = 12
    ignition: Name | None = None  # GPIO input line: the engine runs (vehicle/driving)
    status_lamp: Name | None = None  # GPIO output line: lit while no critical alarm is active


class MqttConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: Path | None = None
    keepalive_s: int = Field(default=30, ge=5, le=600)
    # the broker is local: a restarted one is noticed within ~1.5 s (the delay gets a jitter)
    reconnect_min_s: float = Field(default=0.2, gt=0, le=60)
    reconnect_max_s: float = Field(default=1.0, gt=0, le=600)
    # The van's broker's bridge to HQ (its `connection` name): while its notification says it
    # is connected, the van's events go to HQ (uplink/event) oldest first, paced: at most
    # uplink_burst at once, then uplink_rate per second. None: no events for HQ.
    uplink_bridge: str | None = Field(default="hq", pattern=r"^[a-z0-9_]{1,32}$")
    uplink_rate: float = Field(default=50.0, gt=0, le=1000)
    uplink_burst: int = Field(default=200, ge=1, le=10000)


class StorageConfig(Strict):
    path: Path = Path("/var/lib/mcw/mcw.sqlite")
    keep_days: float = Field(default=30.0, gt=0, le=3650)  # events, commands, history


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


class GpioLine(Strict):
    """A named line; subsystems refer to lines by name (published as ``io/<name>``)."""

    name: Name
    pin: int = Field(ge=0, le=53)
    direction: Literal["input", "output"]
    active: Literal["high", "low"] = "high"
    debounce_ms: int = Field(default=50, ge=0, le=10_000)
    safe_state: bool = False
    label: str = ""


class GpioConfig(Strict):
    # native: the controller's GPIO chip; mock: gpiozero's mock pins; sim: mock pins driven by
    # the simulated van over a Unix socket.
    backend: Literal["native", "mock", "sim"] = "native"
    sim_socket: Path | None = None
    line: tuple[GpioLine, ...] = ()


class AccessConfig(Strict):
    """Actions granted to a role beyond what the action itself allows (e.g. HQ starting the
    generator on a van whose crew is often away)."""

    grant: dict[Role, tuple[str, ...]] = Field(default_factory=dict)


PIN_HASH = r"^pbkdf2_sha256\$[0-9]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$"
PinHash = Annotated[str, Field(pattern=PIN_HASH)]


class PanelConfig(Strict):
    """The crew's touch panel, served by the supervisor itself."""

    enabled: bool = True
    # The crew network only (the kiosk on the controller uses 127.0.0.1); never all interfaces
    # by default.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    crew_pin_hash: PinHash  # `mcwctl hash-pin` makes one
    technician_pin_hash: PinHash
    # Optional: a PIN that unlocks like the crew PIN, shows exactly the same, and raises a
    # silent panic (room/duress) for HQ. Its hash only, as above; a PIN cannot be compared
    # with another through their salted hashes, so only a copied hash line is caught here.
    duress_pin_hash: PinHash | None = None
    idle_lock_s: float = Field(default=300.0, ge=30, le=86400)
    session_s: float = Field(default=12 * 3600.0, ge=60, le=7 * 86400)
    max_attempts: int = Field(default=5, ge=1, le=20)  # wrong PINs before a lockout
    lockout_s: float = Field(default=60.0, ge=5, le=3600)
    history_interval_s: float = Field(default=60.0, ge=1, le=3600)
    history_days: float = Field(default=7.0, gt=0, le=90)

    @field_validator("duress_pin_hash")
    @classmethod
    def _duress_differs(cls, value: str | None, info: ValidationInfo) -> str | None:
        for other in ("crew_pin_hash", "technician_pin_hash"):
            if value is not None and value == info.data.get(other):
                raise ValueError(f"is the same hash as {other}: the duress PIN must be a "
                                 "PIN of its own")
        return value


class HomeAssistantConfig(Strict):
    """Optional Home Assistant MQTT discovery (off unless the section says enabled)."""

    enabled: bool = False
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[a-z0-9_]{1,32}$")
    # Home Assistant's birth message: discovery is published again when HA announces itself
    status_topic: str = Field(default="homeassistant/status", min_length=1, max_length=128)


class SupervisorConfig(Strict):
    """The core sections; :func:`config_model` adds one optional field per subsystem."""

    vehicle: VehicleConfig
    mqtt: MqttConfig = MqttConfig()
    storage: StorageConfig = StorageConfig()
    log: LogConfig = LogConfig()
    gpio: GpioConfig = GpioConfig()
    bus: tuple[Bus, ...] = ()
    device: tuple[DeviceConfig, ...] = ()
    access: AccessConfig = AccessConfig()
    panel: PanelConfig | None = None
    home_assistant: HomeAssistantConfig = HomeAssistantConfig()

    def section(self, name: str) -> BaseModel | None:
        """A subsystem's section, or None when the file has none."""
        value = getattr(self, name, None)
        return value if isinstance(value, BaseModel) else None

    def device_by_id(self, device_id: str) -> DeviceConfig:
        return next(d for d in self.device if d.id == device_id)

    def bus_by_name(self, name: str) -> TcpBus | RtuBus:
        return next(b for b in self.bus if b.name == name)


class ConfigError(Exception):
    """The configuration is unusable; the message names file, key and rule."""

    def __init__(self, file: Path | str, key: str, rule: str) -> None:
        self.file, self.key, self.rule = str(file), key, rule
        super().__init__(f"{file}: {key}: {rule}" if key else f"{file}: {rule}")


class Checker:
    """Cross-checks of one section: references to devices, registers and lines, with errors
    that name the file and the key (``section.key``)."""

    def __init__(self, cfg: SupervisorConfig, path: Path, section: str = "") -> None:
        self.cfg, self.path, self.section = cfg, path, section
        self._devices = {d.id: d for d in cfg.device}
        self._lines = {ln.name: ln for ln in cfg.gpio.line}

    def within(self, section: str) -> Checker:
        return Checker(self.cfg, self.path, section)

    def fail(self, key: str, rule: str) -> NoReturn:
        full = f"{self.section}.{key}" if self.section and key else (self.section or key)
        raise ConfigError(self.path, full, rule)

    def device(self, key: str, device_id: str) -> DeviceConfig:
        if device_id not in self._devices:
            self.fail(key, f"no device with id {device_id!r}")
        return self._devices[device_id]

    def profile(self, key: str, device_id: str) -> Profile:
        return self.device(key, device_id).load_profile()

    def register(self, key: str, device_id: str, name: str, switch: bool = False) -> Register:
        """A register of a device's profile; ``switch``: it must be a writable bool."""
        profile = self.profile(key, device_id)
        if name not in profile.names():
            self.fail(key, f"profile {profile.name} has no register {name!r}")
        reg = profile.get(name)
        if switch and (reg.access != "rw" or reg.type != "bool"):
            self.fail(key, f"{name} is not a switchable output")
        return reg

    def role(self, key: str, device_id: str, role: str) -> None:
        """The device's profile says it can serve ``role`` (it has the registers the role needs)."""
        profile = self.profile(key, device_id)
        if role not in profile.roles:
            self.fail(key, f"device {device_id!r} (profile {profile.name}) cannot be the {role}"
                           f" (its profile serves: {', '.join(profile.roles) or 'no role'})")

    def line(self, key: str, name: str, direction: Literal["input", "output"]) -> GpioLine:
        line = self._lines.get(name)
        if line is None:
            self.fail(key, f"no gpio.line named {name!r}")
        if line.direction != direction:
            self.fail(key, f"gpio.line {name!r} must be an {direction}")
        return line


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


def _key_path(loc: tuple[int | str, ...], data: Any) -> str:
    """The key path in the file of pydantic's error location (walking the parsed ``data``)."""
    out = ""
    for part in loc:
        if part in ("tcp", "rtu") and not (isinstance(data, dict) and part in data):
            continue  # pydantic's discriminator tag, not a key in the file
        if isinstance(part, int):
            out += f"[{part}]"
            data = data[part] if isinstance(data, list) and 0 <= part < len(data) else None
        else:
            out += f".{part}" if out else str(part)
            data = data.get(part) if isinstance(data, dict) else None
    return out


_KEY_PART = r"""(?:(?<![A-Za-z0-9_-])[A-Za-z0-9_-]++|"(?:[^"\\\n]++|\\.)*+"|'[^'\n]*+')"""
# possessive: no backtracking, one pass over the text
_DEEP_KEY = re.compile(rf"{_KEY_PART}(?:[ \t]*+\.[ \t]*+{_KEY_PART}){{{MAX_KEY_PARTS},}}")


def _read(path: Path) -> str:
    """The file's text, checked for what the TOML reader cannot bear."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read file: {exc.strerror}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(path, "", f"larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(path, "", f"not UTF-8 text (byte {exc.start}, line {line})") from exc
    deep = _DEEP_KEY.search(text)
    if deep is not None:
        line = text.count("\n", 0, deep.start()) + 1
        raise ConfigError(path, "", f"a key of more than {MAX_KEY_PARTS} dotted parts "
                                    f"(line {line}: {deep.group()[:40]}...)")
    return text


def config_model(subsystems: Sequence[SubsystemSpec[Any]]) -> type[SupervisorConfig]:
    """The whole file's schema: the core sections plus each subsystem's (optional) section."""
    fields: dict[str, Any] = {s.name: (s.schema | None, None) for s in subsystems}
    return create_model("VehicleConfig", __base__=SupervisorConfig, **fields)


def load_config(path: Path | str, subsystems: Sequence[SubsystemSpec[Any]]) -> SupervisorConfig:
    """Read, expand, parse and validate a vehicle config file; raise ConfigError if unusable."""
    path = Path(path)
    text = _expand_env(_read(path), path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from exc
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ConfigError(path, "", f"not valid TOML: {str(exc).split(':')[0]}") from exc
    except RecursionError as exc:
        raise ConfigError(path, "", "not valid TOML: arrays or tables nested too deeply") \
            from exc
    _profile_files_from(path.parent, data)
    try:
        config = config_model(subsystems).model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        rule = err["msg"]
        if err["type"] == "extra_forbidden":
            rule = "unknown key (not part of the config schema)"
        elif err["type"] == "missing":
            rule = "required key is missing"
        elif err["type"] == "value_error":  # ours: the reason without pydantic's prefix
            rule = str(err["ctx"]["error"])
        raise ConfigError(path, _key_path(err["loc"], data), rule) from exc
    checker = Checker(config, path)
    _cross_check(config, checker)
    for spec in subsystems:
        section = config.section(spec.name)
        if section is not None:
            spec.check(section, checker.within(spec.name))
    return config


def _profile_files_from(folder: Path, data: dict[str, Any]) -> None:
    """A device's relative profile_file is read from the config file's folder (a van
    builder keeps the two side by side)."""
    devices = data.get("device")
    for dev in devices if isinstance(devices, list) else ():
        file = dev.get("profile_file") if isinstance(dev, dict) else None
        if isinstance(file, str) and "\0" not in file and not Path(file).is_absolute():
            dev["profile_file"] = str(folder / file)


def check_on_target(cfg: SupervisorConfig, path: Path | str) -> None:
    """Checks that only make sense on the machine that runs the supervisor: the files and
    devices the config names exist and can be used."""
    secret = cfg.mqtt.password_file
    if secret is not None:
        try:
            secret.read_text()
        except OSError as exc:
            raise ConfigError(path, "mqtt.password_file",
                              f"cannot read {secret}: {exc.strerror}") from exc
    _check_storage(cfg.storage.path, path)
    for i, bus in enumerate(cfg.bus):
        if isinstance(bus, RtuBus) and not Path(bus.port).exists():
            raise ConfigError(path, f"bus[{i}].port", f"no serial device {bus.port} "
                              "(is the RS-485 adapter plugged in?)")


def _check_storage(db: Path, path: Path | str) -> None:
    """The database's folder exists (or can be made) and is writable."""
    folder = db.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(path, "storage.path", f"cannot create {folder}: {exc.strerror}") \
            from exc
    if db.exists() and not db.is_file():
        raise ConfigError(path, "storage.path", f"{db} is not a file")
    if not os.access(folder, os.W_OK | os.X_OK) or (db.exists() and not os.access(db, os.W_OK)):
        raise ConfigError(path, "storage.path", f"{db} is not writable")


def _cross_check(cfg: SupervisorConfig, chk: Checker) -> None:
    """Core rules that span several keys: references, duplicates, profile facts."""
    buses = {b.name: b for b in cfg.bus}
    _unique(chk, "bus", [b.name for b in cfg.bus], "bus name")
    _unique(chk, "device", [d.id for d in cfg.device], "device id")
    units: dict[tuple[str, int], int] = {}
    for i, dev in enumerate(cfg.device):
        key = f"device[{i}]"
        if dev.bus not in buses:
            chk.fail(f"{key}.bus", f"no bus named {dev.bus!r}")
        try:
            profile = dev.load_profile()
        except ProfileError as exc:
            chk.fail(f"{key}.{'profile' if dev.profile else 'profile_file'}", str(exc))
        bus = buses[dev.bus]
        if profile.device.transport != bus.type:
            chk.fail(f"{key}.bus", f"profile {dev.profile_name} speaks "
                                   f"{profile.device.transport}, bus {bus.name} is {bus.type}")
        if (dev.bus, dev.unit) in units:
            chk.fail(f"{key}.unit", f"unit id {dev.unit} is used twice on bus {dev.bus!r} "
                                    f"(also device[{units[(dev.bus, dev.unit)]}])")
        units[(dev.bus, dev.unit)] = i

    pins: dict[int, int] = {}
    for i, line in enumerate(cfg.gpio.line):
        if line.pin in pins:
            chk.fail(f"gpio.line[{i}].pin",
                     f"GPIO pin {line.pin} is used twice (also gpio.line[{pins[line.pin]}])")
        pins[line.pin] = i
    _unique(chk, "gpio.line", [ln.name for ln in cfg.gpio.line], "line name")
    if cfg.gpio.backend == "sim" and cfg.gpio.sim_socket is None:
        chk.fail("gpio.sim_socket", "required when gpio.backend is 'sim'")
    if cfg.vehicle.ignition is not None:
        chk.line("vehicle.ignition", cfg.vehicle.ignition, "input")
    if cfg.vehicle.status_lamp is not None:
        chk.line("vehicle.status_lamp", cfg.vehicle.status_lamp, "output")


def _unique(chk: Checker, section: str, names: list[str], what: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            chk.fail(f"{section}[{i}]", f"{what} {name!r} is used twice")
        seen.add(name)
