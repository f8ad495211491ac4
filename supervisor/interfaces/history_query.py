"""``mcwctl events`` and ``mcwctl alarms``: the van's history from the supervisor's SQLite.

The supervisor logs every event in its ``event`` table (``seq``, ``ts`` epoch seconds,
``kind``, ``data`` JSON; supervisor/core/storage.py); an alarm raised, cleared or
acknowledged is an event of kind ``alarm`` (``alarm``, ``what``, ``severity``, ``text``).
The file is opened read-only (readonly_db.py): a running supervisor is never disturbed. Times
are given as ISO 8601 (a time without a zone is the technician's local time) or as a time
before now (``90s``, ``30m``, ``2h``, ``1d``, ``1w``).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from supervisor.interfaces.cli_output import (
    MAX_ID,
    Report,
    cell,
    clean,
    event_summary,
    iso,
    json_safe,
    local_time,
    show,
    table,
    text_of,
)
from supervisor.interfaces.readonly_db import HistoryError, open_readonly

RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)")
UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
MAX_AGO_S = 20 * 365 * 86_400  # further back than the van has existed
DEFAULT_LIMIT = 100
MAX_LIMIT = 100_000
# `mcwctl events --json` and `mcwctl alarms --json`, for their help
EVENTS_JSON_SHAPE = """\
  {"events": [{"seq", "ts" (ISO UTC), "kind", "data" (the event as logged)}]},
  oldest first"""
ALARMS_JSON_SHAPE = """\
  {"alarms": [{"seq", "ts" (ISO UTC), "alarm",
    "what" (raised|cleared|acknowledged), "severity", "text", "detail"}]},
  oldest first"""


def parse_time(text: str, now: float) -> float:
    """``text`` as epoch seconds: ``2h`` (that long before ``now``) or ISO 8601 (local time
    when it names no zone). ValueError with the reason otherwise."""
    text = text.strip()
    relative = RELATIVE.fullmatch(text)
    if relative is not None:
        seconds = float(relative.group(1)) * UNIT_S[relative.group(2)]
        if not math.isfinite(seconds) or seconds > MAX_AGO_S:
            raise ValueError(f"too far back: {text!r}")
        return now - seconds
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text[:40]!r} (ISO 8601 such as 2026-12-03T08:00, "
                         "or a time before now such as 30m, 2h, 1d)") from None
    try:
        return parsed.timestamp()  # a naive time is taken as local time
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"not a usable time: {text[:40]!r}") from None


@dataclass
class EventRow:
    """One logged event (``mcwctl events --json`` gives these fields)."""

    seq: int
    ts: str  # ISO 8601 UTC of the row's time
    kind: str
    data: Any  # the event's JSON object (its text when it is not JSON)


@dataclass
class AlarmRow:
    """One alarm transition (``mcwctl alarms --json`` gives these fields)."""

    seq: int
    ts: str  # ISO 8601 UTC
    alarm: str | None
    what: str | None  # raised | cleared | acknowledged
    severity: str | None  # info | warning | critical
    text: str | None
    detail: str | None


def query(db: sqlite3.Connection, since: float | None, until: float | None,
          kind: str | None, limit: int) -> list[EventRow]:
    """The newest ``limit`` events between ``since`` and ``until`` (of ``kind`` if given),
    oldest first."""
    where: list[str] = ["1"]
    params: list[float | str] = []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts <= ?")
        params.append(until)
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    try:
        rows = db.execute(f"SELECT seq, ts, kind, data FROM event WHERE {' AND '.join(where)} "
                          "ORDER BY seq DESC LIMIT ?", (*params, limit)).fetchall()
    except sqlite3.Error as exc:
        raise HistoryError(f"cannot read the event log: {exc}") from exc
    return [_row(*row) for row in reversed(rows)]


def _row(seq: Any, ts: Any, kind: Any, data: Any) -> EventRow:
    try:
        decoded = json.loads(data) if isinstance(data, str | bytes) else data
    except (ValueError, RecursionError):
        decoded = show(data)
    stamp = iso(ts) if isinstance(ts, int | float) and 0 <= ts < 1e11 else show(ts)
    return EventRow(int(seq), stamp, show(kind, MAX_ID), json_safe(decoded))


def alarms(rows: list[EventRow]) -> list[AlarmRow]:
    """The alarm transitions among ``rows``."""
    out = []
    for row in rows:
        data = row.data if isinstance(row.data, dict) else {}
        if row.kind != "alarm":
            continue
        out.append(AlarmRow(row.seq, row.ts, text_of(data.get("alarm")),
                            text_of(data.get("what")), text_of(data.get("severity")),
                            text_of(data.get("text")), text_of(data.get("detail")) or None))
    return out


def _when(ts: str) -> str:
    """An ISO time of a row as local date and time (as given when it is not one)."""
    try:
        return local_time(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return ts


SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": ""}


def event_table(rows: list[EventRow], limit: int) -> RenderableType:
    """The events as a table, oldest first: local time, number, kind, what happened."""
    if not rows:
        return Text("no event in that time")
    out = table("TIME", "#", "KIND", "WHAT")
    out.columns[1].justify = "right"
    out.columns[-1].ratio = 1
    for row in rows:
        data = row.data if isinstance(row.data, dict) else None
        number = show(data.get("id")) if data is not None else "-"
        out.add_row(cell(_when(row.ts)), cell(number), cell(row.kind),
                    cell(event_summary(row.data)))
    return Group(out, _footer(len(rows), limit, "events"))


def alarm_table(rows: list[AlarmRow], limit: int) -> RenderableType:
    """The alarm transitions as a table, oldest first."""
    if not rows:
        return Text("no alarm raised, cleared or acknowledged in that time")
    out = table("TIME", "ALARM", "WHAT", "TEXT")
    out.columns[-1].ratio = 1
    for row in rows:
        severity = row.severity or "?"
        what = Text(row.what or "?", style="bold" if row.what == "raised" else "")
        what.append(f"\n{severity}", style=SEVERITY_STYLE.get(severity, "magenta"))
        text = (row.text or "") + (f" ({row.detail})" if row.detail else "")
        out.add_row(cell(_when(row.ts)), cell(row.alarm or "?"), what, cell(clean(text)))
    return Group(out, _footer(len(rows), limit, "alarm changes"))


def _footer(shown: int, limit: int, what: str) -> Text:
    what = what if shown != 1 else what.removesuffix("s")
    more = f" (the newest {limit}: give --limit or --since for more)" if shown >= limit else ""
    return Text(f"{shown} {what}{more}")


def as_json(rows: list[EventRow] | list[AlarmRow]) -> list[dict[str, Any]]:
    """The rows for scripts: every field, always present (null when unknown)."""
    return [asdict(r) for r in rows]


def report(path: Path, alarms_only: bool, since: float | None, until: float | None,
           kind: str | None, limit: int) -> Report:
    """``mcwctl events`` (or ``alarms`` with ``alarms_only``) from the SQLite at ``path``.
    JSON: ``{"events": [EventRow fields...]}`` or ``{"alarms": [AlarmRow fields...]}``."""
    db = open_readonly(path)
    try:
        rows = query(db, since, until, "alarm" if alarms_only else kind, limit)
    finally:
        db.close()
    if alarms_only:
        transitions = alarms(rows)
        return Report(alarm_table(transitions, limit), {"alarms": as_json(transitions)})
    return Report(event_table(rows, limit), {"events": as_json(rows)})
