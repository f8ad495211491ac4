"""The technician's read-side mcwctl commands: devices, points, watch, events, alarms, version.

The views are built from whatever the broker holds (device_table.py, point_table.py,
live_watch.py) and from the supervisor's SQLite (history_query.py); every payload is
untrusted, so the property tests feed them anything and check that they render, as strict
JSON too, within 80 columns and without a control character reaching the terminal.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from testsupport import FUZZ, Broker, free_port, require_tool

from supervisor.core.storage import Storage
from supervisor.interfaces import device_table, history_query, live_watch, point_table, readonly_db
from supervisor.interfaces.cli_output import clean, decode, dump_json, json_safe, render
from supervisor.interfaces.mcwctl import collect_retained, main

NOW = datetime(2026, 12, 3, 6, 53, 20, tzinfo=UTC).timestamp()
TS = "2026-12-03T06:53:10.000Z"  # 10 s before NOW


def status(state: str = "online", **more: Any) -> dict[str, Any]:
    return {"state": state, "errors": {"timeout": 0, "framing": 0, "exception": 0,
                                       "connection": 0}, "requests": 100,
            "last_ok": TS, "latency_ms": 12.4, "last_error": "", **more}


def meta(*devices: str, points: list[Any] | None = None) -> dict[str, Any]:
    return {"version": "0.1.0",
            "devices": [{"id": d, "profile": f"{d}_profile", "bus": "rs485", "unit": i + 1,
                         "label": d.title()} for i, d in enumerate(devices)],
            "points": points or []}


def lines_of(renderable: Any) -> list[str]:
    """The view's lines as printed on 80 columns (checked to fit), then on 200 (to find what a
    line holds: on 80 a long text folds)."""
    narrow = render(renderable, 80)
    assert all(cell_len(line) <= 80 for line in narrow.splitlines()), narrow
    return render(renderable, 200).splitlines()


# ---- devices -------------------------------------------------------------------------------


def test_devices_failing_first_with_why() -> None:
    retained = {
        "meta": meta("battery", "relays", "room_node", "silent"),
        "device/battery/status": status(),
        "device/relays/status": status("offline", errors={"timeout": 12, "framing": 1,
                                                          "exception": 0, "connection": 0},
                                       last_error="timeout: no response from unit 2"),
        "device/room_node/status": status("degraded", errors={"exception": 3},
                                          last_error="exception: illegal data address"),
        "device/ghost/status": status(),  # not in meta: still shown
    }
    rows = device_table.devices(retained)
    assert [r.id for r in rows] == ["relays", "room_node", "silent", "battery", "ghost"]
    relays = rows[0]
    assert (relays.profile, relays.bus, relays.unit, relays.label) == \
        ("relays_profile", "rs485", 2, "Relays")
    assert relays.errors["timeout"] == 12 and relays.last_ok_epoch == NOW - 10
    assert rows[2].state == "unknown"  # listed, no status on the broker
    assert rows[4].profile is None
    report = device_table.report(retained, None, NOW)
    assert not report.ok
    text = "\n".join(lines_of(report.view))
    relays_line = next(line for line in text.splitlines() if line.startswith("relays "))
    assert "rs485:2" in relays_line and "offline" in relays_line
    assert "12/1/0/0" in relays_line and "10 s" in relays_line
    assert "relays: timeout: no response from unit 2" in text
    assert "room_node: exception: illegal data address" in text
    assert "silent: no readable status" in text
    assert "5 devices, 3 not online" in text
    assert "relays_profile" not in render(report.view, 80)  # no room for it on 80 columns,
    assert "relays_profile" in render(report.view, 120)  # on a wide terminal there is


def test_all_online_is_ok_and_json_has_every_field() -> None:
    retained = {"meta": meta("battery"), "device/battery/status": status()}
    report = device_table.report(retained, None, NOW)
    assert report.ok
    (row,) = json.loads(dump_json(report.data))["devices"]
    assert set(row) == {"id", "profile", "bus", "unit", "label", "state", "errors", "requests",
                        "latency_ms", "last_ok", "last_ok_epoch", "last_error", "blocks",
                        "identity", "wrong_identity"}
    assert row["blocks"] is None and row["identity"] is None and row["last_error"] is None
    assert row["wrong_identity"] is None
    assert not device_table.report({}, None, NOW).ok  # nothing known is not fine


def test_one_device_detail_shows_its_blocks_and_identity() -> None:
    retained = {"meta": meta("room_node"), "device/room_node/status": status(
        blocks=[["holding", 0, 12], ["input", 16, 3], "junk"], identity="RN room node 1.2")}
    report = device_table.report(retained, "room_node", NOW)
    assert report.ok
    text = "\n".join(lines_of(report.view))
    assert "RN room node 1.2" in text and "blocks: 3 read requests per poll" in text
    assert any(line.split()[:4] == ["holding", "0", "12", "11"] for line in text.splitlines())
    assert any(line.split()[:4] == ["input", "16", "3", "18"] for line in text.splitlines())
    assert "junk" in text  # a block that is no block is shown as the text it is
    assert "10 s ago" in text
    without = device_table.report({"device/x/status": status()}, "x", NOW)
    assert "identity    (not published)" in render(without.view)
    assert "blocks: (not published" in render(without.view)
    checked = device_table.report({"device/x/status": status(wrong_identity="")}, "x", NOW)
    assert "no mismatch seen" in render(checked.view)


def test_a_wrong_device_at_the_address_is_called_out() -> None:
    wrong = "identity reads 0, a room node answers 0x524E"
    retained = {"meta": meta("room_node"), "device/room_node/status": status(
        "degraded", wrong_identity=wrong, last_error="timeout: later failure")}
    table_text = "\n".join(lines_of(device_table.report(retained, None, NOW).view))
    assert f"room_node: WRONG DEVICE: {wrong}" in table_text
    assert "room_node: timeout: later failure" in table_text
    detail = "\n".join(lines_of(device_table.report(retained, "room_node", NOW).view))
    assert f"identity    WRONG DEVICE: {wrong}" in detail


def test_an_unknown_device_names_the_known_ones() -> None:
    report = device_table.report({"meta": meta("battery", "relays")}, "nope", NOW)
    assert not report.ok and report.data == {"devices": []}
    assert "no device 'nope' on the broker; known: battery, relays" in render(report.view)


def test_an_unreadable_status_says_so() -> None:
    rows = device_table.devices({"device/relays/status": "<html>oops"})
    assert rows[0].state == "unknown"
    assert rows[0].last_error == "unreadable status: <html>oops"


# ---- points --------------------------------------------------------------------------------

POINTS_META: list[dict[str, Any]] = [
    {"id": "power/battery/soc", "type": "number", "unit": "%", "precision": 0,
     "description": "SOC"},
    {"id": "power/battery/voltage", "type": "number", "unit": "V", "precision": 2,
     "source": {"device": "battery", "register": "voltage", "table": "holding",
                "address": 259, "scale": 100}},
    {"id": "power/inverter/mode", "type": "enum", "unit": "",
     "source": {"device": "multiplus", "register": "mode", "table": "holding", "address": 33,
                "scale": 1, "codes": {"charger_only": 1, "inverter_only": 2, "on": 3}}},
    {"id": "power/battery/current", "type": "number", "unit": "A", "precision": 1},
    {"id": "power/shore/connected", "type": "bool", "unit": ""},
    {"id": "room/panic/local_only", "type": "bool", "unit": "", "local": True},
]


def point_retained() -> dict[str, Any]:
    return {"meta": meta(points=POINTS_META),
            "state/power/battery/soc": {"v": 80.4, "q": "good", "ts": TS},
            "state/power/battery/voltage": {"v": 13.18, "q": "stale", "ts": TS},
            "state/power/inverter/mode": {"v": "inverter_only", "q": "good", "ts": TS},
            "state/power/shore/connected": {"v": False, "q": "good", "ts": TS},
            "state/comms/lte/operator": {"v": "Plus", "q": "good", "ts": TS},
            "state/climate/broken": "not json {"}


def test_points_merge_state_and_meta_and_filter_by_glob() -> None:
    rows = point_table.points(point_retained())
    ids = [r.id for r in rows]
    assert ids == sorted(ids)
    assert "room/panic/local_only" not in ids  # never on MQTT
    assert "power/battery/current" in ids  # in meta, never published: shown as such
    battery = point_table.matching(rows, ["power/battery/*"])
    assert [r.id for r in battery] == ["power/battery/current", "power/battery/soc",
                                       "power/battery/voltage"]
    assert [r.id for r in point_table.matching(rows, ["*/soc", "comms/*"])] == \
        ["comms/lte/operator", "power/battery/soc"]
    text = "\n".join(lines_of(point_table.report(point_retained(), ["power/*"], NOW).view))
    soc = next(line for line in text.splitlines() if line.startswith("power/battery/soc"))
    assert soc.split()[1:] == ["80", "%", "-", "good", "10", "s"]  # no register behind it
    volt = next(line for line in text.splitlines() if line.startswith("power/battery/volt"))
    assert volt.split()[1:] == ["13.18", "V", "1318", "stale", "10", "s", "battery.voltage",
                                "holding", "259"]
    # on 80 columns the register is left out rather than the ids folded
    narrow = render(point_table.report(point_retained(), ["power/*"], NOW).view, 80)
    assert "power/battery/voltage " in narrow and "battery.voltage" not in narrow
    mode = next(line for line in text.splitlines() if line.startswith("power/inverter/mode"))
    assert mode.split()[1:3] == ["inverter_only", "2"]  # the enum's code
    current = next(line for line in text.splitlines() if line.startswith("power/battery/cur"))
    assert current.split()[1:] == ["-", "-", "none", "-"]
    broken = point_table.matching(rows, ["climate/broken"])[0]
    assert broken.value == "not json {" and broken.quality == "unknown"


def test_points_json_rows() -> None:
    data = json.loads(dump_json(point_table.report(point_retained(), ["power/battery/soc"],
                                                   NOW).data))
    assert data == {"points": [{
        "id": "power/battery/soc", "value": 80.4, "unit": "%", "type": "number",
        "quality": "good", "ts": TS, "ts_epoch": NOW - 10, "description": "SOC",
        "precision": 0, "raw": None, "register": None}]}
    volt = json.loads(dump_json(point_table.report(point_retained(), ["*/voltage"],
                                                   NOW).data))["points"][0]
    assert (volt["value"], volt["raw"], volt["register"]) == \
        (13.18, 1318, "battery.voltage holding 259")


@pytest.mark.parametrize(("value", "source", "raw"), [
    (21.5, {"scale": 10}, 215),
    (-3.2, {"scale": 10}, -32),  # a signed register
    (0.333, {"scale": 1}, 0.333),  # an f32: not a whole number, shown as it is
    (True, {"scale": 1}, 1),
    ("on", {"codes": {"on": 3}}, 3),
    ("code_9", {"codes": {"on": 3}}, None),  # a code the profile does not name
    (5, {"scale": 0}, None), (5, {"scale": "10"}, None), (5, {}, None), (None, {"scale": 1}, None),
])
def test_a_raw_value_is_the_published_one_unscaled(value: Any, source: dict[str, Any],
                                                   raw: float | None) -> None:
    assert point_table.raw_of(value, source) == raw
    assert "no point matches" in render(point_table.report({}, ["x/*"], NOW).view)


def test_version_lists_supervisor_and_node_firmware() -> None:
    retained = {"status": {"state": "ready", "version": "0.3.1"}, "meta": meta(),
                "state/room/node/fw_version": {"v": 258, "q": "good", "ts": TS},
                "state/relays/software_version": {"v": 1.0, "q": "stale", "ts": TS},
                "state/power/battery/soc": {"v": 80, "q": "good", "ts": TS}}
    report = point_table.version_report(retained)
    assert report.ok
    assert report.data["supervisor"] == "0.3.1" and report.data["supervisor_state"] == "ready"
    assert [f["point"] for f in report.data["firmware"]] == \
        ["relays/software_version", "room/node/fw_version"]
    assert report.data["mcwctl"] == point_table.package_version()
    text = render(report.view)
    assert "room/node/fw_version" in text and "258" in text and "0.3.1" in text
    nothing = point_table.version_report({})
    assert not nothing.ok and "no node publishes a version" in render(nothing.view)


# ---- watch ---------------------------------------------------------------------------------


def test_watch_lines_and_filters() -> None:
    units = live_watch.units_of(meta(points=POINTS_META))
    soc = live_watch.classify("state/power/battery/soc", {"v": 81, "q": "good", "ts": TS}, NOW)
    assert soc is not None and (soc.kind, soc.subject) == ("state", "power/battery/soc")
    assert live_watch.describe(soc, units) == "state  power/battery/soc = 81 %"
    line = live_watch.text_line(soc, units)
    assert line.endswith("state  power/battery/soc = 81 %")
    assert line[:12] == datetime.fromtimestamp(NOW).strftime("%H:%M:%S") + ".000"
    alarm = live_watch.classify("alarm/power/battery_low", {
        "active": True, "acked": False, "severity": "critical", "text": "Battery low"}, NOW)
    assert alarm is not None
    assert live_watch.describe(alarm, units) == \
        "alarm  power/battery_low: ACTIVE, not acknowledged critical: Battery low"
    device = live_watch.classify("device/relays/status",
                                 status("offline", last_error="timeout: x"), NOW)
    assert device is not None
    assert live_watch.describe(device, units) == "device relays: offline (timeout: x)"
    event = live_watch.classify("event", {"kind": "power", "what": "shed", "id": 7,
                                          "circuits": ["fridge"], "prev": 6}, NOW)
    assert event is not None and event.subject == "power"
    assert live_watch.describe(event, units) == 'event  #7 power: shed circuits=["fridge"]'
    assert live_watch.classify("meta", {}, NOW) is None
    assert live_watch.classify("cmd/crew/x", {}, NOW) is None

    assert live_watch.matches(soc, ["power/battery/*"])
    assert live_watch.matches(soc, ["state/power/*"])
    assert not live_watch.matches(soc, ["climate/*"])
    assert live_watch.matches(alarm, ["power/*"]) and live_watch.matches(device, ["relays"])
    assert live_watch.matches(event, ["event"]) and live_watch.matches(event, ["power"])
    assert live_watch.matches(event, [])
    assert json.loads(live_watch.as_json(soc)) == {
        "arrived": "2026-12-03T06:53:20.000Z", "topic": "state/power/battery/soc",
        "kind": "state", "subject": "power/battery/soc",
        "payload": {"v": 81, "q": "good", "ts": TS}}


def test_watch_decodes_whatever_comes() -> None:
    assert decode(b"") is None
    assert decode(b'{"v": 1}') == {"v": 1}
    assert decode(b"\xff\xfeoops") == "\ufffd\ufffdoops"
    assert decode(b"[" * 100_000) == "[" * 160  # too deep for JSON: its text
    huge = decode(b'"' + b"x" * (2 << 20) + b'"')
    assert isinstance(huge, str) and len(huge) < 200
    odd = live_watch.classify("state/x", "\x1b[2Jhello", NOW)
    assert odd is not None
    assert "\x1b" not in live_watch.describe(odd, {})


# ---- history -------------------------------------------------------------------------------


@pytest.fixture
def history_db(tmp_path: Path) -> Path:
    """A supervisor SQLite (its own schema, written by its own Storage) with a few events."""
    path = tmp_path / "mcw.sqlite"
    storage = Storage(path)
    base = NOW - 7200
    storage.add_event(base, "alarm", {"kind": "alarm", "alarm": "power/battery_low",
                                      "what": "raised", "severity": "critical",
                                      "text": "Battery low", "detail": "11.6 V", "id": 1})
    storage.add_event(base + 600, "command", {
        "kind": "command", "action": "power/circuit", "args": {"circuit": "fridge", "on": True},
        "role": "crew", "source": "mqtt", "status": "done", "code": "ok",
        "message": "fridge on", "command": "c-1", "id": 2})
    storage.add_event(base + 3700, "power", {"kind": "power", "what": "shed", "id": 3,
                                             "circuits": ["fridge"]})
    storage.add_event(base + 3800, "alarm", {"kind": "alarm", "alarm": "power/battery_low",
                                             "what": "cleared", "severity": "critical",
                                             "text": "Battery low", "id": 4})
    storage.flush()
    storage.close()
    return path


def test_time_specs() -> None:
    assert history_query.parse_time("2h", NOW) == NOW - 7200
    assert history_query.parse_time("30m", NOW) == NOW - 1800
    assert history_query.parse_time("30min", NOW) == NOW - 1800
    assert history_query.parse_time("1.5d", NOW) == NOW - 1.5 * 86400
    assert history_query.parse_time("90s", NOW) == NOW - 90
    assert history_query.parse_time("1w", NOW) == NOW - 7 * 86400
    assert history_query.parse_time("2026-12-03T06:53:20Z", 0) == NOW
    assert history_query.parse_time("2026-12-03T08:53:20+02:00", 0) == NOW
    local = datetime(2026, 12, 3, 7, 0).timestamp()
    assert history_query.parse_time("2026-12-03T07:00", 0) == local
    assert history_query.parse_time("2026-12-03", 0) == datetime(2026, 12, 3).timestamp()
    for bad in ("yesterday", "2h ago", "-1h", "", "99999999999d", "1e9h", "2026-13-01"):
        with pytest.raises(ValueError):
            history_query.parse_time(bad, NOW)


def test_events_between_times_by_kind_and_limit(history_db: Path) -> None:
    db = readonly_db.open_readonly(history_db)
    base = NOW - 7200
    assert [r.seq for r in history_query.query(db, None, None, None, 100)] == [1, 2, 3, 4]
    assert [r.seq for r in history_query.query(db, base + 1, None, None, 100)] == [2, 3, 4]
    assert [r.seq for r in history_query.query(db, None, base + 3700, None, 100)] == [1, 2, 3]
    assert [r.seq for r in history_query.query(db, None, None, "alarm", 100)] == [1, 4]
    assert [r.seq for r in history_query.query(db, None, None, None, 2)] == [3, 4]  # newest
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.execute("DELETE FROM event")
    db.close()

    report = history_query.report(history_db, False, None, None, None, 100)
    text = "\n".join(lines_of(report.view))
    assert "raised power/battery_low (critical): Battery low (11.6 V)" in text
    assert "power/circuit circuit=fridge on=true by crew via mqtt: done (ok) fridge" in text
    assert "shed circuits=" in text and "4 events" in text
    assert datetime.fromtimestamp(base).strftime("%Y-%m-%d %H:%M:%S") in text
    rows = json.loads(dump_json(report.data))["events"]
    assert rows[0] == {"seq": 1, "ts": "2026-12-03T04:53:20.000Z", "kind": "alarm",
                       "data": {"kind": "alarm", "alarm": "power/battery_low",
                                "what": "raised", "severity": "critical",
                                "text": "Battery low", "detail": "11.6 V", "id": 1}}
    short = history_query.report(history_db, False, None, None, None, 2)
    assert "the newest 2" in render(short.view)


def test_alarms_are_the_alarm_events(history_db: Path) -> None:
    report = history_query.report(history_db, True, None, None, None, 100)
    assert report.data == {"alarms": [
        {"seq": 1, "ts": "2026-12-03T04:53:20.000Z", "alarm": "power/battery_low",
         "what": "raised", "severity": "critical", "text": "Battery low", "detail": "11.6 V"},
        {"seq": 4, "ts": "2026-12-03T05:56:40.000Z", "alarm": "power/battery_low",
         "what": "cleared", "severity": "critical", "text": "Battery low", "detail": None}]}
    text = render(report.view)
    assert "2 alarm changes" in text and "cleared" in text
    assert "no alarm" in render(history_query.report(history_db, True, NOW, None, None,
                                                     100).view)


def test_the_database_is_never_created_nor_changed(history_db: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.sqlite"
    with pytest.raises(readonly_db.HistoryError, match="no database at"):
        readonly_db.open_readonly(missing)
    assert not missing.exists()
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(readonly_db.HistoryError, match="no such table: event"):
        readonly_db.open_readonly(other)
    before = history_db.read_bytes()
    history_query.report(history_db, False, None, None, None, 100)
    assert history_db.read_bytes() == before
    # the supervisor is stopped: no -wal or -shm is left behind (owned by whoever ran mcwctl,
    # one would keep the supervisor from opening its database)
    assert sorted(p.name for p in tmp_path.glob("mcw.sqlite*")) == ["mcw.sqlite"]


def test_reading_beside_a_running_supervisor(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "live.sqlite")
    try:
        storage.add_event(NOW, "power", {"kind": "power", "what": "shed", "id": 1})
        storage.flush()
        first = history_query.report(tmp_path / "live.sqlite", False, None, None, None, 10)
        assert [e["data"]["what"] for e in first.data["events"]] == ["shed"]
        storage.add_event(NOW + 1, "power", {"kind": "power", "what": "restore", "id": 2})
        assert storage.flush() and storage.error is None  # the writer is not held up
        again = history_query.report(tmp_path / "live.sqlite", False, None, None, None, 10)
        assert [e["data"]["what"] for e in again.data["events"]] == ["shed", "restore"]
    finally:
        storage.close()


def test_a_wal_without_its_shm_is_left_alone(history_db: Path) -> None:
    Path(f"{history_db}-wal").write_bytes(b"")
    with pytest.raises(readonly_db.HistoryError, match="-shm file is missing"):
        readonly_db.open_readonly(history_db)
    assert not Path(f"{history_db}-shm").exists()


def test_mcwctl_events_and_its_errors(history_db: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--db", str(history_db), "--json", "--kind", "power"]) == 0
    assert [r["seq"] for r in json.loads(capsys.readouterr().out)["events"]] == [3]
    assert main(["alarms", "--db", str(history_db), "--until", "2026-12-03T05:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "raised" in out and "cleared" not in out
    assert main(["events", "--db", str(tmp_path / "none.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcwctl: no database at") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        main(["events", "--db", str(history_db), "--since", "last tuesday"])
    assert exc.value.code == 2
    assert "not a time: 'last tuesday'" in capsys.readouterr().err


def test_mcwctl_unreachable_broker_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    for command in ("devices", "points", "version", "watch"):
        code = main([command, "--vehicle", "demo", "--host", "127.0.0.1", "--port", str(port),
                     "--user", ""])
        assert code == 1, command
        err = capsys.readouterr().err
        assert err.startswith(f"mcwctl: cannot reach the broker at 127.0.0.1:{port}")
        assert err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["devices", "--vehicle", "demo/#"])  # no wildcard sneaks into a topic
    assert "not a vehicle id" in capsys.readouterr().err


# ---- on a real broker: the flood is cut, the watch shows only live changes ------------------


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    require_tool("mosquitto")
    b = Broker(tmp_path)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


async def test_a_flood_of_retained_topics_is_cut(broker: Broker) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        for start in range(0, 600, 10):  # ten in flight at a time: aiomqtt warns beyond
            await asyncio.gather(*(client.publish(f"mcw/v1/flood/state/p/{i}", b"{}", qos=1,
                                                  retain=True)
                                   for i in range(start, start + 10)))
    started = time.monotonic()
    found = await collect_retained("127.0.0.1", broker.port, ("mcw/v1/flood/#",), limit=100)
    assert len(found) == 100
    assert time.monotonic() - started < 5  # it did not wait for the burst's end


async def test_watch_prints_live_changes_not_the_retained_copies(broker: Broker) -> None:
    prefix = "mcw/v1/w"
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.publish(f"{prefix}/state/old", b'{"v": 1, "q": "good"}', qos=1,
                             retain=True)
        await client.publish(f"{prefix}/meta", json.dumps(meta(points=POINTS_META)), qos=1,
                             retain=True)
        lines: list[str] = []
        watcher = asyncio.create_task(live_watch.watch(
            "127.0.0.1", broker.port, prefix, ["power/*", "event"], lines.append, False, 3,
            30.0))
        # whatever is published before the watch subscribed is not a change it shows, so the
        # publisher repeats until the watch has printed its three lines
        payloads = [(f"{prefix}/state/climate/x", b'{"v": 2}'),  # filtered out
                    (f"{prefix}/state/power/battery/soc", b'{"v": 81, "q": "good"}'),
                    (f"{prefix}/event", b'{"kind": "power", "what": "shed", "id": 9}'),
                    (f"{prefix}/alarm/power/x", b"\x1b]0;pwned\x07 not json")]
        deadline = time.monotonic() + 20
        while not watcher.done() and time.monotonic() < deadline:
            for topic, payload in payloads:
                await client.publish(topic, payload, qos=1)
            await asyncio.wait({watcher}, timeout=0.2)  # a round of changes, then again
        assert await watcher == 3
    assert all("old" not in line and "climate" not in line for line in lines)
    assert any(line.endswith("state  power/battery/soc = 81 %") for line in lines)
    assert any("event  #9 power: shed" in line for line in lines)
    assert any("alarm  power/x: unreadable: \\x1b]0;pwned\\x07 not json" in line
               for line in lines)


# ---- anything on the broker: never a crash, never a control character -------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.sampled_from(["state", "errors", "requests", "last_ok", "latency_ms",
                         "last_error", "blocks", "identity", "v", "q", "ts", "version",
                         "devices", "points", "id", "unit", "bus", "profile", "precision",
                         "local", "timeout", "kind", "what", "active", "acked", "severity",
                         "text", "args", "action", "source", "scale", "codes", "register",
                         "table", "address", "device"]) | st.text(max_size=8), c, max_size=6),
    max_leaves=16)
SUFFIXES = st.sampled_from(["meta", "status", "device/relays/status", "device/x/status",
                            "device/\x1b[31m/status", "state/power/battery/soc",
                            "state/room/fw_version", "state/", "state/[bold]x[/]",
                            "alarm/a", "event"]) | st.text(max_size=30)


@settings(FUZZ)
@given(retained=st.dictionaries(SUFFIXES, JSONISH, max_size=10), device=st.text(max_size=12),
       globs=st.lists(st.text(max_size=8), max_size=2))
def test_whatever_the_broker_holds_every_view_renders(retained: dict[str, Any], device: str,
                                                      globs: list[str]) -> None:
    reports = [device_table.report(retained, None, NOW),
               device_table.report(retained, device, NOW),
               device_table.report(retained, next(iter(
                   r.id for r in device_table.devices(retained)), device), NOW),
               point_table.report(retained, globs, NOW),
               point_table.report(retained, [], NOW),
               point_table.version_report(retained)]
    for report in reports:
        for width in (80, 130):
            text = render(report.view, width)
            assert all(cell_len(line) <= width for line in text.splitlines())
            assert "\x1b" not in text and "\x07" not in text
        json.loads(dump_json(report.data))  # strict JSON: NaN and infinity would fail here
    for suffix, payload in retained.items():
        change = live_watch.classify(suffix, payload, NOW)
        if change is not None:
            line = live_watch.text_line(change, live_watch.units_of(retained.get("meta")))
            assert "\n" not in line and "\x1b" not in line
            json.loads(live_watch.as_json(change))


@settings(FUZZ)
@given(data=JSONISH | st.text(max_size=30), kind=st.sampled_from(["alarm", "command", "x"]),
       ts=st.floats(allow_nan=False) | st.integers(-(2**63), 2**63 - 1))
def test_whatever_an_event_holds_the_history_renders(tmp_path: Path, data: Any, kind: str,
                                                     ts: float) -> None:
    if isinstance(data, dict):
        data = {**data, "kind": kind}
    text_data = data if isinstance(data, str) else json.dumps(data)  # NaN too, as Python does
    path = tmp_path / "fuzz.sqlite"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE event (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT "
                   "NULL, kind TEXT NOT NULL, data TEXT NOT NULL)")
        db.execute("INSERT INTO event(ts, kind, data) VALUES (?, ?, ?)", (ts, kind, text_data))
    db.close()
    for alarms_only in (False, True):
        report = history_query.report(path, alarms_only, None, None, None, 10)
        text = render(report.view)
        assert all(cell_len(line) <= 80 for line in text.splitlines())
        assert "\x1b" not in text
        json.loads(dump_json(report.data))


@given(text=st.text())
def test_clean_leaves_nothing_unprintable(text: str) -> None:
    out = clean(text, 1000)
    assert all(ch.isprintable() for ch in out)


@given(raw=st.binary(max_size=200) | st.builds(lambda c: "[" * c, st.integers(0, 5000)))
def test_decode_takes_any_payload(raw: bytes | str) -> None:
    value = decode(raw)
    assert value is None or isinstance(value, str | int | float | bool | list | dict)
    json.loads(dump_json({"v": json_safe(value)}))
