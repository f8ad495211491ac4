"""``mcwctl watch``: the van's changes as they arrive, one line each.

Subscribes to the points, alarms, devices' status, the supervisor's status and the events,
and prints each live message (not the retained copies the broker sends at subscription: the
other views show those) until the count or the time is reached, or Ctrl-C. ``meta`` is read
too, for the points' units, and never printed. Every payload is untrusted: a line always
comes out, the unreadable part shown as text.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt

from supervisor.interfaces.cli_output import (
    MAX_ID,
    clean,
    decode,
    event_summary,
    iso,
    json_safe,
    local_time,
    show,
    text_of,
)
from supervisor.interfaces.point_table import MAX_POINTS
from supervisor.interfaces.retained_reader import payload_bytes

SUFFIXES = ("status", "meta", "state/#", "alarm/#", "device/+/status", "event")
CONNECT_TIMEOUT_S = 5.0
# `mcwctl watch --json`, for its help: as_json's line
JSON_SHAPE = """\
  one JSON object a line: {"arrived" (ISO), "topic" (below mcw/v1/ID/),
    "kind" (state|alarm|device|event|status),
    "subject" (point, alarm or device id, event kind, or "supervisor"),
    "payload" (as published: its text when not JSON, null when empty)}"""


@dataclass(frozen=True)
class Change:
    """One live message: what it is about and its payload (decoded, or its text)."""

    arrived: float  # epoch seconds, our clock
    topic: str  # below the van's prefix
    kind: str  # state | alarm | device | event | status
    subject: str  # point id, alarm id, device id, event kind, or "supervisor"
    payload: Any


def classify(topic: str, payload: Any, arrived: float) -> Change | None:
    """The change a message on ``topic`` (below the prefix) brings; None for ``meta`` and
    topics the watch does not show."""
    if topic.startswith("state/") and len(topic) > 6:
        return Change(arrived, topic, "state", topic.removeprefix("state/"), payload)
    if topic.startswith("alarm/") and len(topic) > 6:
        return Change(arrived, topic, "alarm", topic.removeprefix("alarm/"), payload)
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "device" and parts[2] == "status":
        return Change(arrived, topic, "device", parts[1], payload)
    if topic == "event":
        kind = payload.get("kind") if isinstance(payload, dict) else None
        return Change(arrived, topic, "event", kind if isinstance(kind, str) else "?", payload)
    if topic == "status":
        return Change(arrived, topic, "status", "supervisor", payload)
    return None


def matches(change: Change, globs: Sequence[str]) -> bool:
    """Whether any glob matches the change's subject (point, alarm or device id, event kind)
    or its topic below the prefix (``state/…``, ``alarm/…``, ``device/…/status``, ``event``,
    ``status``); every change when no glob is given."""
    return not globs or any(fnmatch.fnmatchcase(change.subject, g)
                            or fnmatch.fnmatchcase(change.topic, g) for g in globs)


def _field(payload: Any, key: str) -> Any:
    return payload.get(key) if isinstance(payload, dict) else None


def describe(change: Change, units: dict[str, str]) -> str:
    """The change as one line of text (without its time stamp)."""
    p = change.payload
    subject = clean(change.subject, MAX_ID)
    if not isinstance(p, dict) and p is not None:
        return f"{change.kind:<6} {subject}: unreadable: {show(p)}"
    if change.kind == "state":
        unit = units.get(change.subject, "")
        value = show(_field(p, "v"))
        quality = show(_field(p, "q"))
        return f"state  {subject} = {value}{' ' + unit if unit else ''}" + \
            ("" if quality == "good" else f"  [{quality}]")
    if change.kind == "alarm":
        if p is None:
            return f"alarm  {subject}: gone (cleared and acknowledged)"
        active = "ACTIVE" if _field(p, "active") is True else "cleared"
        acked = "" if _field(p, "acked") is True else ", not acknowledged"
        return f"alarm  {subject}: {active}{acked} {show(_field(p, 'severity'))}: " \
               f"{show(_field(p, 'text'))}"
    if change.kind == "device":
        error = text_of(_field(p, "last_error"))
        state = show(_field(p, "state"))
        return f"device {subject}: {state}" + \
            (f" ({error})" if error and state != "online" else "")
    if change.kind == "event":
        return f"event  #{show(_field(p, 'id'))} {subject}: {event_summary(p)}"
    return f"status supervisor: {show(_field(p, 'state'))} session {show(_field(p, 'session'))}"


def as_json(change: Change) -> str:
    """The change as one JSON line: arrived (ISO), topic, kind, subject, payload."""
    return json.dumps({"arrived": iso(change.arrived), "topic": change.topic,
                       "kind": change.kind, "subject": change.subject[:MAX_ID],
                       "payload": json_safe(change.payload)}, sort_keys=True, allow_nan=False)


def text_line(change: Change, units: dict[str, str]) -> str:
    """The change as the line the terminal shows: local time (ms), then what changed."""
    stamp = local_time(change.arrived)[11:] + f".{int(change.arrived * 1000) % 1000:03d}"
    return f"{stamp} {describe(change, units)}"


def units_of(meta: Any) -> dict[str, str]:
    """Point id -> unit, from a ``meta`` payload (empty when it is not one); as bounded as
    ``mcwctl points``: at most MAX_POINTS points, ids of at most MAX_ID characters."""
    listed = meta.get("points") if isinstance(meta, dict) else None
    out: dict[str, str] = {}
    for entry in listed[:MAX_POINTS] if isinstance(listed, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) \
                and len(entry["id"]) <= MAX_ID \
                and isinstance(entry.get("unit"), str) and entry["unit"]:
            out[entry["id"]] = clean(entry["unit"], 16)
    return out


async def watch(host: str, port: int, prefix: str, globs: Sequence[str],
                emit: Callable[[str], None], json_lines: bool, max_count: int | None,
                duration_s: float | None, username: str | None = None,
                password: str | None = None) -> int:
    """Print the van's live changes matching ``globs`` until ``max_count`` lines or
    ``duration_s`` seconds (for ever when neither); returns how many were printed."""
    printed = 0
    units: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    deadline = None if duration_s is None else loop.time() + duration_s
    async with aiomqtt.Client(host, port, username=username, password=password,
                              timeout=CONNECT_TIMEOUT_S) as client:
        for suffix in SUFFIXES:
            await client.subscribe(f"{prefix}/{suffix}", qos=1)
        while max_count is None or printed < max_count:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            try:
                async with asyncio.timeout(left):
                    msg = await anext(client.messages)
            except TimeoutError:
                break
            topic = msg.topic.value.removeprefix(prefix + "/")
            raw = payload_bytes(msg.payload)
            if topic == "meta":
                units = units_of(decode(raw))
                continue
            if msg.retain:  # the broker's stored copy at subscription, not a change
                continue
            change = classify(topic, decode(raw), time.time())
            if change is None or not matches(change, globs):
                continue
            emit(as_json(change) if json_lines else text_line(change, units))
            printed += 1
    return printed

