"""The point store: current value, quality and timestamp of every observable of the van.

Points have ids ``subsystem/path`` (``power/battery/soc``), values in SI units and a quality:
``good`` (fresh from the device), ``stale`` (the device stopped answering or the value is
older than it may be) or ``invalid`` (the device says it has no valid value). Listeners are
told about *significant* changes only: a numeric move of at least the point's deadband, any
other value change, or a quality change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from supervisor.core.listeners import Listeners

Quality = Literal["good", "stale", "invalid"]
PointType = Literal["number", "integer", "bool", "enum", "string"]
Scalar = float | int | bool | str


@dataclass(frozen=True)
class PointSource:
    """The device register a point shows, for a technician (``mcwctl points``' raw value):
    ``value = raw / scale``; an enumerated register's codes with their meanings."""

    device: str
    register: str
    table: str
    address: int
    scale: float = 1
    codes: tuple[tuple[int, str], ...] = ()

    def meta(self) -> dict[str, object]:
        out: dict[str, object] = {"device": self.device, "register": self.register,
                                  "table": self.table, "address": self.address,
                                  "scale": self.scale}
        if self.codes:
            out["codes"] = {name: code for code, name in self.codes}
        return out


@dataclass(frozen=True)
class PointDef:
    """What a point is: the meta topic describes every point from these."""

    id: str
    type: PointType
    unit: str = ""
    description: str = ""
    deadband: float = 0.0
    max_age_s: float | None = None  # stale once older than this (None: never by age)
    enum: tuple[str, ...] = ()
    enum_set: str = ""  # name of the set of meanings (the panel's texts are keyed by it)
    precision: int | None = None  # decimals worth showing
    # kept on board: the panel shows it, MQTT (and so HQ) never carries it (privacy)
    local: bool = False
    source: PointSource | None = None  # the register it shows as read, if it is one

    def meta(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "type": self.type,
            "unit": self.unit,
            "description": self.description,
            "writable": False,
        }
        if self.enum:
            out["enum"] = list(self.enum)
        if self.enum_set:
            out["enum_set"] = self.enum_set
        if self.precision is not None:
            out["precision"] = self.precision
        if self.local:
            out["local"] = True
        if self.source is not None:
            out["source"] = self.source.meta()
        return out


@dataclass
class PointValue:
    value: Scalar | None
    quality: Quality
    ts: float  # wall clock of the reading

    def as_dict(self) -> dict[str, object]:
        return {"v": self.value, "q": self.quality, "ts": self.ts}


@dataclass
class PointStore:
    defs: dict[str, PointDef] = field(default_factory=dict)
    values: dict[str, PointValue] = field(default_factory=dict)
    _notified: dict[str, PointValue] = field(default_factory=dict)
    changed: Listeners[PointDef, PointValue] = field(
        default_factory=lambda: Listeners[PointDef, PointValue]("point"))

    def define(self, pdef: PointDef) -> None:
        if pdef.id in self.defs:
            raise ValueError(f"point {pdef.id} is defined twice")
        self.defs[pdef.id] = pdef

    def get(self, point_id: str) -> PointValue | None:
        return self.values.get(point_id)

    def good(self, point_id: str) -> Scalar | None:
        """The value if it is fresh and valid, else None: what control logic may act on."""
        pv = self.values.get(point_id)
        return pv.value if pv is not None and pv.quality == "good" else None

    def update(self, point_id: str, value: Scalar | None, ts: float,
               none_is_valid: bool = False) -> None:
        """A new reading; ``None`` means the source says the value is invalid, unless
        ``none_is_valid`` (a derived point where "no value" is an answer: no runtime limit)."""
        quality: Quality = "good" if value is not None or none_is_valid else "invalid"
        self._set(point_id, PointValue(value, quality, ts))

    def reread(self, point_id: str, ts: float) -> None:
        """The source read the same value again: only its time is new (a point gone stale
        meanwhile is fresh again). The cheap path of most polls."""
        old = self.values.get(point_id)
        if old is None:
            return  # never read: the source's first reading goes through update()
        quality: Quality = "good" if old.value is not None else "invalid"
        fresh = PointValue(old.value, quality, ts)
        if old.quality == quality:
            self.values[point_id] = fresh  # nothing a listener would see
        else:
            self._set(point_id, fresh)

    def mark(self, point_id: str, quality: Quality) -> None:
        """Change only the quality (the value and its timestamp stay, for their age)."""
        old = self.values.get(point_id)
        if old is None or old.quality == quality:
            return
        self._set(point_id, PointValue(old.value, quality, old.ts))

    def sweep(self, now: float) -> None:
        """Mark stale every good point older than its maximum age."""
        for pid, pv in self.values.items():
            max_age = self.defs[pid].max_age_s
            if pv.quality == "good" and max_age is not None and now - pv.ts > max_age:
                self.mark(pid, "stale")

    def _set(self, point_id: str, new: PointValue) -> None:
        pdef = self.defs[point_id]
        self.values[point_id] = new
        last = self._notified.get(point_id)
        if last is not None and not _significant(pdef, last, new):
            return
        self._notified[point_id] = new
        self.changed(pdef, new)


def _significant(pdef: PointDef, old: PointValue, new: PointValue) -> bool:
    if old.quality != new.quality:
        return True
    if isinstance(old.value, bool) or isinstance(new.value, bool):
        return old.value != new.value
    if isinstance(old.value, int | float) and isinstance(new.value, int | float):
        return abs(new.value - old.value) > pdef.deadband or (
            pdef.deadband == 0 and new.value != old.value
        )
    return old.value != new.value
