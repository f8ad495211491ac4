"""``mcwctl devices``: every device's health from the retained topics, the failing first.

What is known of a device comes from two retained topics: ``meta`` (its ``devices`` list:
id, profile, bus, unit, label) and ``device/{id}/status`` (state, error counts by kind,
requests, last good answer, latency, last error; and, where the bus worker publishes them,
``blocks``, the ``[table, start, count]`` reads it polls with, ``wrong_identity``, how the
unit's answer to the identity check differs from its profile's model ("" when it does not),
and ``identity``, what the device said it is). Either topic may be missing, or hold
anything: a device known from only one of them is still shown, and a value of the wrong
type shows as unknown or as its text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
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
    number,
    show,
    table,
    text_of,
)

# what `mcwctl devices` subscribes to (below the van's prefix)
TOPICS = ("meta", "device/+/status")
ERROR_KINDS = ("timeout", "framing", "exception", "connection")
# failing first: a device with no status at all is as suspect as a degraded one
STATE_ORDER = {"offline": 0, "degraded": 1, "unknown": 2, "online": 3}
MAX_DEVICES = 500  # a meta or a broker holding more is cut here
MAX_BLOCKS = 200
# `mcwctl devices --json`, for its help: the fields of DeviceRow
JSON_SHAPE = """\
  {"devices": [{"id", "profile", "bus", "unit", "label",
    "state" (online|degraded|offline|unknown), "errors": {kind: count},
    "requests", "latency_ms", "last_ok" (ISO), "last_ok_epoch", "last_error",
    "blocks": [[table, start, count], ...], "identity", "wrong_identity"}]}
  a field not known or not published is null"""
WIDE = 110  # columns from which the table has room for the profile


@dataclass
class DeviceRow:
    """One device as the technician sees it (``--json`` gives these fields)."""

    id: str
    profile: str | None = None
    bus: str | None = None
    unit: int | None = None
    label: str | None = None
    state: str = "unknown"  # online | degraded | offline | unknown (no status, or unreadable)
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count
    requests: int | None = None
    latency_ms: float | None = None
    last_ok: str | None = None  # ISO 8601 as published, or None
    last_ok_epoch: float | None = None
    last_error: str | None = None
    blocks: list[list[Any]] | None = None  # [table, start, count] when published
    identity: str | None = None  # when published
    wrong_identity: str | None = None  # when published: "" the right model (or not asked)


def devices(retained: dict[str, Any]) -> list[DeviceRow]:
    """One row per device in ``retained`` (topic below the prefix -> decoded payload), the
    failing first (offline, degraded, no status), then by id."""
    rows: dict[str, DeviceRow] = {}
    meta = retained.get("meta")
    listed = meta.get("devices") if isinstance(meta, dict) else None
    for entry in listed[:MAX_DEVICES] if isinstance(listed, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
            device_id = clean(entry["id"], MAX_ID)
            row = rows.setdefault(device_id, DeviceRow(device_id))
            row.profile = text_of(entry.get("profile"))
            row.bus = text_of(entry.get("bus"))
            row.unit = count(entry.get("unit"))
            row.label = text_of(entry.get("label")) or None
    for topic, payload in retained.items():
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != "device" or parts[2] != "status" or not parts[1]:
            continue
        if len(rows) >= MAX_DEVICES and clean(parts[1], MAX_ID) not in rows:
            continue
        device_id = clean(parts[1], MAX_ID)
        _status(rows.setdefault(device_id, DeviceRow(device_id)), payload)
    return sorted(rows.values(), key=lambda r: (STATE_ORDER.get(r.state, 2), r.id))


def _status(row: DeviceRow, payload: Any) -> None:
    """Fill ``row`` from its ``device/{id}/status`` payload, whatever it holds."""
    if not isinstance(payload, dict):
        if payload is not None:  # not JSON, or not an object: its text says what it was
            row.last_error = f"unreadable status: {show(payload)}"
        return
    state = payload.get("state")
    row.state = state if state in ("online", "degraded", "offline") else "unknown"
    errors = payload.get("errors")
    if isinstance(errors, dict):
        row.errors = {clean(str(kind), 32): n for kind, value in list(errors.items())[:20]
                      if (n := count(value)) is not None}
    row.requests = count(payload.get("requests"))
    latency = number(payload.get("latency_ms"))
    row.latency_ms = latency if latency is not None and latency >= 0 else None
    last_ok = payload.get("last_ok")
    row.last_ok_epoch = epoch(last_ok)
    row.last_ok = clean(last_ok, 40) if isinstance(last_ok, str) else None
    row.last_error = text_of(payload.get("last_error")) or None
    row.identity = text_of(payload.get("identity"))
    row.wrong_identity = text_of(payload.get("wrong_identity"))
    blocks = payload.get("blocks")
    if isinstance(blocks, list):
        row.blocks = [_block(b) for b in blocks[:MAX_BLOCKS]]


def _block(block: Any) -> list[Any]:
    """One ``[table, start, count]``; anything else as ``[its text, None, None]``."""
    if isinstance(block, list) and len(block) == 3 and isinstance(block[0], str) \
            and count(block[1]) is not None and count(block[2]) is not None:
        return [clean(block[0], 32), block[1], block[2]]
    return [show(block, 60), None, None]


def failing(rows: list[DeviceRow]) -> bool:
    """Whether any device is not online (``mcwctl devices`` then exits 3)."""
    return any(r.state != "online" for r in rows)


def as_json(rows: list[DeviceRow]) -> list[dict[str, Any]]:
    """The rows for scripts: every field of DeviceRow, always present (null when unknown)."""
    return [asdict(r) for r in rows]


def _errors(row: DeviceRow) -> str:
    return "/".join(str(row.errors.get(kind, 0)) for kind in ERROR_KINDS)


def _latency(row: DeviceRow) -> str:
    return "-" if row.latency_ms is None else f"{row.latency_ms:.0f}"


def device_table(rows: list[DeviceRow], now: float, width: int = WIDTH) -> RenderableType:
    """The devices as one table, one line each, then why each failing one fails (its last
    error, full width). The profile gets a column on a terminal of WIDE columns or more (on
    80 it would squeeze the rest); the detail view and JSON always have it."""
    if not rows:
        return Text("no device on the broker (supervisor never started, or another "
                    "vehicle id?)")
    wide = width >= WIDE
    out = table("DEVICE", *(("PROFILE",) if wide else ()), "BUS:UNIT", "STATE", "ERR t/f/e/c",
                "REQ", "MS", "LAST OK")
    for col in out.columns[-4:]:
        col.justify = "right"
    why: list[Text] = []
    for row in rows:
        where = f"{row.bus or '?'}:{'?' if row.unit is None else row.unit}"
        state_style = STATE_STYLE.get(row.state, "magenta")
        out.add_row(cell(row.id), *((cell(row.profile or "?"),) if wide else ()), cell(where),
                    cell(row.state, state_style), cell(_errors(row)), cell(show(row.requests)),
                    cell(_latency(row)), cell(_last_ok(row, now)))
        if row.last_error and (row.state != "online" or any(row.errors.values())):
            line = Text(f"{row.id}: ", style="bold")
            line.append(row.last_error, style="" if row.state == "online" else state_style)
            why.append(line)
        elif row.state != "online":
            reason = "no readable status" if row.state == "unknown" else "no error given"
            why.append(Text(f"{row.id}: {reason}", style="bold"))
        if row.wrong_identity:  # another model at that address: its readings mean nothing
            why.append(Text(f"{row.id}: WRONG DEVICE: {row.wrong_identity}", style="bold red"))
    bad = sum(r.state != "online" for r in rows)
    summary = Text(f"{len(rows)} devices, {bad} not online; t/f/e/c: timeout/framing/"
                   "exception/connection", style="bold" if bad else "")
    if why:
        return Group(out, summary, Text("last errors:", style="bold"), *why)
    return Group(out, summary)


def _last_ok(row: DeviceRow, now: float) -> str:
    if row.last_ok_epoch is not None:
        return age(row.last_ok_epoch, now)
    return row.last_ok or "never"


def device_detail(row: DeviceRow, now: float) -> RenderableType:
    """Everything known of one device, with its block plan when the worker publishes it."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")

    def line(key: str, value: str, style: str = "") -> None:
        grid.add_row(key, cell(value, style))

    line("device", row.id)
    line("label", row.label or "-")
    line("profile", row.profile or "-")
    line("bus", f"{row.bus or '-'}, unit {show(row.unit)}")
    line("state", row.state, STATE_STYLE.get(row.state, "magenta"))
    line("errors", ", ".join(f"{k} {n}" for k, n in row.errors.items()) or "none")
    line("requests", show(row.requests))
    line("latency", "-" if row.latency_ms is None else f"{row.latency_ms:.1f} ms")
    line("last good", f"{row.last_ok} ({age(row.last_ok_epoch, now)} ago)"
         if row.last_ok_epoch is not None else row.last_ok or "never")
    line("last error", row.last_error or "-", "red" if row.last_error else "")
    line("identity", _identity(row), "bold red" if row.wrong_identity else "")
    if row.blocks is None:
        return Group(grid, Text("blocks: (not published by this supervisor)"))
    plan = table("TABLE", "START", "COUNT", "END")
    for tbl, start, size in row.blocks:
        end = "-" if start is None or size is None else str(start + size - 1)
        plan.add_row(cell(tbl), cell(show(start)), cell(show(size)), cell(end))
    requests = "request" if len(row.blocks) == 1 else "requests"
    return Group(grid, Text(f"blocks: {len(row.blocks)} read {requests} per poll"), plan)


def _identity(row: DeviceRow) -> str:
    if row.wrong_identity:
        return f"WRONG DEVICE: {row.wrong_identity}"
    if row.identity is not None:
        return row.identity
    if row.wrong_identity is not None:
        return "no mismatch seen (its profile's model, or not checked yet)"
    return "(not published)"


def find(rows: list[DeviceRow], device_id: str) -> DeviceRow | None:
    """The row of ``device_id``, or None."""
    return next((r for r in rows if r.id == device_id), None)


def report(retained: dict[str, Any], device_id: str | None, now: float) -> Report:
    """``mcwctl devices [DEVICE]``: the table (or one device's detail); ok when every device
    shown is online. JSON: ``{"devices": [DeviceRow fields...]}``."""
    rows = devices(retained)
    if device_id is None:
        return Report(Fitted(lambda width: device_table(rows, now, width)),
                      {"devices": as_json(rows)}, bool(rows) and not failing(rows))
    row = find(rows, device_id)
    if row is None:
        known = ", ".join(r.id for r in rows) or "none"
        return Report(Text(f"no device {clean(device_id, MAX_ID)!r} on the broker; known: "
                           f"{known}"), {"devices": []}, False)
    return Report(device_detail(row, now), {"devices": as_json([row])}, row.state == "online")
