"""``mcwctl points`` and ``mcwctl version``: the van's points from the retained topics.

A point's value, quality and time come from its retained ``state/{id}`` topic; its unit,
type, precision and description from ``meta``'s point list. MQTT carries the values in SI
units after scaling; for a point that shows a device register, ``meta`` names the register
(``source``: device, register, table, address, scale, an enum's codes), and the raw value is
the published one unscaled (``raw = value x scale``, an enum's code): what the register held
when it was read. Globs are shell-style (``fnmatch``, case-sensitive; ``*`` also matches
``/``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from supervisor.interfaces.cli_output import (
    MAX_ID,
    STATE_STYLE,
    WIDTH,
    Fitted,
    Report,
    age,
    cell,
    clean,
    count,
    epoch,
    json_safe,
    number,
    show,
    table,
    text_of,
)

POINT_TOPICS = ("meta", "state/#")
VERSION_TOPICS = ("status", "meta", "state/#")
MAX_POINTS = 5000  # a meta listing more is cut here
PACKAGE = "mcw-controller"
# `mcwctl points --json` and `mcwctl version --json`, for their help
JSON_SHAPE = """\
  {"points": [{"id", "value", "unit", "type",
    "quality" (good|stale|invalid|unknown), "ts" (ISO), "ts_epoch",
    "description", "precision", "raw", "register" ("DEVICE.REGISTER TABLE ADDRESS")}]}
  value, quality and ts are null for a point never published; raw and register are
  null for a point that does not show a device register"""
VERSION_JSON_SHAPE = """\
  {"mcwctl", "supervisor", "supervisor_state",
   "firmware": [{"point", "value", "quality", "ts"}]}
  null when not known"""


@dataclass
class PointRow:
    """One point (``--json`` gives these fields)."""

    id: str
    value: Any = None  # as published (strict-JSON safe), None when never published
    unit: str = ""
    type: str | None = None
    quality: str | None = None  # good | stale | invalid, None when never published
    ts: str | None = None  # ISO 8601 as published
    ts_epoch: float | None = None
    description: str | None = None
    precision: int | None = None
    raw: int | float | None = None  # the register's value before scaling (an enum's code)
    register: str | None = None  # "device.register table address" of a register's point


def points(retained: dict[str, Any]) -> list[PointRow]:
    """Every point of ``retained`` (topic below the prefix -> decoded payload), by id: those
    with a retained state, and those ``meta`` lists (not the local ones, which MQTT never
    carries)."""
    rows: dict[str, PointRow] = {}
    sources: dict[str, dict[str, Any]] = {}  # meta's source of each register's point
    meta = retained.get("meta")
    listed = meta.get("points") if isinstance(meta, dict) else None
    for entry in listed[:MAX_POINTS] if isinstance(listed, list) else ():
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) \
                or not entry["id"]:
            continue
        source = entry.get("source")
        row = PointRow(clean(entry["id"], MAX_ID), unit=text_of(entry.get("unit")) or "",
                       type=text_of(entry.get("type")),
                       description=text_of(entry.get("description")),
                       precision=count(entry.get("precision")),
                       register=register_of(source))
        if isinstance(source, dict):
            sources[row.id] = source
        if entry.get("local") is not True:
            rows[row.id] = row
    for topic, payload in retained.items():
        if not topic.startswith("state/") or topic == "state/":
            continue
        point_id = clean(topic.removeprefix("state/"), MAX_ID)
        row = rows.setdefault(point_id, PointRow(point_id))
        if isinstance(payload, dict):
            row.value = json_safe(payload.get("v"))
            quality = payload.get("q")
            row.quality = quality if quality in ("good", "stale", "invalid") else "unknown"
            row.ts = clean(payload["ts"], 40) if isinstance(payload.get("ts"), str) else None
            row.ts_epoch = epoch(payload.get("ts"))
        elif payload is not None:  # not a state object: shown as the text it is
            row.value = show(payload)
            row.quality = "unknown"
    for row in rows.values():
        row.raw = raw_of(row.value, sources.get(row.id))
    return sorted(rows.values(), key=lambda r: r.id)


def register_of(source: Any) -> str | None:
    """``meta``'s source of a point as "device.register table address", None if it has none
    (or not one of this shape)."""
    if not isinstance(source, dict):
        return None
    device, register = text_of(source.get("device")), text_of(source.get("register"))
    table, address = text_of(source.get("table")), count(source.get("address"))
    if not (device and register and table) or address is None:
        return None
    return clean(f"{device}.{register} {table} {address}", MAX_ID)


def raw_of(value: Any, source: dict[str, Any] | None) -> int | float | None:
    """The register's value before scaling: ``value x scale`` (a whole number when it is
    one), an enum's code, 1/0 for a bool; None when the point is no register's or the
    value or the source does not allow it."""
    if source is None or value is None:
        return None
    if isinstance(value, str):
        codes = source.get("codes")
        code = codes.get(value) if isinstance(codes, dict) else None
        return count(code)
    if isinstance(value, bool):
        return int(value)
    scale, scaled = number(source.get("scale")), number(value)
    if scale is None or scaled is None or scale == 0:
        return None
    raw = scaled * scale
    whole = round(raw)
    return whole if abs(raw - whole) <= 1e-6 * max(1.0, abs(raw)) else raw


def matching(rows: list[PointRow], globs: Sequence[str]) -> list[PointRow]:
    """The rows whose id matches any of ``globs`` (all of them when none is given)."""
    if not globs:
        return rows
    return [r for r in rows if any(fnmatch.fnmatchcase(r.id, g) for g in globs)]


def value_text(row: PointRow) -> str:
    """The value with its unit, rounded to the point's precision."""
    if row.quality is None and row.value is None:
        return "-"
    value = number(row.value) if not isinstance(row.value, int) else None
    if value is not None and row.precision is not None and row.precision <= 12:
        text = f"{value:.{row.precision}f}"
    else:
        text = show(row.value)
    return f"{text} {row.unit}" if row.unit and row.value is not None else text


WIDE = 110  # columns from which the table has room for each point's register


def point_table(rows: list[PointRow], now: float, width: int = WIDTH) -> RenderableType:
    """The points as a table: id, value with unit, raw value, quality, age; and the register
    behind the point on a terminal of WIDE columns or more."""
    if not rows:
        return Text("no point matches (none published, or another vehicle id?)")
    wide = width >= WIDE
    out = table("POINT", "VALUE", "RAW", "QUALITY", "AGE", *(("REGISTER",) if wide else ()))
    out.columns[1].justify = "right"
    out.columns[2].justify = "right"
    out.columns[4].justify = "right"
    for row in rows:
        quality = row.quality or "none"
        out.add_row(cell(row.id), cell(value_text(row)),
                    cell("-" if row.raw is None else show(row.raw)),
                    cell(quality, STATE_STYLE.get(quality, "magenta")),
                    cell(age(row.ts_epoch, now) if row.ts_epoch is not None
                         else (row.ts or "-")),
                    *((cell(row.register or ""),) if wide else ()))
    not_good = sum(r.quality != "good" for r in rows)
    return Group(out, Text(f"{len(rows)} points, {not_good} not good; AGE: of the value "
                           "published last (on change); RAW: the register's value before "
                           "scaling"))


def as_json(rows: list[PointRow]) -> list[dict[str, Any]]:
    """The rows for scripts: every field of PointRow, always present (null when unknown)."""
    return [asdict(r) for r in rows]


# ---- mcwctl version -------------------------------------------------------------------------


def package_version() -> str | None:
    """The installed mcwctl (mcw-controller) version, None when run from a bare source tree."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return None


def is_version_point(point_id: str) -> bool:
    """A point that carries a version: its last part ends in ``version`` (``fw_version``,
    ``software_version``, ``version``)."""
    return point_id.rsplit("/", 1)[-1].endswith("version")


def versions(retained: dict[str, Any]) -> dict[str, Any]:
    """What runs on the van: the supervisor (from ``status``, else ``meta``), the nodes that
    publish a version point, and this mcwctl (``--json`` gives this object)."""
    status = retained.get("status")
    meta = retained.get("meta")
    supervisor = status.get("version") if isinstance(status, dict) else None
    if supervisor is None and isinstance(meta, dict):
        supervisor = meta.get("version")
    firmware = [{"point": r.id, "value": r.value, "quality": r.quality, "ts": r.ts}
                for r in points(retained) if is_version_point(r.id) and r.quality is not None]
    return {"mcwctl": package_version(),
            "supervisor": show(supervisor) if supervisor is not None else None,
            "supervisor_state": text_of(status.get("state")) if isinstance(status, dict)
            else None,
            "firmware": firmware}


def version_view(found: dict[str, Any]) -> RenderableType:
    """The versions as lines: mcwctl, the supervisor, one line per node's version point."""
    out = table("WHAT", "VERSION", "NOTE")
    out.add_row(cell("mcwctl"), cell(found["mcwctl"] or "unknown (not installed)"), cell(""))
    state = found["supervisor_state"]
    out.add_row(cell("supervisor"), cell(found["supervisor"] or "unknown"),
                cell(f"status {state}" if state else "no status on the broker"))
    for node in found["firmware"]:
        out.add_row(cell(node["point"]), cell(show(node["value"])),
                    cell(node["quality"] or "", STATE_STYLE.get(node["quality"] or "", "")))
    if not found["firmware"]:
        return Group(out, Text("no node publishes a version point (state/…version)"))
    return out


def report(retained: dict[str, Any], globs: Sequence[str], now: float) -> Report:
    """``mcwctl points [GLOB...]``: the matching points. JSON: ``{"points": [PointRow
    fields...]}``."""
    rows = matching(points(retained), globs)
    return Report(Fitted(lambda width: point_table(rows, now, width)),
                  {"points": as_json(rows)})


def version_report(retained: dict[str, Any]) -> Report:
    """``mcwctl version``; ok when the supervisor's version is known. JSON: the object of
    ``versions``."""
    found = versions(retained)
    return Report(version_view(found), found, found["supervisor"] is not None)
