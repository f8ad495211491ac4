"""Physical model of the van's electrical system and the air of its zones.

Pure logic, no I/O and no clock of its own: the caller advances it with :meth:`Plant.step`
and an explicit time step in simulated seconds, so a test can run a day of deployment in a
few milliseconds and the simulator can run faster than real time. The plant still knows the
simulated local time of day (:attr:`Plant.clock`, for the sun), which moves with those steps.

What it models:

* the house battery (LiFePO4, 12 V): SOC integrates current, terminal voltage sags with load;
* DC loads: a base load (with an optional slow wander) plus the DC circuits switched on;
* AC loads: the AC circuits switched on plus a base AC load, fed by the MultiPlus from its
  AC input (shore or generator) or, without one, inverted from the battery; above the input
  current limit the inverter "power assists" from the battery;
* chargers on the DC bus, filled in the order a Victron system gives them priority: the MPPT
  solar charger, the alternator's DC-DC charger while the ignition is on, then the MultiPlus
  charger from whatever the AC input limit leaves; together they aim for the battery's
  acceptance (bulk, absorption taper, float);
* a generator started by a held "run" signal: cranks, runs, spins down, may fail to start;
* the air of the crew area and the consultation room (``vansim.thermal``): heat lost to the
  weather outside, the diesel heater's output and the roof A/C's cooling (``ClimateGear``),
  people and an open door; sensors read the zone they hang in (or the outside).

Without Modbus the plant is driven through attributes: ``plant.switches[name] = True``,
``plant.shore_connected``, ``plant.ignition``, ``plant.generator.run_requested``,
``plant.solar_peak_w``, ``plant.inverter.mode`` ...; then ``plant.step(dt)``.

Sign convention (Victron's): battery current is positive while charging, negative while
discharging.

States and modes are modelled by meaning: the enums' values are the meanings in the device
profiles' ``[enum.*]`` tables (``drivers/profiles``), and the Victron codes live only there;
:mod:`vansim.modbus_devices` translates between the two through the profile.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum, IntEnum, StrEnum

from vansim.thermal import ROOM, ThermalPlant

# LiFePO4 12 V (4 cells) rest voltage against state of charge: the long flat middle and the
# knees at both ends are what make SOC, not voltage, the useful measure.
_OCV_TABLE: tuple[tuple[float, float], ...] = (
    (0.0, 12.0),
    (5.0, 12.5),
    (10.0, 12.8),
    (20.0, 12.9),
    (30.0, 13.0),
    (40.0, 13.05),
    (50.0, 13.1),
    (60.0, 13.13),
    (70.0, 13.17),
    (80.0, 13.2),
    (90.0, 13.25),
    (100.0, 13.3),
)
_OCV_SOC = [soc for soc, _ in _OCV_TABLE]

# Below this magnitude the battery counts as idle (Victron's /Dc/Battery/State 0).
IDLE_CURRENT_A = 0.05
# The chargers leave bulk (constant current) for absorption (tapering current) here.
ABSORPTION_SOC = 90.0
# Smallest absorption current, so that the model does reach 100 % in finite time.
MIN_ABSORPTION_A = 2.0
# Nominal AC voltage: AC circuits' nominal currents are at this voltage.
AC_NOMINAL_V = 230.0
OUTSIDE = "outside"  # where a sensor outside the zones hangs
OUTSIDE_HUMIDITY_PCT = 80.0
# Phase transitions of the generator land within this of their due time.
_EPS_S = 1e-9
_J_PER_KWH = 3.6e6


def open_circuit_voltage(soc: float) -> float:
    """Rest voltage of the 12 V LiFePO4 battery at ``soc`` percent (linear in the table)."""
    soc = min(100.0, max(0.0, soc))
    i = bisect.bisect_right(_OCV_SOC, soc)
    if i >= len(_OCV_TABLE):
        return _OCV_TABLE[-1][1]
    (s0, v0), (s1, v1) = _OCV_TABLE[i - 1], _OCV_TABLE[i]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


def sun_fraction(clock: datetime) -> float:
    """Share of peak irradiance at local time ``clock``: a sine arch from 06:00 to 18:00."""
    hour = clock.hour + clock.minute / 60 + (clock.second + clock.microsecond / 1e6) / 3600
    if not 6.0 < hour < 18.0:
        return 0.0  # exactly: sin(pi) is not quite 0 in floating point
    return math.sin(math.pi * (hour - 6.0) / 12.0)


class BatteryState(StrEnum):
    """Whether the battery rests, charges or discharges (system ``battery_state``)."""

    IDLE = "idle"
    CHARGING = "charging"
    DISCHARGING = "discharging"


class ChargeStage(StrEnum):
    """Charge stage the battery's SOC calls for; the chargers' states share these meanings."""

    BULK = "bulk"
    ABSORPTION = "absorption"
    FLOAT = "float"


def charge_stage(soc: float) -> ChargeStage:
    """Bulk below :data:`ABSORPTION_SOC`, absorption up to full, float at 100 %."""
    if soc >= 100.0:
        return ChargeStage.FLOAT
    if soc >= ABSORPTION_SOC:
        return ChargeStage.ABSORPTION
    return ChargeStage.BULK


def charge_acceptance_a(soc: float, bulk_a: float) -> float:
    """Net battery current the chargers together aim for at ``soc``.

    Unlimited in bulk, tapering from ``bulk_a`` down to :data:`MIN_ABSORPTION_A` in
    absorption, none in float (the chargers then only carry the loads).
    """
    stage = charge_stage(soc)
    if stage is ChargeStage.FLOAT:
        return 0.0
    if stage is ChargeStage.ABSORPTION:
        taper = bulk_a * (100.0 - soc) / (100.0 - ABSORPTION_SOC)
        return max(MIN_ABSORPTION_A, taper)
    return math.inf


class InverterMode(StrEnum):
    """What the MultiPlus may do (VE.Bus ``mode``, written by the supervisor)."""

    CHARGER_ONLY = "charger_only"
    INVERTER_ONLY = "inverter_only"
    ON = "on"
    OFF = "off"


class InverterState(StrEnum):
    """The MultiPlus states the model produces (VE.Bus ``state``)."""

    OFF = "off"
    BULK = "bulk"
    ABSORPTION = "absorption"
    FLOAT = "float"
    INVERTING = "inverting"
    POWER_ASSIST = "power_assist"


class AcSource(StrEnum):
    """What feeds the AC input (system ``active_input_source``)."""

    GENERATOR = "generator"
    SHORE = "shore"
    NONE = "none"


class SolarState(StrEnum):
    """The solar charger states the model produces (solar charger ``state``)."""

    OFF = "off"
    BULK = "bulk"
    ABSORPTION = "absorption"
    FLOAT = "float"


class SolarMode(StrEnum):
    """Whether the solar charger may charge (solar charger ``mode``, written by the supervisor)."""

    ON = "on"
    OFF = "off"


class AlarmLevel(IntEnum):
    """Victron alarm register values.

    Numbers, unlike the states above: the profiles give alarm registers no enum table and the
    supervisor reads them as numbers.
    """

    OK = 0
    WARNING = 1
    ALARM = 2


@dataclass
class Battery:
    """House battery: SOC integrates current; terminal voltage sags with the load."""

    capacity_ah: float = 200.0
    soc: float = 80.0
    internal_resistance_ohm: float = 0.01
    temperature_c: float = 20.0
    current: float = 0.0

    @property
    def open_circuit_voltage(self) -> float:
        """Rest voltage at the present SOC."""
        return open_circuit_voltage(self.soc)

    @property
    def voltage(self) -> float:
        """Terminal voltage: rest voltage plus the drop (or rise) over the internal resistance."""
        return self.open_circuit_voltage + self.current * self.internal_resistance_ohm

    @property
    def power(self) -> float:
        """Power into the battery in W (negative while discharging)."""
        return self.voltage * self.current

    @property
    def remaining_ah(self) -> float:
        """Charge left in the battery."""
        return self.capacity_ah * self.soc / 100.0

    @property
    def consumed_ah(self) -> float:
        """Charge taken out since full (positive number)."""
        return self.capacity_ah - self.remaining_ah

    @property
    def state(self) -> BatteryState:
        """Idle, charging or discharging, from the sign of the current."""
        if self.current > IDLE_CURRENT_A:
            return BatteryState.CHARGING
        if self.current < -IDLE_CURRENT_A:
            return BatteryState.DISCHARGING
        return BatteryState.IDLE

    @property
    def time_to_go_s(self) -> float:
        """Seconds until empty at the present discharge current; 0 unless discharging."""
        if self.state is not BatteryState.DISCHARGING:
            return 0.0
        return self.remaining_ah / -self.current * 3600.0

    def integrate(self, dt_s: float) -> None:
        """Move charge for ``dt_s`` seconds at the present current (SOC stays within 0..100)."""
        delta = self.current * dt_s / 3600.0 / self.capacity_ah * 100.0
        self.soc = min(100.0, max(0.0, self.soc + delta))


@dataclass
class InverterCharger:
    """MultiPlus inverter/charger: settings come from the supervisor, flows from the plant.

    ``inverter_power_w`` is the AC power the inverter itself makes from the battery (all of
    the AC load while inverting, the share above the input limit while power-assisting, none
    while passing AC input through); the overload alarm compares it with ``nominal_w``.
    """

    mode: InverterMode = InverterMode.ON
    ac_in_current_limit_a: float = 16.0
    charger_max_a: float = 30.0
    efficiency: float = 0.9
    ac_voltage_v: float = AC_NOMINAL_V
    ac_frequency_hz: float = 50.0
    nominal_w: float = 2400.0
    warning_fraction: float = 0.9  # overload warning above this share of nominal_w
    high_temperature: bool = False  # set by tests: the unit reports a high temperature alarm
    # outputs, recomputed by Plant at every step
    state: InverterState = InverterState.OFF
    ac_input_active: bool = False
    ac_output_live: bool = False
    dc_current_a: float = 0.0  # into the battery bus; negative while inverting
    ac_in_power_w: float = 0.0
    ac_out_power_w: float = 0.0
    inverter_power_w: float = 0.0
    charger_current_a: float = 0.0  # DC amps the charger delivers (0 unless on AC input)

    @property
    def accepts_ac_input(self) -> bool:
        """Whether the mode lets the unit use its AC input."""
        return self.mode in (InverterMode.CHARGER_ONLY, InverterMode.ON)

    @property
    def may_invert(self) -> bool:
        """Whether the mode lets the unit make AC from the battery."""
        return self.mode in (InverterMode.INVERTER_ONLY, InverterMode.ON)

    @property
    def load_fraction(self) -> float:
        """Inverter output as a share of its nominal power."""
        return self.inverter_power_w / self.nominal_w if self.nominal_w > 0 else 0.0

    @property
    def overload_alarm(self) -> AlarmLevel:
        """Warning above ``warning_fraction`` of nominal power, alarm above 100 %."""
        if self.load_fraction > 1.0:
            return AlarmLevel.ALARM
        if self.load_fraction > self.warning_fraction:
            return AlarmLevel.WARNING
        return AlarmLevel.OK

    @property
    def high_temperature_alarm(self) -> AlarmLevel:
        """Alarm while ``high_temperature`` is set."""
        return AlarmLevel.ALARM if self.high_temperature else AlarmLevel.OK


@dataclass
class SolarCharger:
    """MPPT solar charger: PV power from the time of day, the panel's peak and the clouds.

    ``peak_w`` is the array's output at noon under a clear sky (0: night or thick overcast
    all day). Clouds come and go deterministically: the cloud factor wanders between
    ``1 - cloud_depth`` and 1 (``cloud_depth = 0``: clear sky, exact figures for tests).
    """

    peak_w: float = 300.0
    efficiency: float = 0.97
    max_current_a: float = 30.0  # a 100/30 MPPT
    cloud_depth: float = 0.4
    mpp_voltage_v: float = 18.0  # panel voltage at the maximum power point, by day
    mode: SolarMode = SolarMode.ON  # written by the supervisor
    # outputs, recomputed by Plant at every step
    available_w: float = 0.0  # what the panels could give now
    pv_power_w: float = 0.0  # what the charger takes from them
    pv_voltage_v: float = 0.0
    current_a: float = 0.0  # charger output into the battery bus
    state: SolarState = SolarState.OFF
    yield_today_kwh: float = 0.0  # charger output energy since local midnight
    yield_day: date | None = None

    def cloud_factor(self, time_s: float) -> float:
        """Share of the clear-sky power the clouds let through at plant time ``time_s``."""
        drift = 0.6 * math.sin(2 * math.pi * time_s / 1800.0) + 0.4 * math.sin(
            2 * math.pi * time_s / 420.0 + 1.3
        )  # within -1..1
        return 1.0 - self.cloud_depth * (0.5 + 0.5 * drift)

    @property
    def enabled(self) -> bool:
        """Whether the mode lets it charge."""
        return self.mode is not SolarMode.OFF


class GeneratorPhase(Enum):
    """Where the generator is in its start/stop cycle."""

    STOPPED = "stopped"
    CRANKING = "cranking"
    RUNNING = "running"
    SPINNING_DOWN = "spinning_down"


@dataclass
class Generator:
    """Generator with a two-wire start: runs while ``run_requested`` is held.

    On a request it cranks for ``crank_s`` and then runs (an AC source of ``capacity_a``);
    when the request drops it stops feeding AC at once and its running signal goes off after
    ``spin_down_s``. With ``fails_to_start`` it cranks for as long as it is asked and never
    runs. The simulated van copies the supervisor's GPIO start output into ``run_requested``
    at every tick; without Modbus and GPIO, set it directly.
    """

    capacity_a: float = 16.0
    crank_s: float = 5.0
    spin_down_s: float = 2.0
    fails_to_start: bool = False
    run_requested: bool = False
    # state
    phase: GeneratorPhase = GeneratorPhase.STOPPED
    phase_s: float = 0.0  # time spent in the present phase
    starts: int = 0  # crank attempts
    run_seconds: float = 0.0  # total time running

    @property
    def running(self) -> bool:
        """Whether it is running and feeding AC."""
        return self.phase is GeneratorPhase.RUNNING

    @property
    def running_signal(self) -> bool:
        """Its "running" contact: on while running and while it spins down."""
        return self.phase in (GeneratorPhase.RUNNING, GeneratorPhase.SPINNING_DOWN)

    def update(self) -> None:
        """React to the run request (and to due phase changes) without time passing."""
        if self.run_requested:
            if self.phase in (GeneratorPhase.STOPPED, GeneratorPhase.SPINNING_DOWN):
                self._enter(GeneratorPhase.CRANKING)
                self.starts += 1
            if (self.phase is GeneratorPhase.CRANKING and not self.fails_to_start
                    and self.phase_s >= self.crank_s - _EPS_S):
                self._enter(GeneratorPhase.RUNNING)
        else:
            if self.phase is GeneratorPhase.CRANKING:
                self._enter(GeneratorPhase.STOPPED)
            elif self.phase is GeneratorPhase.RUNNING:
                self._enter(GeneratorPhase.SPINNING_DOWN)
            if (self.phase is GeneratorPhase.SPINNING_DOWN
                    and self.phase_s >= self.spin_down_s - _EPS_S):
                self._enter(GeneratorPhase.STOPPED)

    def next_event_s(self) -> float:
        """Simulated seconds until the next phase change due by itself (inf: none)."""
        if self.phase is GeneratorPhase.CRANKING and not self.fails_to_start:
            return max(0.0, self.crank_s - self.phase_s)
        if self.phase is GeneratorPhase.SPINNING_DOWN:
            return max(0.0, self.spin_down_s - self.phase_s)
        return math.inf

    def advance(self, dt_s: float) -> None:
        """Let ``dt_s`` seconds pass in the present phase, then change phase if due."""
        if self.running:
            self.run_seconds += dt_s
        self.phase_s += dt_s
        self.update()

    def _enter(self, phase: GeneratorPhase) -> None:
        self.phase = phase
        self.phase_s = 0.0


@dataclass
class ClimateGear:
    """What heats and cools the zones, as the simulator wires it: the diesel heater's output
    and 12 V draw (copied from the heater simulator), the roof A/C's relay (a switch) and
    which zones each serves, and which sensor device hangs in which zone."""

    heater_zones: tuple[str, ...] = ()
    heater_heat_w: float = 0.0
    heater_current_a: float = 0.0
    ac_switch: str = ""  # the switch name of the A/C relay ("": no A/C)
    ac_zones: tuple[str, ...] = ()
    ac_cooling_w: float = 2500.0  # a 2.5 kW roof unit
    sensors: dict[str, str] = field(default_factory=dict)  # device id -> zone or "outside"


@dataclass
class LteRouter:
    """The LTE router as its Modbus TCP server tells it (a Teltonika RUT): the mobile link,
    the WAN and its own GPS. ``gps_byte_order`` is the firmware's order of the position's
    float bytes ("ABCD", or "DCBA" as some firmware sends it)."""

    signal_dbm: int = -71
    operator: str = "Plus"
    network_type: str = "LTE"
    registration: str = "Registered, home"
    wan_ip: str = "10.64.12.7"
    lat: float = 52.22977
    lon: float = 21.01178
    satellites: int = 7
    gps_byte_order: str = "ABCD"
    rx_today_b: int = 48_000_000
    tx_today_b: int = 9_500_000

    def lose_network(self) -> None:
        """Out of coverage: no registration, no network type, the WAN down."""
        self.signal_dbm, self.registration = -113, "Not registered, searching"
        self.network_type, self.wan_ip = "", "0.0.0.0"


def _local_now() -> datetime:
    return datetime.now()


@dataclass
class Plant:
    """The van: battery, DC and AC loads, shore, generator, solar, alternator, inverter, and
    the air of its zones (``thermal``) with the gear that heats and cools them.

    ``loads`` maps each switchable DC circuit to its nominal current (DC amps) and
    ``ac_loads`` each AC circuit to its nominal AC current at 230 V; ``switches`` holds which
    of them are on (the simulator copies the relay coils into it). ``start_time`` is the
    local clock time at plant time 0; :attr:`clock` is the local time now.
    """

    battery: Battery = field(default_factory=Battery)
    inverter: InverterCharger = field(default_factory=InverterCharger)
    solar: SolarCharger = field(default_factory=SolarCharger)
    generator: Generator = field(default_factory=Generator)
    # mild weather by default (outside 21 °C), so an uncontrolled van stays at 21 °C
    thermal: ThermalPlant = field(default_factory=lambda: ThermalPlant.van(start_c=21.0,
                                                                         outside_c=21.0))
    climate: ClimateGear = field(default_factory=ClimateGear)
    router: LteRouter = field(default_factory=LteRouter)
    loads: dict[str, float] = field(default_factory=dict)
    ac_loads: dict[str, float] = field(default_factory=dict)
    switches: dict[str, bool] = field(default_factory=dict)
    base_load_a: float = 2.5
    # Amplitude of the base load's slow wander (pumps, fans, chargers coming and going); 0 in
    # tests that compare currents, a little in the demo so the van looks alive.
    load_wander_a: float = 0.0
    ac_base_load_w: float = 0.0
    shore_connected: bool = False
    ignition: bool = False  # engine running: the alternator charges through a DC-DC charger
    alternator_a: float = 20.0
    # Small wander of the AC input voltage around nominal (source impedance, the grid).
    ac_voltage_wander_v: float = 2.0
    start_time: datetime = field(default_factory=_local_now)
    time_s: float = 0.0
    ac_in_energy_kwh: float = 0.0  # energy taken from the AC input (the meter's import)
    # outputs, recomputed at every step
    ac_source: AcSource = AcSource.NONE  # what is live on the AC input cable
    alternator_current_a: float = 0.0
    # Longer steps are cut into pieces so that a fast simulator stays accurate.
    max_step_s: float = 5.0

    def __post_init__(self) -> None:
        self.settle()

    @classmethod
    def create(
        cls,
        *,
        capacity_ah: float = 200.0,
        start_soc: float = 80.0,
        shore: bool = False,
        loads: Mapping[str, float] | None = None,
        ac_loads: Mapping[str, float] | None = None,
        start_time: datetime | None = None,
        solar_peak_w: float = 300.0,
    ) -> Plant:
        """A plant with the usual parameters; all switchable loads start off.

        ``start_time`` defaults to the local time now; ``solar_peak_w = 0`` is a van
        without solar panels.
        """
        return cls(
            battery=Battery(capacity_ah=capacity_ah, soc=start_soc),
            solar=SolarCharger(peak_w=solar_peak_w),
            loads=dict(loads or {}),
            ac_loads=dict(ac_loads or {}),
            shore_connected=shore,
            start_time=start_time if start_time is not None else _local_now(),
        )

    # -- inputs and derived quantities --------------------------------------------------------

    @property
    def clock(self) -> datetime:
        """Simulated local time now."""
        return self.start_time + timedelta(seconds=self.time_s)

    @clock.setter
    def clock(self, value: datetime) -> None:
        """Jump to another time of day (the plant's own time keeps running from here)."""
        self.start_time = value - timedelta(seconds=self.time_s)

    @property
    def solar_peak_w(self) -> float:
        """Solar array's clear-sky output at noon (0: night or overcast all day)."""
        return self.solar.peak_w

    @solar_peak_w.setter
    def solar_peak_w(self, value: float) -> None:
        self.solar.peak_w = value

    @property
    def dc_load_a(self) -> float:
        """Current drawn by the DC loads: the base load plus every DC circuit switched on."""
        wander = self.load_wander_a * (
            0.7 * math.sin(2 * math.pi * self.time_s / 47.0)
            + 0.3 * math.sin(2 * math.pi * self.time_s / 11.0)
        )
        return self.base_load_a + wander + self.climate.heater_current_a + sum(
            amps for name, amps in self.loads.items() if self.switches.get(name, False)
        )

    @property
    def ac_load_w(self) -> float:
        """AC power the loads want: the base AC load plus every AC circuit switched on."""
        return self.ac_base_load_w + AC_NOMINAL_V * sum(
            amps for name, amps in self.ac_loads.items() if self.switches.get(name, False)
        )

    @property
    def ac_in_limit_a(self) -> float:
        """Current the AC input may take now: the MultiPlus limit, and the generator's size."""
        limit = self.inverter.ac_in_current_limit_a
        if self.ac_source is AcSource.GENERATOR:
            limit = min(limit, self.generator.capacity_a)
        return max(0.0, limit)

    @property
    def ac_in_voltage_v(self) -> float:
        """Voltage on the AC input cable (0 without a source)."""
        if self.ac_source is AcSource.NONE:
            return 0.0
        t = self.time_s
        wander = 0.7 * math.sin(2 * math.pi * t / 97.0) + 0.3 * math.sin(2 * math.pi * t / 23.0)
        return self.inverter.ac_voltage_v + self.ac_voltage_wander_v * wander

    @property
    def ac_in_current_a(self) -> float:
        """Current taken from the AC input."""
        volts = self.ac_in_voltage_v
        return self.inverter.ac_in_power_w / volts if volts > 0 else 0.0

    @property
    def active_input_source(self) -> AcSource:
        """The AC source the MultiPlus is using (NONE when it does not take its input)."""
        return self.ac_source if self.inverter.ac_input_active else AcSource.NONE

    # -- time ---------------------------------------------------------------------------------

    def step(self, dt_s: float) -> None:
        """Advance the plant by ``dt_s`` simulated seconds."""
        if dt_s < 0:
            raise ValueError("time does not run backwards")
        remaining = dt_s
        while remaining > 0:
            self.settle()
            # cut at the generator's phase changes so the result does not depend on the tick
            h = min(remaining, self.max_step_s, self.generator.next_event_s())
            self._integrate(h)
            remaining -= h
        self.settle()

    def _integrate(self, h: float) -> None:
        """Let ``h`` seconds pass at the flows :meth:`settle` computed."""
        bat, solar = self.battery, self.solar
        bat.integrate(h)
        clock = self.clock
        self.thermal.step(h, clock.hour + clock.minute / 60 + clock.second / 3600)
        self.generator.advance(h)
        solar.yield_today_kwh += solar.current_a * bat.open_circuit_voltage * h / _J_PER_KWH
        self.ac_in_energy_kwh += self.inverter.ac_in_power_w * h / _J_PER_KWH
        self.time_s += h

    # -- flows --------------------------------------------------------------------------------

    def _climate_inputs(self) -> None:
        """Heat into the zones: the heater's output and the A/C's cooling (only while its
        relay is on and the AC output is live), each shared by the zones it serves. The
        heater's ducts are balanced as an installer balances them: each zone's outlet gets
        the share of the heat that its shell loses, so the zones warm alike."""
        gear, zones = self.climate, self.thermal.zones
        cooling = self.switches.get(gear.ac_switch, False) and self.inverter.ac_output_live
        heated_ua = sum(zones[name].ua_w_per_k for name in gear.heater_zones)
        for name, zone in zones.items():
            zone.heater_w = (gear.heater_heat_w * zone.ua_w_per_k / heated_ua
                             if name in gear.heater_zones else 0.0)
            zone.cooling_w = (gear.ac_cooling_w / len(gear.ac_zones)
                              if cooling and name in gear.ac_zones else 0.0)

    def air(self, device_id: str) -> tuple[float, float]:
        """(temperature °C, humidity %) where the sensor ``device_id`` hangs."""
        where = self.climate.sensors.get(device_id, ROOM)
        if where == OUTSIDE:
            return self.thermal.outside_c, OUTSIDE_HUMIDITY_PCT
        return self.thermal.temperature(where), self.thermal.humidity(where)

    def settle(self) -> None:
        """Recompute every current and power for the present state, without time passing."""
        inv, bat, gen, solar = self.inverter, self.battery, self.generator, self.solar
        gen.update()
        today = self.clock.date()
        if solar.yield_day != today:
            solar.yield_day, solar.yield_today_kwh = today, 0.0
        # The rest voltage avoids a circular voltage <-> current dependency; close enough.
        dc_v = bat.open_circuit_voltage
        dc_load = self.dc_load_a
        ac_load_w = self.ac_load_w
        if self.shore_connected:  # shore wins over a running generator
            self.ac_source = AcSource.SHORE
        elif gen.running:
            self.ac_source = AcSource.GENERATOR
        else:
            self.ac_source = AcSource.NONE
        inv.ac_input_active = self.ac_source is not AcSource.NONE and inv.accepts_ac_input

        # AC side: what passes through from the input, what the inverter makes, what the
        # charger may still take from the input
        passthrough_w = inverter_w = charger_budget_w = 0.0
        if inv.ac_input_active:
            limit_w = self.ac_in_limit_a * AC_NOMINAL_V
            if ac_load_w > limit_w and inv.may_invert:
                passthrough_w, inverter_w = limit_w, ac_load_w - limit_w
                inv.state = InverterState.POWER_ASSIST
            else:
                passthrough_w = ac_load_w
                charger_budget_w = max(0.0, limit_w - ac_load_w)
                inv.state = InverterState(charge_stage(bat.soc))
            inv.ac_output_live = True
        elif inv.may_invert:
            inverter_w = ac_load_w
            inv.state = InverterState.INVERTING
            inv.ac_output_live = True
        else:
            inv.state = InverterState.OFF
            inv.ac_output_live = False
        inv.ac_out_power_w = ac_load_w if inv.ac_output_live else 0.0
        self._climate_inputs()
        inv.inverter_power_w = inverter_w
        inverter_draw_a = inverter_w / inv.efficiency / dc_v

        # DC side: the chargers fill the loads plus what the battery accepts, solar first
        room_a = dc_load + inverter_draw_a + charge_acceptance_a(bat.soc, inv.charger_max_a)
        solar.available_w = solar.peak_w * sun_fraction(self.clock) * solar.cloud_factor(
            self.time_s
        )
        solar_max_a = solar.available_w * solar.efficiency / dc_v if solar.enabled else 0.0
        solar.current_a = min(solar.max_current_a, solar_max_a, room_a)
        room_a -= solar.current_a
        self.alternator_current_a = min(self.alternator_a if self.ignition else 0.0, room_a)
        room_a -= self.alternator_current_a
        charger_max = min(inv.charger_max_a, charger_budget_w * inv.efficiency / dc_v)
        inv.charger_current_a = max(0.0, min(charger_max, room_a))

        inv.dc_current_a = inv.charger_current_a - inverter_draw_a
        inv.ac_in_power_w = (
            passthrough_w + inv.charger_current_a * dc_v / inv.efficiency
            if inv.ac_input_active else 0.0
        )
        solar.pv_power_w = solar.current_a * dc_v / solar.efficiency
        solar.pv_voltage_v = solar.mpp_voltage_v if solar.available_w > 0 else 0.0
        if solar.enabled and solar.available_w > 0:
            solar.state = SolarState(charge_stage(bat.soc))
        else:
            solar.state = SolarState.OFF
        bat.current = solar.current_a + self.alternator_current_a + inv.dc_current_a - dc_load
