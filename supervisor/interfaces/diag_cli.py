"""``mcwctl modbus read|write``, ``mcwctl self-test`` and ``mcwctl gpio``: the technician's
diagnostic actions (``diag/read``, ``diag/write``, ``diag/self_test``, see
supervisor/core/diagnostics.py and self_test.py) sent to the supervisor as the technician
role over MQTT (``mcwctl.send_command``), so the supervisor's bus worker stays the bus's only
master and every write is audited; and the GPIO lines' levels from the retained ``io/...``
points."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from supervisor.interfaces.cli_output import MAX_ID, clean, count, dump_json, stdout_console

TABLES = ("holding", "input", "coil", "discrete")
SELF_TEST_WAIT_S = 300.0  # each output is switched twice, each confirmed by its read-back
ACTION_WAIT_S = 30.0
MAX_PENDING = 64  # outputs of a self-test kept as still to test (its start event lists as many)


def add_commands(sub: Any, van_options: Any) -> None:
    """The parsers (``sub``: mcwctl's subparsers; ``van_options``: adds the broker and login
    options every command that talks to the van takes)."""
    modbus = sub.add_parser("modbus", help="read or write a device's registers (technician; "
                                            "through the supervisor, audited)")
    what = modbus.add_subparsers(dest="modbus", required=True)
    read = what.add_parser("read", help="a register by name (decoded) or by address (raw)")
    read.add_argument("device")
    read.add_argument("register", nargs="?", help="a register name of its profile")
    read.add_argument("--table", choices=TABLES, help="with --address: raw registers")
    read.add_argument("--address", type=int, help="the first register's address (0-based)")
    read.add_argument("--count", type=int, default=1, help="how many (default 1)")
    write = what.add_parser("write", help="a register of its profile, within its limits")
    write.add_argument("device")
    write.add_argument("register")
    write.add_argument("value", help="a number, or true/false")
    write.add_argument("--dry-run", action="store_true",
                       help="only show the frame that would be sent")
    test = sub.add_parser("self-test", help="switch each output and back, confirmed by its "
                                            "read-back (refused in a session or driving)")
    test.add_argument("--only", help="outputs to test, a glob (e.g. 'power/circuit/*')")
    test.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    gpio = sub.add_parser("gpio", help="the GPIO lines and their levels")
    for parser in (read, write, test, gpio):
        van_options(parser, "print JSON")


def action_of(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The diag action and its arguments for ``modbus`` or ``self-test``."""
    if args.command == "self-test":
        return "diag/self_test", {} if args.only is None else {"only": args.only}
    if args.modbus == "write":
        body = {"device": args.device, "register": args.register, "value": _value(args.value)}
        return "diag/write", {**body, "dry_run": True} if args.dry_run else body
    body = {"device": args.device}
    if args.register is not None:
        body["register"] = args.register
    if args.address is not None:
        body.update(table=args.table or "holding", address=args.address, count=args.count)
    return "diag/read", body


def wait_s(action: str) -> float:
    """How long mcwctl waits for ``action``'s answer."""
    return SELF_TEST_WAIT_S if action == "diag/self_test" else ACTION_WAIT_S


class SelfTestProgress:
    """The self-test's progress as its events arrive (``event``; other events are ignored):
    the event that starts the run gives the bar its total and the outputs still to test (the
    next one is the one being switched, shown beside the bar), then a line per output's
    outcome advances it. Shown while used as a context manager. Everything in an event is
    untrusted: cut and escaped, the list of outputs bounded."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), console=console or stdout_console(),
                                 transient=False)
        self.task = self.progress.add_task("self-test", total=None)  # known at the start
        self.pending: list[str] = []

    def __enter__(self) -> SelfTestProgress:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def event(self, value: dict[str, Any]) -> bool:
        """Take one event; whether every output of the run has its outcome."""
        if value.get("kind") != "self_test":
            return self.complete
        if value.get("what") == "started":
            total = count(value.get("total"))
            listed = value.get("outputs")
            self.pending = [clean(str(o), MAX_ID) for o in listed[:MAX_PENDING]] \
                if isinstance(listed, list) else []
            if total is not None:
                self.progress.update(self.task, total=total)
                more = total - len(self.pending)
                self.progress.console.print(
                    f"testing {total} output{'' if total == 1 else 's'}: "
                    + ", ".join(self.pending) + (f" and {more} more" if more > 0 else ""))
        else:
            output = clean(str(value.get("output")), MAX_ID)
            if output in self.pending:
                self.pending.remove(output)
            self.progress.console.print(f"{clean(str(value.get('result')))}: {output} "
                                        f"({clean(str(value.get('detail')))})")
            self.progress.advance(self.task)
        self.progress.update(self.task, description=f"self-test: {self.pending[0]}"
                             if self.pending else "self-test")
        return self.complete

    @property
    def complete(self) -> bool:
        task = self.progress.tasks[0]
        return task.total is not None and task.completed >= task.total


def show(result: dict[str, Any], as_json: bool) -> int:
    """Print a result; exit 0 when done, 6 when refused or failed."""
    if as_json:
        print(dump_json(result))
    else:
        print(f"{clean(str(result.get('status')))} ({clean(str(result.get('code')))}): "
              f"{clean(str(result.get('message')))}")
    return 0 if result.get("status") == "done" else 6


def gpio_lines(retained: dict[str, Any]) -> dict[str, Any]:
    """The GPIO lines' levels from the retained points ``io/<line>``."""
    return {topic.removeprefix("state/io/"): (value or {}).get("v") if isinstance(value, dict)
            else None for topic, value in sorted(retained.items())
            if topic.startswith("state/io/")}


def _value(text: str) -> bool | float:
    lowered = text.strip().lower()
    if lowered in ("true", "on"):
        return True
    if lowered in ("false", "off"):
        return False
    try:
        return float(text)
    except ValueError:
        raise SystemExit(f"mcwctl: not a number or true/false: {text!r}") from None
