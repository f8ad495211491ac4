"""HQ's alarm desk: every van's events, each once and in order, in a log on HQ's disk.

MQTT delivers at least once, and a van's bridge adds copies of its own (a message queued
during an outage and, at the reconnection, the replay of the retained alarm). The desk keys
each event on the van and the event's ``id`` (the van's event number, never reused: see
supervisor/core/van_state.py), keeps the first copy in SQLite, prints it as one JSON line
(HQ's operators' feed) and drops the others. The number, not the arrival, is the van's order:
after an outage the bridge can deliver an event made at the reconnection (the answer to a
command HQ queued) ahead of the backlog (seen in hil-tests/test_hq_bridge_hil.py).

Nothing lost beyond the bridge: each event names the van's event before it (``prev``). An
event whose ``prev`` the desk lacks shows a loss upstream (the bridge's queue overflowed in a
long outage, the van's broker lost its last minute in a power cut); the desk asks the van
for the missing numbers again (``system/events_resend``), which sends them from its own
SQLite log, the newest first in batches, walking back until the chain is whole; a gap still
missing ASK_AGAIN_S later, while nothing else came from the van, is asked for again, and
after MAX_TRIES reported lost (the van no longer has those events). A van met for
the first time (its first event names one before it: its bridge never reached HQ before, or
dropped its first messages) is asked for up to FIRST_BACKLOG events before that one, never
for its whole history.

The newest events can be lost with nothing after them to show it: each van's retained
``events/last`` (the number of its newest event, sent by its bridge at every connection) is
checked too, once the van has been quiet for ASK_AGAIN_S; being retained, it also tells a
desk that restarted.

Every panic the desk learns of (the panic event or the retained ``room/panic`` alarm,
whichever comes first) is answered with the van's ``room/panic_received`` receipt, once per
panic: the crew's panel then shows "received".

The desk runs inside HQ's echo process (``mcw-hq-echo --db PATH``) with a persistent
session on HQ's broker, so what the vans send while the desk restarts waits for it there.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.core.config import VEHICLE_ID

EVENT_FILTER = "mcw/v1/+/event"
PANIC_FILTER = "mcw/v1/+/alarm/room/panic"
LAST_FILTER = "mcw/v1/+/events/last"
MAX_PAYLOAD = 64 * 1024  # an event is a few hundred bytes
MAX_PANIC_ID = 64
FIRST_BACKLOG = 1000  # events before the first one a van's log at HQ starts with
ASK_AGAIN_S = 20.0  # missing this long after asking, nothing heard since: ask again
MAX_TRIES = 5  # then the gap is reported lost (the van no longer has those events)
MAX_GAPS = 8  # gaps asked about at once per van (the newest kept): a van cannot grow it
VEHICLE = re.compile(VEHICLE_ID)
SCHEMA = """
CREATE TABLE IF NOT EXISTS event (
    vehicle TEXT NOT NULL, id INTEGER NOT NULL, ts TEXT NOT NULL, kind TEXT NOT NULL,
    data TEXT NOT NULL, received REAL NOT NULL, PRIMARY KEY (vehicle, id));
CREATE TABLE IF NOT EXISTS van (vehicle TEXT PRIMARY KEY, floor INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipt (
    vehicle TEXT NOT NULL, panic TEXT NOT NULL, sent REAL NOT NULL,
    PRIMARY KEY (vehicle, panic));
"""


@dataclass(frozen=True)
class Arrival:
    """What one message brings the desk: an event, and/or a panic that wants a receipt."""

    vehicle: str
    event: dict[str, Any] | None = None
    panic: str | None = None
    last: int | None = None  # the number of the van's newest event (``events/last``)


@dataclass(frozen=True)
class Outcome:
    """What the desk does about an arrival."""

    new: bool = False  # its event was not logged yet
    receipt: str | None = None  # the panic to send a receipt for
    resend: tuple[int, int] | None = None  # the event numbers to ask the van for again


def read_arrival(topic: str, payload: bytes) -> Arrival | None:
    """The event or panic in a message from a van's tree; None for anything else (HQ's
    broker carries whatever any van's bridge sends: nothing here may raise)."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[:2] != ["mcw", "v1"] or not VEHICLE.fullmatch(parts[2]) \
            or len(payload) > MAX_PAYLOAD:
        return None
    try:
        body = json.loads(payload)
        json.dumps(body, ensure_ascii=False).encode()  # a lone surrogate cannot be stored
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    vehicle, rest = parts[2], parts[3:]
    if rest == ["event"]:
        eid, prev = body.get("id"), body.get("prev", 0)
        if type(eid) is not int or not 0 < eid < 2**53 or type(prev) is not int \
                or not 0 <= prev < eid:
            return None
        panic = body.get("panic") if body.get("what") == "panic" else None
        return Arrival(vehicle, body, _panic_id(panic))
    if rest == ["events", "last"]:
        last = body.get("id")
        return Arrival(vehicle, last=last) if type(last) is int and 0 < last < 2**53 else None
    if rest == ["alarm", "room", "panic"] and body.get("active") is True:
        panic = _panic_id(body.get("panic"))
        return None if panic is None else Arrival(vehicle, panic=panic)
    return None


def _panic_id(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_PANIC_ID else None


@dataclass
class Gap:
    """Events missing before one the desk has (its ``prev``), and the asking for them."""

    asked: float
    tries: int = 1


@dataclass
class Due:
    """What the desk's timer wants done: ask again, or give up (reported as lost)."""

    ask: list[tuple[str, tuple[int, int]]]
    lost: list[tuple[str, int]]


class AlarmDesk:
    """The log of every van's events at HQ, and the panics already answered."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL: a crash of the desk loses nothing, a power cut of HQ's server
        # (on a UPS) the last moment; FULL would cost an fsync per event for the fleet
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.copies = 0  # events dropped as copies of one logged already
        self._gaps: dict[str, dict[int, Gap]] = {}  # van -> prev -> its gap
        self._heard: dict[str, float] = {}  # van -> when its last event came
        self._tails: dict[str, tuple[int, float]] = {}  # van -> its newest number, when told

    def close(self) -> None:
        self.db.close()

    def take(self, arrival: Arrival, now: float | None = None) -> Outcome:
        """Log the arrival; what to send the van about it."""
        now = time.time() if now is None else now
        new, resend = False, None
        if arrival.event is not None:
            ev = arrival.event
            new = self.db.execute(
                "INSERT OR IGNORE INTO event VALUES (?, ?, ?, ?, ?, ?)",
                (arrival.vehicle, ev["id"], str(ev.get("ts", "")), str(ev.get("kind", "")),
                 json.dumps(ev), now)).rowcount == 1
            self.copies += not new
            self._heard[arrival.vehicle] = now
            if new:  # a copy's gap was looked at when it first came
                resend = self._missing(arrival.vehicle, int(ev.get("prev", 0)), now)
        if arrival.last is not None:
            self._tails[arrival.vehicle] = (arrival.last, now)
        receipt = None
        if arrival.panic is not None and self.db.execute(
                "SELECT 1 FROM receipt WHERE vehicle = ? AND panic = ?",
                (arrival.vehicle, arrival.panic)).fetchone() is None:
            receipt = arrival.panic
        return Outcome(new, receipt, resend)

    def receipt_sent(self, vehicle: str, panic: str, now: float | None = None) -> None:
        """Record the receipt once it is on HQ's broker (a desk killed before that sends it
        at the panic's next copy: the van answers a second one ``duplicate``)."""
        self.db.execute("INSERT OR IGNORE INTO receipt VALUES (?, ?, ?)",
                        (vehicle, panic, time.time() if now is None else now))

    def _missing(self, vehicle: str, prev: int, now: float) -> tuple[int, int] | None:
        """The numbers to ask for when ``prev`` is not logged: from after the newest logged
        event below it (or the van's floor); None when it is logged or below the floor."""
        floor = self._floor(vehicle, prev)
        if prev <= floor or self._logged(vehicle, prev):
            return None
        gaps = self._gaps.setdefault(vehicle, {})
        gaps[prev] = Gap(now, gaps[prev].tries + 1 if prev in gaps else 1)
        while len(gaps) > MAX_GAPS:
            del gaps[min(gaps)]
        return self._range(vehicle, prev, floor)

    def _range(self, vehicle: str, prev: int, floor: int) -> tuple[int, int]:
        (below,) = self.db.execute("SELECT max(id) FROM event WHERE vehicle = ? AND id < ?",
                                   (vehicle, prev)).fetchone()
        return max(floor, int(below or 0)) + 1, prev

    def overdue(self, now: float | None = None) -> Due:
        """What to ask for again: gaps still missing ASK_AGAIN_S after the asking while
        nothing came from the van since (its answer lost on the way too; a van whose events
        are still arriving is not asked twice); after MAX_TRIES a gap is given up as lost."""
        now = time.time() if now is None else now
        due = Due([], [])
        for vehicle, gaps in self._gaps.items():
            if now - self._heard.get(vehicle, 0.0) < ASK_AGAIN_S:
                continue
            for prev, gap in list(gaps.items()):
                if self._logged(vehicle, prev):
                    del gaps[prev]
                elif now - gap.asked < ASK_AGAIN_S:
                    continue
                elif gap.tries >= MAX_TRIES:
                    del gaps[prev]
                    due.lost.append((vehicle, prev))
                else:
                    gaps[prev] = Gap(now, gap.tries + 1)
                    due.ask.append((vehicle, self._range(vehicle, prev, self._floor(vehicle,
                                                                                     prev))))
        for vehicle, (last, told) in list(self._tails.items()):
            # the van's newest events, missing with nothing after them to show it: asked for
            # once the van has been quiet as long as for a gap (a backlog still on its way
            # brings them by itself)
            if now - max(told, self._heard.get(vehicle, 0.0)) < ASK_AGAIN_S:
                continue
            del self._tails[vehicle]
            if (missing := self._missing(vehicle, last, now)) is not None:
                due.ask.append((vehicle, missing))
        return due

    def _logged(self, vehicle: str, eid: int) -> bool:
        return self.db.execute("SELECT 1 FROM event WHERE vehicle = ? AND id = ?",
                               (vehicle, eid)).fetchone() is not None

    def _floor(self, vehicle: str, prev: int) -> int:
        """The van's number below which nothing is asked for: set when it is first met."""
        row = self.db.execute("SELECT floor FROM van WHERE vehicle = ?", (vehicle,)).fetchone()
        if row is not None:
            return int(row[0])
        floor = max(0, prev - FIRST_BACKLOG)
        self.db.execute("INSERT INTO van VALUES (?, ?)", (vehicle, floor))
        return floor

    def events(self, vehicle: str) -> list[dict[str, Any]]:
        """The logged events of ``vehicle``, in the van's order (by number)."""
        rows = self.db.execute("SELECT data FROM event WHERE vehicle = ? ORDER BY id",
                               (vehicle,)).fetchall()
        return [json.loads(data) for (data,) in rows]


def resend_command(first: int, last: int, now: float | None = None) -> str:
    """The ``system/events_resend`` command asking a van for its events first..last; it
    expires when the desk would ask again (a van out of reach does not get a pile of them)."""
    now = time.time() if now is None else now
    return json.dumps({"id": f"resend-{first}-{last}-{now:.0f}", "expires": now + ASK_AGAIN_S,
                       "args": {"first": first, "last": last}})


def receipt_command(panic: str) -> str:
    """The ``room/panic_received`` command answering ``panic`` (its id names the panic, so a
    receipt sent twice is answered ``duplicate`` and applied once)."""
    return json.dumps({"id": f"receipt-{panic}", "args": {"panic": panic}})
