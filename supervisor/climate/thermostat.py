"""Climate zone thermostat: what one zone's heating, cooling and fan should do now.

Pure logic on (settings, temperature, time) -> ``Decision``, so hour-long behaviour is tested
in virtual time (tests/test_thermostat.py). No I/O: the caller reads the sensor and passes
``None`` for a stale or invalid reading, drives the outputs when ``assert_now`` says so, and
persists ``settings`` (``to_dict``/``from_dict``) after a crew change.

* **Hysteresis** as Home Assistant's generic_thermostat: heating starts at or below
  target - cold tolerance and, once on, stops at or above target + hot tolerance; cooling is
  mirrored. In ``auto`` heating works as in ``heat``; cooling starts at or above
  target + deadband and stops a band as wide as the heating band lower (at
  target + deadband - cold - hot tolerance), so heating has stopped before cooling may start.
* **Frost guard**, in every mode: at or below ``frost_below_c`` it heats until
  ``frost_setpoint_c`` (reason ``frost``), so water and equipment survive a parked night even
  with the zone switched off.
* **Minimum cycle**: a change that starts or stops heating or cooling waits until
  ``min_cycle_s`` after the previous such change. Only the thermostat's own decisions set
  that timer (there is no read-back input), so a relay that drops out and comes back cannot
  restart it. Exceptions, to idle at once: a stale sensor (never act on an old reading) and
  mode ``off`` (the crew's off switch). Heating and cooling never follow each other directly:
  a changeover passes through idle for a minimum cycle.
* **Keep-alive**: ``assert_now`` on every change of demand and every ``keep_alive_s`` since
  the last assertion, idle included, so an output switched by hand is put back.
* **Restart**: the saved settings are the whole state worth keeping. The first step after
  construction acts at once (no earlier decision is known); equipment found running after a
  restart is taken over with ``resume`` (a heater heating a room inside its band goes on);
  the roof A/C's compressor has its own restart protection
  (supervisor/climate/rest_guard.py).

Reasons in ``Decision.reason``: ``sensor`` (stale or invalid reading), ``off`` (mode off),
``frost``, ``heat``, ``cool``, ``fan`` (fan_only), ``satisfied`` (in band, nothing to do),
``changeover`` (idle between heating and cooling), ``min_cycle`` (the previous demand held:
the change waits ``hold_left(now)`` seconds).
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

Mode = Literal["off", "heat", "cool", "auto", "fan_only"]
Preset = Literal["comfort", "eco", "away", "session"]
Demand = Literal["heat", "cool", "fan", "idle"]

MODES: tuple[Mode, ...] = get_args(Mode)
PRESETS: tuple[Preset, ...] = get_args(Preset)
DEFAULT_PRESETS: dict[str, float] = {"comfort": 21.0, "eco": 18.0, "away": 7.0, "session": 22.0}

EQUIPMENT: frozenset[Demand | None] = frozenset({"heat", "cool"})  # what the minimum cycle guards
SAFETY_REASONS = frozenset({"sensor", "off"})  # idle at once, minimum cycle or not
# what each mode does when no band asks for heating or cooling
AT_REST: dict[Mode, tuple[Demand, str]] = {
    "off": ("idle", "off"), "fan_only": ("fan", "fan"), "heat": ("idle", "satisfied"),
    "cool": ("idle", "satisfied"), "auto": ("idle", "satisfied")}


@dataclass(frozen=True)
class ThermostatConfig:
    """Tuning of one zone, from the vehicle config; checked on construction (ValueError)."""

    cold_tolerance_k: float = 0.3
    hot_tolerance_k: float = 0.3
    min_cycle_s: float = 300.0
    keep_alive_s: float = 300.0
    min_setpoint_c: float = 7.0
    max_setpoint_c: float = 35.0
    presets: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRESETS))
    frost_below_c: float = 5.0
    frost_setpoint_c: float = 7.0
    auto_deadband_k: float = 1.0

    def __post_init__(self) -> None:
        # written as what must hold, so a NaN fails too
        rules = [
            (self.cold_tolerance_k >= 0 and self.hot_tolerance_k >= 0,
             "tolerances must not be negative"),
            (self.min_cycle_s >= 0, "min_cycle_s must not be negative"),
            (self.keep_alive_s > 0, "keep_alive_s must be positive"),
            (self.min_setpoint_c < self.max_setpoint_c,
             "min_setpoint_c must be below max_setpoint_c"),
            (self.frost_below_c < self.frost_setpoint_c,
             "frost_below_c must be below frost_setpoint_c"),
            (self.auto_deadband_k > self.hot_tolerance_k,
             "auto_deadband_k must exceed hot_tolerance_k (heating stops before cooling "
             "may start)"),
            (set(self.presets) == set(PRESETS),
             f"presets must name exactly {', '.join(PRESETS)}"),
        ]
        rules += [(self.min_setpoint_c <= value <= self.max_setpoint_c,
                   f"preset {name} {value} °C is outside the set point limits")
                  for name, value in self.presets.items()]
        problems = [text for ok, text in rules if not ok]
        if problems:
            raise ValueError("; ".join(problems))


# ---- the crew's settings ---------------------------------------------------------------------

def _check_mode(value: object, cfg: ThermostatConfig) -> str | None:
    if value in MODES:
        return None
    return f"mode {reprlib.repr(value)} is not one of {', '.join(MODES)}"


def _check_preset(value: object, cfg: ThermostatConfig) -> str | None:
    if value is None or value in PRESETS:
        return None
    return f"preset {reprlib.repr(value)} is not one of {', '.join(PRESETS)} or null"


def _check_setpoint(value: object, cfg: ThermostatConfig) -> str | None:
    limits = f"{cfg.min_setpoint_c:g}-{cfg.max_setpoint_c:g} °C"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"set point {reprlib.repr(value)} is not a number of °C ({limits})"
    # compared, not converted: a huge int must not overflow; NaN compares false
    if not cfg.min_setpoint_c <= value <= cfg.max_setpoint_c:
        return f"set point {reprlib.repr(value)} °C is outside the limits {limits}"
    return None


def _check_fan_cap(value: object, cfg: ThermostatConfig) -> str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return None
    # a cap of 0 would stop the fan that a running heater or A/C needs
    return f"fan cap {reprlib.repr(value)} is not a whole number from 1, or null (no cap)"


# one check per persisted field: used by from_dict, by check() and by the Thermostat's setters
CHECKS: dict[str, Callable[[object, ThermostatConfig], str | None]] = {
    "mode": _check_mode, "preset": _check_preset, "setpoint_c": _check_setpoint,
    "fan_cap": _check_fan_cap}


@dataclass
class ZoneSettings:
    """The crew's choices for one zone, persisted by the caller."""

    mode: Mode = "off"
    preset: Preset | None = "comfort"
    setpoint_c: float = 21.0  # the manual set point, used when preset is None
    fan_cap: int | None = None  # highest fan level allowed (e.g. quiet during a session)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict`` reads it back."""
        return asdict(self)

    @classmethod
    def defaults(cls, cfg: ThermostatConfig) -> ZoneSettings:
        """The default settings, the manual set point brought within the configured limits."""
        default = cls()
        default.setpoint_c = min(max(default.setpoint_c, cfg.min_setpoint_c),
                                 cfg.max_setpoint_c)
        return default

    @classmethod
    def from_dict(cls, d: object, cfg: ThermostatConfig) -> ZoneSettings:
        """Saved settings; each missing or invalid field is its default. Never raises."""
        return cls.parse(d, cfg)[0]

    @classmethod
    def parse(cls, d: object, cfg: ThermostatConfig) -> tuple[ZoneSettings, tuple[str, ...]]:
        """``from_dict`` plus what was replaced by a default and why (for the log)."""
        default = cls.defaults(cfg)
        if not isinstance(d, Mapping):
            return default, (f"saved settings {reprlib.repr(d)} are not an object: "
                             "defaults used",)
        kept: dict[str, Any] = {}
        problems: list[str] = []
        for name, check in CHECKS.items():
            fallback = f"{getattr(default, name)!r} used"
            if name not in d:
                problems.append(f"{name} missing: {fallback}")
            elif (problem := check(d[name], cfg)) is not None:
                problems.append(f"{problem}: {fallback}")
            else:
                kept[name] = d[name]
        settings = replace(default, **kept)
        settings.setpoint_c = float(settings.setpoint_c)  # a saved 21 is 21.0
        return settings, tuple(problems)

    def check(self, cfg: ThermostatConfig) -> tuple[str, ...]:
        """What is invalid in these settings under ``cfg`` (empty when all is well)."""
        found = (check(getattr(self, name), cfg) for name, check in CHECKS.items())
        return tuple(problem for problem in found if problem is not None)


# ---- decisions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """What the zone should do now; drive the outputs when ``assert_now``."""

    demand: Demand
    reason: str
    assert_now: bool


@dataclass(frozen=True)
class Band:
    """One reason to heat or cool, with its hysteresis (°C).

    Heating starts at or below ``start_at`` and, once on, stops at or above ``stop_at``;
    cooling the other way round. Public so a panel can show where the zone switches.
    """

    demand: Literal["heat", "cool"]
    start_at: float
    stop_at: float
    reason: str

    def wants(self, temperature: float, active: bool) -> bool:
        """Whether this band asks for its demand, given whether that demand is on now."""
        if self.demand == "heat":
            return temperature < self.stop_at if active else temperature <= self.start_at
        return temperature > self.stop_at if active else temperature >= self.start_at


class Thermostat:
    """The control rules of one zone (see the module docstring)."""

    def __init__(self, cfg: ThermostatConfig, settings: ZoneSettings) -> None:
        """``settings`` is kept and changed in place by the setters (persist it after them);
        invalid settings are a programming error (ValueError): saved data goes through
        ``ZoneSettings.from_dict``, which always yields valid ones."""
        problems = settings.check(cfg)
        if problems:
            raise ValueError("; ".join(problems))
        self.cfg = cfg
        self.settings = settings
        # a session runs in the zone: its session preset, whatever the crew chose (an overlay,
        # not a setting: the crew's choice returns when the session ends)
        self.in_session = False
        self._demand: Demand | None = None  # the last decision's demand; None before the first
        self._changed_at: float | None = None  # last start or stop of heating or cooling
        self._asserted_at: float | None = None

    # ---- the crew's settings (take effect at the next step) ----------------------------------

    def set_mode(self, mode: Mode) -> None:
        """Change the mode; ValueError for an unknown one."""
        self._require("mode", mode)
        self.settings.mode = mode

    def set_preset(self, preset: Preset | None) -> None:
        """Choose a preset, or None for the manual set point; ValueError for an unknown one."""
        self._require("preset", preset)
        self.settings.preset = preset

    def set_setpoint(self, celsius: float) -> None:
        """Set the manual set point and leave the preset; ValueError outside the limits."""
        self._require("setpoint_c", celsius)
        self.settings.setpoint_c = float(celsius)
        self.settings.preset = None

    def set_fan_cap(self, level: int | None) -> None:
        """Cap the fan level (None: no cap); ValueError below 1."""
        self._require("fan_cap", level)
        self.settings.fan_cap = level

    def _require(self, name: str, value: object) -> None:
        problem = CHECKS[name](value, self.cfg)
        if problem is not None:
            raise ValueError(problem)

    # ---- questions ---------------------------------------------------------------------------

    def target(self) -> float:
        """The effective set point: the session's during a session, else the preset's, or the
        manual one when there is no preset."""
        preset = "session" if self.in_session else self.settings.preset
        return self.settings.setpoint_c if preset is None else self.cfg.presets[preset]

    def bands(self) -> tuple[Band, ...]:
        """The bands the present mode acts on, in order of precedence; the frost guard last."""
        cfg, target = self.cfg, self.target()
        heat = Band("heat", target - cfg.cold_tolerance_k, target + cfg.hot_tolerance_k, "heat")
        cool = Band("cool", target + cfg.hot_tolerance_k, target - cfg.cold_tolerance_k, "cool")
        top = target + cfg.auto_deadband_k
        auto_cool = Band("cool", top, top - cfg.cold_tolerance_k - cfg.hot_tolerance_k, "cool")
        frost = Band("heat", cfg.frost_below_c, cfg.frost_setpoint_c, "frost")
        by_mode: dict[Mode, tuple[Band, ...]] = {
            "off": (), "fan_only": (), "heat": (heat,), "cool": (cool,),
            "auto": (heat, auto_cool)}
        return (*by_mode[self.settings.mode], frost)

    def hold_left(self, now: float) -> float:
        """Seconds until heating or cooling may start or stop again (0 when it may now)."""
        if self._changed_at is None:
            return 0.0
        # min - (now - changed), not changed + min - now: the two round differently, and the
        # hold must end when anyone subtracting the two times sees min_cycle_s
        return max(0.0, self.cfg.min_cycle_s - (now - self._changed_at))

    def resume(self, demand: Literal["heat", "cool"]) -> None:
        """The equipment was found running after a restart of the controller: carry on as if
        this thermostat had started it, so that a zone inside its band is not stopped: the
        next step keeps it only where a band of the present mode (or the frost guard) still
        wants it; outside, the crew's off and a lost sensor stop it as ever. Only over an idle
        decision; the minimum-cycle timer is left alone."""
        if self._demand in (None, "idle"):
            self._demand = demand

    # ---- evaluation --------------------------------------------------------------------------

    def step(self, now: float, temperature: float | None) -> Decision:
        """Decide once. ``temperature`` None: the reading is stale or invalid."""
        wanted, reason = self._wanted(temperature)
        demand, reason = self._paced(now, wanted, reason)
        changed = demand != self._demand
        if changed and {demand, self._demand} & EQUIPMENT:
            self._changed_at = now
        due = self._asserted_at is None or now - self._asserted_at >= self.cfg.keep_alive_s
        if changed or due:
            self._asserted_at = now
        self._demand = demand
        return Decision(demand, reason, changed or due)

    def _wanted(self, temperature: float | None) -> tuple[Demand, str]:
        """What the rules ask for, before the minimum cycle."""
        # NaN compares false everywhere and would read as "in band"; neither it nor an
        # infinity is a temperature
        if temperature is None or not math.isfinite(temperature):
            return "idle", "sensor"
        for band in self.bands():
            if band.wants(temperature, active=self._demand == band.demand):
                return band.demand, band.reason
        return AT_REST[self.settings.mode]

    def _paced(self, now: float, wanted: Demand, reason: str) -> tuple[Demand, str]:
        """``wanted`` as the minimum cycle and the changeover through idle allow it now."""
        old = self._demand
        if old in EQUIPMENT and wanted in EQUIPMENT and wanted != old:
            wanted, reason = "idle", "changeover"
        if old is None or wanted == old or reason in SAFETY_REASONS:
            return wanted, reason
        if {old, wanted} & EQUIPMENT and self.hold_left(now) > 0:
            return old, "min_cycle"
        return wanted, reason
