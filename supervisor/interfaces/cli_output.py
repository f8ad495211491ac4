"""How mcwctl's technician views write what they read: safe text, ages, times, tables, JSON.

Everything read from the broker is untrusted: any topic may hold any payload. A value is
therefore never printed as it came: control and format characters (a terminal escape
sequence, a right-to-left override) are escaped, long texts are cut, and table cells are
rich ``Text`` objects, never strings, so that ``[bold]`` in a payload is not taken as markup.
JSON output is strict (no NaN, no infinity) and every value in it is of a stated type.
"""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

MAX_TEXT = 160  # of a free text (an error message, an alarm text): what a view shows
MAX_ID = 80  # of an id (device, point, alarm)
MAX_INT = 10**15  # beyond this an integer is shown as text (and never converted at length)
WIDTH = 80  # what the views are laid out for; rich fits them to a wider terminal too
MAX_PAYLOAD = 1 << 20  # bytes parsed as JSON at most (meta is tens of kB); beyond: its text

STATE_STYLE = {"online": "green", "ready": "green", "good": "",
               "degraded": "yellow", "stale": "yellow",
               "offline": "bold red", "lost": "bold red", "invalid": "red"}


@dataclass(frozen=True)
class Report:
    """What a view command prints: ``view`` on a terminal, ``data`` with ``--json``; ``ok``
    False makes mcwctl exit 3 (something is not as it should be)."""

    view: RenderableType
    data: Any
    ok: bool = True


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, every unprintable character escaped."""
    cut = text[:limit]
    out = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                  for ch in cut)
    return out + ("…" if len(text) > limit else "")


def show(value: Any, limit: int = MAX_TEXT) -> str:
    """Any decoded payload value as a short printable text; None as "-"."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < MAX_INT else "(a very large integer)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return clean(value, limit)
    try:  # a list or an object where a scalar was expected: shown as its JSON, cut
        return clean(json.dumps(json_safe(value), ensure_ascii=False), limit)
    except (TypeError, ValueError, RecursionError):
        return clean(repr(value), limit)


def decode(raw: bytes | str, keep: int = MAX_TEXT) -> Any:
    """A payload as JSON; when it is not JSON (or too large to parse), its first ``keep``
    characters as text; None when empty."""
    if not raw:
        return None
    if len(raw) <= MAX_PAYLOAD:
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # shown as text, never as JSON it is not
            pass
    text = raw[:keep]
    return text.decode(errors="replace") if isinstance(text, bytes) else text


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` (a decoded payload) as strict JSON can hold it: non-finite numbers and huge
    integers become text, texts are cut, nesting beyond a few levels is shown as text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < MAX_INT else show(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value[:MAX_TEXT * 8]
    if depth >= 8:
        return show(value)
    if isinstance(value, dict):
        return {str(k)[:MAX_ID]: json_safe(v, depth + 1) for k, v in list(value.items())[:200]}
    if isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in value[:200]]
    return show(value)


def text_of(value: Any) -> str | None:
    """A payload's text field: a string (cut), else None."""
    return clean(value) if isinstance(value, str) else None


def number(value: Any) -> float | None:
    """A finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and abs(value) >= MAX_INT:
        return None
    return float(value) if math.isfinite(value) else None


def count(value: Any) -> int | None:
    """A non-negative integer count, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_INT:
        return None
    return value


def epoch(ts: Any) -> float | None:
    """An ISO 8601 timestamp with a zone (the MQTT interface's ``ts``) as epoch seconds;
    None for anything else."""
    if not isinstance(ts, str) or len(ts) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds, as the supervisor writes them."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def local_time(ts: float) -> str:
    """Epoch seconds as the technician's local date and time, to the second."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def age(ts: float | None, now: float) -> str:
    """How long ago ``ts`` was, in the largest fitting unit ("never" for None)."""
    if ts is None:
        return "never"
    seconds = now - ts
    if seconds < -2:  # a clock ahead of ours: said, not hidden as "0 s"
        return "future"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def event_summary(data: Any) -> str:
    """An event's fields in a line, cut: an alarm's and a command's as a sentence, any other
    as ``what key=value …`` (the bookkeeping left out)."""
    if not isinstance(data, dict):
        return show(data)
    kind = data.get("kind")
    if kind == "alarm":
        detail = text_of(data.get("detail"))
        return clean(f"{show(data.get('what'))} {show(data.get('alarm'), MAX_ID)} "
                     f"({show(data.get('severity'))}): {show(data.get('text'))}"
                     + (f" ({detail})" if detail else ""), MAX_TEXT * 2)
    if kind == "command":
        args = data.get("args")
        given = " ".join(f"{clean(str(k), 40)}={show(v, 60)}" for k, v in
                         list(args.items())[:10]) if isinstance(args, dict) \
            else ("" if args is None else show(args))
        action = " ".join(p for p in (show(data.get("action"), MAX_ID), given) if p)
        return clean(f"{action} by {show(data.get('role'))} via {show(data.get('source'))}: "
                     f"{show(data.get('status'))} ({show(data.get('code'))}) "
                     f"{show(data.get('message'))} [{show(data.get('command'), MAX_ID)}]",
                     MAX_TEXT * 2)
    skip = {"id", "prev", "ts", "kind", "what", "text_pl"}
    what = data.get("what")
    parts = [show(what, MAX_ID)] if what is not None else []
    parts += [f"{clean(str(k), 40)}={show(v, 60)}" for k, v in list(data.items())[:20]
              if k not in skip and v not in ("", None, [], {})]
    return clean(" ".join(parts), MAX_TEXT * 2) if parts else "-"


def cell(value: str, style: str = "") -> Text:
    """A table cell: plain text (never markup) that folds rather than overflows."""
    return Text(value, style=style, overflow="fold")


def table(*columns: str, title: str | None = None) -> Table:
    """A table in the views' style: a header rule, no borders, compact for 80 columns."""
    out = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), title=title,
                title_justify="left", show_edge=False)
    for column in columns:
        out.add_column(column, overflow="fold")
    return out


class Fitted:
    """A view laid out for the width it is printed in (known only then): ``lay_out(width)``,
    so a table can leave out a column on a narrow terminal rather than fold its ids."""

    def __init__(self, lay_out: Callable[[int], RenderableType]) -> None:
        self.lay_out = lay_out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.lay_out(options.max_width)


def stdout_console() -> Console:
    """The console views are printed on (colour only on a terminal; rich decides)."""
    return Console(highlight=False, soft_wrap=False)


def render(renderable: RenderableType, width: int = WIDTH) -> str:
    """A view as plain text of ``width`` columns (tests, and the width check)."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, highlight=False,
            force_terminal=False).print(renderable)
    return buffer.getvalue()


def dump_json(payload: Any) -> str:
    """Strict, stable JSON for scripts: sorted keys, two-space indent, ASCII only."""
    return json.dumps(payload, indent=2, sort_keys=True, allow_nan=False)


def write_line(line: str) -> None:
    """One line on stdout, at once (a pipe to a script sees each as it comes)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
