"""HQ's fleet view (supervisor/interfaces/fleet_view.py, ``mcwctl fleet``): built from the
retained topics alone, the vans that need HQ first, and whatever a broker holds shown
without error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from testsupport import FUZZ

from supervisor.interfaces.fleet_view import as_json, fleet, format_fleet

NOW = 1_796_300_000.0  # 2026-12-03


def van(vehicle: str, state: str = "ready", **points: Any) -> dict[str, Any]:
    p = f"mcw/v1/{vehicle}"
    out: dict[str, Any] = {f"{p}/status": {"state": state, "session": 3,
                                           "ts": "2026-12-03T05:33:00.000Z"},
                           f"{p}/bridge/hq": 1}
    for name, value in points.items():
        out[f"{p}/state/{name.replace('__', '/')}"] = {"v": value, "q": "good",
                                                        "ts": "2026-12-03T05:33:10.000Z"}
    return out


def test_a_quiet_van_shows_its_link_position_and_when_it_was_seen() -> None:
    rows = fleet(van("mcw-01", comms__lte__signal_dbm=-71, comms__lte__network_type="LTE",
                     comms__position__lat=52.23, comms__position__lon=21.012))
    assert len(rows) == 1
    row = rows[0]
    assert (row.vehicle, row.status, row.link, row.signal_dbm, row.network, row.lat, row.lon) \
        == ("mcw-01", "ready", "up", -71, "LTE", 52.23, 21.012)
    newest = datetime(2026, 12, 3, 5, 33, 10, tzinfo=UTC).timestamp()  # the points' ts
    assert row.last_seen == newest
    text = format_fleet(rows, newest + 125)
    assert "mcw-01" in text and "-71 dBm LTE" in text and "52.230,21.012" in text
    assert "2 min" in text and "0 panics not acknowledged" in text


def test_vans_that_need_hq_come_first() -> None:
    retained = {**van("a-quiet"), **van("b-lost", "lost"), **van("c-panic"), **van("d-crit")}
    retained["mcw/v1/c-panic/alarm/room/panic"] = {
        "active": True, "acked": False, "severity": "critical", "panic": "p-7"}
    retained["mcw/v1/c-panic/state/room/panic/delivery"] = {"v": "received", "q": "good"}
    retained["mcw/v1/d-crit/alarm/power/battery_low"] = {
        "active": True, "acked": False, "severity": "critical"}
    retained["mcw/v1/d-crit/alarm/comms/hq_unreachable"] = {
        "active": True, "acked": True, "severity": "warning"}
    retained["mcw/v1/a-quiet/alarm/climate/old"] = {"active": False, "severity": "warning"}
    retained["hq/v1/b-lost/link"] = {"state": "down"}
    rows = fleet(retained)
    assert [r.vehicle for r in rows] == ["c-panic", "d-crit", "b-lost", "a-quiet"]
    assert rows[0].panic == "p-7" and rows[0].panic_delivery == "received"
    assert rows[1].alarms == ["critical power/battery_low", "warning comms/hq_unreachable"]
    assert rows[2].link == "down" and rows[3].alarms == []
    text = format_fleet(rows, NOW)
    assert "PANIC NOT ACKNOWLEDGED (received)" in text and "1 panic not acknowledged" in text


def test_an_acknowledged_panic_is_an_alarm_but_no_longer_waits_for_hq() -> None:
    retained = van("mcw-02")
    retained["mcw/v1/mcw-02/alarm/room/panic"] = {
        "active": True, "acked": True, "severity": "critical", "panic": "p-8"}
    (row,) = fleet(retained)
    assert row.panic is None and row.alarms == ["critical room/panic"]


def test_the_echo_knows_better_than_a_stale_bridge_notification() -> None:
    retained = {**van("mcw-03"), "hq/v1/mcw-03/link": {"state": "down"}}
    assert fleet(retained)[0].link == "down"


def test_an_empty_broker_says_so() -> None:
    assert "no van" in format_fleet(fleet({}), NOW)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() |
                       st.text(max_size=50),
                       lambda c: st.lists(c, max_size=4) | st.dictionaries(
                           st.sampled_from(["v", "ts", "state", "active", "acked", "severity",
                                            "panic", "q"]), c, max_size=5), max_leaves=10)
TOPICS = st.text(max_size=60) | st.builds(
    "{}/{}/{}".format, st.sampled_from(["mcw/v1", "hq/v1", "mcw/v2"]),
    st.sampled_from(["mcw-01", "X", "", "a" * 40]),
    st.sampled_from(["status", "link", "bridge/hq", "alarm/room/panic", "alarm/x",
                     "state/comms/lte/signal_dbm", "state/comms/position/lat",
                     "state/room/panic/delivery", "state/comms/lte/network_type"]))


@settings(FUZZ)
@given(retained=st.dictionaries(TOPICS, JSONISH, max_size=12))
def test_whatever_the_broker_holds_the_view_is_shown(retained: dict[str, Any]) -> None:
    rows = fleet(retained)
    assert len({r.vehicle for r in rows}) == len(rows)
    format_fleet(rows, NOW)
    json.dumps(as_json(rows))
    for row in rows:
        assert row.lat is None or -90 <= row.lat <= 90
        assert row.link in ("up", "down", "unknown")
