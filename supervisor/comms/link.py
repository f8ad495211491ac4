"""The path to HQ, supervised end to end, and the router's power-cycling watchdog.

EN 50136's idea: a path is up because a message went round it, not because a router says
so. :class:`HqLink` sends a numbered ping every ``heartbeat_s`` (``link/ping`` on MQTT, over
the van's bridge to HQ); HQ's echo answers with the ``comms/pong`` action carrying the
number back. The path is ``up`` while a pong came within ``down_after_s``, ``down`` after
that, ``unknown`` until the first pong or the first ``down_after_s``. HQ judges the van the
same way from the pings it stops receiving.

:class:`RouterWatchdog`: HQ unreachable for ``after_s`` while the router says its WAN is up
(or the router does not answer at all) means a hung router: its power is cut for ``off_s``
and restored, at most ``max_per_hour`` times in any hour, never while the crew has disabled
it. After a power cycle the router gets ``after_s`` again to bring the path back. The cycles
of the last hour are given back to it after a restart (the subsystem keeps them on disk), so
a supervisor restarting in a loop while HQ is down cannot cycle the router more often.

Pure logic on a monotonic clock the caller passes in: tested in virtual time.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Literal

LinkState = Literal["up", "down", "unknown"]
LINK_STATES: tuple[LinkState, ...] = ("up", "down", "unknown")
MAX_OUTSTANDING = 64  # pings awaiting their pong: older ones are forgotten
HOUR_S = 3600.0


class HqLink:
    def __init__(self, heartbeat_s: float, down_after_s: float, now: float) -> None:
        self.heartbeat_s, self.down_after_s = heartbeat_s, down_after_s
        self.started = now
        self.seq = 0
        self.last_pong_at: float | None = None
        self.rtt_s: float | None = None
        self._sent: OrderedDict[int, float] = OrderedDict()
        self._next_ping = now

    def ping_due(self, now: float) -> int | None:
        """The number of the ping to send now, if one is due."""
        if now < self._next_ping:
            return None
        self._next_ping = now + self.heartbeat_s
        self.seq += 1
        self._sent[self.seq] = now
        while len(self._sent) > MAX_OUTSTANDING:
            self._sent.popitem(last=False)
        return self.seq

    def pong(self, seq: int, now: float) -> bool:
        """HQ echoed ping ``seq``; False for a number never sent or already answered."""
        sent = self._sent.pop(seq, None)
        if sent is None:
            return False
        self.rtt_s = now - sent
        self.last_pong_at = now
        return True

    def state(self, now: float, bridge_up: bool | None = None) -> LinkState:
        """``bridge_up``: the van broker's bridge says it is connected (False: it says it
        is not, which is news before the pongs run late; None: no word from it)."""
        if bridge_up is False:
            return "down"
        if self.last_pong_at is not None and now - self.last_pong_at <= self.down_after_s:
            return "up"
        if self.last_pong_at is None and now - self.started <= self.down_after_s:
            return "unknown"
        return "down"

    def next_wake(self, now: float) -> float:
        """Seconds until something changes by itself (a ping due, the path going down)."""
        waits = [self._next_ping - now]
        if self.last_pong_at is not None:
            waits.append(self.last_pong_at + self.down_after_s - now)
        return max(0.0, min(waits))


Power = Literal["cut", "restore"]


class RouterWatchdog:
    def __init__(self, after_s: float, off_s: float, max_per_hour: int,
                 enabled: bool = True, cycles: Iterable[float] = ()) -> None:
        """``cycles``: when the power was cut before (monotonic), e.g. by the last run."""
        self.after_s, self.off_s, self.max_per_hour = after_s, off_s, max_per_hour
        self.enabled = enabled
        # when the power was cut, within the last hour
        self.cycles: deque[float] = deque(sorted(cycles))
        self._hung_since: float | None = None
        self._off_since: float | None = None
        self.reason = ""  # why the last cut happened, or why one is held back

    @property
    def cutting(self) -> bool:
        """The router's power is cut now (by us)."""
        return self._off_since is not None

    def step(self, now: float, hq: LinkState, router_wan_up: bool | None) -> Power | None:
        """What to do with the router's power now. ``router_wan_up`` None: the router does
        not answer its Modbus server."""
        if self._off_since is not None:
            if now - self._off_since >= self.off_s:
                self._off_since = None
                self._hung_since = now  # it gets its time again to bring the path back
                return "restore"
            return None
        while self.cycles and now - self.cycles[0] >= HOUR_S:
            self.cycles.popleft()
        # the router says it is offline itself: no SIM, no coverage; a power cycle is no cure
        hung = hq == "down" and router_wan_up is not False
        if not hung:
            self._hung_since = None
            return None
        if self._hung_since is None:
            self._hung_since = now
        if now - self._hung_since < self.after_s:
            return None
        if not self.enabled:
            self.reason = "disabled by the crew"
            return None
        if len(self.cycles) >= self.max_per_hour:
            self.reason = f"{self.max_per_hour} power cycles in the last hour"
            return None
        self.reason = ("HQ unreachable while the router says its WAN is up"
                       if router_wan_up else "HQ unreachable and the router does not answer")
        self.cycles.append(now)
        self._off_since = now
        return "cut"
