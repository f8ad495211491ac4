"""Power level of the diesel air heater: a PI controller on its lead zone.

Pure logic on injected monotonic time (tests/test_heater_level.py runs it against the thermal
plant in virtual time). On/off cycling of a heater that delivers 1-4 kW into a van box that
needs about 2 kW on a winter night swings the room by ±2 K and starts the heater several
times an hour (glow plug wear, coking). A burner that modulates runs through the night
instead: its level follows the lead zone's shortfall below its set point, proportionally and
with an integral term that finds the level the night needs, so the room stays within a few
tenths of a kelvin and the thermostat's stop (set point + hot tolerance) is reached only when
even the lowest level is too much.

* **Proportional + integral**: ``u = gain * e + I`` with ``e`` = set point - temperature (K)
  and ``I`` integrated as ``gain * e * dt / integral_s`` (the integral time: how long a steady
  shortfall takes to add what the proportional part gives at once).
* **Anti-windup**: the integral only moves while ``u`` is within the levels, or towards them;
  it is kept within the levels, so a long warm-up at full power does not overshoot the room
  afterwards.
* **Levels are whole numbers** and a level changes at most every ``change_s`` (the burner
  settles to each level; the bus is not flooded): the room averages the levels either side of
  ``u``, the plant's time constant (tens of minutes) smoothing the steps.
* **Cap**: a zone the heater also blows into that is already too warm caps the level (the
  caller passes ``cap``); the integral is then held (anti-windup again).
"""

from __future__ import annotations

import math


class LevelController:
    """PI controller from a zone's shortfall (K) to a heater power level."""

    def __init__(self, min_level: int, max_level: int, *, gain_per_k: float,
                 integral_s: float, change_s: float) -> None:
        """ValueError for levels out of order or a non-positive gain or integral time."""
        if not (0 <= min_level <= max_level and gain_per_k > 0 and integral_s > 0
                and change_s >= 0):
            raise ValueError("need 0 <= min_level <= max_level, gain_per_k > 0, "
                             "integral_s > 0 and change_s >= 0")
        self.min_level = min_level
        self.max_level = max_level
        self.gain_per_k = gain_per_k
        self.integral_s = integral_s
        self.change_s = change_s
        self.level = min_level
        self.integral = float(min_level)
        self._last: float | None = None  # time of the previous step
        self._changed_at = -math.inf

    def reset(self) -> None:
        """The heater stopped: the next run starts from the lowest level and a fresh integral."""
        self.level = self.min_level
        self.integral = float(self.min_level)
        self._last = None
        self._changed_at = -math.inf

    def output(self, error_k: float) -> float:
        """The unquantised level for a shortfall of ``error_k`` now."""
        return self.gain_per_k * error_k + self.integral

    def step(self, now: float, error_k: float, cap: int | None = None) -> int:
        """The level to burn at now, for a shortfall of ``error_k`` (K; negative: too warm).

        ``cap``: the highest level allowed now (a neighbouring zone too warm), or None.
        """
        if not math.isfinite(error_k):
            raise ValueError("the shortfall must be a finite number of kelvin")
        top = self.max_level if cap is None else max(self.min_level, min(cap, self.max_level))
        dt = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        step = self.gain_per_k * error_k * dt / self.integral_s
        u = self.output(error_k)
        # integrate only where that does not wind up against a limit
        if (u < top or step < 0) and (u > self.min_level or step > 0):
            self.integral = min(float(top), max(float(self.min_level), self.integral + step))
        wanted = max(self.min_level, min(top, round(self.output(error_k))))
        # a cap acts at once; other changes wait for change_s
        if self.level > top:
            self.level, self._changed_at = top, now
        elif wanted != self.level and now - self._changed_at >= self.change_s:
            self.level, self._changed_at = wanted, now
        return self.level
