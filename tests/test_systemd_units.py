"""The files under ``systemd/`` are checked by the real tools that will consume them.

* ``mcw-supervisor.service``: ``systemd-analyze verify`` (no warning at all about our unit),
  ``systemd-analyze security --offline=true`` (exposure "OK" or better) and the settings the
  supervisor relies on (Type=notify, watchdog, user, device access, hardening).
* ``mcw-supervisor.sysusers`` / ``mcw.tmpfiles``: applied by ``systemd-sysusers`` and
  ``systemd-tmpfiles`` to a throw-away root directory.
* ``mosquitto-mcw.conf`` / ``mosquitto-mcw.acl``: a real Mosquitto started with them (ports and
  file paths rewritten to temporary ones), checked over MQTT: authentication on both listeners,
  the ACL (the whole login x topic write matrix, and who reads what), persistence of retained
  state across a restart, and the HQ bridge section (uncommented, pointed at a second local
  Mosquitto playing headquarters, letting in only this van's HQ commands).

Tests that need a tool skip when the binary is missing, and fail in CI (``CI=true``);
``make test`` installs them.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shutil
import socket
import struct
import subprocess
import sysconfig
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from testsupport import enable_bridge, free_port, require_tool, running_mosquitto

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD_DIR / "mcw-supervisor.service"
SYSUSERS = SYSTEMD_DIR / "mcw-supervisor.sysusers"
TMPFILES = SYSTEMD_DIR / "mcw.tmpfiles"
MOSQUITTO_CONF = SYSTEMD_DIR / "mosquitto-mcw.conf"
MOSQUITTO_ACL = SYSTEMD_DIR / "mosquitto-mcw.acl"

INSTALLED_BIN = "/opt/mcw/venv/bin/"
MAX_EXPOSURE = 2.0
EXPOSURE_LEVELS = ("SAFE", "OK", "MEDIUM", "EXPOSED", "UNSAFE")

# Environment for systemd tools: plain text, no pager, no colours, untranslated messages.
TOOL_ENV = {
    **os.environ,
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
    "SYSTEMD_LOG_COLOR": "0",
    "LC_ALL": "C.UTF-8",
}
TOOL_TIMEOUT_S = 60.0
MQTT_TIMEOUT_S = 10.0


# The path of a binary; without it the test skips, or fails in CI (testsupport.require_tool).
require = require_tool


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing stdout and stderr separately."""
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=TOOL_ENV,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )


# --- unit file parsing -------------------------------------------------------------------------


UnitFile = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> UnitFile:
    """Parse a systemd unit into ``{section: [(key, value), ...]}``.

    Repeated keys are kept in order (systemd allows them: DeviceAllow=, IPAddressAllow=, ...);
    comments and backslash line continuations follow systemd.syntax(7).
    """
    unit: UnitFile = {}
    section: str | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            unit.setdefault(section, [])
            continue
        assert section is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        unit[section].append((key.strip(), value.strip()))
    return unit


def values(unit: UnitFile, section: str, key: str) -> list[str]:
    """All values assigned to ``key`` in ``section``, in file order."""
    return [v for k, v in unit.get(section, []) if k == key]


def single(unit: UnitFile, section: str, key: str) -> str:
    """The value of a key that must be assigned exactly once."""
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}= is assigned {len(found)} times: {found}"
    return found[0]


@pytest.fixture(scope="module")
def unit() -> UnitFile:
    """The parsed mcw-supervisor.service."""
    return parse_unit(UNIT.read_text(encoding="utf-8"))


# --- systemd-analyze verify ----------------------------------------------------------------------


def venv_unit(tmp_path: Path) -> Path:
    """Copy the unit with its /opt/mcw/venv/bin/ commands pointed at this venv's console scripts.

    ``systemd-analyze verify`` checks that every Exec command exists and is executable; the
    installed layout does not exist on a development machine, the same console scripts of this
    project's venv do. Only the Exec lines may change: every other line is verified as written.
    """
    scripts = Path(sysconfig.get_path("scripts"))
    original = UNIT.read_text(encoding="utf-8")
    rewritten = original.replace(INSTALLED_BIN, f"{scripts}/")
    for name in ("mcwctl", "mcw-supervisor"):
        script = scripts / name
        assert os.access(script, os.X_OK), f"{script} missing: is the project installed?"
    changed = [
        line
        for line in difflib.ndiff(original.splitlines(), rewritten.splitlines())
        if line.startswith(("- ", "+ "))
    ]
    assert changed, f"the unit no longer runs commands from {INSTALLED_BIN}"
    assert all(re.match(r"[-+] ExecStart(Pre)?=", line) for line in changed), changed
    copy = tmp_path / UNIT.name
    copy.write_text(rewritten, encoding="utf-8")
    return copy


def verify_complaints(unit_path: Path) -> list[str]:
    """Run ``systemd-analyze verify`` and return every output line not about another unit.

    verify exits 0 even for unknown keys or unparsable values, so its output is what counts.
    ``--recursive-errors=no`` keeps it from judging units we depend on (mosquitto.service, the
    targets); lines it still prints that are plainly about another unit file are ignored.
    """
    require("systemd-analyze")
    result = run_tool("systemd-analyze", "verify", "--recursive-errors=no", str(unit_path))
    lines = (result.stdout + result.stderr).splitlines()
    foreign = re.compile(r"^(?:\S*/)?(?P<unit>[\w@.\\-]+\.(?:service|target|socket|mount)):")
    complaints = []
    for line in lines:
        match = foreign.match(line)
        if line.strip() and not (match and match.group("unit") != unit_path.name):
            complaints.append(line)
    if result.returncode != 0 and not complaints:
        complaints.append(f"systemd-analyze verify exited {result.returncode}")
    return complaints


def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    """systemd-analyze verify has nothing to say about the unit."""
    assert verify_complaints(venv_unit(tmp_path)) == []


def test_verify_check_catches_warnings(tmp_path: Path) -> None:
    """The verify check above is not blind: a typo and a bad value are reported."""
    bad = tmp_path / UNIT.name
    bad.write_text(
        "[Service]\nExecStart=/bin/true\nProtectSystem=bogus\nWatchdogSecs=20s\n",
        encoding="utf-8",
    )
    complaints = "\n".join(verify_complaints(bad))
    assert "bogus" in complaints
    assert "WatchdogSecs" in complaints


# --- systemd-analyze security ---------------------------------------------------------------------


def test_unit_security_exposure_is_ok() -> None:
    """The offline security review rates the unit OK or better, without warnings."""
    require("systemd-analyze")
    result = run_tool("systemd-analyze", "security", "--no-pager", "--offline=true", str(UNIT))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    match = re.search(
        rf"Overall exposure level for {re.escape(UNIT.name)}: "
        rf"(?P<score>\d+(?:\.\d+)?) (?P<level>{'|'.join(EXPOSURE_LEVELS)})",
        result.stdout,
    )
    assert match, result.stdout
    score, level = float(match["score"]), match["level"]
    assert level in ("SAFE", "OK"), result.stdout
    assert score <= MAX_EXPOSURE, result.stdout


# --- settings the supervisor relies on ------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "expected"),
    [
        ("Service", "Type", "notify"),
        ("Service", "NotifyAccess", "main"),
        ("Service", "Restart", "on-failure"),
        ("Service", "KillMode", "mixed"),
        ("Service", "User", "mcw"),
        ("Service", "Group", "mcw"),
        ("Service", "NoNewPrivileges", "yes"),
        ("Service", "ProtectSystem", "strict"),
        ("Service", "ProtectHome", "yes"),
        ("Service", "PrivateTmp", "yes"),
        ("Service", "StateDirectory", "mcw"),
        ("Service", "RuntimeDirectory", "mcw"),
        ("Service", "ConfigurationDirectory", "mcw"),
        ("Service", "UMask", "0027"),
        ("Service", "DevicePolicy", "closed"),
        ("Service", "CapabilityBoundingSet", ""),
        ("Service", "AmbientCapabilities", ""),
        ("Service", "MemoryDenyWriteExecute", "yes"),
        ("Service", "RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("Service", "ExecStart", "/opt/mcw/venv/bin/mcw-supervisor --config /etc/mcw/vehicle.toml"),
        ("Service", "ExecStartPre", "/opt/mcw/venv/bin/mcwctl check-config /etc/mcw/vehicle.toml"),
        ("Install", "WantedBy", "multi-user.target"),
    ],
)
def test_unit_setting(unit: UnitFile, section: str, key: str, expected: str) -> None:
    """A setting the supervisor or its operators rely on has the expected value."""
    assert single(unit, section, key) == expected


def seconds(span: str) -> float:
    """Parse a systemd time span with one unit (``20s``, ``10min``, ``500ms``, ``15``)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?", span)
    assert match, f"unsupported time span {span!r}"
    scale = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}[match[2] or "s"]
    return float(match[1]) * scale


def test_unit_timers(unit: UnitFile) -> None:
    """Watchdog armed, time to reach safe states on stop, restart not too eager or too slow."""
    assert 5 <= seconds(single(unit, "Service", "WatchdogSec")) <= 60
    assert seconds(single(unit, "Service", "TimeoutStopSec")) >= 10
    assert 1 <= seconds(single(unit, "Service", "RestartSec")) <= 30
    assert int(single(unit, "Unit", "StartLimitBurst")) >= 3
    assert seconds(single(unit, "Unit", "StartLimitIntervalSec")) > 0


def test_unit_runs_without_the_broker(unit: UnitFile) -> None:
    """The broker is wanted and started first, but never required: control goes on without it."""
    assert "mosquitto.service" in values(unit, "Unit", "Wants")
    assert "mosquitto.service" in " ".join(values(unit, "Unit", "After"))
    for key in ("Requires", "Requisite", "BindsTo", "PartOf"):
        assert "mosquitto.service" not in " ".join(values(unit, "Unit", key)), key


def test_unit_device_access(unit: UnitFile) -> None:
    """Serial ports and the GPIO chip stay reachable, through the groups that own them."""
    groups = " ".join(values(unit, "Service", "SupplementaryGroups")).split()
    assert {"dialout", "gpio"} <= set(groups)
    # PrivateDevices= would hide /dev/tty* and /dev/gpiochip*; PrivateUsers= unmaps the groups.
    assert values(unit, "Service", "PrivateDevices") == []
    assert values(unit, "Service", "PrivateUsers") == []
    # ProcSubset=pid hides /proc/cpuinfo and /proc/device-tree, where gpiozero finds the board.
    assert values(unit, "Service", "ProcSubset") in ([], ["all"])
    allowed = {}
    for entry in values(unit, "Service", "DeviceAllow"):
        device, _, access = entry.partition(" ")
        # systemd takes device *paths* literally (a glob is silently useless at run time), so
        # classes of devices must be given as char-<driver name from /proc/devices>.
        assert re.fullmatch(r"char-[A-Za-z0-9_]+", device), entry
        allowed[device] = access
    for device in ("char-ttyUSB", "char-ttyAMA", "char-ttyS", "char-gpiochip"):
        assert allowed.get(device) == "rw", f"DeviceAllow={device} rw missing: {allowed}"


def test_unit_network_and_syscalls(unit: UnitFile) -> None:
    """Deny IP traffic except localhost and the private van LAN; filter system calls."""
    assert single(unit, "Service", "IPAddressDeny") == "any"
    allowed = " ".join(values(unit, "Service", "IPAddressAllow")).split()
    assert "localhost" in allowed
    assert set(allowed) <= {"localhost", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
    filters = values(unit, "Service", "SystemCallFilter")
    assert "@system-service" in filters
    denied = " ".join(f[1:] for f in filters if f.startswith("~")).split()
    assert {"@privileged", "@resources"} <= set(denied)
    assert single(unit, "Service", "SystemCallArchitectures") == "native"


# --- sysusers and tmpfiles ----------------------------------------------------------------------


# Both tools chown the files they write (even under --root), which only root may do.
NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="systemd-sysusers/tmpfiles chown: root")


def fake_root(tmp_path: Path) -> Path:
    """A minimal root directory with the account databases systemd-sysusers edits."""
    root = tmp_path / "root"
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n", encoding="utf-8")
    for name in ("shadow", "gshadow"):
        (etc / name).touch(mode=0o600)
    return root


def read_db(path: Path) -> dict[str, list[str]]:
    """Read a colon-separated account database (passwd, group) keyed by name."""
    rows = (line.split(":") for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {row[0]: row for row in rows}


@NEEDS_ROOT
def test_sysusers_creates_user_and_memberships(tmp_path: Path) -> None:
    """systemd-sysusers creates mcw and makes it a member of dialout and gpio."""
    require("systemd-sysusers")
    root = fake_root(tmp_path)
    result = run_tool("systemd-sysusers", f"--root={root}", str(SYSUSERS))
    assert result.returncode == 0, result.stderr
    assert "warn" not in result.stderr.lower(), result.stderr
    passwd, group = read_db(root / "etc/passwd"), read_db(root / "etc/group")
    assert "mcw" in passwd and "mcw" in group
    assert passwd["mcw"][3] == group["mcw"][2], "user mcw's primary group is not mcw"
    assert passwd["mcw"][5] == "/var/lib/mcw"
    assert passwd["mcw"][6].endswith("nologin")
    for name in ("dialout", "gpio"):
        assert "mcw" in group[name][3].split(","), f"mcw is not in group {name}"


@NEEDS_ROOT
def test_tmpfiles_makes_config_dir_readable_by_mcw(tmp_path: Path) -> None:
    """systemd-tmpfiles creates /etc/mcw as root:mcw 0750 (matching ConfigurationDirectoryMode)."""
    require("systemd-sysusers")
    require("systemd-tmpfiles")
    root = fake_root(tmp_path)
    assert run_tool("systemd-sysusers", f"--root={root}", str(SYSUSERS)).returncode == 0
    result = run_tool("systemd-tmpfiles", f"--root={root}", "--create", str(TMPFILES))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    status = (root / "etc/mcw").stat()
    assert status.st_mode & 0o7777 == 0o750
    assert status.st_uid == 0
    assert status.st_gid == int(read_db(root / "etc/group")["mcw"][2])
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    assert single(unit, "Service", "ConfigurationDirectoryMode") == "0750"


# --- Mosquitto ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A PUBLISH received from the broker."""

    topic: str
    payload: bytes
    retain: bool


class MiniMqtt:
    """A tiny synchronous MQTT 3.1.1 client: enough to check a broker's config, no threads.

    Every call waits for the broker's answer (CONNACK, SUBACK, PUBACK) with a deadline, so a
    test can rely on ordering: a QoS 1 publish has been processed when ``publish`` returns.
    """

    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=MQTT_TIMEOUT_S)
        self.client_id = client_id
        self.inbox: deque[Message] = deque()
        self.packet_id = 0

    def close(self) -> None:
        """Send DISCONNECT (best effort) and close the socket."""
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")
        self.sock.close()

    @staticmethod
    def _string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("!H", len(data)) + data

    def _send(self, first: int, body: bytes) -> None:
        length, encoded = len(body), bytearray()
        while True:
            byte, length = length % 128, length // 128
            encoded.append(byte | (0x80 if length else 0))
            if not length:
                break
        self.sock.sendall(bytes([first]) + bytes(encoded) + body)

    def _recv_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError(f"{self.client_id}: broker closed the connection")
            data += chunk
        return data

    def _read_packet(self) -> tuple[int, bytes]:
        first = self._recv_exact(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._recv_exact(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, self._recv_exact(length)

    def _wait_for(self, packet_type: int) -> bytes:
        """Read packets until one of ``packet_type``; PUBLISHes meanwhile go to the inbox."""
        while True:
            first, body = self._read_packet()
            if first >> 4 == 3:
                self._store_publish(first, body)
            elif first >> 4 == packet_type:
                return body

    def _store_publish(self, first: int, body: bytes) -> None:
        (topic_len,) = struct.unpack("!H", body[:2])
        topic = body[2 : 2 + topic_len].decode()
        rest = body[2 + topic_len :]
        if (first >> 1) & 3:
            self._send(0x40, rest[:2])  # PUBACK
            rest = rest[2:]
        self.inbox.append(Message(topic, rest, bool(first & 1)))

    def connect(self, username: str | None = None, password: str | None = None) -> int:
        """Send CONNECT (clean session) and return the CONNACK return code (0: accepted)."""
        flags = 0x02
        payload = self._string(self.client_id)
        if username is not None:
            flags |= 0x80
            payload += self._string(username)
        if password is not None:
            flags |= 0x40
            payload += self._string(password)
        self._send(0x10, self._string("MQTT") + bytes([4, flags]) + struct.pack("!H", 30) + payload)
        body = self._wait_for(2)
        return body[1]

    def _next_id(self) -> int:
        self.packet_id = self.packet_id % 65535 + 1
        return self.packet_id

    def subscribe(self, topic: str) -> None:
        """Subscribe with QoS 1 and wait for the SUBACK; fail if the broker refuses."""
        self._send(0x82, struct.pack("!H", self._next_id()) + self._string(topic) + b"\x01")
        granted = self._wait_for(9)[2:]
        assert granted != b"\x80", f"{self.client_id}: subscription to {topic} refused"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish with QoS 1 and wait for the PUBACK (the broker has handled it)."""
        body = self._string(topic) + struct.pack("!H", self._next_id()) + payload
        self._send(0x32 | int(retain), body)
        self._wait_for(4)

    def receive(self) -> Message:
        """The next message, waiting up to the socket timeout."""
        while not self.inbox:
            first, body = self._read_packet()
            if first >> 4 == 3:
                self._store_publish(first, body)
        return self.inbox.popleft()

    def receive_until(self, topic: str) -> list[Message]:
        """Messages up to and including the first one on ``topic``."""
        seen = [self.receive()]
        while seen[-1].topic != topic:
            seen.append(self.receive())
        return seen


@contextlib.contextmanager
def mqtt(port: int, client_id: str, username: str, password: str) -> Iterator[MiniMqtt]:
    """A connected, authenticated client, closed afterwards."""
    client = MiniMqtt(port, client_id)
    try:
        assert client.connect(username, password) == 0, f"{username} refused on {port}"
        yield client
    finally:
        client.close()


USERS = {
    "supervisor": "s3cret-sup",
    "hq": "s3cret-hq",
    "crew": "s3cret-crew",
    "technician": "s3cret-tech",
}


@dataclass(frozen=True)
class Broker:
    """Paths and ports of a test broker built from the fragment."""

    config: Path
    log: Path
    local_port: int
    lan_port: int


def build_broker(tmp_path: Path, fragment: str) -> Broker:
    """Lay out a Debian-like mosquitto config around ``fragment`` in ``tmp_path``.

    Like /etc/mosquitto/mosquitto.conf it sets persistence_location and include_dir; the fragment
    goes in conf.d with its two listeners moved to free ports on 127.0.0.1 and its password and
    ACL files to temporary ones. Every other line of the fragment is used as written.
    """
    passwd_tool = require("mosquitto_passwd")
    conf_d, data = tmp_path / "conf.d", tmp_path / "data"
    conf_d.mkdir()
    data.mkdir()
    passwd, acl = tmp_path / "mcw.passwd", tmp_path / "mcw.acl"
    for i, (user, password) in enumerate(USERS.items()):
        create = ["-c"] if i == 0 else []
        result = run_tool(passwd_tool, "-b", *create, str(passwd), user, password)
        assert result.returncode == 0, result.stderr
    shutil.copyfile(MOSQUITTO_ACL, acl)

    local_port, lan_port = free_port(), free_port()
    listeners: list[str] = []

    def listener(match: re.Match[str]) -> str:
        listeners.append(match["address"])
        port = local_port if match["address"] == "127.0.0.1" else lan_port
        return f"listener {port} 127.0.0.1"

    text = re.sub(r"(?m)^listener (?P<port>\d+) (?P<address>\S+)$", listener, fragment)
    assert len(listeners) == 2 and listeners[0] == "127.0.0.1", listeners
    text, n_passwd = re.subn(r"(?m)^password_file .*$", f"password_file {passwd}", text)
    text, n_acl = re.subn(r"(?m)^acl_file .*$", f"acl_file {acl}", text)
    assert (n_passwd, n_acl) == (1, 1)
    (conf_d / "mcw.conf").write_text(text, encoding="utf-8")

    config = tmp_path / "mosquitto.conf"
    config.write_text(
        # A root-run mosquitto drops to the `mosquitto` user before reading the password file
        # and could not read (or write persistence into) this private temp dir.
        f"user root\npersistence_location {data}/\nlog_dest stderr\ninclude_dir {conf_d}\n",
        encoding="utf-8",
    )
    return Broker(config, tmp_path / "mosquitto.log", local_port, lan_port)


def test_mosquitto_fragment_auth_reads_and_persistence(tmp_path: Path) -> None:
    """The real broker accepts the fragment; login, reading and retained persistence work.

    Who may *write* what is the matrix of ``test_mosquitto_acl_write_matrix``.
    """
    broker = build_broker(tmp_path, MOSQUITTO_CONF.read_text(encoding="utf-8"))
    ports = [broker.local_port, broker.lan_port]
    status = "mcw/v1/van1/status"
    sys_version = "$SYS/broker/version"  # retained by the broker itself from its start
    with running_mosquitto(broker.config, ports, broker.log) as proc:
        assert proc.poll() is None
        for port in ports:
            anonymous = MiniMqtt(port, "anonymous")
            try:
                assert anonymous.connect() == 5, "anonymous client accepted"
            finally:
                anonymous.close()
        wrong = MiniMqtt(broker.lan_port, "wrong")
        try:
            assert wrong.connect("hq", "not-the-password") != 0
        finally:
            wrong.close()

        with contextlib.ExitStack() as stack:
            sup = stack.enter_context(
                mqtt(broker.local_port, "sup", "supervisor", USERS["supervisor"])
            )
            # The supervisor publishes state (retained); every login reads it, and only the
            # technician also reads the broker's $SYS tree. Retained messages are sent in the
            # order of the subscriptions, so an allowed $SYS message comes before the status.
            sup.publish(status, b'{"state":"ready"}', retain=True)
            for login in ("hq", "crew", "technician"):
                reader = stack.enter_context(mqtt(broker.lan_port, login, login, USERS[login]))
                reader.subscribe(sys_version)
                reader.subscribe("mcw/v1/#")
                seen = reader.receive_until(status)
                assert seen[-1].payload == b'{"state":"ready"}', login
                topics = [m.topic for m in seen]
                assert (sys_version in topics) == (login == "technician"), (login, topics)

    # Retained state survives a broker restart (persistence true, saved on SIGTERM).
    with (
        running_mosquitto(broker.config, ports, broker.log),
        mqtt(broker.local_port, "sup2", "supervisor", USERS["supervisor"]) as sup,
    ):
        sup.subscribe(status)
        message = sup.receive()
        assert (message.topic, message.payload, message.retain) == (
            status,
            b'{"state":"ready"}',
            True,
        )


# The ACL's write matrix: one topic per kind under mcw/v1/van1/ (action ids with two levels, so
# a `+` where the ACL needs `#` shows), and for each login whether its QoS 1 publish there is
# delivered ("yes") or refused ("-"). Changing one cell of the ACL must change this table.
ACL_TOPICS = {
    "cmd/crew": "cmd/crew/power/circuit",
    "cmd/technician": "cmd/technician/system/republish",
    "cmd/hq": "cmd/hq/power/circuit",
    "result/crew": "result/crew/power/circuit",
    "state": "state/power/battery/soc",
    "status": "status",
    "meta": "meta",
    "device": "device/gx/status",
    "alarm": "alarm/battery_low",
    "event": "event",
}
EXPECTED_WRITES = """
            cmd/crew  cmd/technician  cmd/hq  result/crew  state  status  meta  device  alarm  event
supervisor  yes       yes             yes     yes          yes    yes     yes   yes     yes    yes
crew        yes       -               -       -            -      -       -     -       -      -
technician  -         yes             -       -            -      -       -     -       -      -
hq          -         -               yes     -            -      -       -     -       -      -
"""
ACL_DEADLINE_S = 5.0

WriteMatrix = dict[str, dict[str, bool]]


def parse_write_matrix(table: str) -> WriteMatrix:
    """``{login: {kind: delivered}}`` from a table like ``EXPECTED_WRITES``."""
    header, *rows = (line.split() for line in table.strip().splitlines())
    assert header == list(ACL_TOPICS), header
    matrix: WriteMatrix = {}
    for login, *cells in rows:
        assert len(cells) == len(header) and set(cells) <= {"yes", "-"}, (login, cells)
        matrix[login] = {kind: cell == "yes" for kind, cell in zip(header, cells, strict=True)}
    return matrix


def format_write_matrix(matrix: WriteMatrix) -> str:
    """The matrix as a table in the layout of ``EXPECTED_WRITES`` (for failure messages)."""
    lines = ["login       " + "  ".join(ACL_TOPICS)]
    for login, row in matrix.items():
        cells = [("yes" if row[kind] else "-").ljust(len(kind)) for kind in ACL_TOPICS]
        lines.append((login.ljust(12) + "  ".join(cells)).rstrip())
    return "\n".join(lines)


def receive_until_deadline(client: MiniMqtt, topic: str, deadline: float) -> list[Message]:
    """Messages up to and including the first on ``topic``, failing at a monotonic deadline."""
    seen: list[Message] = []
    try:
        while not seen or seen[-1].topic != topic:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            client.sock.settimeout(remaining)
            seen.append(client.receive())
    except TimeoutError:
        pytest.fail(f"{topic} not received in time; received {[m.topic for m in seen]}")
    finally:
        client.sock.settimeout(MQTT_TIMEOUT_S)
    return seen


def test_mosquitto_acl_write_matrix(tmp_path: Path) -> None:
    """Each login may publish exactly the cells of ``EXPECTED_WRITES``, on the real broker.

    A watcher logged in as ``supervisor`` (which reads everything) subscribes to mcw/v1/#. Each
    login publishes once per topic kind with QoS 1; ``publish`` returns on the PUBACK, which the
    broker sends (for refused messages too) only after it has queued the message to the
    watcher. Then the supervisor login publishes a marker: once the watcher has the marker,
    every allowed message has arrived before it and a refused one will never come.
    """
    expected = parse_write_matrix(EXPECTED_WRITES)
    broker = build_broker(tmp_path, MOSQUITTO_CONF.read_text(encoding="utf-8"))
    prefix, marker = "mcw/v1/van1/", "mcw/v1/van1/test/acl-marker"
    with (
        running_mosquitto(broker.config, [broker.local_port, broker.lan_port], broker.log),
        contextlib.ExitStack() as stack,
    ):
        deadline = time.monotonic() + ACL_DEADLINE_S
        watcher = stack.enter_context(
            mqtt(broker.local_port, "acl-watcher", "supervisor", USERS["supervisor"])
        )
        watcher.subscribe("mcw/v1/#")
        for login in expected:
            port = broker.local_port if login == "supervisor" else broker.lan_port
            with mqtt(port, f"acl-{login}", login, USERS[login]) as client:
                for kind, topic in ACL_TOPICS.items():
                    client.publish(prefix + topic, f"{login} {kind}".encode())
        with mqtt(broker.local_port, "acl-marker", "supervisor", USERS["supervisor"]) as sup:
            sup.publish(marker, b"end")
        seen = receive_until_deadline(watcher, marker, deadline)

    delivered = {m.payload.decode(): m.topic for m in seen[:-1]}
    assert len(delivered) == len(seen) - 1, [m.payload for m in seen]
    measured = {
        login: {kind: f"{login} {kind}" in delivered for kind in ACL_TOPICS} for login in expected
    }
    for cell, topic in delivered.items():
        login, kind = cell.split()
        assert topic == prefix + ACL_TOPICS[kind], (cell, topic)
    assert measured == expected, "delivered publishes:\n" + format_write_matrix(measured)


def test_a_login_cannot_take_over_the_supervisors_session(tmp_path: Path) -> None:
    """Client ids are bound to logins: a crew device claiming the supervisor's client id gets
    its own session, and the supervisor stays connected."""
    broker = build_broker(tmp_path, MOSQUITTO_CONF.read_text(encoding="utf-8"))
    stolen = "mcw-supervisor-mcw/v1/van1"
    with (
        running_mosquitto(broker.config, [broker.local_port, broker.lan_port], broker.log),
        mqtt(broker.local_port, stolen, "supervisor", USERS["supervisor"]) as supervisor,
        mqtt(broker.lan_port, "watcher", "technician", USERS["technician"]) as watcher,
    ):
        watcher.subscribe("mcw/v1/#")
        with mqtt(broker.lan_port, stolen, "crew", USERS["crew"]):
            supervisor.publish("mcw/v1/van1/status", b"still here")  # raises if kicked off
        seen = receive_until_deadline(watcher, "mcw/v1/van1/status",
                                      time.monotonic() + ACL_DEADLINE_S)
    assert seen[-1].payload == b"still here"


def test_mosquitto_bridge_section(tmp_path: Path) -> None:
    """The commented bridge, enabled, sends the van's topics to HQ and takes only its commands;
    of the events only the supervisor's paced uplink goes out (as HQ's ``event``)."""
    hq_port = free_port()
    hq_dir = tmp_path / "hq"
    hq_dir.mkdir()
    hq_config = hq_dir / "mosquitto.conf"
    hq_config.write_text(
        f"user root\nlistener {hq_port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n",
        encoding="utf-8",
    )
    van_dir = tmp_path / "van"
    van_dir.mkdir()
    fragment = enable_bridge(MOSQUITTO_CONF.read_text(encoding="utf-8"), "van1", hq_port)
    van = build_broker(van_dir, fragment)
    bridge_state = "mcw/v1/van1/bridge/hq"
    with (
        running_mosquitto(hq_config, [hq_port], hq_dir / "mosquitto.log"),
        running_mosquitto(van.config, [van.local_port, van.lan_port], van.log),
        mqtt(van.local_port, "sup", "supervisor", USERS["supervisor"]) as sup,
    ):
        sup.subscribe(bridge_state)
        while sup.receive_until(bridge_state)[-1].payload != b"1":
            pass  # "0" until the bridge has connected; receive() has the deadline
        hq = MiniMqtt(hq_port, "hq-fleet")
        try:
            assert hq.connect() == 0
            hq.subscribe("mcw/v1/#")
            sup.subscribe("mcw/v1/#")
            # Out: the van's state reaches HQ.
            sup.publish("mcw/v1/van1/state/power/battery/soc", b'{"v":80}', retain=True)
            seen = hq.receive_until("mcw/v1/van1/state/power/battery/soc")
            assert seen[-1].payload == b'{"v":80}'
            # In: only this van's HQ commands. Another van's commands, commands in another
            # role's name, forged results and forged state stay at HQ.
            refused = [
                "mcw/v1/van2/cmd/hq/lighting/scene",
                "mcw/v1/van1/cmd/crew/lighting/scene",
                "mcw/v1/van1/result/hq/lighting/scene",
            ]
            for topic in refused:
                hq.publish(topic, b'{"id":"x"}')
            hq.publish("mcw/v1/van1/state/power/battery/soc", b'{"v":0}')
            hq.publish("mcw/v1/van1/cmd/hq/lighting/scene", b'{"id":"h1"}')
            seen = sup.receive_until("mcw/v1/van1/cmd/hq/lighting/scene")
            assert seen[-1].payload == b'{"id":"h1"}'
            assert not set(refused) & {m.topic for m in seen}
            # The supervisor's own state, once: neither HQ's forged value nor an echo came back.
            states = [m.payload for m in seen if m.topic == "mcw/v1/van1/state/power/battery/soc"]
            assert states == [b'{"v":80}']
            # Events: the local stream and the crew's commands stay in the van; the uplink's
            # copy is HQ's event stream.
            sup.publish("mcw/v1/van1/event", b'{"id":1}')
            sup.publish("mcw/v1/van1/cmd/crew/lighting/scene", b'{"id":"c1"}')
            sup.publish("mcw/v1/van1/result/crew/lighting/scene", b'{"id":"c1"}')
            sup.publish("mcw/v1/van1/uplink/event", b'{"id":2}')
            seen = hq.receive_until("mcw/v1/van1/event")
            from_van = [(m.topic, m.payload) for m in seen if m.payload in (
                b'{"id":1}', b'{"id":"c1"}', b'{"id":2}')]  # not HQ's own publishes above
            assert from_van == [("mcw/v1/van1/event", b'{"id":2}')]
        finally:
            hq.close()


# --- the panel kiosk ----------------------------------------------------------------------------

KIOSK = SYSTEMD_DIR / "mcw-panel-kiosk.service"


def test_kiosk_unit_verifies_and_always_comes_back() -> None:
    """Chromium in kiosk mode under cage, on the panel's default address, restarted always."""
    for binary in ("cage", "chromium"):
        require(binary)
    assert verify_complaints(KIOSK) == []
    kiosk = parse_unit(KIOSK.read_text(encoding="utf-8"))
    assert single(kiosk, "Service", "Restart") == "always"
    assert single(kiosk, "Service", "User") == "mcw-kiosk"
    command = single(kiosk, "Service", "ExecStart")
    assert command.startswith("/usr/bin/cage -s -- /usr/bin/chromium --kiosk")
    assert command.endswith("http://127.0.0.1:8080/")
    sysusers = SYSUSERS.read_text(encoding="utf-8")
    for group in ("video", "render", "input"):
        assert f"m mcw-kiosk {group}" in sysusers


def test_the_broker_is_one_without_the_tls_bridge_hang() -> None:
    """Mosquitto before 2.0.15 (Debian 12's 2.0.11) can spin for good after a failed TLS
    bridge connection, cutting everyone off the van's broker: the tests, like the van
    (systemd/README.md), run a fixed one (make system-deps takes it from backports)."""
    out = subprocess.run([require_tool("mosquitto"), "-h"], capture_output=True, text=True,
                         timeout=30).stdout
    version = re.search(r"mosquitto version (\d+)\.(\d+)\.(\d+)", out)
    assert version is not None, out
    assert tuple(int(n) for n in version.groups()) >= (2, 0, 15), version.group(0)
