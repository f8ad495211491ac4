"""Physical model of the van's electrical system and consultation room.

Pure logic, no I/O and no clock of its own: the caller advances it with :meth:`Plant.step`
and an explicit time step in simulated seconds, so a test can run an hour of battery
discharge in a millisecond and the simulator can run faster than real time.

Sign convention (Victron's): battery current is positive while charging, negative while
discharging.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

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
# The charger leaves bulk (constant current) for absorption (tapering current) here.
ABSORPTION_SOC = 90.0
# Smallest absorption current, so that the model does reach 100 % in finite time.
MIN_ABSORPTION_A = 2.0


def open_circuit_voltage(soc: float) -> float:
    """Rest voltage of the 12 V LiFePO4 battery at ``soc`` percent (linear in the table)."""
    soc = min(100.0, max(0.0, soc))
    i = bisect.bisect_right(_OCV_SOC, soc)
    if i >= len(_OCV_TABLE):
        return _OCV_TABLE[-1][1]
    (s0, v0), (s1, v1) = _OCV_TABLE[i - 1], _OCV_TABLE[i]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


class BatteryState(IntEnum):
    """Victron ``/Dc/Battery/State``."""

    IDLE = 0
    CHARGING = 1
    DISCHARGING = 2


class InverterMode(IntEnum):
    """Victron VE.Bus ``/Mode`` (written by the supervisor)."""

    CHARGER_ONLY = 1
    INVERTER_ONLY = 2
    ON = 3
    OFF = 4


class InverterState(IntEnum):
    """Victron VE.Bus ``/State`` values the model produces."""

    OFF = 0
    BULK = 3
    ABSORPTION = 4
    FLOAT = 5
    INVERTING = 9


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
    """MultiPlus inverter/charger: settings come from the supervisor, flows from the plant."""

    mode: int = InverterMode.ON
    ac_in_current_limit_a: float = 16.0
    charger_max_a: float = 30.0
    efficiency: float = 0.9
    ac_voltage_v: float = 230.0
    ac_frequency_hz: float = 50.0
    # outputs, recomputed by Plant at every step
    state: InverterState = InverterState.OFF
    ac_input_active: bool = False
    ac_output_live: bool = False
    dc_current_a: float = 0.0  # into the battery bus; negative while inverting
    ac_in_power_w: float = 0.0
    ac_out_power_w: float = 0.0

    @property
    def accepts_ac_input(self) -> bool:
        """Whether the mode lets the unit use shore power."""
        return self.mode in (InverterMode.CHARGER_ONLY, InverterMode.ON)

    @property
    def may_invert(self) -> bool:
        """Whether the mode lets the unit make AC from the battery."""
        return self.mode in (InverterMode.INVERTER_ONLY, InverterMode.ON)


@dataclass
class RoomClimate:
    """Consultation room air: slow deterministic drift around a base value."""

    base_temperature_c: float = 21.0
    base_humidity_pct: float = 45.0
    temperature_swing_c: float = 1.0
    humidity_swing_pct: float = 5.0
    period_s: float = 6 * 3600.0
    time_s: float = 0.0

    @property
    def temperature_c(self) -> float:
        """Air temperature now."""
        return self.base_temperature_c + self.temperature_swing_c * math.sin(
            2 * math.pi * self.time_s / self.period_s
        )

    @property
    def humidity_pct(self) -> float:
        """Relative humidity now (falls when the air warms up, as it does)."""
        value = self.base_humidity_pct - self.humidity_swing_pct * math.sin(
            2 * math.pi * self.time_s / self.period_s
        )
        return min(100.0, max(0.0, value))

    def advance(self, dt_s: float) -> None:
        """Let ``dt_s`` seconds of drift pass."""
        self.time_s += dt_s


@dataclass
class Plant:
    """The van: house battery, DC loads on relay circuits, shore power, inverter/charger, room.

    ``loads`` maps each switchable circuit name to its nominal current; ``switches`` holds
    which of them are on (the simulator copies the relay coils into it).
    """

    battery: Battery = field(default_factory=Battery)
    inverter: InverterCharger = field(default_factory=InverterCharger)
    room: RoomClimate = field(default_factory=RoomClimate)
    loads: dict[str, float] = field(default_factory=dict)
    switches: dict[str, bool] = field(default_factory=dict)
    base_load_a: float = 2.5
    # Amplitude of the base load's slow wander (pumps, fans, chargers coming and going); 0 in
    # tests that compare currents, a little in the demo so the van looks alive.
    load_wander_a: float = 0.0
    ac_load_w: float = 0.0
    shore_connected: bool = False
    time_s: float = 0.0
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
    ) -> Plant:
        """A plant with the usual parameters; all switchable loads start off."""
        return cls(
            battery=Battery(capacity_ah=capacity_ah, soc=start_soc),
            loads=dict(loads or {}),
            shore_connected=shore,
        )

    @property
    def dc_load_a(self) -> float:
        """Current drawn by the DC loads: the base load plus every circuit switched on."""
        wander = self.load_wander_a * (
            0.7 * math.sin(2 * math.pi * self.time_s / 47.0)
            + 0.3 * math.sin(2 * math.pi * self.time_s / 11.0)
        )
        return self.base_load_a + wander + sum(
            amps for name, amps in self.loads.items() if self.switches.get(name, False)
        )

    def step(self, dt_s: float) -> None:
        """Advance the plant by ``dt_s`` simulated seconds."""
        if dt_s < 0:
            raise ValueError("time does not run backwards")
        remaining = dt_s
        while remaining > 0:
            h = min(remaining, self.max_step_s)
            self.settle()
            self.battery.integrate(h)
            self.room.advance(h)
            self.time_s += h
            remaining -= h
        self.settle()

    def settle(self) -> None:
        """Recompute every current and power for the present state, without time passing."""
        inv, bat = self.inverter, self.battery
        dc_load = self.dc_load_a
        # The rest voltage avoids a circular voltage <-> current dependency; close enough.
        dc_v = bat.open_circuit_voltage
        inv.ac_input_active = self.shore_connected and inv.accepts_ac_input
        if inv.ac_input_active:
            target, inv.state = self._charge_target()
            # shore power left after the AC loads it feeds through, converted to DC amps
            budget_w = max(0.0, inv.ac_in_current_limit_a * inv.ac_voltage_v - self.ac_load_w)
            charger_a = min(inv.charger_max_a, budget_w * inv.efficiency / dc_v, target + dc_load)
            inv.dc_current_a = charger_a
            inv.ac_output_live = True
            inv.ac_out_power_w = self.ac_load_w
            inv.ac_in_power_w = self.ac_load_w + charger_a * dc_v / inv.efficiency
        elif inv.may_invert:
            inv.state = InverterState.INVERTING
            inv.dc_current_a = -self.ac_load_w / inv.efficiency / dc_v
            inv.ac_output_live = True
            inv.ac_out_power_w = self.ac_load_w
            inv.ac_in_power_w = 0.0
        else:
            inv.state = InverterState.OFF
            inv.dc_current_a = 0.0
            inv.ac_output_live = False
            inv.ac_out_power_w = 0.0
            inv.ac_in_power_w = 0.0
        bat.current = inv.dc_current_a - dc_load

    def _charge_target(self) -> tuple[float, InverterState]:
        """Net battery current the charger aims for, and the charge stage it is in."""
        soc, max_a = self.battery.soc, self.inverter.charger_max_a
        if soc >= 100.0:
            return 0.0, InverterState.FLOAT
        if soc >= ABSORPTION_SOC:
            taper = max_a * (100.0 - soc) / (100.0 - ABSORPTION_SOC)
            return max(MIN_ABSORPTION_A, taper), InverterState.ABSORPTION
        return max_a, InverterState.BULK
