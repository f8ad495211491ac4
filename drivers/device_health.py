"""Health of one device on a bus: online -> degraded -> offline, with error counts.

A device that stops answering is degraded at the first failure and offline after
``OFFLINE_AFTER`` consecutive failures (or at once when its whole bus is gone); an offline
device is re-probed every second or so, so it is back within about two seconds of answering
again (a dead RTU unit costs one timeout per probe). A device that answers, even with a
Modbus exception, is alive: exceptions degrade it but never make it offline. Transitions are
returned to the caller, which logs each once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

HealthState = Literal["online", "degraded", "offline"]

OFFLINE_AFTER = 3
PROBE_BACKOFF_MIN_S = 1.0
PROBE_BACKOFF_MAX_S = 1.5
LATENCY_SMOOTHING = 0.2
# the answer timeout is this multiple of a device's smoothed latency (within the bus's bounds):
# a device that stops answering is known sooner and costs the bus less than the full timeout
ANSWER_TIMEOUT_FACTOR = 5.0


@dataclass
class DeviceHealth:
    """Counts and state of one device; times are monotonic seconds (latency) and wall clock."""

    state: HealthState = "offline"  # until the first answer
    errors: dict[str, int] = field(
        default_factory=lambda: {"timeout": 0, "framing": 0, "exception": 0, "connection": 0}
    )
    requests: int = 0
    consecutive_failures: int = 0
    last_ok: float | None = None  # wall-clock time of the last good answer
    latency_ms: float | None = None  # smoothed
    last_error: str = ""
    # what the unit said it is when that was not its profile's model (its readings are not
    # used meanwhile); "" when it is, or was not asked yet
    wrong_identity: str = ""
    probe_backoff_s: float = PROBE_BACKOFF_MIN_S
    next_probe: float = 0.0  # monotonic time of the next probe while offline

    def success(self, latency_s: float, wall_now: float,
                settle: bool = True) -> HealthState | None:
        """Record a good answer; return the new state if it changed (``settle`` False: the
        state waits for the identity check's verdict)."""
        self.requests += 1
        self.consecutive_failures = 0
        self.last_ok = wall_now
        ms = latency_s * 1000
        self.latency_ms = (
            ms
            if self.latency_ms is None
            else (self.latency_ms + LATENCY_SMOOTHING * (ms - self.latency_ms))
        )
        self.probe_backoff_s = PROBE_BACKOFF_MIN_S
        if not settle:
            return None
        return self._move("degraded" if self.wrong_identity else "online")

    def answer_timeout(self, shortest_s: float, longest_s: float) -> float:
        """How long to wait for this device's next answer: ANSWER_TIMEOUT_FACTOR times its
        smoothed latency within the bounds; the longest until it has answered, and after a
        failure (a device that slowed down is given time before it is taken for a dead one)."""
        if self.latency_ms is None or self.consecutive_failures:
            return longest_s
        return min(longest_s, max(shortest_s, ANSWER_TIMEOUT_FACTOR * self.latency_ms / 1000))

    def identified(self, wrong: str) -> HealthState | None:
        """The unit's answer to the identity check: ``wrong`` says how it differs from its
        profile ("" when it is the right model); return the new state if it changed."""
        self.wrong_identity = wrong[:200]
        if wrong:
            self.last_error = f"identity: {wrong}"[:200]
        return self._move("degraded" if wrong else "online")

    def failure(self, kind: str, message: str, mono_now: float) -> HealthState | None:
        """Record a failed request of ``kind``; return the new state if it changed."""
        self.requests += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = f"{kind}: {message}"[:200]
        if kind == "exception":
            return self._move("degraded") if self.state == "online" else None
        self.consecutive_failures += 1
        if self.consecutive_failures >= OFFLINE_AFTER or self.state == "offline":
            if self.state == "offline":
                self.probe_backoff_s = min(self.probe_backoff_s * 2, PROBE_BACKOFF_MAX_S)
            self.next_probe = mono_now + self.probe_backoff_s
            return self._move("offline")
        return self._move("degraded")

    def lost(self, message: str, mono_now: float) -> HealthState | None:
        """The bus or host it hangs on is gone: offline now (no request of its own failed)."""
        if self.state == "offline":
            return None
        self.last_error = message[:200]
        self.next_probe = mono_now + self.probe_backoff_s
        return self._move("offline")

    def _move(self, new: HealthState) -> HealthState | None:
        if new == self.state:
            return None
        self.state = new
        return new

    def snapshot(self) -> dict[str, object]:
        """What the device status topic and diagnostics show."""
        return {
            "state": self.state,
            "errors": dict(self.errors),
            "requests": self.requests,
            "last_ok": self.last_ok,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "last_error": self.last_error,
            "wrong_identity": self.wrong_identity,
        }
