"""Alarm manager: raise, clear, acknowledge; severity and latching.

An alarm is shown from the moment it is raised until it is both cleared and acknowledged.
A non-latching alarm acknowledges itself when its condition clears; a latching one stays
until the crew acknowledges it, so a short dip is not missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from supervisor.core.listeners import Listeners

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class AlarmDef:
    id: str
    severity: Severity
    text_pl: str
    text_en: str
    latching: bool = False


@dataclass
class AlarmState:
    active: bool
    acked: bool
    since: float
    detail: str = ""
    # machine-readable facts for HQ beside the text (a panic: its id, session, position)
    data: dict[str, object] = field(default_factory=dict)

    def as_dict(self, adef: AlarmDef) -> dict[str, object]:
        return {
            **self.data,
            "severity": adef.severity,
            "active": self.active,
            "acked": self.acked,
            "since": self.since,
            "text": adef.text_en,
            "text_pl": adef.text_pl,
            "detail": self.detail,
        }


class AlarmManager:
    def __init__(self) -> None:
        self.defs: dict[str, AlarmDef] = {}
        self.states: dict[str, AlarmState] = {}
        # (alarm, state or None once cleared and acknowledged, what happened)
        self.changed = Listeners[AlarmDef, AlarmState | None, str]("alarm")
        # an alarm's message is on the MQTT broker (called by the interface that has it)
        self.published = Listeners[str]("alarm published")

    def define(self, adef: AlarmDef) -> None:
        if adef.id in self.defs:
            raise ValueError(f"alarm {adef.id} is defined twice")
        self.defs[adef.id] = adef

    def set(self, alarm_id: str, active: bool, now: float, detail: str = "",
            data: dict[str, object] | None = None) -> None:
        """Report the alarm condition; only transitions reach the listeners."""
        adef = self.defs[alarm_id]
        state = self.states.get(alarm_id)
        if active:
            if state is not None and state.active:
                return
            self.states[alarm_id] = AlarmState(True, False, now, detail, data or {})
            self._emit(adef, self.states[alarm_id], "raised")
            return
        if state is None or not state.active:
            return
        state.active = False
        if not adef.latching:
            state.acked = True
        self._settle(adef, state, "cleared")

    def ack(self, alarm_id: str) -> bool:
        """Acknowledge; False when there is no such shown alarm."""
        state = self.states.get(alarm_id)
        if state is None:
            return False
        if not state.acked:
            state.acked = True
            self._settle(self.defs[alarm_id], state, "acknowledged")
        return True

    def active(self, severity: Severity | None = None) -> list[str]:
        return [
            aid
            for aid, st in self.states.items()
            if st.active and (severity is None or self.defs[aid].severity == severity)
        ]

    def _settle(self, adef: AlarmDef, state: AlarmState, what: str) -> None:
        if not state.active and state.acked:
            del self.states[adef.id]
            self._emit(adef, None, what)
        else:
            self._emit(adef, state, what)

    def _emit(self, adef: AlarmDef, state: AlarmState | None, what: str) -> None:
        self.changed(adef, state, what)
