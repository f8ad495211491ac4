"""Anti-short-cycle guard: the roof A/C's compressor, and the diesel heater's starts.

Written for the compressor (below); the diesel heater uses the same rest between a stop and
the next start, because every start heats its glow plug and cokes its burner a little: a
heater started again a few minutes after each stop wears out in a season.

Pure logic on injected monotonic time. A compressor started again soon after it stopped starts
against refrigerant pressures that have not yet equalised: it stalls at locked-rotor current,
trips its overload or the inverter. So it rests ``min_off_s`` after every stop; once started it
runs at least ``min_run_s`` (lubricating oil carried out with the refrigerant needs that long to
return). The caller asks ``may_start``/``may_stop`` before switching and reports what it did;
``may_stop`` is advice a safety stop (sensor lost, crew off, power shedding) may override.

**Power loss.** When the supply drops, the compressor stops whatever the controller last said,
and during a dip or brown-out it may have stalled or been restarted by the A/C's own
electronics. ``power_lost`` therefore starts the rest again from the loss, also when the
compressor was already off: the only safe assumption is that it has just stopped.

**Controller restart.** A restart of the controller counts as a power loss: the previous
instance may have been running the compressor a moment ago, and this one cannot know. The
guard is rested only ``min_off_s`` after its construction (``now=`` when given, else the time
of the first call to it, which is never earlier).
"""

from __future__ import annotations

import math


def duration_text(seconds: float) -> str:
    """``2 min 10 s``, ``4 min``, ``45 s``; rounded up, so a wait never reads ``0 s``."""
    minutes, secs = divmod(math.ceil(seconds), 60)
    parts = [f"{minutes} min"] if minutes else []
    if secs or not minutes:
        parts.append(f"{secs} s")
    return " ".join(parts)


class RestGuard:
    """Minimum off and minimum run times of one machine (see the module docstring)."""

    def __init__(self, min_off_s: float = 240.0, min_run_s: float = 180.0, *,
                 now: float | None = None, machine: str = "compressor") -> None:
        """``now``: the construction time on the caller's monotonic clock (see the module
        docstring); ``machine`` names it in the reasons; ValueError for a negative
        duration."""
        if not (min_off_s >= 0 and min_run_s >= 0):
            raise ValueError("min_off_s and min_run_s must not be negative")
        self.min_off_s = min_off_s
        self.min_run_s = min_run_s
        self.running = False
        self._since = now  # of the last start when running, else of the last stop or loss
        self._cause = "controller restart"  # why it rests: shown in the reason
        self.machine = machine

    def _seen(self, now: float) -> float:
        """The time of the last start, stop or loss; the first call stands for the
        construction (a loss) when no ``now`` was given to it."""
        if self._since is None:
            self._since = now
        return self._since

    # ---- questions ---------------------------------------------------------------------------

    def rest_left(self, now: float) -> float:
        """Seconds the compressor must still rest (0 when running or rested)."""
        since = self._seen(now)
        return 0.0 if self.running else max(0.0, self.min_off_s - (now - since))

    def run_left(self, now: float) -> float:
        """Seconds of its minimum run still to go (0 when stopped or run long enough)."""
        since = self._seen(now)
        return max(0.0, self.min_run_s - (now - since)) if self.running else 0.0

    def may_start(self, now: float) -> str | None:
        """None when it may start now, else why not (``compressor rest: 2 min 10 s left``)."""
        left = self.rest_left(now)
        if left <= 0:
            return None
        cause = "" if self._cause == "stop" else f" ({self._cause})"
        return f"{self.machine} rest: {duration_text(left)} left{cause}"

    def may_stop(self, now: float) -> bool:
        """Whether its minimum run is over (a safety stop may go ahead regardless)."""
        return self.run_left(now) <= 0

    # ---- what happened -----------------------------------------------------------------------

    def started(self, now: float) -> None:
        """The compressor was switched on (again while running: nothing changes)."""
        if not self.running:
            self.running, self._since = True, now

    def stopped(self, now: float) -> None:
        """The compressor was switched off. Repeated while off it changes nothing, so a
        keep-alive re-asserting off does not keep it resting for ever."""
        self._seen(now)
        if self.running:
            self.running, self._since, self._cause = False, now, "stop"

    def power_lost(self, now: float) -> None:
        """The supply dropped: off, and the rest starts again from now, also when it was off."""
        self.running, self._since, self._cause = False, now, "power loss"
