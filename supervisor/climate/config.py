"""The ``[climate]`` section of the vehicle config: its schema and its cross-checks.

Sensors are named devices (XY-MD02 class: temperature and humidity). A zone is a thermostat on
one sensor; the diesel heater and the roof A/C each serve one or more zones. Times are seconds,
temperatures degrees Celsius, currents amperes (``*_ac_a``: at 230 V, the rest at the battery).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from supervisor.core.config import Checker, Name, Strict


class ClimateSensor(Strict):
    name: Name
    device: Name


class Presets(Strict):
    comfort: float = Field(default=21.0, ge=7, le=35)
    eco: float = Field(default=18.0, ge=7, le=35)
    away: float = Field(default=7.0, ge=7, le=35)  # frost guard of a parked van
    session: float = Field(default=22.0, ge=7, le=35)  # a victim sits still for an hour


class ThermostatSettings(Strict):
    cold_tolerance_k: float = Field(default=0.3, ge=0.1, le=3)
    hot_tolerance_k: float = Field(default=0.3, ge=0.1, le=3)
    min_cycle_s: float = Field(default=300.0, ge=0, le=3600)
    keep_alive_s: float = Field(default=300.0, ge=10, le=3600)
    auto_deadband_k: float = Field(default=1.0, ge=0.2, le=10)
    presets: Presets = Presets()


class Zone(Strict):
    name: Name
    sensor: Name  # a climate.sensor name
    label: str = ""
    thermostat: ThermostatSettings = ThermostatSettings()


class Heater(Strict):
    """An Autoterm Air 2D/4D class diesel air heater on its own serial line."""

    port: Path
    baudrate: Literal[1200, 2400, 9600] = 9600
    # the zones its ducts blow into; the first of them asking for heat leads its power level
    zones: tuple[Name, ...] = Field(min_length=1)
    # the power circuit feeding it: locked (never cut) while the heater runs on
    power_circuit: Name | None = None  # required (checked): see check_climate
    min_level: int = Field(default=0, ge=0, le=9)
    max_level: int = Field(default=9, ge=1, le=9)
    # the level's PI controller (heater_level.py): levels per kelvin below the set point, and
    # the integral time in which a steady shortfall adds as much again
    gain_per_k: float = Field(default=2.0, gt=0, le=20)
    integral_s: float = Field(default=1200.0, ge=1, le=36000)
    # rest between a stop and the next start (glow plug, coking; rest_guard.py)
    min_off_s: float = Field(default=300.0, ge=0, le=3600)
    running_current_a: float = Field(default=2.0, ge=0, le=20)  # 12 V draw while heating
    start_current_a: float = Field(default=9.0, ge=0, le=30)  # glow plug, the first minute
    poll_s: float = Field(default=1.0, ge=0.2, le=10)
    level_change_s: float = Field(default=60.0, ge=1, le=3600)  # retuned at most this often
    # one heater blows into all its zones: it stops when one of them is this far above its
    # set point (and its tolerance), whoever else asks for heat
    overheat_k: float = Field(default=1.0, ge=0.2, le=10)


class AirConditioner(Strict):
    """A roof A/C switched by a relay; its compressor is inside, so it needs AC power."""

    device: Name
    output: str  # the relay register
    zones: tuple[Name, ...] = Field(min_length=1)
    current_ac_a: float = Field(default=6.0, gt=0, le=32)  # AC amps at 230 V while cooling
    # compressor rest, 3-5 min for a real one; shorter only on a test bench
    min_off_s: float = Field(default=240.0, ge=5, le=600)
    min_run_s: float = Field(default=180.0, ge=0, le=1800)
    # on the inverter (battery) only above this SOC and with this much inverter headroom
    battery_min_soc: float = Field(default=60.0, ge=0, le=100)
    inverter_max_ac_a: float = Field(default=13.0, gt=0, le=100)
    # a zone this far below its set point and tolerance stops the compressor even within its
    # minimum run (a small room cools fast; nobody sits in a cold room for the oil's sake)
    overcool_k: float = Field(default=1.5, ge=0.5, le=10)


class Ventilation(Strict):
    """A fan switched by a relay: on during a CO alarm."""

    device: Name
    output: str


class CoAlarm(Strict):
    """An EN 50291 Type A CO alarm's relay contact on a GPIO input (active = CO)."""

    input: Name
    fault_input: Name | None = None  # the detector's fault contact, where it has one
    clear_s: float = Field(default=300.0, ge=0, le=3600)  # clear this long before a restart


class PreHeat(Strict):
    max_duration_s: float = Field(default=7200.0, ge=600, le=6 * 3600)
    max_advance_s: float = Field(default=24 * 3600.0, ge=600, le=7 * 86400)


class ClimateConfig(Strict):
    sensor: tuple[ClimateSensor, ...] = ()
    outside_sensor: Name | None = None  # a climate.sensor name
    zone: tuple[Zone, ...] = ()
    heater: Heater | None = None
    air_conditioner: AirConditioner | None = None
    ventilation: Ventilation | None = None
    co_alarm: CoAlarm | None = None
    frost_below_c: float = Field(default=5.0, ge=0, le=15)
    frost_setpoint_c: float = Field(default=7.0, ge=5, le=15)
    sensor_max_c: float = Field(default=60.0, ge=30, le=100)  # beyond: an invalid reading
    sensor_min_c: float = Field(default=-40.0, ge=-60, le=0)
    preheat: PreHeat = PreHeat()
    # while a session runs in the consultation room (room/session/active), this zone takes
    # its session preset and the heater's level (its fan) is capped: quiet for a talk
    session_zone: Name | None = None
    session_level_cap: int = Field(default=4, ge=0, le=9)

    @model_validator(mode="after")
    def _frost(self) -> ClimateConfig:
        if self.frost_setpoint_c <= self.frost_below_c:
            raise ValueError("frost_setpoint_c must be above frost_below_c")
        return self


def check_climate(cfg: ClimateConfig, chk: Checker) -> None:
    """References between the sections: sensors to devices, zones to sensors, heater and A/C
    to zones, relays and lines to the device profiles and GPIO lines."""
    sensors = {s.name for s in cfg.sensor}
    for i, sensor in enumerate(cfg.sensor):
        chk.device(f"sensor[{i}].device", sensor.device)
    _unique(chk, "sensor", [s.name for s in cfg.sensor])
    _unique(chk, "zone", [z.name for z in cfg.zone])
    if cfg.outside_sensor is not None and cfg.outside_sensor not in sensors:
        chk.fail("outside_sensor", f"no climate.sensor named {cfg.outside_sensor!r}")
    zones = {z.name for z in cfg.zone}
    for i, zone in enumerate(cfg.zone):
        if zone.sensor not in sensors:
            chk.fail(f"zone[{i}].sensor", f"no climate.sensor named {zone.sensor!r}")
        if zone.sensor == cfg.outside_sensor:
            chk.fail(f"zone[{i}].sensor", "the outside sensor cannot regulate a zone")
    for key, served in (("heater.zones", cfg.heater), ("air_conditioner.zones",
                                                        cfg.air_conditioner)):
        if served is not None:
            for name in served.zones:
                if name not in zones:
                    chk.fail(key, f"no climate.zone named {name!r}")
    if cfg.session_zone is not None and cfg.session_zone not in zones:
        chk.fail("session_zone", f"no climate.zone named {cfg.session_zone!r}")
    if cfg.heater is not None and cfg.heater.min_level > cfg.heater.max_level:
        chk.fail("heater.min_level", f"{cfg.heater.min_level} is above max_level "
                 f"{cfg.heater.max_level}")
    ac = cfg.air_conditioner
    if ac is not None:
        chk.register("air_conditioner.output", ac.device, ac.output, switch=True)
    vent = cfg.ventilation
    if vent is not None:
        chk.register("ventilation.output", vent.device, vent.output, switch=True)
    if ac is not None and vent is not None and (ac.device, ac.output) == (vent.device,
                                                                          vent.output):
        chk.fail("ventilation.output", "the same relay as the air conditioner")
    _check_power_links(cfg, chk)
    co = cfg.co_alarm
    if co is not None:
        chk.line("co_alarm.input", co.input, "input")
        if co.fault_input is not None:
            chk.line("co_alarm.fault_input", co.fault_input, "input")


# the point that is true while the heater burns or runs on (its power must stay on)
KEEP_POWER_LOCK = "climate/heater/keep_power"


def _check_power_links(cfg: ClimateConfig, chk: Checker) -> None:
    """The heater's power circuit exists and is locked by its run-on; no climate relay is
    also a power circuit (two writers of one relay)."""
    power = chk.cfg.section("power")
    circuits = {c.name: c for c in getattr(power, "circuit", ())}
    heater = cfg.heater
    if heater is not None:
        # a combustion heater on board: a CO alarm to stop it and a power circuit that the
        # load manager, the safe states and the crew cannot cut while it burns
        if cfg.co_alarm is None:
            chk.fail("heater", "a diesel heater needs a [climate.co_alarm] to stop it")
        if heater.power_circuit is None:
            chk.fail("heater.power_circuit", "required: the power.circuit that feeds it")
        circuit = circuits.get(heater.power_circuit)
        if circuit is None:
            chk.fail("heater.power_circuit", f"no power.circuit named {heater.power_circuit!r}")
        if not circuit.safe_state or circuit.allowed != "always":
            chk.fail("heater.power_circuit", f"power.circuit {circuit.name!r} must have "
                     'safe_state = true and allowed = "always" (a burning heater keeps power)')
        if circuit.lock != KEEP_POWER_LOCK:
            chk.fail("heater.power_circuit", f"power.circuit {circuit.name!r} must have "
                     f"lock = {KEEP_POWER_LOCK!r}, so that nothing cuts the heater while it "
                     "burns or runs on")
    relays = {(c.device, c.output): c.name for c in circuits.values()}
    for key, out in (("air_conditioner.output", cfg.air_conditioner),
                     ("ventilation.output", cfg.ventilation)):
        if out is not None and (out.device, out.output) in relays:
            chk.fail(key, f"{out.device}.{out.output} is already power.circuit "
                          f"{relays[(out.device, out.output)]!r}")


def _unique(chk: Checker, key: str, names: list[str]) -> None:
    for i, name in enumerate(names):
        if name in names[:i]:
            chk.fail(f"{key}[{i}].name", f"{name!r} is used twice")
