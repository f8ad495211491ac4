"""Runtime forecast: how long the battery lasts, now and "what if" a load is added.

Time-to-go comes from the battery monitor where it is trusted (fresh, positive); otherwise from
the usable charge down to the floor SOC and a smoothed net load. "What if" adds a load to the
smoothed net load: "6 h 20 min; 1 h 40 min with A/C".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_LOAD_A = 0.05  # below this the battery is not really being drained
SMOOTHING_S = 300.0  # time constant of the load average: a kettle does not halve the runtime


@dataclass
class RuntimeForecast:
    capacity_ah: float
    floor_soc: float  # runtime is counted down to this SOC (the critical alarm level)
    load_a: float | None = None  # smoothed net discharge current (negative when charging)
    net_a: float | None = None  # the latest net discharge current
    _last: float | None = None

    def update(self, now: float, battery_current: float) -> None:
        """Feed a battery current reading (A, negative when discharging)."""
        net = self.net_a = -battery_current
        if self.load_a is None or self._last is None:
            self.load_a = net
        else:
            dt = max(0.0, now - self._last)
            alpha = 1 - math.exp(-dt / SMOOTHING_S)
            self.load_a += alpha * (net - self.load_a)
        self._last = now

    def usable_ah(self, soc: float) -> float:
        return max(0.0, (soc - self.floor_soc) / 100 * self.capacity_ah)

    def runtime_s(self, soc: float | None, monitor_ttg_s: float | None = None,
                  extra_a: float = 0.0) -> float | None:
        """Seconds until the floor SOC; None while charging faster than the load (no limit).

        With the monitor's time-to-go, a what-if scales it by the load ratio (at the present
        current, which the monitor's own figure follows), so "now" and "with A/C" always come
        from the same base.
        """
        smoothed = self.load_a
        if monitor_ttg_s is not None and monitor_ttg_s > 0:
            if extra_a == 0:
                return monitor_ttg_s
            if self.net_a is not None and self.net_a > MIN_LOAD_A:
                return monitor_ttg_s * self.net_a / (self.net_a + extra_a)
        if soc is None or smoothed is None:
            return None
        load = smoothed + extra_a
        if load <= MIN_LOAD_A:
            return None
        return self.usable_ah(soc) / load * 3600
