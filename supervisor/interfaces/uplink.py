"""The van's events for HQ (the uplink): from SQLite, in number order, paced.

The van's broker bridges ``uplink/event`` to HQ (as HQ's ``event``; see
systemd/mosquitto-mcw.conf), not the local ``event`` topic. Events are handed to the bridge
only while its notification (``bridge/<name>``) says it is connected: out of coverage they
wait in SQLite, where they already are, instead of in the broker's queue; back in coverage
they go oldest first at ``uplink_rate`` per second (bursts of ``uplink_burst``), so a van back
from a day out of coverage does not flood HQ. Alarms (``alarm/#``) are not paced: HQ gets a
panic at once, whatever backlog of events is still on its way.

The number of the last event handed over is kept on disk (``uplink_sent``): a restart goes on
from there. Events handed to a link that had died unnoticed stay in the bridge's queue (on
disk) and go when it is back; what the van's broker loses anyway (its last minute before a
power cut) HQ's desk notices from the chain of ``prev`` and asks for again
(``system/events_resend``), answered from SQLite through the same pacing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiomqtt

from supervisor.core.storage import Storage
from supervisor.core.van_state import dumps
from supervisor.interfaces.mqtt_publish import publish_in_order

SENT_KEY = "uplink_sent"  # the number of the last event handed to the bridge
BACKLOG_MAX = 20000  # events older than the newest this many are left to HQ's asking
RESEND_MAX = 500  # events sent again for one request of HQ's: it asks for the rest after
RESEND_HELD = 4000  # events waiting to be sent again, at most (8 gaps of HQ's desk × 500)
BATCH = 20  # events in flight to the local broker at once
QOS = 1


class TokenBucket:
    """At most ``burst`` at once, then ``rate`` per second; ``clock`` in seconds."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` tokens; how many were taken (0: none yet, see ``wait_s``)."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        taken = min(wanted, int(self._tokens + 1e-9))  # a whole token despite rounding
        self._tokens -= taken
        return taken

    def wait_s(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1.0 - self._tokens) / self.rate)


class Uplink:
    """Hands the van's events to the HQ bridge, paced; see the module's docstring."""

    def __init__(self, storage: Storage, prefix: str, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self.topic = f"{prefix}/uplink/event"
        self.bucket = TokenBucket(rate, burst, clock)
        self.up = False
        floor = storage.last_event_number() - BACKLOG_MAX
        self.sent = max(int(storage.get(SENT_KEY, 0)), floor)
        self._resends: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()

    def bridge_changed(self, up: bool) -> None:
        """The bridge's notification: connected to HQ or not."""
        self.up = up
        if up:
            self._wake.set()

    def added(self) -> None:
        """A new event is (being) stored."""
        self._wake.set()

    def resend(self, first: int, last: int) -> int:
        """Queue the stored events numbered ``first`` to ``last`` (the newest RESEND_MAX of
        them: the oldest one's ``prev`` tells HQ what to ask for next) to be sent again,
        marked ``resent``; how many. None are queued beyond RESEND_HELD waiting."""
        room = RESEND_HELD - len(self._resends)
        events = self.storage.events_numbered(first, last, min(RESEND_MAX, max(room, 0)))
        self._resends.extend({**event, "resent": True} for event in events)
        self._wake.set()
        return len(events)

    async def run(self, client: aiomqtt.Client) -> None:
        """Hand events over for as long as ``client`` (the supervisor's session on the van's
        broker) lives; the session calls ``bridge_changed(False)`` first (until the bridge's
        retained notification says otherwise)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.up and (batch := await self._batch()):
                taken = self.bucket.take(len(batch))
                while not taken:
                    await asyncio.sleep(self.bucket.wait_s())  # the pace, not a wait for a state
                    taken = self.bucket.take(len(batch))
                batch = batch[:taken]
                await publish_in_order(client, [(self.topic, dumps(event)) for event in batch],
                                       QOS)
                if batch[0].get("resent"):
                    for _ in batch:
                        self._resends.popleft()
                else:
                    self.sent = int(batch[-1]["id"])
                    self.storage.put(SENT_KEY, self.sent)

    async def _batch(self) -> list[dict[str, Any]]:
        """The next events to hand over: those HQ asked for again first, then new ones (only
        what is committed: an event HQ gets is one the van cannot lose)."""
        if self._resends:
            return [self._resends[i] for i in range(min(BATCH, len(self._resends)))]
        events = self.storage.events_after(self.sent, BATCH)
        if len(events) < BATCH:  # the newest committed: those still queued for the card too
            await self.storage.durable()
            events = self.storage.events_after(self.sent, BATCH)
        return events
