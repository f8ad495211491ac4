"""``mcwctl bundle``: the technician's log bundle, one tar.gz for a support ticket.

What it holds (``manifest.json`` lists it all, with sizes, and what was left out and why):

* ``config/vehicle.toml``: the vehicle config parsed, redacted and written back as TOML
  (``${NAME}`` expanded, comments dropped): PIN hashes (keys ending in ``pin_hash``) and any
  key naming a password, secret, token or key are replaced by ``REDACTED``; the MQTT password
  file's path is kept, its content is never read into the bundle. The builder's profile files
  the config names (``[[device]] profile_file``) are copied as they are (``config/profiles/``).
* ``versions.json``: this package, Python, the pinned libraries, Mosquitto, kernel and OS; the
  supervisor's and the nodes' versions from the broker's retained state.
* ``devices.json`` (``meta`` and every ``device/{id}/status``) and ``state.json``
  (``status``, ``state/#``, ``alarm/#``): the retained state, when the broker answers.
* ``events.jsonl`` and ``commands.jsonl``: the newest N rows of the supervisor's SQLite, read
  through a read-only connection (a running supervisor is not disturbed).
* ``logs/supervisor.log``: the supervisor's journal of the last 24 h, else ``--log FILE``.

Every part is bounded (sizes, counts, timeouts); a part that fails is recorded in the
manifest and the others are still written. Known secret values (the redacted ones, the MQTT
password file's content, the broker login's password) are also searched for in every member
and replaced, in case a log line or an error message carried one.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as clock_time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from drivers.profile import MAX_PROFILE_BYTES
from supervisor.core.config import (
    VEHICLE_ID,
    MqttConfig,
    StorageConfig,
    _expand_env,  # the supervisor's own reading: the bundle shows what it sees
    _read,
)
from supervisor.core.diagnostics import MAX_BUNDLE_EVENTS
from supervisor.interfaces import retained_reader
from supervisor.interfaces.readonly_db import HistoryError, open_readonly
from supervisor.registry import load_config

PACKAGE = "mcw-controller"
LIBRARIES = ("aiomqtt", "paho-mqtt", "pymodbus", "pyserial", "pydantic", "aiohttp", "gpiozero",
             "structlog")
REDACTED = "REDACTED"
# a key whose lower-cased name contains one of these holds a secret (``api_key``, ``Token``)
SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "key", "credential")
KEPT_KEYS = frozenset({"password_file"})  # a path to a secret, not the secret
MIN_SCRUB_CHARS = 6  # a shorter secret would wipe ordinary words out of the logs

DEFAULT_EVENTS = 5000
MAX_ROWS_BYTES = 20 * 1024 * 1024  # events.jsonl, commands.jsonl: each at most
MAX_LOG_BYTES = 20 * 1024 * 1024
JOURNAL_CMD = ("journalctl", "-u", "mcw-supervisor.service", "--since", "-24h", "-o", "cat",
               "--no-pager")
JOURNAL_TIMEOUT_S = 30.0
TOOL_TIMEOUT_S = 5.0  # mosquitto -h
BROKER_TIMEOUT_S = 15.0  # the whole session with the broker: connect, subscribe, read
CONNECT_TIMEOUT_S = 5.0
MAX_RAW_CHARS = 1000  # of a payload that is not JSON, what is kept
MAX_STDERR_BYTES = 4096
MAX_SUMMARY_READ = 8 * 1024 * 1024  # summary(): the manifest is far smaller
RETAINED_FILTERS = ("status", "meta", "device/+/status", "state/#", "alarm/#")
# CONNACK codes of a refused login (MQTT 3.1.1: 4, 5; MQTT 5: 0x86, 0x87), as mcwctl reads them
LOGIN_REFUSED = frozenset({4, 5, 0x86, 0x87})
OS_RELEASE = Path("/etc/os-release")
BOARD_MODEL = Path("/proc/device-tree/model")  # a Raspberry Pi says which one it is
T = TypeVar("T")


class BundleError(Exception):
    """The bundle cannot be written or read (its path, and why)."""


# ---- the redacted config ---------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    """Whether a config key holds a secret: a PIN hash, or a name with password, secret,
    token or key in it (``password_file``, a path, is kept)."""
    name = key.lower()
    if name in KEPT_KEYS:
        return False
    return name.endswith("pin_hash") or any(word in name for word in SECRET_WORDS)


def redact(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], set[str]]:
    """A copy of the parsed config with every secret key's value replaced by ``REDACTED``;
    the key paths redacted, and the secret values (as text) that were taken out."""
    paths: list[str] = []
    secrets: set[str] = set()

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                if is_secret_key(key) and not (key.lower() in KEPT_KEYS and isinstance(item, str)):
                    out[key] = REDACTED
                    paths.append(where)
                    secrets.update(_texts(item))
                else:
                    out[key] = walk(item, where)
            return out
        if isinstance(value, list):
            return [walk(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return value

    return walk(data, ""), paths, secrets


def _texts(value: Any) -> list[str]:
    """Every scalar inside ``value``, as text (what to look for in the other members)."""
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in _texts(item)]
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    return [value if isinstance(value, str) else str(value)]


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def toml_dumps(data: Mapping[str, Any]) -> str:
    """TOML text for what ``tomllib`` parses: tables, arrays of tables, arrays, strings,
    integers, floats, booleans, dates and times (``tomllib.loads`` gives ``data`` back)."""
    lines: list[str] = []
    _toml_table(lines, (), data, None)
    return "\n".join(lines) + "\n"


def _toml_table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any],
                header: str | None) -> None:
    if header is not None:
        if lines:
            lines.append("")
        lines.append(header)
    later: list[tuple[str, Any]] = []  # sub-tables come after the table's own keys
    for key, value in table.items():
        if isinstance(value, Mapping) or _is_table_array(value):
            later.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in later:
        sub = (*path, key)
        name = ".".join(_toml_key(k) for k in sub)
        if isinstance(value, Mapping):
            _toml_table(lines, sub, value, f"[{name}]")
        else:
            for item in value:
                _toml_table(lines, sub, item, f"[[{name}]]")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):  # before int: a bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"not a TOML value: {type(value).__name__}")


# ---- what the bundle gathers -----------------------------------------------------------------


@dataclass
class _Contents:
    """The members as they are gathered, and what the manifest says of them."""

    members: dict[str, bytes] = field(default_factory=dict)
    about: dict[str, dict[str, Any]] = field(default_factory=dict)  # member -> its facts
    left_out: dict[str, str] = field(default_factory=dict)  # member or part -> why
    secrets: set[str] = field(default_factory=set)
    counts: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, data: bytes, **facts: Any) -> None:
        self.members[name] = data
        self.about[name] = facts

    def leave_out(self, name: str, reason: str) -> None:
        self.left_out[name] = reason


@dataclass
class _ConfigFacts:
    """What the bundle needs from the config (defaults when it cannot be read)."""

    vehicle: str = "unknown"
    host: str = MqttConfig().host
    port: int = MqttConfig().port
    storage: Path = StorageConfig().path
    password_file: Path | None = None
    profiles: list[tuple[str, Path]] = field(default_factory=list)  # as named, resolved
    check: str = "not checked"


def _config_part(contents: _Contents, config: Path) -> _ConfigFacts:
    """``config/vehicle.toml`` redacted, the profile files, and the facts for the rest."""
    facts = _ConfigFacts()
    name = "config/vehicle.toml"
    try:
        data = tomllib.loads(_expand_env(_read(config), config))
    except Exception as exc:  # unreadable, not TOML, an unset ${NAME}: nothing to redact from
        contents.leave_out(name, f"{config} cannot be parsed, so it cannot be redacted and is "
                                 f"not included: {exc}")
        facts.check = f"not parsed: {exc}"
        return facts
    redacted, paths, secrets = redact(data)
    contents.secrets |= secrets
    head = (f"# {config}, redacted by mcwctl bundle: ${{NAME}} expanded as this machine "
            f"has them, comments dropped; {len(paths)} secret value(s) replaced by {REDACTED}\n")
    contents.add(name, (head + toml_dumps(redacted)).encode(), source=str(config),
                 redacted_keys=paths)
    _facts_from(facts, data, config.parent)
    try:
        load_config(config)
        facts.check = "ok"
    except Exception as exc:  # a config the supervisor refuses is what support must see
        facts.check = str(exc)
    _profiles_part(contents, facts.profiles)
    if facts.password_file is not None:
        contents.secrets |= _password_file_content(facts.password_file)
    return facts


def _facts_from(facts: _ConfigFacts, data: Mapping[str, Any], folder: Path) -> None:
    """The few settings the bundle uses, read from the parsed file as the supervisor would
    (a wrong type keeps the default: the config check says what is wrong)."""
    vehicle, mqtt, storage = (_table(data, k) for k in ("vehicle", "mqtt", "storage"))
    if isinstance(vehicle.get("id"), str) and re.fullmatch(VEHICLE_ID, vehicle["id"]):
        facts.vehicle = vehicle["id"]
    if isinstance(mqtt.get("host"), str):
        facts.host = mqtt["host"]
    if isinstance(mqtt.get("port"), int) and not isinstance(mqtt.get("port"), bool):
        facts.port = mqtt["port"]
    if isinstance(mqtt.get("password_file"), str):
        facts.password_file = Path(mqtt["password_file"])
    if isinstance(storage.get("path"), str):
        facts.storage = Path(storage["path"])
    devices = data.get("device")
    for dev in devices if isinstance(devices, list) else ():
        file = dev.get("profile_file") if isinstance(dev, Mapping) else None
        if isinstance(file, str) and file and "\0" not in file:
            facts.profiles.append((file, folder / file))  # relative: beside the config


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _profiles_part(contents: _Contents, profiles: list[tuple[str, Path]]) -> None:
    """Each profile file once, as it is; only one that is a TOML file of a profile's size (a
    path mistyped onto another file must not carry that file into the bundle)."""
    seen: dict[Path, str] = {}
    for named, path in profiles:
        if path in seen:
            continue
        stem, suffix = Path(named).stem or "profile", Path(named).suffix or ".toml"
        member = f"config/profiles/{stem}{suffix}"
        n = 2
        while member in contents.members or member in contents.left_out:
            member, n = f"config/profiles/{stem}-{n}{suffix}", n + 1
        seen[path] = member
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_PROFILE_BYTES + 1)
            if len(raw) > MAX_PROFILE_BYTES:
                raise ValueError(f"larger than {MAX_PROFILE_BYTES} bytes")
            tomllib.loads(raw.decode("utf-8"))
        except (OSError, ValueError) as exc:
            contents.leave_out(member, f"profile file {named}: {_reason(exc)}")
            continue
        contents.add(member, raw, source=named)


def _password_file_content(path: Path) -> set[str]:
    """The MQTT password, to make sure no member carries it (never written anywhere)."""
    try:
        with path.open("rb") as file:
            text = file.read(4096).decode("utf-8", errors="replace").strip()
    except OSError:
        return set()  # the technician may not read it; nothing else may then have it either
    return {text} if text else set()


# ---- the broker's retained state -------------------------------------------------------------


@dataclass(frozen=True)
class _Retained:
    topics: dict[str, Any]  # below the van's prefix -> decoded JSON, text, or a note
    read_at: str
    cut: str | None  # why reading stopped early, if it did


async def read_retained(host: str, port: int, prefix: str, user: str | None,
                        password: str | None, filters: Sequence[str] = RETAINED_FILTERS,
                        ) -> tuple[dict[str, Any], str | None]:
    """The retained topics below ``prefix``/``filters`` (suffix -> decoded JSON, else its
    text, cut at MAX_RAW_CHARS) and why reading stopped early (None: the burst ended).
    Bounded: retained_reader's MAX_TOPICS topics and MAX_BYTES, BROKER_TIMEOUT_S in all."""
    found, cut = await retained_reader.read_retained(
        host, port, [f"{prefix}/{f}" for f in filters], user, password,
        wait_s=BROKER_TIMEOUT_S, connect_timeout_s=CONNECT_TIMEOUT_S)
    return {topic.removeprefix(prefix + "/"): _decode(raw) for topic, raw in found.items()}, cut


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # kept as text, never as JSON it is not
        text = raw.decode("utf-8", errors="replace")
        return text if len(text) <= MAX_RAW_CHARS else \
            f"{text[:MAX_RAW_CHARS]}... ({len(raw)} bytes, cut)"


def _broker_failure(exc: BaseException, host: str, port: int, user: str | None,
                    password: str | None) -> str:
    """Why the broker's state is not in the bundle, in a line (never the password)."""
    broker = f"the broker at {host}:{port}"
    if isinstance(exc, MqttConnectError):
        code = exc.rc.value if isinstance(exc.rc, ReasonCode) else exc.rc
        if code in LOGIN_REFUSED:
            if user is None:
                return f"{broker} refused an anonymous login (give --user)"
            if password is None:
                return (f"{broker} wants a password for user {user!r} (give --password-file "
                        "or set MCW_MQTT_PASSWORD)")
            return f"{broker} refused the login of user {user!r}: wrong user name or password"
        return f"{broker} refused the connection: {exc}"
    if isinstance(exc, TimeoutError):
        return f"{broker} did not answer within {BROKER_TIMEOUT_S:g} s"
    return f"cannot reach {broker}: {_reason(exc)}"


def _broker_parts(contents: _Contents, retained: _Retained) -> None:
    """``devices.json`` and ``state.json`` from the retained topics, and their counts."""
    topics = retained.topics
    status = {k.split("/")[1]: v for k, v in topics.items()
              if k.startswith("device/") and k.endswith("/status")}
    states = {k.removeprefix("state/"): v for k, v in topics.items() if k.startswith("state/")}
    alarms = {k.removeprefix("alarm/"): v for k, v in topics.items() if k.startswith("alarm/")}
    common = {"read_at": retained.read_at, "cut": retained.cut}
    contents.add("devices.json", _json({**common, "meta": topics.get("meta"),
                                        "status": status}),
                 devices=len(status), cut=retained.cut)
    contents.add("state.json", _json({**common, "status": topics.get("status"),
                                      "state": states, "alarm": alarms}),
                 points=len(states), alarms=len(alarms), cut=retained.cut)
    contents.counts["devices"] = dict(Counter(
        str(v.get("state")) if isinstance(v, dict) else "unknown" for v in status.values()))
    contents.counts["alarms_active"] = sum(
        1 for v in alarms.values() if isinstance(v, dict) and v.get("active"))


# ---- versions --------------------------------------------------------------------------------


async def _versions(retained: _Retained | None, why_not: str | None) -> dict[str, Any]:
    libraries = {}
    for lib in LIBRARIES:
        libraries[lib] = _installed(lib)
    out: dict[str, Any] = {
        PACKAGE: _installed(PACKAGE),
        "python": f"{platform.python_version()} ({platform.python_implementation()}) "
                  f"{sys.executable}",
        "libraries": libraries,
        "mosquitto": await _mosquitto_version(),
        "os": {"platform": platform.platform(), "kernel": platform.release(),
               "machine": platform.machine(), "pretty_name": _os_pretty_name(),
               "board": _small_text(BOARD_MODEL)},
    }
    if retained is None:
        out["supervisor"] = out["firmware"] = None
        out["broker"] = f"not read: {why_not}"
        return out
    status, meta = retained.topics.get("status"), retained.topics.get("meta")
    out["supervisor"] = {
        "version": (status.get("version") if isinstance(status, dict) else None)
        or (meta.get("version") if isinstance(meta, dict) else None),
        "state": status.get("state") if isinstance(status, dict) else None,
        "since": status.get("ts") if isinstance(status, dict) else None}
    # a node's version is a point whose last part ends in "version" (fw_version, ...)
    out["firmware"] = {k.removeprefix("state/"): v for k, v in sorted(retained.topics.items())
                       if k.startswith("state/") and k.rsplit("/", 1)[-1].endswith("version")}
    return out


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


async def _mosquitto_version() -> str | None:
    """``mosquitto -h``'s first line (Debian keeps mosquitto in /usr/sbin, often not on a
    technician's PATH); None when it is not installed."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if binary is None:
        return None
    try:
        out, _, _ = await _run([binary, "-h"], TOOL_TIMEOUT_S, 64 * 1024)
    except (OSError, TimeoutError) as exc:
        return f"mosquitto -h failed: {_reason(exc)}"
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    return lines[0].strip() if lines else None


def _os_pretty_name() -> str | None:
    text = _small_text(OS_RELEASE, 16 * 1024) or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"')
    return None


def _small_text(path: Path, limit: int = 256) -> str | None:
    try:
        with path.open("rb") as file:
            return file.read(limit).decode(errors="replace").strip("\0\n ") or None
    except OSError:
        return None


# ---- the SQLite log --------------------------------------------------------------------------


def read_rows(db_path: Path, limit: int, max_bytes: int = MAX_ROWS_BYTES,
              ) -> dict[str, tuple[bytes, int, str | None]]:
    """The newest ``limit`` events and commands as JSON lines, oldest first, through a
    read-only connection: ``{"events.jsonl"|"commands.jsonl": (data, rows, cut)}``.
    Raises BundleError when the file is missing or is not a database. Opened as mcwctl's
    history reads it: with the supervisor stopped, nothing is created beside it."""
    if not db_path.is_file():
        raise BundleError(f"no database at {db_path}")
    try:
        db = open_readonly(db_path)
    except HistoryError as exc:
        raise BundleError(str(exc)) from exc
    try:
        out = {}
        for member, sql in (
                ("events.jsonl", "SELECT seq, ts, kind, data FROM event ORDER BY seq DESC "
                                 "LIMIT ?"),
                ("commands.jsonl", "SELECT id, ts, action, role, source, args, status, code, "
                                   "message FROM command ORDER BY ts DESC LIMIT ?")):
            try:
                cursor = db.execute(sql, (limit,))
                names = [d[0] for d in cursor.description]
                out[member] = _json_lines(cursor, names, max_bytes)
            except sqlite3.Error as exc:
                raise BundleError(f"{db_path}: {member.split('.')[0]}: {exc}") from exc
        return out
    finally:
        db.close()


def _json_lines(rows: Iterable[tuple[Any, ...]], names: list[str], max_bytes: int,
                ) -> tuple[bytes, int, str | None]:
    """Rows (newest first) as JSON lines, oldest first, within ``max_bytes`` (the newest
    kept when cut)."""
    lines: list[bytes] = []
    size = 0
    cut = None
    for row in rows:
        item = dict(zip(names, row, strict=True))
        for key in ("data", "args"):  # stored as JSON text; a damaged one stays text
            if isinstance(item.get(key), str):
                item[key] = _decode(item[key].encode())
        if isinstance(item.get("ts"), int | float):
            item["ts_iso"] = _iso(float(item["ts"]))
        line = json.dumps(item, ensure_ascii=False, default=str).encode() + b"\n"
        if size + len(line) > max_bytes:
            cut = f"cut at {max_bytes} bytes: the newest {len(lines)} rows kept"
            break
        lines.append(line)
        size += len(line)
    return b"".join(reversed(lines)), len(lines), cut


# ---- the log ---------------------------------------------------------------------------------


async def _run(cmd: Sequence[str], timeout: float, cap: int) -> tuple[bytes, int, bytes]:
    """Run ``cmd``; its output (the newest ``cap`` bytes when longer), the total it wrote, and
    the first bytes of its stderr. Killed at ``timeout`` (TimeoutError, after the kill)."""
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    tail = bytearray()
    total = 0
    err = bytearray()

    async def read_out() -> None:
        nonlocal total
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(256 * 1024):
            total += len(chunk)
            tail.extend(chunk)
            if len(tail) > 2 * cap:  # keep memory bounded, the newest bytes
                del tail[:len(tail) - cap]

    async def read_err() -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(64 * 1024):
            err.extend(chunk[:max(0, MAX_STDERR_BYTES - len(err))])  # the rest is drained

    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(read_out(), read_err())
            await proc.wait()
    finally:
        if proc.returncode is None:  # timed out or cancelled: it is ours to stop
            proc.kill()
            await proc.wait()
    data = bytes(tail[-cap:]) if len(tail) > cap else bytes(tail)
    return data, total, bytes(err)


async def _log_part(contents: _Contents, journal_cmd: Sequence[str], log_file: Path | None,
                    cap: int, timeout: float) -> None:
    """``logs/supervisor.log``: the journal's last 24 h, else the ``--log`` file's tail."""
    name = "logs/supervisor.log"
    journal_note: str
    try:
        data, total, err = await _run(journal_cmd, timeout, cap)
        first_err = err.decode(errors="replace").strip().splitlines()[:1]
        if data.strip():
            cut = None
            if total > len(data):
                data = _from_line_start(data)
                cut = f"cut: the newest {len(data)} of {total} bytes kept"
            contents.add(name, data, source=" ".join(journal_cmd), cut=cut,
                         ignored=None if log_file is None else
                         f"--log {log_file} (the journal had the supervisor's log)")
            return
        journal_note = "the journal has no lines of the supervisor" + \
            (f" ({first_err[0]})" if first_err else "")
    except FileNotFoundError:
        journal_note = f"{journal_cmd[0]} is not installed"
    except TimeoutError:
        journal_note = f"{journal_cmd[0]} did not finish within {timeout:g} s"
    except OSError as exc:
        journal_note = f"{journal_cmd[0]} cannot run: {_reason(exc)}"
    if log_file is None:
        contents.leave_out(name, f"{journal_note}, and no --log FILE was given")
        return
    try:
        data, total = await asyncio.to_thread(_file_tail, log_file, cap)
    except OSError as exc:
        contents.leave_out(name, f"{journal_note}; --log {log_file}: {_reason(exc)}")
        return
    cut = f"cut: the newest {len(data)} of {total} bytes kept" if total > len(data) else None
    contents.add(name, data, source=str(log_file), why=journal_note, cut=cut)


def _file_tail(path: Path, cap: int) -> tuple[bytes, int]:
    """The newest ``cap`` bytes of a file (from a line's start when cut) and its size."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > cap:
            file.seek(size - cap)
            return _from_line_start(file.read(cap)), size
        return file.read(cap), size


def _from_line_start(data: bytes) -> bytes:
    """What follows the first newline: a cut must not start mid-line."""
    start = data.find(b"\n")
    return data[start + 1:] if 0 <= start < len(data) - 1 else data


# ---- the bundle ------------------------------------------------------------------------------


async def make_bundle(config: Path, out: Path | None = None, *, events: int = DEFAULT_EVENTS,
                      log_file: Path | None = None, user: str | None = None,
                      password: str | None = None, host: str | None = None,
                      port: int | None = None, read_broker: bool = True,
                      journal_cmd: Sequence[str] = JOURNAL_CMD,
                      log_cap: int = MAX_LOG_BYTES, journal_timeout: float = JOURNAL_TIMEOUT_S,
                      now: float | None = None,
                      own_state: Mapping[str, bytes] | None = None) -> Path:
    """Write the support bundle of the van ``config`` describes and return its path.

    ``out``: the file (a folder: the default name inside it); default
    ``mcw-bundle-{vehicle}-{UTC time}.tar.gz`` in the current folder. ``events``: the newest
    rows of the event and command tables. ``log_file``: the log to take when the journal has
    none. ``user``/``password``: the broker login (the broker is the config's unless
    ``host``/``port`` say; ``read_broker=False`` skips it). ``journal_cmd``, ``log_cap`` and
    ``journal_timeout``: how the log is read. ``own_state``: the retained topics (suffix ->
    payload) from the supervisor itself instead of the broker (it must not log in with its
    own login: the broker would end its session). Every part is bounded and one that fails is
    noted in the manifest; BundleError only when the file cannot be written (ValueError for
    ``events`` out of 1..MAX_BUNDLE_EVENTS).
    """
    if not 1 <= events <= MAX_BUNDLE_EVENTS:
        raise ValueError(f"events must be 1 to {MAX_BUNDLE_EVENTS}")
    made = time.time() if now is None else now
    contents = _Contents()
    if password:
        contents.secrets.add(password)
    facts = await _guarded(contents, "config/vehicle.toml",
                           asyncio.to_thread(_config_part, contents, config))
    if facts is None:
        facts = _ConfigFacts(check="failed")
    broker_host, broker_port = host or facts.host, port or facts.port
    prefix = f"mcw/v1/{facts.vehicle}"

    async def broker() -> tuple[_Retained | None, str | None]:
        if own_state is not None:
            return _Retained({k: _decode(v) for k, v in own_state.items()},
                             _iso(time.time()), None), None
        if not read_broker:
            return None, "not asked (read_broker=False)"
        try:
            topics, cut = await read_retained(broker_host, broker_port, prefix, user, password)
        except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
            return None, _broker_failure(exc, broker_host, broker_port, user, password)
        return _Retained(topics, _iso(time.time()), cut), None

    async def database() -> None:
        try:
            found = await asyncio.to_thread(read_rows, facts.storage, events)
        except Exception as exc:  # missing, damaged, unreadable: noted, never fatal
            reason = str(exc) if isinstance(exc, BundleError) else \
                f"failed: {type(exc).__name__}: {exc}"
            for member in ("events.jsonl", "commands.jsonl"):
                contents.leave_out(member, reason)
            return
        for member, (data, rows, cut) in found.items():
            contents.add(member, data, rows=rows, asked=events, cut=cut,
                         source=str(facts.storage))
            contents.counts[member.split(".")[0]] = rows

    retained_result, _, _ = await asyncio.gather(
        _guarded(contents, "broker", broker()),
        _guarded(contents, "events.jsonl", database()),
        _guarded(contents, "logs/supervisor.log",
                 _log_part(contents, journal_cmd, log_file, log_cap, journal_timeout)))
    retained, why_not = retained_result if retained_result is not None else (None, "failed")
    if retained is not None:
        try:
            _broker_parts(contents, retained)
        except Exception as exc:  # a payload of a shape never seen: the rest still goes
            contents.leave_out("devices.json", f"failed: {type(exc).__name__}: {exc}")
    else:
        for member in ("devices.json", "state.json"):
            contents.leave_out(member, why_not or "not read")
    found_versions = await _guarded(contents, "versions.json", _versions(retained, why_not))
    if found_versions is not None:
        contents.add("versions.json", _json(found_versions))
    manifest = _manifest(contents, config, facts, made, events,
                         f"{broker_host}:{broker_port}", read_broker)
    target = _target(out, facts.vehicle, made)
    await asyncio.to_thread(_write_archive, target, contents, manifest, made)
    return target


async def _guarded(contents: _Contents, part: str, work: Awaitable[T]) -> T | None:
    """``work``'s result; None, with the failure in the manifest, when it raises (one
    failing part must not cost the others)."""
    try:
        return await work
    except Exception as exc:
        contents.leave_out(part, f"failed: {type(exc).__name__}: {exc}")
        return None


def _manifest(contents: _Contents, config: Path, facts: _ConfigFacts, made: float, events: int,
              broker: str, read_broker: bool) -> dict[str, Any]:
    members = {name: {"bytes": len(data), **{k: v for k, v in contents.about[name].items()
                                             if v is not None}}
               for name, data in sorted(contents.members.items())}
    return {
        "bundle_format": 1,
        "made": _iso(made),
        "made_by": f"mcwctl bundle ({PACKAGE} {_installed(PACKAGE)})",
        "host": platform.node(),
        "vehicle": facts.vehicle,
        "config": str(config),
        "config_check": facts.check,
        "database": str(facts.storage),
        "broker": broker if read_broker else None,
        "members": members,
        "left_out": dict(sorted(contents.left_out.items())),
        "counts": {"devices": contents.counts.get("devices"),
                   "alarms_active": contents.counts.get("alarms_active"),
                   "events": contents.counts.get("events"),
                   "commands": contents.counts.get("commands")},
        "limits": {"events": events, "rows_bytes": MAX_ROWS_BYTES,
                   "log_bytes": MAX_LOG_BYTES, "journal_timeout_s": JOURNAL_TIMEOUT_S,
                   "broker_timeout_s": BROKER_TIMEOUT_S,
                   "retained_topics": retained_reader.MAX_TOPICS},
        "secrets": f"{len(contents.secrets)} known secret value(s) searched for in every "
                   f"member and replaced by {REDACTED} (those shorter than {MIN_SCRUB_CHARS} "
                   "characters are not searched for)",
    }


def _target(out: Path | None, vehicle: str, made: float) -> Path:
    name = f"mcw-bundle-{vehicle}-{datetime.fromtimestamp(made, UTC):%Y%m%dT%H%M%SZ}.tar.gz"
    if out is None:
        return Path.cwd() / name
    return out / name if out.is_dir() else out


def _write_archive(target: Path, contents: _Contents, manifest: dict[str, Any],
                   made: float) -> None:
    """The tar.gz, written beside ``target`` and renamed onto it once complete (a half
    written bundle is never left under its name); only the user can read it."""
    found = {"manifest.json": _json(manifest), **contents.members}
    members = {name: _scrub(found[name], contents.secrets)
               for name in sorted(found, key=_member_rank)}
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mcw-bundle-", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise BundleError(f"cannot write in {target.parent}: {_reason(exc)}") from exc
    try:
        with os.fdopen(fd, "wb") as file, \
                tarfile.open(fileobj=file, mode="w:gz", compresslevel=6) as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), int(made), 0o644
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BundleError(f"cannot write {target}: {_reason(exc)}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _member_rank(name: str) -> tuple[int, str]:
    """The order in the archive: the manifest first, as ``tar tzvf`` lists them to a reader."""
    order = ("manifest.json", "config/vehicle.toml", "config/", "versions.json", "devices.json",
             "state.json", "events.jsonl", "commands.jsonl", "logs/")
    return next((i for i, head in enumerate(order) if name.startswith(head)), len(order)), name


def _scrub(data: bytes, secrets: Iterable[str]) -> bytes:
    """``data`` with every known secret replaced, as text and as JSON or TOML write it (the
    longest first: a secret inside another must not leave the rest of that one behind)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) < MIN_SCRUB_CHARS:
            continue
        forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                 _toml_string(secret)[1:-1]}
        for form in sorted(forms, key=len, reverse=True):
            data = data.replace(form.encode(), REDACTED.encode())
    return data


def summary(bundle: Path) -> dict[str, Any]:
    """A small summary of a bundle, from its manifest: devices by health state, active
    alarms, the events and commands it holds, what was left out, and its size in bytes.
    Raises BundleError when it is not a readable bundle."""
    try:
        size = bundle.stat().st_size
        with tarfile.open(bundle, "r:gz") as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise BundleError(f"{bundle}: manifest.json is not a file")
            manifest = json.loads(member.read(MAX_SUMMARY_READ))
    except (OSError, KeyError, ValueError, EOFError, tarfile.TarError) as exc:
        raise BundleError(f"{bundle}: not a readable bundle: {_reason(exc)}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{bundle}: manifest.json is not an object")
    counts = manifest.get("counts") or {}
    return {"bundle": bundle.name, "bytes": size, "made": manifest.get("made"),
            "vehicle": manifest.get("vehicle"), "devices": counts.get("devices"),
            "alarms_active": counts.get("alarms_active"), "events": counts.get("events"),
            "commands": counts.get("commands"),
            "left_out": sorted(manifest.get("left_out") or {})}


# ---- mcwctl ----------------------------------------------------------------------------------


def event_count(text: str) -> int:
    """``--events N``: 1 to MAX_BUNDLE_EVENTS (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_BUNDLE_EVENTS:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_BUNDLE_EVENTS}: {text}")
    return value


def bundle_command(config: Path, out: Path | None, events: int, log_file: Path | None,
                   user: str | None, password: str | None) -> int:
    """``mcwctl bundle``: write the bundle, print its path (stdout) and what it lacks
    (stderr); exit 0 when written, 2 when it cannot be written."""
    try:
        path = asyncio.run(make_bundle(config, out, events=events, log_file=log_file,
                                       user=user, password=password))
        found = summary(path)
    except BundleError as exc:
        print(f"mcwctl: {exc}", file=sys.stderr)
        return 2
    print(path)
    devices = found["devices"] or {}
    print(f"  {found['bytes']} bytes; devices: "
          f"{', '.join(f'{n} {s}' for s, n in sorted(devices.items())) or 'not read'}; "
          f"active alarms: {found['alarms_active']}; events: {found['events']}; "
          f"commands: {found['commands']}", file=sys.stderr)
    for name in found["left_out"]:
        print(f"  left out: {name} (manifest.json says why)", file=sys.stderr)
    return 0


# ---- small helpers ---------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n").encode()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
