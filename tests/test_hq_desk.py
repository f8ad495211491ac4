"""HQ's alarm desk (supervisor/interfaces/hq_desk.py): each event once, whatever the copies;
each panic one receipt; anything a bridge may carry read without error."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from testsupport import FUZZ

from supervisor.interfaces.hq_desk import (
    MAX_PAYLOAD,
    AlarmDesk,
    Arrival,
    read_arrival,
    receipt_command,
)


def event(eid: int, **more: object) -> bytes:
    return json.dumps({"id": eid, "ts": "2026-12-03T05:00:00Z", "kind": "alarm", **more}).encode()


def test_copies_of_an_event_are_logged_once_in_the_vans_order(tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    arrivals = [read_arrival("mcw/v1/van-7/event", event(i)) for i in (3, 1, 2, 3, 1)]
    news = [desk.take(a)[0] for a in arrivals if a is not None]
    assert news == [True, True, True, False, False]
    assert [e["id"] for e in desk.events("van-7")] == [1, 2, 3]
    assert desk.copies == 2
    desk.close()
    again = AlarmDesk(tmp_path / "hq.db")  # after HQ's restart: still known
    one = read_arrival("mcw/v1/van-7/event", event(2))
    assert one is not None and again.take(one) == (False, None)


def test_the_same_event_number_of_two_vans_is_two_events(tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    for van in ("van-1", "van-2"):
        arrival = read_arrival(f"mcw/v1/{van}/event", event(1))
        assert arrival is not None and desk.take(arrival)[0]


def test_a_panic_gets_one_receipt_from_its_event_or_its_alarm(tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    alarm = json.dumps({"active": True, "acked": False, "panic": "p-42", "severity": "critical"})
    first = read_arrival("mcw/v1/van-7/alarm/room/panic", alarm.encode())
    assert first == Arrival("van-7", panic="p-42")
    assert desk.take(first) == (False, "p-42")
    second = read_arrival("mcw/v1/van-7/event", event(9, what="panic", panic="p-42"))
    assert second is not None and desk.take(second) == (True, None)  # logged, no 2nd receipt
    assert json.loads(receipt_command("p-42")) == {"id": "receipt-p-42",
                                                   "args": {"panic": "p-42"}}


def test_what_is_no_event_and_no_panic_is_ignored() -> None:
    for topic, payload in (
            ("mcw/v1/van-7/event", b'{"id": "7"}'), ("mcw/v1/van-7/event", b'{"id": 0}'),
            ("mcw/v1/van-7/event", b'{"id": true}'), ("mcw/v1/van-7/event", b"[1]"),
            ("mcw/v1/van-7/event", b"\xff"), ("mcw/v1/Van_7/event", event(1)),
            ("mcw/v2/van-7/event", event(1)), ("mcw/v1/van-7/state/x", event(1)),
            ("mcw/v1/van-7/event", event(1) + b" " * MAX_PAYLOAD),
            ("mcw/v1/van-7/alarm/room/panic", b'{"active": false, "panic": "p"}'),
            ("mcw/v1/van-7/alarm/room/panic", b'{"active": true, "panic": 5}'),
            ("mcw/v1/van-7/alarm/room/panic", b"")):
        assert read_arrival(topic, payload) is None, (topic, payload)


@settings(FUZZ)
@given(topic=st.text(max_size=80) | st.builds("mcw/v1/{}/{}".format, st.text(max_size=40),
                                              st.sampled_from(["event", "alarm/room/panic"])),
       payload=st.binary(max_size=300) | st.builds(
           lambda v: json.dumps(v).encode(),
           st.dictionaries(st.sampled_from(["id", "panic", "what", "active", "ts", "kind"]),
                           st.none() | st.booleans() | st.integers() | st.text(max_size=70))))
def test_any_message_is_read_or_ignored_and_logging_it_never_fails(
        topic: str, payload: bytes) -> None:
    arrival = read_arrival(topic, payload)
    if arrival is None:
        return
    desk = AlarmDesk(Path(":memory:"))
    new, receipt = desk.take(arrival)
    assert new == (arrival.event is not None) and receipt == arrival.panic
