"""``mcwctl bundle``: the technician's log bundle, made from real parts.

A real SQLite file written by the supervisor's Storage (left open, as a running supervisor
holds it), the demo config with fresh PIN hashes, an MQTT password file and a van builder's
profile file, a real Mosquitto with retained state (and none: the bundle is still made), and
stand-ins for journalctl (small scripts: a long journal, an empty one, a hung one). Each
member of the tarball is opened and checked; two properties: the TOML writer gives back what
it was given, and no secret put anywhere in a config appears anywhere in the archive.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import json
import shutil
import stat
import subprocess
import tarfile
import tempfile
import tomllib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testsupport import FUZZ, Broker, free_port, require_tool

from supervisor.core.config import _expand_env
from supervisor.core.diagnostics import MAX_BUNDLE_EVENTS
from supervisor.core.storage import Storage
from supervisor.interfaces import support_bundle as sb
from supervisor.interfaces.pin import hash_pin

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.toml"
GAUGE = ROOT / "hil-tests" / "builder_profiles" / "tank_gauge.toml"
NOW = 1_800_000_000.0
MQTT_PASSWORD = "mqtt-pass-Zx81-never-in-a-bundle"
PREFIX = "mcw/v1/demo"
NO_JOURNAL = ("/nonexistent/journalctl",)
TANK = """
[[device]]
id = "tank"
profile_file = "tank_gauge.toml"
bus = "rs485"
unit = 9
label = "Fresh water tank (builder's gauge)"
"""


# ---- the van on disk -------------------------------------------------------------------------


class Van:
    """The demo config in ``folder`` with secrets of its own, a profile file beside it, its
    MQTT password file, and its SQLite written by the supervisor's Storage."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch, mqtt_port: int) -> None:
        self.folder = folder
        monkeypatch.setenv("MCW_RUN_DIR", str(folder / "run"))
        monkeypatch.setenv("MCW_MQTT_PORT", str(mqtt_port))
        self.password_file = folder / "mqtt.password"
        self.password_file.write_text(MQTT_PASSWORD + "\n")
        # cheap hashes: these tests are not about the hash's strength
        self.pin_hashes = {name: hash_pin(pin, iterations=1000) for name, pin in
                           (("crew", "2468"), ("technician", "97531"), ("duress", "2469"))}
        text = DEMO.read_text()
        for name, value in self.pin_hashes.items():
            head = f'{name}_pin_hash = "'
            start = text.index(head) + len(head)
            text = text[:start] + value + text[text.index('"', start):]
        text = text.replace("[mqtt]\n", f'[mqtt]\npassword_file = "{self.password_file}"\n'
                                         'username = "supervisor"\n', 1)
        text = text.replace("\n[power]\n", TANK + "\n[power]\n", 1)
        self.config = folder / "vehicle.toml"
        self.config.write_text(text)
        shutil.copy(GAUGE, folder / "tank_gauge.toml")
        self.db_path = folder / "run" / "mcw.sqlite"
        self.storage = Storage(self.db_path)

    @property
    def secrets(self) -> list[str]:
        return [MQTT_PASSWORD, *self.pin_hashes.values()]

    def add_rows(self, events: int, commands: int) -> None:
        for n in range(1, events + 1):
            self.storage.add_event(NOW + n, "power", {"kind": "power", "id": n, "n": n,
                                                      "text": f"event {n}"})
        for n in range(1, commands + 1):
            self.storage.record_command(f"cmd-{n}", NOW + n, "power/circuit", "crew", "panel",
                                        {"circuit": "fridge", "on": n % 2 == 0}, "done", "ok",
                                        "switched")
        assert self.storage.flush()


@pytest.fixture
def van(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Van]:
    built = Van(tmp_path, monkeypatch, free_port())  # nothing listens there
    yield built
    built.storage.close()


def members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        out = {}
        for info in tar.getmembers():
            assert info.isfile() and not info.name.startswith(("/", "..")), info.name
            file = tar.extractfile(info)
            assert file is not None
            out[info.name] = file.read()
        return out


def manifest_of(found: dict[str, bytes]) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(found["manifest.json"])
    assert set(manifest["members"]) == set(found) - {"manifest.json"}
    for name, about in manifest["members"].items():
        assert about["bytes"] == len(found[name]), name
    return manifest


def jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


def script(folder: Path, name: str, body: str) -> tuple[str]:
    """A stand-in for journalctl: a shell script (``exec`` so that killing it kills what it
    runs)."""
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return (str(path),)


def assert_no_secret(bundle: Path, secrets: list[str]) -> None:
    """No secret in the archive's bytes: compressed, the tar stream, each member; as text
    and as JSON or TOML would escape it."""
    raw = bundle.read_bytes()
    blobs = [raw, gzip.decompress(raw), *members(bundle).values()]
    for secret in secrets:
        forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                 sb._toml_string(secret)[1:-1]}
        for form in forms:
            for blob in blobs:
                assert form.encode() not in blob, f"a secret survived: {secret!r}"


# ---- the whole bundle ------------------------------------------------------------------------


async def publish_retained(port: int, retained: dict[str, Any]) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic, payload in retained.items():
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            await client.publish(topic, body, qos=1, retain=True)  # PUBACK: it is stored


RETAINED = {
    f"{PREFIX}/status": {"state": "degraded", "session": "s1", "version": "0.1.0",
                         "ts": "2027-01-15T08:00:00Z"},
    f"{PREFIX}/meta": {"vehicle": "demo", "version": "0.1.0",
                       "devices": [{"id": "battery"}, {"id": "relays"}, {"id": "room_node"}]},
    f"{PREFIX}/device/battery/status": {"state": "online", "latency_ms": 12},
    f"{PREFIX}/device/relays/status": {"state": "offline", "last_error": "timeout"},
    f"{PREFIX}/device/room_node/status": {"state": "degraded", "last_error": "crc"},
    f"{PREFIX}/device/shore_meter/status": {"state": "online"},
    f"{PREFIX}/state/power/battery/soc": {"v": 81.5, "q": "good", "ts": 1.0},
    f"{PREFIX}/state/room/node/fw_version": {"v": "1.4.2", "q": "good", "ts": 1.0},
    f"{PREFIX}/state/test/raw": b"not json {",
    f"{PREFIX}/alarm/power/battery_low": {"active": True, "severity": "warning"},
    f"{PREFIX}/alarm/comms/hq_unreachable": {"active": False, "acked": False},
    "mcw/v1/other-van/state/power/battery/soc": {"v": 5, "q": "good"},
}


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    require_tool("mosquitto")
    (tmp_path / "broker").mkdir()
    running = Broker(tmp_path / "broker")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_a_bundle_from_a_running_van_holds_every_part(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: Broker) -> None:
    van = Van(tmp_path, monkeypatch, broker.port)
    try:
        van.add_rows(events=30, commands=12)
        await publish_retained(broker.port, RETAINED)
        journal = script(tmp_path, "journalctl",
                         'printf \'{"event": "supervisor_state", "state": "ready"}\\n\'')
        out = tmp_path / "out"
        out.mkdir()
        bundle = await sb.make_bundle(van.config, out, events=10, user="technician",
                                      password="tech-pass-123", journal_cmd=journal, now=NOW)
        # the supervisor's Storage still writes (the bundle's connection only read)
        van.storage.add_event(NOW + 99, "power", {"id": 99})
        assert van.storage.flush() and van.storage.error is None
    finally:
        van.storage.close()

    assert bundle.parent == out and bundle.name == "mcw-bundle-demo-20270115T080000Z.tar.gz"
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600  # the technician's file alone
    found = members(bundle)
    manifest = manifest_of(found)
    assert list(found) == ["manifest.json", "config/vehicle.toml",  # in this order
                           "config/profiles/tank_gauge.toml", "versions.json", "devices.json",
                           "state.json", "events.jsonl", "commands.jsonl",
                           "logs/supervisor.log"]
    assert manifest["left_out"] == {}
    assert manifest["config_check"] == "ok" and manifest["vehicle"] == "demo"
    assert manifest["made"] == "2027-01-15T08:00:00.000Z"

    config = tomllib.loads(found["config/vehicle.toml"].decode())
    assert {config["panel"][f"{n}_pin_hash"] for n in ("crew", "technician", "duress")} == \
        {"REDACTED"}
    assert config["mqtt"]["password_file"] == str(van.password_file)  # the path, kept
    assert config["mqtt"]["port"] == broker.port  # ${MCW_MQTT_PORT} as this machine has it
    assert sorted(manifest["members"]["config/vehicle.toml"]["redacted_keys"]) == [
        "panel.crew_pin_hash", "panel.duress_pin_hash", "panel.technician_pin_hash"]
    original = tomllib.loads(_expand_env(van.config.read_text(), van.config))
    assert config == sb.redact(original)[0]  # everything else as it was
    assert found["config/profiles/tank_gauge.toml"] == GAUGE.read_bytes()

    versions = json.loads(found["versions.json"])
    assert versions["mcw-controller"] is not None and versions["python"]
    assert set(versions["libraries"]) >= {"aiomqtt", "pymodbus", "pydantic", "aiohttp",
                                          "gpiozero", "structlog"}
    assert versions["libraries"]["aiomqtt"]
    assert versions["mosquitto"].startswith("mosquitto version")
    assert versions["os"]["kernel"] and versions["os"]["platform"]
    assert versions["supervisor"] == {"version": "0.1.0", "state": "degraded",
                                      "since": "2027-01-15T08:00:00Z"}
    assert versions["firmware"] == {"room/node/fw_version": {"v": "1.4.2", "q": "good",
                                                             "ts": 1.0}}

    devices = json.loads(found["devices.json"])
    assert devices["meta"]["devices"] == [{"id": "battery"}, {"id": "relays"},
                                          {"id": "room_node"}]
    assert devices["status"]["relays"] == {"state": "offline", "last_error": "timeout"}
    assert set(devices["status"]) == {"battery", "relays", "room_node", "shore_meter"}
    state = json.loads(found["state.json"])
    assert state["status"]["state"] == "degraded"
    assert state["state"]["power/battery/soc"]["v"] == 81.5
    assert state["state"]["test/raw"] == "not json {"  # text, not made-up JSON
    assert "other-van" not in found["state.json"].decode()  # only this van
    assert state["alarm"]["power/battery_low"]["active"] is True

    events = jsonl(found["events.jsonl"])
    assert [e["seq"] for e in events] == list(range(21, 31))  # the newest 10, oldest first
    assert events[-1]["data"] == {"kind": "power", "id": 30, "n": 30, "text": "event 30"}
    assert events[-1]["ts_iso"] == "2027-01-15T08:00:30.000Z"
    commands = jsonl(found["commands.jsonl"])
    assert [c["id"] for c in commands] == [f"cmd-{n}" for n in range(3, 13)]
    assert commands[-1]["args"] == {"circuit": "fridge", "on": True}
    assert manifest["members"]["events.jsonl"]["rows"] == 10

    assert found["logs/supervisor.log"] == b'{"event": "supervisor_state", "state": "ready"}\n'
    assert_no_secret(bundle, [*van.secrets, "tech-pass-123"])

    assert sb.summary(bundle) == {
        "bundle": bundle.name, "bytes": bundle.stat().st_size,
        "made": "2027-01-15T08:00:00.000Z", "vehicle": "demo",
        "devices": {"online": 2, "offline": 1, "degraded": 1}, "alarms_active": 1,
        "events": 10, "commands": 10, "left_out": []}


async def test_without_a_broker_the_bundle_is_made_and_says_why(van: Van) -> None:
    van.add_rows(events=3, commands=1)
    bundle = await sb.make_bundle(van.config, van.folder / "b.tar.gz", journal_cmd=NO_JOURNAL)
    found = members(bundle)
    manifest = manifest_of(found)
    assert {"devices.json", "state.json"} & set(found) == set()
    for member in ("devices.json", "state.json"):
        assert "cannot reach the broker at 127.0.0.1:" in manifest["left_out"][member]
    versions = json.loads(found["versions.json"])
    assert versions["supervisor"] is None and versions["broker"].startswith("not read: cannot")
    assert len(jsonl(found["events.jsonl"])) == 3 and "config/vehicle.toml" in found
    assert sb.summary(bundle)["devices"] is None
    assert_no_secret(bundle, van.secrets)


async def test_a_refused_login_is_noted_and_its_password_is_nowhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = require_tool("mosquitto_passwd")
    require_tool("mosquitto")
    passwords = tmp_path / "broker.passwd"
    await asyncio.to_thread(subprocess.run, [tool, "-c", "-b", str(passwords), "technician",
                                             "right-password-1"], check=True,
                            capture_output=True)
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker",
                    extra=["allow_anonymous false", f"password_file {passwords}"])
    await broker.start()
    (tmp_path / "van").mkdir()
    van = Van(tmp_path / "van", monkeypatch, broker.port)
    try:
        bundle = await sb.make_bundle(van.config, tmp_path / "b.tar.gz", user="technician",
                                      password="wrong-password-2", journal_cmd=NO_JOURNAL)
        anonymous = await sb.make_bundle(van.config, tmp_path / "a.tar.gz", user=None,
                                         journal_cmd=NO_JOURNAL)
    finally:
        van.storage.close()
        await broker.stop()
    reason = manifest_of(members(bundle))["left_out"]["devices.json"]
    assert reason.endswith("refused the login of user 'technician': wrong user name or password")
    assert "anonymous" in manifest_of(members(anonymous))["left_out"]["state.json"]
    assert_no_secret(bundle, ["wrong-password-2", *van.secrets])


async def test_a_missing_or_damaged_database_is_noted_not_fatal(van: Van) -> None:
    van.storage.close()
    van.db_path.unlink()
    bundle = await sb.make_bundle(van.config, van.folder / "a.tar.gz", read_broker=False,
                                  journal_cmd=NO_JOURNAL)
    manifest = manifest_of(members(bundle))
    assert manifest["left_out"]["events.jsonl"] == f"no database at {van.db_path}"
    assert manifest["left_out"]["commands.jsonl"] == f"no database at {van.db_path}"

    van.db_path.write_bytes(b"this card lost its filesystem " * 200)
    bundle = await sb.make_bundle(van.config, van.folder / "b.tar.gz", read_broker=False,
                                  journal_cmd=NO_JOURNAL)
    found = members(bundle)
    manifest = manifest_of(found)
    assert "file is not a database" in manifest["left_out"]["events.jsonl"]
    assert {"config/vehicle.toml", "versions.json"} <= set(found)
    assert van.db_path.read_bytes().startswith(b"this card")  # not touched


def test_rows_are_cut_at_their_size_keeping_the_newest(van: Van) -> None:
    van.add_rows(events=50, commands=0)
    found = sb.read_rows(van.db_path, 40, max_bytes=1000)
    data, rows, cut = found["events.jsonl"]
    lines = jsonl(data)
    assert len(lines) == rows < 40 and len(data) <= 1000
    assert lines[-1]["seq"] == 50 and [e["seq"] for e in lines] == list(range(51 - rows, 51))
    assert cut == f"cut at 1000 bytes: the newest {rows} rows kept"
    assert found["commands.jsonl"] == (b"", 0, None)


async def test_a_long_journal_keeps_its_newest_lines_and_says_it_was_cut(van: Van) -> None:
    journal = script(van.folder, "journalctl",
                     'i=0; while [ $i -lt 3000 ]; do echo "line $i of the journal"; '
                     'i=$((i+1)); done')
    bundle = await sb.make_bundle(van.config, van.folder / "b.tar.gz", read_broker=False,
                                  journal_cmd=journal, log_cap=10_000,
                                  log_file=van.folder / "ignored.log")
    found = members(bundle)
    log = found["logs/supervisor.log"].decode()
    assert log.endswith("line 2999 of the journal\n") and len(log) <= 10_000
    assert log.startswith("line ")  # from a line's start
    about = manifest_of(found)["members"]["logs/supervisor.log"]
    assert about["cut"].startswith(f"cut: the newest {len(log)} of ")
    assert "ignored.log" in about["ignored"]


@pytest.mark.parametrize("journal", ["absent", "empty"])
async def test_without_the_journal_the_log_file_is_taken(van: Van, journal: str) -> None:
    cmd = NO_JOURNAL if journal == "absent" else script(van.folder, "journalctl", "exit 0")
    log = van.folder / "supervisor.log"
    log.write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(2000)))
    bundle = await sb.make_bundle(van.config, van.folder / "b.tar.gz", read_broker=False,
                                  journal_cmd=cmd, log_file=log, log_cap=500)
    found = members(bundle)
    taken = found["logs/supervisor.log"]
    assert taken.endswith(b'{"n": 1999}\n') and taken.startswith(b'{"n": ')
    about = manifest_of(found)["members"]["logs/supervisor.log"]
    assert about["source"] == str(log) and about["cut"].startswith("cut: the newest")
    assert ("not installed" if journal == "absent" else "no lines") in about["why"]

    bundle = await sb.make_bundle(van.config, van.folder / "c.tar.gz", read_broker=False,
                                  journal_cmd=cmd)
    reason = manifest_of(members(bundle))["left_out"]["logs/supervisor.log"]
    assert reason.endswith("and no --log FILE was given")


async def test_a_hung_journal_is_killed_at_its_timeout(van: Van) -> None:
    journal = script(van.folder, "journalctl", "echo started\nexec sleep 600")
    bundle = await sb.make_bundle(van.config, van.folder / "b.tar.gz", read_broker=False,
                                  journal_cmd=journal, journal_timeout=0.5)
    reason = manifest_of(members(bundle))["left_out"]["logs/supervisor.log"]
    assert "did not finish within 0.5 s" in reason


async def test_a_failing_part_is_recorded_and_the_rest_is_written(
        van: Van, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_args: Any) -> dict[str, Any]:
        raise RuntimeError("a part that breaks")

    monkeypatch.setattr(sb, "_versions", broken)
    bundle = await sb.make_bundle(van.config, van.folder / "b.tar.gz", read_broker=False,
                                  journal_cmd=NO_JOURNAL)
    found = members(bundle)
    assert manifest_of(found)["left_out"]["versions.json"] == \
        "failed: RuntimeError: a part that breaks"
    assert {"config/vehicle.toml", "events.jsonl", "commands.jsonl"} <= set(found)


async def test_an_unparsable_config_is_left_out_and_the_bundle_still_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "vehicle.toml"
    config.write_text('[panel]\ncrew_pin_hash = "pbkdf2_sha256$1$abc$def"\n[broken\n')
    bundle = await sb.make_bundle(config, read_broker=False, journal_cmd=NO_JOURNAL, now=NOW)
    assert bundle == tmp_path / "mcw-bundle-unknown-20270115T080000Z.tar.gz"
    found = members(bundle)
    manifest = manifest_of(found)
    assert "cannot be parsed" in manifest["left_out"]["config/vehicle.toml"]
    assert "config/vehicle.toml" not in found
    assert b"pbkdf2_sha256$1$abc$def" not in b"".join(found.values())
    assert manifest["database"] == "/var/lib/mcw/mcw.sqlite"  # the default, noted


def test_bundle_command_prints_the_path_and_fails_cleanly_when_it_cannot_write(
        van: Van, capsys: pytest.CaptureFixture[str]) -> None:
    van.storage.close()
    out = van.folder / "ticket.tar.gz"
    assert sb.bundle_command(van.config, out, 5, None, "technician", None) == 0
    printed = capsys.readouterr()
    assert printed.out == f"{out}\n" and "left out: devices.json" in printed.err
    assert sb.bundle_command(van.config, van.folder / "no" / "such" / "x.tar.gz", 5, None,
                             None, None) == 2
    assert "cannot write in" in capsys.readouterr().err
    assert not list((van.folder).glob(".mcw-bundle-*"))  # no half-written file left
    assert sb.event_count("5000") == 5000
    for bad in ("0", "x", str(MAX_BUNDLE_EVENTS + 1)):
        with pytest.raises(argparse.ArgumentTypeError, match=r"must be|not a whole"):
            sb.event_count(bad)


def test_summary_refuses_what_is_not_a_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip")
    with pytest.raises(sb.BundleError, match="not a readable bundle"):
        sb.summary(junk)
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("other.txt"), io.BytesIO(b""))
    with pytest.raises(sb.BundleError, match="not a readable bundle"):
        sb.summary(empty)


# ---- redaction, by hand and by property --------------------------------------------------------


def test_secrets_in_every_toml_form_are_redacted() -> None:
    text = '''
api.key = 'literal-secret-1'
[mqtt]
password_file = "/etc/mcw/mqtt.password"
password = """multi
line-secret-2"""
[room.session]
sound_masking = { device = "d", output = "o", token = "inline-secret-3" }
[[hq]]
client_secret = ["array-secret-4", "array-secret-5"]
SSH_Key = 123456789012
[panel]
crew_pin_hash = "pbkdf2_sha256$1$c2FsdA==$aGFzaA=="
keepalive_s = 30
'''
    data = tomllib.loads(text)
    redacted, paths, secrets = sb.redact(data)
    written = sb.toml_dumps(redacted)
    for secret in ("literal-secret-1", "line-secret-2", "inline-secret-3", "array-secret-4",
                   "array-secret-5", "123456789012", "c2FsdA"):
        assert secret not in written
    assert sorted(paths) == ["api.key", "hq[0].SSH_Key", "hq[0].client_secret",
                             "mqtt.password", "panel.crew_pin_hash",
                             "room.session.sound_masking.token"]
    assert "123456789012" in secrets and "multi\nline-secret-2" in secrets
    back = tomllib.loads(written)
    assert back["mqtt"]["password_file"] == "/etc/mcw/mqtt.password"
    assert back["panel"]["keepalive_s"] == 30 and back["room"]["session"]["sound_masking"] == \
        {"device": "d", "output": "o", "token": "REDACTED"}


def test_which_keys_hold_secrets() -> None:
    for key in ("password", "mqtt_password", "secret", "api_token", "key", "bridge_keyfile",
                "crew_pin_hash", "Duress_PIN_HASH", "credentials", "passphrase"):
        assert sb.is_secret_key(key), key
    for key in ("password_file", "pin", "keepalive_s", "host", "port", "label", "pin_count"):
        assert not sb.is_secret_key(key), key


TOML_KEY = st.text(max_size=8)
TOML_SCALAR = st.one_of(
    st.text(max_size=20), st.integers(min_value=-2**63, max_value=2**63 - 1), st.booleans(),
    st.floats(allow_nan=False), st.dates(), st.times(),
    st.datetimes(timezones=st.none() | st.just(UTC) |
                 st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-720, 720))))
TOML_VALUE = st.recursive(TOML_SCALAR, lambda inner: st.lists(inner, max_size=4) |
                          st.dictionaries(TOML_KEY, inner, max_size=4), max_leaves=20)


@FUZZ
@given(st.dictionaries(TOML_KEY, TOML_VALUE, max_size=6))
def test_the_toml_writer_gives_back_what_it_was_given(data: dict[str, Any]) -> None:
    assert tomllib.loads(sb.toml_dumps(data)) == data


# a secret's value: marked so that it cannot be found by chance (tar headers are full of
# zeros), with anything after the mark: quotes, backslashes, newlines, controls, non-ASCII
SECRET = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=16) \
    .map(lambda s: "sEcReT~" + s)
SECRET_VALUE = st.one_of(SECRET, st.lists(SECRET, min_size=1, max_size=3),
                         st.dictionaries(st.sampled_from(["a", "value"]), SECRET, min_size=1),
                         st.integers(min_value=314_159_265_358, max_value=10**15))
SECRET_KEY = st.one_of(
    st.builds(lambda pre, word, post: pre + word + post,
              st.sampled_from(["", "mqtt_", "hq-", "Api", "bridge_"]),
              st.sampled_from(["password", "passwd", "secret", "token", "key", "credentials",
                               "passphrase", "PASSWORD", "Token"]),
              st.sampled_from(["", "s", "_b64", "_value", "file2"])),
    st.sampled_from(["crew_pin_hash", "technician_pin_hash", "duress_pin_hash",
                     "extra_pin_hash"]))


def tables(value: Any) -> list[dict[str, Any]]:
    """Every table of a parsed config (inline ones and array-of-table elements too)."""
    if isinstance(value, dict):
        return [value, *(t for v in value.values() for t in tables(v))]
    if isinstance(value, list):
        return [t for v in value for t in tables(v)]
    return []


def with_secrets(draw: st.DrawFn, base: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``base`` with one to six secrets put into tables anywhere in it."""
    data: dict[str, Any] = json.loads(json.dumps(base))  # a deep copy (no dates in ours)
    placed = [(data["panel"], f"{name}_pin_hash") for name in ("crew", "technician", "duress")]
    for _ in range(draw(st.integers(1, 6))):
        candidates = tables(data)
        table = candidates[draw(st.integers(0, len(candidates) - 1))]
        key = draw(SECRET_KEY)
        table[key] = draw(SECRET_VALUE)  # may replace one placed before: its value is gone
        placed.append((table, key))
    return data, [text for table, key in placed for text in sb._texts(table[key])]


@pytest.fixture
def demo_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    monkeypatch.setenv("MCW_RUN_DIR", str(tmp_path / "run"))
    data: dict[str, Any] = tomllib.loads(_expand_env(DEMO.read_text(), DEMO))
    return data


@FUZZ
@given(st.data())
def test_no_secret_survives_redaction(demo_data: dict[str, Any], data: st.DataObject) -> None:
    config, secrets = data.draw(st.composite(lambda draw: with_secrets(draw, demo_data))())
    redacted, _, taken = sb.redact(config)
    written = sb.toml_dumps(redacted)
    assert tomllib.loads(written) == redacted
    assert set(secrets) <= taken
    for secret in secrets:
        assert sb._toml_string(secret)[1:-1] not in written and secret not in written


# each example makes a whole bundle (tens of ms): fewer examples than the pure properties
@settings(FUZZ, max_examples=max(10, FUZZ.max_examples // 5))
@given(st.data())
def test_no_secret_appears_anywhere_in_the_archive(demo_data: dict[str, Any], tmp_path: Path,
                                                   data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        work = Path(folder)
        base = {**demo_data, "mqtt": {**demo_data["mqtt"],
                                      "password_file": str(work / "mqtt.password")},
                "storage": {"path": str(work / "mcw.sqlite")}}
        config, secrets = data.draw(st.composite(lambda draw: with_secrets(draw, base))())
        password = data.draw(SECRET)
        (work / "mqtt.password").write_text(password + "\n")
        path = work / "vehicle.toml"
        path.write_text(sb.toml_dumps(config))
        storage = Storage(work / "mcw.sqlite")
        storage.add_event(NOW, "power", {"id": 1, "text": "an event"})
        # flushed first: a close() right behind a write waits 10 s (Storage's writer can
        # take the stop sentinel into the write's batch and lose it)
        assert storage.flush()
        storage.close()
        # a log that carried them: the known secrets are taken out of every member too
        log = work / "supervisor.log"
        log.write_text("".join(f"leaked {s}\n" for s in [*secrets, password]))
        bundle = asyncio.run(sb.make_bundle(path, work / "b.tar.gz", read_broker=False,
                                            journal_cmd=NO_JOURNAL, log_file=log))
        found = members(bundle)
        assert {"config/vehicle.toml", "logs/supervisor.log", "events.jsonl"} <= set(found)
        assert_no_secret(bundle, [*secrets, password])
        assert json.loads(found["manifest.json"])["members"]["config/vehicle.toml"]


def test_dates_and_times_are_written_as_toml() -> None:
    data = {"d": date(2027, 1, 15), "t": time(8, 0, 1), "dt": datetime(2027, 1, 15, 8, 0),
            "tz": datetime(2027, 1, 15, 8, 0, tzinfo=UTC), "f": float("inf"),
            "n": -float("inf"), "e": {}, "l": [], "mixed": [1, {"a": 2}], "aot": [{"x": {}}]}
    assert tomllib.loads(sb.toml_dumps(data)) == data
