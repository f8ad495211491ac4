"""Lumped thermal model of the van's climate zones: the crew area and the consultation room.

Pure logic, no I/O and no clock of its own, like :mod:`vansim.plant`: the caller advances it
with :meth:`ThermalPlant.step`, an explicit time step in simulated seconds and the simulated
local time of day in hours (for the outside temperature and the sun).

Each zone is one well-mixed node (air plus the interior it warms: lining, furniture,
equipment) with one heat capacity ``C``. Its heat balance, in watts::

    C dT/dt = heater - cooling + occupants * 100 W + solar gain
              + UA (T_outside - T)                      (shell; + 150 W/K while a door is open)
              + sum over neighbours k (T_neighbour - T)  (the partition wall and its door)

Heat that leaves one zone through the partition enters the other, so the van as a whole
only exchanges heat with the outside. Relative humidity is deliberately simple: the zone's
water content stays put while its temperature changes (warming dries the air, cooling
dampens it), occupants breathe moisture into it, ventilation and the interior's moisture
buffering pull it back to a baseline, and it is kept within 20-90 % (at 90 % the cold
windows condense the excess; below 20 % the upholstery and wood give moisture back).

Inputs are attributes the simulator sets before each step: ``zone.heater_w``,
``zone.cooling_w``, ``zone.occupants``, ``zone.door_open``, ``zone.solar_gain_w`` and
``plant.outside_c``. With ``plant.outside_profile`` the plant takes the outside temperature
from the time of day instead; with ``plant.sun_profile`` it sets every zone's solar gain to
``zone.solar_peak_w`` times the sun's share of peak irradiance.

Integration: explicit Euler in equal sub-steps. Write zone ``i``'s total conductance as
``G_i = UA_i (with the door) + sum of its couplings``. One Euler sub-step ``h`` gives::

    T_i' = (1 - h G_i / C_i) T_i + (h / C_i) (sum_j k_ij T_j + UA_i T_out + Q_i)

With ``h <= C_i / G_i`` for every zone all weights are non-negative: each new temperature is
a weighted mean of the old temperatures, the outside and the heat input, so the model can
neither oscillate nor overshoot its steady state (and ``h < 2 C_i / G_i`` would be the bare
stability limit). Accuracy asks for less: Euler's error on a decay ``exp(-t/τ)`` is at most
about ``e^-1 h / 2τ`` of the starting difference, so sub-steps are at most
:data:`SUBSTEP_SHARE_OF_TAU` (1/50) of the smallest ``C_i / G_i`` (error under 0.4 %, and 50
times inside the no-overshoot bound) and at most ``max_substep_s``; any step length is safe,
60 s included. For the van's zones ``C/G`` is 1500-1900 s with the doors shut and 270-420 s
with one open: a 60 s step becomes 6 sub-steps of 10 s, or 12 of 5 s with a door open. A
zone of bare air (~10 kJ/K) with its door open, ``C/G`` ~ 60 s, gets 1.1 s sub-steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

# Names of the van's zones (the consultation room's sensor is also called "room").
CREW = "crew"
ROOM = "room"

# Sensible heat of a seated adult (ISO 8996 / ASHRAE: ~70 W sensible of ~115 W metabolic
# at rest; 100 W covers someone in a winter coat moving about the van).
OCCUPANT_SENSIBLE_W = 100.0
# Moisture a seated adult breathes and sweats out: 40-60 g/h at rest.
OCCUPANT_MOISTURE_G_PER_H = 50.0
# Extra conductance of an open door: the sliding door's ~1.5 m2 lets the warm air out by
# buoyancy and wind; 150 W/K is ~5 kW at a 35 K difference, the van cold within minutes.
DOOR_OPEN_UA_W_PER_K = 150.0

# Relative humidity: kept within these, relaxing to the baseline with this time constant
# (ventilation and the moisture the interior's surfaces take up and give back).
HUMIDITY_MIN_PCT = 20.0
HUMIDITY_MAX_PCT = 90.0
HUMIDITY_BASELINE_PCT = 45.0
HUMIDITY_TAU_S = 1800.0

# Sub-steps are at most this share of the smallest zone time constant C/G: far inside the
# no-overshoot bound (1) and accurate to a fraction of a percent (module docstring).
SUBSTEP_SHARE_OF_TAU = 1 / 50

# Magnus formula over water (Alduchov & Eskridge 1996), valid from -45 to +60 °C; outside
# that the temperature is clamped so that any input, however odd, gives a finite humidity.
_MAGNUS_A = 17.62
_MAGNUS_B_C = 243.12
_MAGNUS_RANGE_C = (-45.0, 60.0)
_SATURATION_PA_AT_0C = 611.2
_WATER_VAPOUR_J_PER_KG_K = 461.5
_KELVIN = 273.15
_S_PER_H = 3600.0
_H_PER_DAY = 24.0


def saturation_vapour_pa(temperature_c: float) -> float:
    """Saturation vapour pressure over water at ``temperature_c`` (Magnus formula), in Pa."""
    t = min(_MAGNUS_RANGE_C[1], max(_MAGNUS_RANGE_C[0], temperature_c))
    return _SATURATION_PA_AT_0C * math.exp(_MAGNUS_A * t / (_MAGNUS_B_C + t))


def saturation_vapour_g_per_m3(temperature_c: float) -> float:
    """Water a cubic metre of air holds when saturated at ``temperature_c``, in grams."""
    t = min(_MAGNUS_RANGE_C[1], max(_MAGNUS_RANGE_C[0], temperature_c))
    return saturation_vapour_pa(t) / (_WATER_VAPOUR_J_PER_KG_K * (t + _KELVIN)) * 1000.0


@dataclass
class Zone:
    """One climate zone: a well-mixed node of air and the interior mass it warms.

    ``solar_peak_w`` is the gain in full summer sun (windows and the sun-warmed skin), used
    only while the plant has a ``sun_profile``. The inputs (``heater_w`` and on) are set by
    the simulator before each step and hold for the whole step.
    """

    name: str
    temperature_c: float
    heat_capacity_j_per_k: float
    ua_w_per_k: float  # to the outside, door shut
    humidity_pct: float = HUMIDITY_BASELINE_PCT
    air_volume_m3: float = 6.0
    solar_peak_w: float = 0.0
    # inputs
    heater_w: float = 0.0  # diesel air heater's output ducted into this zone
    cooling_w: float = 0.0  # heat the A/C removes
    occupants: int = 0
    door_open: bool = False
    solar_gain_w: float = 0.0

    def __post_init__(self) -> None:
        if self.heat_capacity_j_per_k <= 0:
            raise ValueError(f"zone {self.name!r}: heat capacity must be positive")
        if self.ua_w_per_k < 0 or self.air_volume_m3 <= 0:
            raise ValueError(f"zone {self.name!r}: UA must be >= 0 and air volume positive")

    @property
    def shell_ua_w_per_k(self) -> float:
        """Conductance to the outside now: the shell's, plus the open door's."""
        return self.ua_w_per_k + (DOOR_OPEN_UA_W_PER_K if self.door_open else 0.0)

    @property
    def gains_w(self) -> float:
        """Net heat put into the zone by the inputs (heater, A/C, people, sun), in W."""
        return (self.heater_w - self.cooling_w + self.occupants * OCCUPANT_SENSIBLE_W
                + self.solar_gain_w)


@dataclass
class ThermalPlant:
    """The van's zones, the walls between them and the weather outside.

    ``coupling_w_per_k`` maps a pair of adjacent zones (either order, once) to the
    conductance of the partition between them. ``outside_profile`` and ``sun_profile``
    (time of day in hours -> °C, -> share of peak irradiance 0..1), when given, override
    ``outside_c`` and the zones' ``solar_gain_w`` at every sub-step.
    """

    zones: dict[str, Zone]
    coupling_w_per_k: dict[tuple[str, str], float] = field(default_factory=dict)
    outside_c: float = 0.0
    outside_profile: Callable[[float], float] | None = None
    sun_profile: Callable[[float], float] | None = None
    max_substep_s: float = 10.0

    def __post_init__(self) -> None:
        for name, zone in self.zones.items():
            if zone.name != name:
                raise ValueError(f"zone {zone.name!r} is filed under {name!r}")
        seen: set[frozenset[str]] = set()
        for (a, b), k in self.coupling_w_per_k.items():
            for name in (a, b):
                if name not in self.zones:
                    raise ValueError(f"coupling {a!r}-{b!r}: no zone {name!r}")
            if a == b or k < 0 or frozenset((a, b)) in seen:
                raise ValueError(f"coupling {a!r}-{b!r}: two different zones, once, k >= 0")
            seen.add(frozenset((a, b)))
        if self.max_substep_s <= 0:
            raise ValueError("max_substep_s must be positive")

    @classmethod
    def van(
        cls,
        *,
        start_c: float = 20.0,
        outside_c: float = 0.0,
        outside_profile: Callable[[float], float] | None = None,
        sun_profile: Callable[[float], float] | None = None,
    ) -> ThermalPlant:
        """The MCW van: crew area and consultation room in a Sprinter-class insulated box.

        Both zones start at ``start_c`` and the baseline humidity.
        """
        crew = Zone(
            CREW, start_c,
            # 8 m3 of air (~10 kJ/K) and ~70 kJ/K of lining, seats, lockers and kit
            heat_capacity_j_per_k=80_000.0,
            # the larger part of the shell: roof, floor, sliding door and its window
            ua_w_per_k=30.0,
            air_volume_m3=8.0,
            solar_peak_w=400.0,  # ~1 m2 of tinted window plus the roof's share
        )
        room = Zone(
            ROOM, start_c,
            heat_capacity_j_per_k=50_000.0,  # 5 m3 of air, a table, two seats, lining
            ua_w_per_k=22.0,  # rear doors and the back of the box
            air_volume_m3=5.0,
            solar_peak_w=200.0,  # one small frosted window (privacy)
        )
        return cls(
            zones={CREW: crew, ROOM: room},
            # ~4 m2 of thin partition (U ~ 2.5 W/m2K) plus leakage round its door
            coupling_w_per_k={(CREW, ROOM): 12.0},
            outside_c=outside_c,
            outside_profile=outside_profile,
            sun_profile=sun_profile,
        )

    # -- reading ----------------------------------------------------------------------------

    def zone(self, name: str) -> Zone:
        """The zone called ``name`` (KeyError naming it if there is none)."""
        try:
            return self.zones[name]
        except KeyError:
            raise KeyError(f"no zone {name!r} in the thermal plant") from None

    def temperature(self, zone: str) -> float:
        """Air temperature of ``zone`` now, in °C."""
        return self.zone(zone).temperature_c

    def humidity(self, zone: str) -> float:
        """Relative humidity of ``zone`` now, in %."""
        return self.zone(zone).humidity_pct

    def temperatures(self) -> dict[str, float]:
        """Every zone's temperature, by name."""
        return {name: z.temperature_c for name, z in self.zones.items()}

    def conductance_w_per_k(self, zone: str) -> float:
        """``G``: everything that ties ``zone``'s temperature to others (shell, door, walls)."""
        g = self.zone(zone).shell_ua_w_per_k
        for (a, b), k in self.coupling_w_per_k.items():
            if zone in (a, b):
                g += k
        return g

    def stable_substep_s(self) -> float:
        """Longest sub-step :meth:`step` uses with the present inputs (module docstring)."""
        bound_s = math.inf  # a zone tied to nothing never limits the step
        for name, z in self.zones.items():
            g = self.conductance_w_per_k(name)
            if g > 0:
                bound_s = min(bound_s, z.heat_capacity_j_per_k / g)
        return min(self.max_substep_s, SUBSTEP_SHARE_OF_TAU * bound_s)

    # -- time -------------------------------------------------------------------------------

    def step(self, dt_s: float, clock_h: float) -> None:
        """Advance ``dt_s`` simulated seconds from local time of day ``clock_h`` (hours).

        The inputs hold for the whole step; the profiles, if any, are read at every
        sub-step's start. ``dt_s = 0`` only applies the profiles at ``clock_h``.
        """
        if dt_s < 0:
            raise ValueError("time does not run backwards")
        if dt_s == 0:
            self._apply_profiles(clock_h)
            return
        # equal sub-steps: no sliver of a step left over by rounding
        n = max(1, math.ceil(dt_s / self.stable_substep_s()))
        h = dt_s / n
        for i in range(n):
            self._apply_profiles(clock_h + i * h / _S_PER_H)
            self._substep(h)

    def _apply_profiles(self, clock_h: float) -> None:
        if self.outside_profile is not None:
            self.outside_c = self.outside_profile(clock_h)
        if self.sun_profile is not None:
            sun = self.sun_profile(clock_h)
            for z in self.zones.values():
                z.solar_gain_w = z.solar_peak_w * sun

    def _substep(self, h: float) -> None:
        """One explicit Euler step of ``h`` seconds: all flows from the old temperatures."""
        flows_w = {name: z.gains_w + z.shell_ua_w_per_k * (self.outside_c - z.temperature_c)
                   for name, z in self.zones.items()}
        for (a, b), k in self.coupling_w_per_k.items():
            q = k * (self.zones[b].temperature_c - self.zones[a].temperature_c)  # a <- b
            flows_w[a] += q
            flows_w[b] -= q
        for name, z in self.zones.items():
            old_c = z.temperature_c
            z.temperature_c = old_c + h * flows_w[name] / z.heat_capacity_j_per_k
            z.humidity_pct = _next_humidity(z, old_c, h)


def _next_humidity(zone: Zone, old_c: float, h: float) -> float:
    """Zone humidity after ``h`` seconds in which its air went from ``old_c`` to now."""
    new_c = zone.temperature_c
    # same water in warmer air: relative humidity falls with the saturation pressure
    rh = zone.humidity_pct * saturation_vapour_pa(old_c) / saturation_vapour_pa(new_c)
    # what the occupants breathe out, as a share of what the air could hold
    water_g = zone.occupants * OCCUPANT_MOISTURE_G_PER_H * h / _S_PER_H
    rh += 100.0 * water_g / (zone.air_volume_m3 * saturation_vapour_g_per_m3(new_c))
    # ventilation and buffering; the exact exponential is stable for any h
    rh = HUMIDITY_BASELINE_PCT + (rh - HUMIDITY_BASELINE_PCT) * math.exp(-h / HUMIDITY_TAU_S)
    return min(HUMIDITY_MAX_PCT, max(HUMIDITY_MIN_PCT, rh))


# -- weather --------------------------------------------------------------------------------


def diurnal_profile(min_c: float, min_h: float, max_c: float,
                    max_h: float) -> Callable[[float], float]:
    """Outside temperature over a day: ``min_c`` at ``min_h`` o'clock, ``max_c`` at ``max_h``.

    Two half cosines, rising from the minimum to the maximum and falling back, so the
    curve is smooth, flat at both extremes and repeats every 24 h (any hour is taken
    modulo 24).
    """
    rise_h = (max_h - min_h) % _H_PER_DAY
    if rise_h == 0:
        raise ValueError("the minimum and the maximum need different hours")
    span_c = max_c - min_c

    def outside_c(clock_h: float) -> float:
        since_min_h = (clock_h - min_h) % _H_PER_DAY
        if since_min_h <= rise_h:
            return min_c + span_c * (1 - math.cos(math.pi * since_min_h / rise_h)) / 2
        fall = (since_min_h - rise_h) / (_H_PER_DAY - rise_h)
        return max_c - span_c * (1 - math.cos(math.pi * fall)) / 2

    return outside_c


def winter_night() -> Callable[[float], float]:
    """A hard winter day: -15 °C at 04:00, rising to -8 °C at midday."""
    return diurnal_profile(-15.0, 4.0, -8.0, 12.0)


def summer_day() -> Callable[[float], float]:
    """A hot summer day: +22 °C at dawn (05:00), +32 °C mid-afternoon (15:00)."""
    return diurnal_profile(22.0, 5.0, 32.0, 15.0)


def sun_arch(sunrise_h: float, sunset_h: float) -> Callable[[float], float]:
    """Share of peak irradiance over a clear day: a sine arch from sunrise to sunset.

    The same shape as :func:`vansim.plant.sun_fraction` (which has a fixed 06:00-18:00 day).
    """
    if not 0 <= sunrise_h < sunset_h <= _H_PER_DAY:
        raise ValueError("sunrise must come before sunset within the day")

    def fraction(clock_h: float) -> float:
        hour = clock_h % _H_PER_DAY
        if not sunrise_h < hour < sunset_h:
            return 0.0  # exactly: sin(pi) is not quite 0 in floating point
        return math.sin(math.pi * (hour - sunrise_h) / (sunset_h - sunrise_h))

    return fraction


def summer_sun() -> Callable[[float], float]:
    """Sun of a clear summer day in central Europe (summer time): up 05:00-21:00, peak 13:00."""
    return sun_arch(5.0, 21.0)


# -- accelerated scenarios ------------------------------------------------------------------


def run_for(
    plant: ThermalPlant,
    seconds: float,
    dt_s: float,
    clock_h_start: float,
    on_step: Callable[[float, float], None] | None = None,
    sample_every: int = 1,
) -> list[tuple[float, dict[str, float]]]:
    """Step ``plant`` for ``seconds`` in steps of ``dt_s`` from local time ``clock_h_start``.

    ``on_step(t_s, clock_h)`` runs before each step (a thermostat sets the inputs there;
    ``clock_h`` keeps counting past 24). Returns ``(t_s, {zone: °C})`` samples: at the start,
    after every ``sample_every``-th step and after the last step (which is shorter when
    ``seconds`` is not a whole number of steps).
    """
    if dt_s <= 0 or sample_every < 1 or seconds < 0:
        raise ValueError("dt_s must be positive, sample_every >= 1 and seconds >= 0")
    samples = [(0.0, plant.temperatures())]
    steps = math.ceil(seconds / dt_s - 1e-9)  # a float quotient of 59.99999... is 60 steps
    for i in range(steps):
        t_s = i * dt_s
        h = min(dt_s, seconds - t_s)
        clock_h = clock_h_start + t_s / _S_PER_H
        if on_step is not None:
            on_step(t_s, clock_h)
        plant.step(h, clock_h)
        if (i + 1) % sample_every == 0 or i == steps - 1:
            samples.append((t_s + h, plant.temperatures()))
    return samples
