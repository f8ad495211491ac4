"""``mcwctl modbus read|write``, ``mcwctl self-test`` and ``mcwctl gpio``: the technician's
diagnostic actions (``diag/read``, ``diag/write``, ``diag/self_test``, see
supervisor/core/diagnostics.py and self_test.py) sent to the supervisor as the technician
role over MQTT, so the supervisor's bus worker stays the bus's only master and every write is
audited; and the GPIO lines' levels from the retained ``io/...`` points."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

import aiomqtt
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from supervisor.interfaces.cli_output import clean, dump_json, stdout_console

TABLES = ("holding", "input", "coil", "discrete")
SELF_TEST_WAIT_S = 300.0  # each output is switched twice, each confirmed by its read-back
ACTION_WAIT_S = 30.0


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


async def run_action(host: str, port: int, prefix: str, user: str | None,
                     password: str | None, action: str, body: dict[str, Any],
                     as_json: bool) -> dict[str, Any] | None:
    """Send ``action`` as the technician and wait for its result, showing the self-test's
    progress from its events meanwhile; the result (None: none in time)."""
    command = {"id": f"mcwctl-{uuid.uuid4().hex[:12]}", "args": body}
    wait = SELF_TEST_WAIT_S if action == "diag/self_test" else ACTION_WAIT_S
    progress = None if as_json or action != "diag/self_test" else Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=stdout_console(), transient=False)
    async with aiomqtt.Client(host, port, username=user, password=password,
                              timeout=ACTION_WAIT_S) as client:
        await client.subscribe(f"{prefix}/result/technician/{action}", qos=1)
        await client.subscribe(f"{prefix}/event", qos=1)
        await client.publish(f"{prefix}/cmd/technician/{action}", json.dumps(command), qos=1)
        task = None if progress is None else progress.add_task("self-test", total=None)
        try:
            if progress is not None:
                progress.start()
            async with asyncio.timeout(wait):
                async for msg in client.messages:
                    value = _json(msg.payload)
                    if msg.topic.value.endswith("/event"):
                        if progress is not None and task is not None and \
                                value.get("kind") == "self_test":
                            progress.console.print(
                                f"{clean(str(value.get('result')))}: "
                                f"{clean(str(value.get('output')))} "
                                f"({clean(str(value.get('detail')))})")
                            progress.advance(task)
                    elif value.get("id") == command["id"]:
                        return value
        except TimeoutError:
            return None
        finally:
            if progress is not None:
                progress.stop()
    return None


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


def _json(payload: Any) -> dict[str, Any]:
    try:
        value = json.loads(payload if isinstance(payload, bytes | str) else b"")
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
