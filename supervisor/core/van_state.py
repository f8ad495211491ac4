"""The van's state as the interfaces show it: points, alarms, devices, events, status, meta.

The interfaces (MQTT, panel) subscribe to the change listeners here and render payloads with
these functions; nothing in a subsystem knows about them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog

from supervisor.core.alarms import AlarmDef, AlarmManager, AlarmState
from supervisor.core.commands import CommandRouter, Result
from supervisor.core.config import SupervisorConfig
from supervisor.core.device_points import DevicePoints
from supervisor.core.listeners import Listeners
from supervisor.core.points import PointDef, PointStore, PointValue
from supervisor.core.storage import Storage

log = structlog.get_logger("supervisor")

try:
    VERSION = version("mcw-controller")
except PackageNotFoundError:  # running from a source tree
    VERSION = "0.0.0"


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC with milliseconds."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


SLOWEST_WRITE = "system/storage/slowest_write"
STORAGE_ALARM = AlarmDef(
    "system/storage", "warning",
    "Zapis danych nie działa (karta pamięci pełna lub uszkodzona); sterowanie działa dalej",
    "Data storage failing (memory card full or damaged); the van is still controlled",
    latching=True)


EVENT_ID_KEY = "event_ids_reserved"  # event numbers below it may have been used
EVENT_ID_BLOCK = 1000

@dataclass
class VanState:
    """The shared state of one running supervisor."""

    cfg: SupervisorConfig
    storage: Storage
    points: PointStore
    alarms: AlarmManager
    devices: DevicePoints
    router: CommandRouter
    wall: Callable[[], float]
    state: str = "ready"  # ready | degraded | offline (at shutdown)
    session: Callable[[], int] = lambda: 0  # the MQTT session counter
    # stored events numbered first..last sent to HQ again (how many); set by the MQTT
    # interface's uplink, None without one
    resend: Callable[[int, int], int] | None = None
    status_changed: Listeners[str] = field(default_factory=lambda: Listeners[str]("status"))
    event_added: Listeners[dict[str, Any]] = field(
        default_factory=lambda: Listeners[dict[str, Any]]("event"))
    _next_event_id: int = field(default=0, init=False)
    _event_ids_reserved: int = field(default=0, init=False)
    _prev_event_id: int = field(default=0, init=False)  # the newest event's number
    # each device's (state, wrong identity) last told in an event
    _device_seen: dict[str, tuple[object, str]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.alarms.define(STORAGE_ALARM)
        self.points.define(PointDef(SLOWEST_WRITE, "number", "s", "Slowest SQLite commit since "
                                    "the start (in the writer thread: nothing waits for it "
                                    "but a command's answer)", deadband=0.001,
                                    precision=3))
        self._prev_event_id = self.storage.last_event_number()
        self.devices.health_changed.add(lambda _device, _status: self.update_state())
        self.devices.health_changed.add(self._device_event)
        self.alarms.changed.add(self._alarm_event)
        self.router.audited.add(self._audit_event)

    # ---- events -------------------------------------------------------------------------

    def event(self, data: dict[str, Any]) -> None:
        """An event for the SQLite event table and the interfaces (MQTT ``event`` topic).

        Each carries ``id``, this van's event number: a copy delivered twice (MQTT's
        at-least-once, a bridge's redelivery) is known as one. And ``prev``, the number of
        the van's event before it (0: none), a chain across restarts: HQ, missing ``prev``,
        knows it lost something (the bridge's queue overflowed, the broker lost its last
        minute in a power cut) and asks for it again (``system/events_resend``)."""
        now = self.wall()
        event = {**data, "id": self._event_id(), "prev": self._prev_event_id, "ts": iso(now)}
        self._prev_event_id = event["id"]
        self.storage.add_event(now, str(data.get("kind", "event")), event)
        self.event_added(event)

    def _event_id(self) -> int:
        """The next event number. Numbers are handed out only from a block already on disk:
        a power cut at the worst moment skips the rest of the block (a jump after the
        restart), never gives HQ a number it has seen again (it would drop the new event as a
        copy). One blocking write per EVENT_ID_BLOCK events."""
        if self._next_event_id >= self._event_ids_reserved:
            start = max(self._next_event_id, int(self.storage.get(EVENT_ID_KEY, 0)))
            self._event_ids_reserved = start + EVENT_ID_BLOCK
            self.storage.put(EVENT_ID_KEY, self._event_ids_reserved)
            self.storage.flush()
            self._next_event_id = start
        self._next_event_id += 1
        return self._next_event_id

    def _device_event(self, device: str, status: dict[str, Any]) -> None:
        """A device's health state (or what it says it is) changed: an event, so a device's
        error history is in the log (the counts between changes are in its status topic)."""
        seen = (status.get("state"), status.get("wrong_identity") or "")
        if self._device_seen.get(device, ("online", "")) == seen:  # coming online at start: no news
            return
        self._device_seen[device] = seen
        self.event({"kind": "device", "device": device, "state": seen[0],
                    "error": str(status.get("last_error") or "")[:200],
                    **({"wrong_identity": seen[1]} if seen[1] else {})})

    def _alarm_event(self, adef: AlarmDef, state: AlarmState | None, what: str) -> None:
        self.event({"kind": "alarm", "alarm": adef.id, "what": what, "severity": adef.severity,
                    "text": adef.text_en, "text_pl": adef.text_pl,
                    "detail": "" if state is None else state.detail})

    def _audit_event(self, result: Result, role: str, source: str, args: dict[str, Any]) -> None:
        # an event like any other (HQ logs each once by its number, and can ask for it
        # again): the command's own id is ``command``
        answer = result.as_dict()
        self.event({"kind": "command", "action": result.action, "args": args, "role": role,
                    "source": source, "status": answer["status"], "code": answer["code"],
                    "message": answer["message"], "command": answer["id"]})

    def check_storage(self) -> None:
        """The alarm follows the disk: raised while writes fail (full or read-only card)."""
        failing = self.storage.error is not None
        self.alarms.set(STORAGE_ALARM.id, failing, self.wall(), self.storage.error or "")
        self.points.update(SLOWEST_WRITE, round(self.storage.slowest_write_s, 4), self.wall())

    # ---- status -------------------------------------------------------------------------

    def update_state(self, forced: str | None = None) -> None:
        """ready while every device is online, degraded otherwise; ``forced`` at shutdown."""
        new = forced or ("ready" if all(s.get("state") == "online"
                                        for s in self.devices.status.values()) else "degraded")
        if new != self.state:
            self.state = new
            log.info("supervisor_state", state=new)
            self.status_changed(new)

    # ---- payloads -----------------------------------------------------------------------

    def status_payload(self) -> bytes:
        return dumps({"state": self.state, "session": self.session(), "version": VERSION,
                      "ts": iso(self.wall())})

    def meta(self) -> dict[str, Any]:
        """Every point, action (with the roles that may run it), alarm and device."""
        return {
            "vehicle": self.cfg.vehicle.id,
            "name": self.cfg.vehicle.name,
            "version": VERSION,
            "points": [p.meta() for p in self.points.defs.values()],
            "actions": self.router.meta(),
            "alarms": [{"id": a.id, "severity": a.severity, "text": a.text_en,
                        "text_pl": a.text_pl, "latching": a.latching}
                       for a in self.alarms.defs.values()],
            "devices": [{"id": d.id, "profile": d.profile_name, "bus": d.bus, "unit": d.unit,
                         "label": d.label} for d in self.cfg.device],
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything a freshly opened panel page needs, with epoch-second timestamps."""
        return {
            "points": {pid: pv.as_dict() for pid, pv in self.points.values.items()},
            "alarms": {aid: st.as_dict(self.alarms.defs[aid])
                       for aid, st in self.alarms.states.items()},
            "devices": self.devices.status,
            "status": {"state": self.state, "version": VERSION},
        }

    def retained(self) -> dict[str, bytes]:
        """Every retained MQTT topic of the van's state (suffix) with its current payload, for
        a (re)publish (HQ's ``events/last`` is the MQTT bridge's, where an uplink is set)."""
        out = {"status": self.status_payload(), "meta": dumps(self.meta())}
        for pid, pv in self.points.values.items():
            if not self.points.defs[pid].local:
                out[f"state/{pid}"] = state_payload(pv)
        for dev, status in self.devices.status.items():
            out[f"device/{dev}/status"] = device_payload(status)
        for aid, state in self.alarms.states.items():
            out[f"alarm/{aid}"] = alarm_payload(self.alarms.defs[aid], state)
        return out

    @property
    def last_event_id(self) -> int:
        """The number of the van's newest event (0: none yet)."""
        return self._prev_event_id


def last_event_payload(number: int) -> bytes:
    """``events/last``, retained: the number of the van's newest event. HQ's bridge sends it
    at every connection, so HQ's desk sees newest events missing there (lost with the
    bridge's queue) even when no event follows them."""
    return dumps({"id": number})


def state_payload(pv: PointValue) -> bytes:
    return dumps({"v": pv.value, "q": pv.quality, "ts": iso(pv.ts)})


def device_payload(status: dict[str, Any]) -> bytes:
    return dumps({**status, "last_ok": iso(status.get("last_ok"))})


def alarm_payload(adef: AlarmDef, state: AlarmState | None) -> bytes:
    """The retained alarm; empty (cleared on the broker) once cleared and acknowledged."""
    return b"" if state is None else dumps({**state.as_dict(adef), "since": iso(state.since)})
