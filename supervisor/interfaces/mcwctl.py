"""``mcwctl``: the technician's command line.

``mcwctl check-config FILE`` validates a vehicle config (exit 0 OK, 2 with file, key and
reason). ``mcwctl status`` reads the retained state from the broker and shows, in one screen,
whether the supervisor runs, which device is failing and why, the active alarms and the points.
``mcwctl fleet`` is HQ's: every van on HQ's broker, from its retained topics
(fleet_view.py); ``mcwctl fleet ack VAN`` acknowledges the van's panic, as the ``hq`` role,
and prints the van's answer.

The technician's views, each in its own module (this one parses the arguments, reads the
broker and dispatches): ``devices`` (device_table.py), ``points`` and ``version``
(point_table.py), ``watch`` (live_watch.py), and ``events`` and ``alarms`` from the
supervisor's SQLite, read-only (history_query.py). Tables through rich; ``--json`` for
scripts, its shape in each command's help.

Every command that reads the van's broker logs in to it (it refuses anonymous clients:
systemd/mosquitto-mcw.conf) as ``--user`` (the ``technician`` login of
systemd/mosquitto-mcw.acl by default, which reads every ``mcw/v1/...`` topic) with the
password read from ``--password-file`` or the environment variable ``MCW_MQTT_PASSWORD``;
never from an argument, which ``ps`` would show to every user.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from supervisor.core.config import ConfigError
from supervisor.interfaces import (
    device_table,
    diag_cli,
    history_query,
    live_watch,
    point_table,
    support_bundle,
)
from supervisor.interfaces.cli_output import (
    Report,
    decode,
    dump_json,
    stdout_console,
    write_line,
)
from supervisor.interfaces.fleet_view import FILTERS, VEHICLE, as_json, fleet, format_fleet
from supervisor.interfaces.pin import hash_pin
from supervisor.interfaces.readonly_db import HistoryError
from supervisor.interfaces.retained_reader import MAX_TOPICS, read_retained
from supervisor.registry import SUBSYSTEMS, load_config

MAX_WAIT_S = 5.0
EVENTS_AFTER_RESULT_S = 1.0  # a command's events that may follow its result: waited this long
MAX_RAW = 200  # of a payload that is not JSON, what is kept to show
DEFAULT_USER = "technician"  # the login of systemd/mosquitto-mcw.acl that technicians use
PASSWORD_ENV = "MCW_MQTT_PASSWORD"
# CONNACK codes of a refused login: MQTT 3.1.1 (4 bad user name or password, 5 not authorised)
# and their MQTT 5 reason codes (paho reports the latter for both protocol versions)
LOGIN_REFUSED = frozenset({4, 5, 0x86, 0x87})
EXIT_UNREACHABLE, EXIT_USAGE, EXIT_NOT_READY, EXIT_LOGIN_REFUSED = 1, 2, 3, 4
EXIT_NO_ANSWER, EXIT_REFUSED = 5, 6  # fleet ack: the van did not answer / did not apply it
DEFAULT_CONFIG = Path("/etc/mcw/vehicle.toml")
T = TypeVar("T")


class StatusError(Exception):
    """A one-line reason ``status`` cannot show the state, and its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


async def collect_retained(host: str, port: int, filters: tuple[str, ...],
                           username: str | None = None, password: str | None = None,
                           limit: int = MAX_TOPICS) -> dict[str, Any]:
    """All retained topics matching ``filters`` (topic -> decoded JSON; the raw text when it
    is not JSON; None when empty); at most ``limit`` topics, retained_reader's MAX_BYTES, and what
    arrives within MAX_WAIT_S."""
    found, _ = await read_retained(host, port, filters, username, password, max_topics=limit,
                                   wait_s=MAX_WAIT_S, connect_timeout_s=MAX_WAIT_S)
    return {topic: decode(raw, MAX_RAW) for topic, raw in found.items()}


async def send_command(host: str, port: int, prefix: str, role: str, action: str,
                       body: dict[str, Any], wait_s: float, username: str | None = None,
                       password: str | None = None,
                       on_event: Callable[[dict[str, Any]], bool] | None = None,
                       ) -> dict[str, Any] | None:
    """Publish a command and wait up to ``wait_s`` for its result; None if none came.

    With ``on_event``, every event the van publishes meanwhile (a JSON object) is given to it
    (the self-test's progress); it says whether it has all the events it waits for. The
    supervisor sends its queued results before its queued events, so events of the command
    may come just after its result: until ``on_event`` has them all, they are waited for
    ``EVENTS_AFTER_RESULT_S`` more."""
    events = f"{prefix}/event"
    result: dict[str, Any] | None = None
    complete = False
    async with aiomqtt.Client(host, port, username=username, password=password,
                              timeout=MAX_WAIT_S) as client:
        await client.subscribe(f"{prefix}/result/{role}/{action}", qos=1)
        if on_event is not None:
            await client.subscribe(events, qos=1)
        await client.publish(f"{prefix}/cmd/{role}/{action}", json.dumps(body), qos=1)
        try:
            async with asyncio.timeout(wait_s) as waiting:
                async for msg in client.messages:
                    value = decode(msg.payload if isinstance(msg.payload, bytes | str) else b"")
                    if not isinstance(value, dict):
                        continue
                    if on_event is not None and msg.topic.matches(events):
                        complete = on_event(value)
                    elif result is None and value.get("id") == body["id"]:
                        result = value
                        later = asyncio.get_running_loop().time() + EVENTS_AFTER_RESULT_S
                        waiting.reschedule(min(later, waiting.when() or later))
                    if result is not None and (on_event is None or complete):
                        break
        except TimeoutError:
            pass
    return result


def format_status(found: dict[str, Any]) -> str:
    """The one-screen technician view of the retained state (a payload that is not a JSON
    object shows as unknown)."""
    lines: list[str] = []
    retained = {k: v if isinstance(v, dict) else {} for k, v in found.items() if v is not None}
    status = retained.get("status")
    if status is None:
        return "supervisor: no status on the broker (never started, or another vehicle id?)"
    lines.append(f"supervisor: {status.get('state')}  session {status.get('session')}  "
                 f"version {status.get('version')}  since {status.get('ts')}")
    lines.append("devices:")
    for key in sorted(k for k in retained if k.startswith("device/")):
        dev = retained[key]
        counts = dev.get("errors")
        errors = ", ".join(f"{k} {v}" for k, v in counts.items() if v) \
            if isinstance(counts, dict) else ""
        lines.append(f"  {key.split('/')[1]:<16} {dev.get('state', '?'):<9} "
                     f"latency {dev.get('latency_ms')} ms  last ok {dev.get('last_ok')}"
                     + (f"  errors: {errors}" if errors else "")
                     + (f"  last error: {dev.get('last_error')}"
                        if dev.get("state") != "online" and dev.get("last_error") else ""))
    alarms = {k: v for k, v in retained.items() if k.startswith("alarm/") and v}
    lines.append(f"alarms: {len(alarms) or 'none'}")
    for key, alarm in sorted(alarms.items()):
        lines.append(f"  {alarm.get('severity'):<8} {key.removeprefix('alarm/'):<24} "
                     f"{'ACTIVE' if alarm.get('active') else 'cleared'}"
                     f"{'' if alarm.get('acked') else ' (not acknowledged)'}  {alarm.get('text')}")
    lines.append("points:")
    for key in sorted(k for k in retained if k.startswith("state/")):
        st = retained[key]
        flag = "" if st.get("q") == "good" else f"  [{st.get('q')}]"
        lines.append(f"  {key.removeprefix('state/'):<40} {st.get('v')!s:>12}{flag}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):  # a text the terminal cannot show: replaced
        sys.stdout.reconfigure(errors="replace")
    if args.command == "hash-pin":
        return _hash_pin()
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"mcwctl: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StatusError as exc:
        print(f"mcwctl: {exc}", file=sys.stderr)
        return exc.code
    except HistoryError as exc:
        print(f"mcwctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `mcwctl watch | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcwctl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a vehicle config file")
    check.add_argument("file", type=Path)
    status = sub.add_parser("status", help="show supervisor, device and alarm status")
    _van_options(status, "print the raw retained state")
    fleet_cmd = sub.add_parser("fleet", help="HQ: every van's status from HQ's broker; "
                                             "'fleet ack VAN' acknowledges its panic")
    fleet_cmd.add_argument("action", nargs="?", choices=("list", "ack"), default="list")
    fleet_cmd.add_argument("vehicle", nargs="?", help="the van whose panic 'ack' acknowledges")
    fleet_cmd.add_argument("--host", default="127.0.0.1",
                           help="HQ's broker (default: 127.0.0.1)")
    fleet_cmd.add_argument("--port", type=int, default=1883)
    fleet_cmd.add_argument("--json", action="store_true", help="print the rows as JSON")
    fleet_cmd.add_argument("--wait", type=_seconds, default=30.0, metavar="S",
                           help="ack: seconds to wait for the van's answer (default 30)")
    fleet_cmd.add_argument("--expires", type=_seconds, default=600.0, metavar="S",
                           help="ack: a van reached later than this does not apply it "
                                "(default 600)")
    _login_options(fleet_cmd, None)
    sub.add_parser("hash-pin", help="hash a panel PIN (read from stdin) for the config file")
    bundle = sub.add_parser("bundle", help="write the technician's log bundle (tar.gz) for a "
                                           "support ticket")
    bundle.add_argument("--out", type=Path, metavar="PATH",
                        help="the file, or a folder for it (default: "
                             "mcw-bundle-VEHICLE-UTCTIME.tar.gz in the current folder)")
    bundle.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG,
                        help=f"the vehicle config (default: {DEFAULT_CONFIG})")
    bundle.add_argument("--events", type=support_bundle.event_count,
                        default=support_bundle.DEFAULT_EVENTS, metavar="N",
                        help="the newest N events and N commands (default "
                             f"{support_bundle.DEFAULT_EVENTS})")
    bundle.add_argument("--log", type=Path, metavar="FILE",
                        help="the supervisor's log file, taken when the journal has none")
    _login_options(bundle, DEFAULT_USER)
    technician_commands(sub)
    diag_cli.add_commands(sub, _van_options)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "bundle":
        return support_bundle.bundle_command(args.config, args.out, args.events, args.log,
                                             args.user or None, _password(args.password_file))
    if args.command == "fleet":
        return _fleet(args)
    if args.command in ("modbus", "self-test"):
        return _diag(args)
    if args.command == "gpio":
        lines = diag_cli.gpio_lines(_retained(_van(args), ("state/io/#",)))
        print(dump_json(lines) if args.json else
              "\n".join(f"{name:<20} {value}" for name, value in lines.items()) or "no lines")
        return 0
    if args.command == "check-config":
        cfg = load_config(args.file)
        sections = [s.name for s in SUBSYSTEMS if cfg.section(s.name) is not None]
        print(f"{args.file}: OK ({len(cfg.bus)} buses, {len(cfg.device)} devices, "
              f"{len(cfg.gpio.line)} GPIO lines; subsystems: {', '.join(sections) or 'none'})")
        return 0
    if args.command == "status":
        retained = _retained(_van(args), ("#",))
        print(json.dumps(retained, indent=2) if args.json else format_status(retained))
        supervisor = retained.get("status")
        status_state = supervisor.get("state") if isinstance(supervisor, dict) else None
        return 0 if status_state == "ready" else EXIT_NOT_READY
    if args.command == "watch":
        return _watch(args)
    if args.command in ("events", "alarms"):
        report = history_query.report(_database(args), args.command == "alarms", args.since,
                                      args.until, getattr(args, "kind", None), args.limit)
    else:
        report = _view(args)
    if args.json:
        print(dump_json(report.data))
    else:
        stdout_console().print(report.view)
    return 0 if report.ok else EXIT_NOT_READY


@dataclass(frozen=True)
class Van:
    """Where a van's retained state is read: its broker, its topics' prefix and the login."""

    host: str
    port: int
    prefix: str
    user: str | None
    password: str | None


def _van(args: argparse.Namespace) -> Van:
    """The van of the command line: the vehicle config gives what the options do not (it is
    not read when --vehicle, --host and --port are all given: a technician's laptop)."""
    cfg = None
    if args.vehicle is None or args.host is None or args.port is None:
        cfg = load_config(args.config)
    vehicle = args.vehicle or (cfg.vehicle.id if cfg is not None else "")
    host = args.host or (cfg.mqtt.host if cfg is not None else "")
    port = args.port or (cfg.mqtt.port if cfg is not None else 0)
    return Van(host, port, f"mcw/v1/{vehicle}", args.user or None, _password(args.password_file))


def _retained(van: Van, suffixes: tuple[str, ...]) -> dict[str, Any]:
    """The van's retained topics below ``suffixes`` (topic below the prefix -> payload), at
    most MAX_TOPICS."""
    found = _at_broker(collect_retained(van.host, van.port,
                                        tuple(f"{van.prefix}/{s}" for s in suffixes),
                                        van.user, van.password),
                       van.host, van.port, van.user, van.password)
    if len(found) >= MAX_TOPICS:
        print(f"mcwctl: stopped reading after {MAX_TOPICS} retained topics (a flood on the "
              "broker?): what follows may be incomplete", file=sys.stderr)
    return {topic.removeprefix(van.prefix + "/"): value for topic, value in found.items()}


def _view(args: argparse.Namespace) -> Report:
    """``devices``, ``points`` or ``version``: read from the broker, built as a report."""
    van = _van(args)
    now = time.time()
    if args.command == "devices":
        return device_table.report(_retained(van, device_table.TOPICS),
                                   args.device, now)
    if args.command == "points":
        return point_table.report(_retained(van, point_table.POINT_TOPICS),
                                  args.globs, now)
    return point_table.version_report(_retained(van, point_table.VERSION_TOPICS))


def _watch(args: argparse.Namespace) -> int:
    van = _van(args)
    with suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends
        _at_broker(live_watch.watch(van.host, van.port, van.prefix, args.globs, write_line,
                                    args.json, args.count, args.duration, van.user,
                                    van.password),
                   van.host, van.port, van.user, van.password)
    return 0


def _database(args: argparse.Namespace) -> Path:
    """The supervisor's SQLite: --db, else the vehicle config's [storage] path."""
    if args.db is not None:
        return Path(args.db)
    return Path(load_config(args.config).storage.path)


def _seconds(text: str) -> float:
    """A duration in seconds: finite, above 0, at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86_400:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"seconds must be above 0 and at most 86400: {text}")
    return value


def technician_commands(sub: Any) -> None:
    """The technician's read-side commands (``sub``: the parser's subparsers). Each help ends
    with the shape of the command's --json output, kept beside the rows it describes."""
    def command(name: str, summary: str, json_shape: str,
                broker: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=summary.replace("\n", " "), description=summary,
            epilog=f"--json prints:\n{json_shape}",
            formatter_class=argparse.RawDescriptionHelpFormatter)
        if broker:
            _van_options(parser, "print JSON (below)")
        return parser

    devices = command("devices", "every device's health, the failing first (exit 3 when one "
                      "is not online);\nwith DEVICE: its detail and block plan",
                      device_table.JSON_SHAPE)
    devices.add_argument("device", nargs="?", help="one device's id: its detail")
    points = command("points", "the points' values, quality and age, as MQTT carries them "
                     "(scaled, SI units):\nno raw register values", point_table.JSON_SHAPE)
    points.add_argument("globs", nargs="*", metavar="GLOB", help="point ids to show, "
                        "shell-style ('power/battery/*'; * also matches /)")
    watch = command("watch", "live changes (points, alarms, devices, status, events), one "
                    "line each,\nuntil Ctrl-C, --count or --duration", live_watch.JSON_SHAPE)
    watch.add_argument("globs", nargs="*", metavar="GLOB", help="show only these: a point, "
                       "alarm or device id, an event kind, or the topic below mcw/v1/ID/ "
                       "(shell-style)")
    watch.add_argument("--count", type=_positive, metavar="N", help="stop after N lines")
    watch.add_argument("--duration", type=_seconds, metavar="S", help="stop after S seconds")
    events = command("events", "the event log from the supervisor's SQLite (read-only), "
                     "oldest first", history_query.EVENTS_JSON_SHAPE, broker=False)
    events.add_argument("--kind", help="only events of this kind (alarm, command, power, ...)")
    alarms = command("alarms", "alarms raised, cleared and acknowledged, from the "
                     "supervisor's SQLite", history_query.ALARMS_JSON_SHAPE, broker=False)
    for parser in (events, alarms):
        parser.add_argument("--since", type=_when, metavar="T", help="from T: ISO 8601 (local "
                            "time without a zone) or a time before now: 30m, 2h, 1d")
        parser.add_argument("--until", type=_when, metavar="T", help="up to T (as --since)")
        parser.add_argument("--limit", type=_positive, default=history_query.DEFAULT_LIMIT,
                            metavar="N", help="the newest N at most (default "
                                              f"{history_query.DEFAULT_LIMIT})")
        parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG,
                            help=f"the vehicle config, for [storage] path (default: "
                                 f"{DEFAULT_CONFIG})")
        parser.add_argument("--db", type=Path, help="the SQLite file (default: from the config)")
        parser.add_argument("--json", action="store_true", help="print JSON (below)")
    command("version", "the versions of mcwctl, of the supervisor and of the nodes that "
            "publish one", point_table.VERSION_JSON_SHAPE)


def _diag(args: argparse.Namespace) -> int:
    """``modbus read|write`` and ``self-test``: the technician's action, and its answer."""
    van = _van(args)
    action, body = diag_cli.action_of(args)
    if action == "diag/self_test" and not args.yes:
        try:
            answer = input("This switches every output off and on again, briefly; never while "
                           "someone is in the consultation room. Go on? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes", "t", "tak"):
            print("mcwctl: self-test not started", file=sys.stderr)
            return EXIT_USAGE
    command = {"id": f"mcwctl-{uuid.uuid4().hex[:12]}", "args": body}
    with ExitStack() as shown:  # the self-test's progress shown while its answer is awaited
        on_event = None
        if action == "diag/self_test" and not args.json:
            on_event = shown.enter_context(diag_cli.SelfTestProgress()).event
        result = _at_broker(send_command(van.host, van.port, van.prefix, "technician", action,
                                         command, diag_cli.wait_s(action), van.user,
                                         van.password, on_event),
                            van.host, van.port, van.user, van.password)
    if result is None:
        print(f"mcwctl: no answer to {action} (is the supervisor running?)", file=sys.stderr)
        return EXIT_NO_ANSWER
    return diag_cli.show(result, args.json)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 < value <= history_query.MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be 1 to {history_query.MAX_LIMIT}: {text}")
    return value


def _when(text: str) -> float:
    try:
        return history_query.parse_time(text, time.time())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _van_options(parser: argparse.ArgumentParser, json_help: str) -> None:
    """Where the van's broker is, and the login: the options of every command that reads it."""
    parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG,
                        help=f"the vehicle config (default: {DEFAULT_CONFIG})")
    parser.add_argument("--vehicle", type=_vehicle,
                        help="the vehicle id, topics mcw/v1/ID/... (default: from the config)")
    parser.add_argument("--host", help="broker host (default: from the config)")
    parser.add_argument("--port", type=int, help="broker port (default: from the config)")
    parser.add_argument("--json", action="store_true", help=json_help)
    _login_options(parser, DEFAULT_USER)


def _vehicle(text: str) -> str:
    if not VEHICLE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a vehicle id: {text!r}")
    return text


def _login_options(parser: argparse.ArgumentParser, user: str | None) -> None:
    parser.add_argument("--user", "-u", default=user,
                        help=f"broker login (default: {user or 'none'}; '' for none)")
    parser.add_argument("--password-file", type=Path, metavar="PATH",
                        help=f"file holding the login's password (else: ${PASSWORD_ENV})")


def _fleet(args: argparse.Namespace) -> int:
    """``mcwctl fleet``: the fleet table, or ``fleet ack VAN``: HQ acknowledges its panic."""
    user = args.user or None
    password = _password(args.password_file)
    if args.action == "list":
        found = _at_broker(collect_retained(args.host, args.port, FILTERS, user, password),
                           args.host, args.port, user, password)
        rows = fleet(found)
        print(json.dumps(as_json(rows), indent=2) if args.json
              else format_fleet(rows, time.time()))
        return 0
    if args.vehicle is None or not VEHICLE.fullmatch(args.vehicle):
        raise StatusError("fleet ack: give the van's id (as 'mcwctl fleet' lists it)", EXIT_USAGE)
    command_id = f"hq-ack-{uuid.uuid4().hex[:12]}"
    body = {"id": command_id, "args": {}, "expires": time.time() + args.expires}
    result = _at_broker(send_command(args.host, args.port, f"mcw/v1/{args.vehicle}", "hq",
                                     "room/panic_ack", body, args.wait, user, password),
                        args.host, args.port, user, password)
    if result is None:
        print(f"{args.vehicle}: no answer within {args.wait:g} s: the van is out of reach; "
              f"HQ's broker keeps the acknowledgement ({command_id}) for it, and the van "
              f"answers 'expired' if it is reached more than {args.expires:g} s from now")
        return EXIT_NO_ANSWER
    print(f"{args.vehicle}: {result.get('status')}: {result.get('message', '')}")
    return 0 if result.get("status") == "done" else EXIT_REFUSED


def _password(path: Path | None) -> str | None:
    """The password from ``path`` if given, else from the environment; None if neither.

    Read as the supervisor reads its ``[mqtt] password_file``: surrounding whitespace (the
    final newline) is not part of it.
    """
    if path is None:
        return os.environ.get(PASSWORD_ENV) or None
    try:
        password = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "not UTF-8 text"
        raise StatusError(f"cannot read the password file {path}: {reason}", EXIT_USAGE) from exc
    if not password:
        raise StatusError(f"the password file {path} is empty", EXIT_USAGE)
    return password


def _at_broker(work: Coroutine[Any, Any, T], host: str, port: int, username: str | None,
               password: str | None) -> T:
    """Run ``work`` (one session on the broker), its failures turned into a one-line
    ``StatusError``."""
    broker = f"the broker at {host}:{port}"
    try:
        return asyncio.run(work)
    except MqttConnectError as exc:
        code = exc.rc.value if isinstance(exc.rc, ReasonCode) else exc.rc
        if code not in LOGIN_REFUSED:
            raise StatusError(f"{broker} refused the connection: {exc}", EXIT_UNREACHABLE) from exc
        if username is None:
            raise StatusError(f"{broker} refused an anonymous login: give --user",
                              EXIT_LOGIN_REFUSED) from exc
        if password is None:
            raise StatusError(f"{broker} wants a password for user {username!r}: give "
                              f"--password-file PATH or set {PASSWORD_ENV}",
                              EXIT_LOGIN_REFUSED) from exc
        raise StatusError(f"{broker} refused the login of user {username!r}: wrong user name "
                          "or password", EXIT_LOGIN_REFUSED) from exc
    except aiomqtt.MqttError as exc:
        raise StatusError(f"cannot reach {broker}: {exc}", EXIT_UNREACHABLE) from exc
    except TimeoutError as exc:
        raise StatusError(f"{broker} did not answer within {MAX_WAIT_S:g} s",
                          EXIT_UNREACHABLE) from exc


def _hash_pin() -> int:
    pin = (getpass.getpass("PIN: ") if sys.stdin.isatty() else sys.stdin.readline()).strip()
    if not pin.isdigit() or not 4 <= len(pin) <= 8:
        print("mcwctl: a PIN is 4 to 8 digits", file=sys.stderr)
        return 2
    print(hash_pin(pin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
