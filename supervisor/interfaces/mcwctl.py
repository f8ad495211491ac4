"""``mcwctl``: the technician's command line.

``mcwctl check-config FILE`` validates a vehicle config (exit 0 OK, 2 with file, key and
reason). ``mcwctl status`` reads the retained state from the broker and shows, in one screen,
whether the supervisor runs, which device is failing and why, the active alarms and the points.
``mcwctl fleet`` is HQ's: every van on HQ's broker, from its retained topics
(fleet_view.py); ``mcwctl fleet ack VAN`` acknowledges the van's panic, as the ``hq`` role,
and prints the van's answer.

``status`` logs in to the broker, which refuses anonymous clients (systemd/mosquitto-mcw.conf),
as ``--user`` (the ``technician`` login of systemd/mosquitto-mcw.acl by default, which reads
every ``mcw/v1/...`` topic) with the password read from ``--password-file`` or the environment
variable ``MCW_MQTT_PASSWORD``; never from an argument, which ``ps`` would show to every user.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from supervisor.core.config import ConfigError
from supervisor.interfaces.fleet_view import FILTERS, VEHICLE, as_json, fleet, format_fleet
from supervisor.interfaces.pin import hash_pin
from supervisor.registry import SUBSYSTEMS, load_config

QUIET_S = 0.5  # retained messages arrive in one burst; this much silence ends it
MAX_WAIT_S = 5.0
MAX_RAW = 200  # of a payload that is not JSON, what is kept to show
DEFAULT_USER = "technician"  # the login of systemd/mosquitto-mcw.acl that technicians use
PASSWORD_ENV = "MCW_MQTT_PASSWORD"
# CONNACK codes of a refused login: MQTT 3.1.1 (4 bad user name or password, 5 not authorised)
# and their MQTT 5 reason codes (paho reports the latter for both protocol versions)
LOGIN_REFUSED = frozenset({4, 5, 0x86, 0x87})
EXIT_UNREACHABLE, EXIT_USAGE, EXIT_NOT_READY, EXIT_LOGIN_REFUSED = 1, 2, 3, 4
EXIT_NO_ANSWER, EXIT_REFUSED = 5, 6  # fleet ack: the van did not answer / did not apply it
T = TypeVar("T")


class StatusError(Exception):
    """A one-line reason ``status`` cannot show the state, and its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


async def collect_retained(host: str, port: int, filters: tuple[str, ...],
                           username: str | None = None,
                           password: str | None = None) -> dict[str, Any]:
    """All retained topics matching ``filters`` (topic -> decoded JSON; the raw text when it
    is not JSON; None when empty)."""
    out: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    async with aiomqtt.Client(host, port, username=username, password=password,
                              timeout=MAX_WAIT_S) as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        deadline = loop.time() + MAX_WAIT_S
        while loop.time() < deadline:
            try:
                async with asyncio.timeout(QUIET_S):
                    msg = await anext(client.messages)
            except TimeoutError:
                break
            if not msg.retain:
                continue
            raw = msg.payload if isinstance(msg.payload, bytes | str) else b""
            try:
                out[msg.topic.value] = json.loads(raw) if raw else None
            except (ValueError, RecursionError):  # shown as text, never as JSON it is not
                text = raw[:MAX_RAW]
                out[msg.topic.value] = text.decode(errors="replace") \
                    if isinstance(text, bytes) else text
    return out


async def send_command(host: str, port: int, prefix: str, role: str, action: str,
                       body: dict[str, Any], wait_s: float, username: str | None = None,
                       password: str | None = None) -> dict[str, Any] | None:
    """Publish a command and wait up to ``wait_s`` for its result; None if none came."""
    async with aiomqtt.Client(host, port, username=username, password=password,
                              timeout=MAX_WAIT_S) as client:
        await client.subscribe(f"{prefix}/result/{role}/{action}", qos=1)
        await client.publish(f"{prefix}/cmd/{role}/{action}", json.dumps(body), qos=1)
        try:
            async with asyncio.timeout(wait_s):
                async for msg in client.messages:
                    raw = msg.payload if isinstance(msg.payload, bytes | str) else b""
                    try:
                        result = json.loads(raw)
                    except (ValueError, RecursionError):
                        continue
                    if isinstance(result, dict) and result.get("id") == body["id"]:
                        return result
        except TimeoutError:
            pass
    return None


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
    parser = argparse.ArgumentParser(prog="mcwctl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate a vehicle config file")
    check.add_argument("file", type=Path)
    status = sub.add_parser("status", help="show supervisor, device and alarm status")
    status.add_argument("--config", "-c", type=Path, default=Path("/etc/mcw/vehicle.toml"))
    status.add_argument("--host", help="broker host (default: from the config)")
    status.add_argument("--port", type=int, help="broker port (default: from the config)")
    status.add_argument("--json", action="store_true", help="print the raw retained state")
    _login_options(status, DEFAULT_USER)
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
    args = parser.parse_args(argv)
    if args.command == "hash-pin":
        return _hash_pin()
    try:
        if args.command == "fleet":
            return _fleet(args)
        cfg = load_config(args.file if args.command == "check-config" else args.config)
    except ConfigError as exc:
        print(f"mcwctl: config error: {exc}", file=sys.stderr)
        return 2
    except StatusError as exc:
        print(f"mcwctl: {exc}", file=sys.stderr)
        return exc.code
    if args.command == "check-config":
        sections = [s.name for s in SUBSYSTEMS if cfg.section(s.name) is not None]
        print(f"{args.file}: OK ({len(cfg.bus)} buses, {len(cfg.device)} devices, "
              f"{len(cfg.gpio.line)} GPIO lines; subsystems: {', '.join(sections) or 'none'})")
        return 0
    host, port = args.host or cfg.mqtt.host, args.port or cfg.mqtt.port
    prefix = f"mcw/v1/{cfg.vehicle.id}"
    user = args.user or None
    try:
        password = _password(args.password_file)
        found = _at_broker(collect_retained(host, port, (f"{prefix}/#",), user, password),
                           host, port, user, password)
    except StatusError as exc:
        print(f"mcwctl: {exc}", file=sys.stderr)
        return exc.code
    retained = {topic.removeprefix(prefix + "/"): value for topic, value in found.items()}
    print(json.dumps(retained, indent=2) if args.json else format_status(retained))
    supervisor = retained.get("status")
    status_state = supervisor.get("state") if isinstance(supervisor, dict) else None
    return 0 if status_state == "ready" else EXIT_NOT_READY


def _seconds(text: str) -> float:
    """A duration in seconds: finite, above 0, at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86_400:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"seconds must be above 0 and at most 86400: {text}")
    return value


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


def _hash_pin() -> int:
    pin = (getpass.getpass("PIN: ") if sys.stdin.isatty() else sys.stdin.readline()).strip()
    if not pin.isdigit() or not 4 <= len(pin) <= 8:
        print("mcwctl: a PIN is 4 to 8 digits", file=sys.stderr)
        return 2
    print(hash_pin(pin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
