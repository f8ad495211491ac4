"""HQ's view of the fleet (``mcwctl fleet``), from the retained topics on HQ's broker alone.

Each van's bridge keeps its retained state on HQ's broker: ``status``, the ``alarm/...``
topics, the points (``state/...``) and the bridge's own notification (``bridge/hq``); HQ's
echo adds ``hq/v1/{vehicle}/link`` (down when the van's pings stopped). One row per van:
its status, when it was last heard of, the quality of its link, its (rounded) position, its
active alarms and whether a panic waits for an acknowledgement. The broker is anyone's to
write to within its ACL, so every value is checked: a wrong one shows as unknown, never as
an error.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from supervisor.core.config import VEHICLE_ID
from supervisor.interfaces.cli_output import age, epoch

# what `mcwctl fleet` subscribes to on HQ's broker: the few retained topics the view needs
FILTERS = ("mcw/v1/+/status", "mcw/v1/+/alarm/#", "mcw/v1/+/bridge/hq",
           "mcw/v1/+/state/comms/#", "mcw/v1/+/state/room/panic/#", "hq/v1/+/link")
VEHICLE = re.compile(VEHICLE_ID)
SEVERITIES = ("critical", "warning", "info")
MAX_TEXT = 40  # an operator, a network name: what a row shows of a free text


@dataclass
class VanRow:
    """One van as HQ sees it."""

    vehicle: str
    status: str = "unknown"  # the supervisor: ready, degraded, offline, lost (its will)
    link: str = "unknown"  # the path to HQ: up, down (echo: pings stopped; bridge dropped)
    last_seen: float | None = None  # newest timestamp among its retained topics (epoch s)
    signal_dbm: float | None = None
    network: str | None = None
    lat: float | None = None
    lon: float | None = None
    alarms: list[str] = field(default_factory=list)  # active ones, "severity id", worst first
    panic: str | None = None  # the panic id while one is raised and not acknowledged
    panic_delivery: str | None = None


def fleet(retained: dict[str, Any]) -> list[VanRow]:
    """One row per van seen in ``retained`` (topic -> decoded payload), the vans that need
    HQ first: an unacknowledged panic, then critical alarms, a lost link, then by id."""
    rows: dict[str, VanRow] = {}

    def row(vehicle: str) -> VanRow:
        return rows.setdefault(vehicle, VanRow(vehicle))

    for topic, value in retained.items():
        parts = topic.split("/")
        if len(parts) < 4 or not VEHICLE.fullmatch(parts[2]) or \
                parts[:2] not in (["mcw", "v1"], ["hq", "v1"]):
            continue
        van, rest = row(parts[2]), "/".join(parts[3:])
        if parts[0] == "hq":
            if rest == "link" and isinstance(value, dict) and value.get("state") in ("up", "down"):
                van.link = value["state"]
            continue
        _seen(van, value)
        if rest == "status" and isinstance(value, dict):
            van.status = _text(value.get("state")) or "unknown"
        elif rest == "bridge/hq" and van.link == "unknown" and value in (0, 1):
            van.link = "up" if value == 1 else "down"
        elif rest.startswith("alarm/") and isinstance(value, dict) and value.get("active") is True:
            _alarm(van, rest.removeprefix("alarm/"), value)
        elif rest.startswith("state/") and isinstance(value, dict):
            _point(van, rest.removeprefix("state/"), value.get("v"))
    for van in rows.values():
        van.alarms.sort(key=lambda a: (SEVERITIES.index(a.split()[0]), a))
    return sorted(rows.values(), key=lambda v: (
        v.panic is None, not any(a.startswith("critical") for a in v.alarms),
        v.link != "down" and v.status != "lost", v.vehicle))


def _seen(van: VanRow, value: Any) -> None:
    ts = _epoch(value.get("ts")) if isinstance(value, dict) else None
    if ts is not None and (van.last_seen is None or ts > van.last_seen):
        van.last_seen = ts


def _alarm(van: VanRow, alarm_id: str, value: dict[str, Any]) -> None:
    severity = value.get("severity") if value.get("severity") in SEVERITIES else "warning"
    van.alarms.append(f"{severity} {alarm_id[:64]}")
    if alarm_id == "room/panic" and value.get("acked") is not True:
        van.panic = _text(value.get("panic")) or "?"


def _point(van: VanRow, point: str, v: Any) -> None:
    number = v if isinstance(v, int | float) and not isinstance(v, bool) else None
    if point == "comms/lte/signal_dbm":
        van.signal_dbm = number
    elif point == "comms/lte/network_type":
        van.network = _text(v)
    elif point == "comms/position/lat" and number is not None and -90 <= number <= 90:
        van.lat = number
    elif point == "comms/position/lon" and number is not None and -180 <= number <= 180:
        van.lon = number
    elif point == "room/panic/delivery":
        van.panic_delivery = _text(v)


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) and value else None


def _epoch(ts: Any) -> float | None:
    """An ISO 8601 timestamp (or epoch seconds) as epoch seconds; None when it is neither."""
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts) if 0 <= ts < 1e11 else None
    return epoch(ts)


def format_fleet(rows: list[VanRow], now: float) -> str:
    """The fleet as a table for HQ's operator."""
    if not rows:
        return "no van on this broker (are the bridges up, is this HQ's broker?)"
    head = f"{'VAN':<16} {'STATUS':<9} {'LINK':<7} {'SEEN':>8} {'SIGNAL':<14} " \
           f"{'POSITION':<17} ALARMS"
    lines = [head]
    for van in rows:
        signal = "-" if van.signal_dbm is None else f"{van.signal_dbm:.0f} dBm"
        if van.network:
            signal += f" {van.network}"
        where = "-" if van.lat is None or van.lon is None else f"{van.lat:.3f},{van.lon:.3f}"
        alarms = ", ".join(van.alarms) or "-"
        if van.panic is not None:
            alarms = f"PANIC NOT ACKNOWLEDGED ({van.panic_delivery or '?'}); {alarms}"
        lines.append(f"{van.vehicle:<16} {van.status:<9} {van.link:<7} "
                     f"{age(van.last_seen, now):>8} {signal:<14} {where:<17} {alarms}")
    panics = sum(v.panic is not None for v in rows)
    lines.append(f"{len(rows)} vans, {sum(v.link == 'down' for v in rows)} out of reach, "
                 f"{panics} panic{'s' if panics != 1 else ''} not acknowledged")
    return "\n".join(lines)


def as_json(rows: list[VanRow]) -> list[dict[str, Any]]:
    """The rows for scripts (``mcwctl fleet --json``)."""
    return [asdict(v) for v in rows]
