"""HQ's alarm desk (supervisor/interfaces/hq_desk.py): each event once, whatever the copies;
each panic one receipt; anything a bridge may carry read without error."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from testsupport import FUZZ

from supervisor.interfaces.hq_desk import (
    ASK_AGAIN_S,
    FIRST_BACKLOG,
    MAX_GAPS,
    MAX_PAYLOAD,
    MAX_TRIES,
    AlarmDesk,
    Arrival,
    Due,
    Outcome,
    read_arrival,
    receipt_command,
)


def event(eid: int, prev: int = 0, **more: object) -> bytes:
    return json.dumps({"id": eid, "prev": prev, "ts": "2026-12-03T05:00:00Z", "kind": "alarm",
                       **more}).encode()


def take(desk: AlarmDesk, eid: int, prev: int, now: float | None = None) -> Outcome:
    arrival = read_arrival("mcw/v1/van-7/event", event(eid, prev))
    assert arrival is not None
    return desk.take(arrival, now)


def test_a_lost_event_is_asked_for_again_once_until_the_chain_is_whole(tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    assert take(desk, 1, 0) == Outcome(new=True)
    assert take(desk, 2, 1) == Outcome(new=True)
    # 3..6 lost upstream (the bridge's queue overflowed); 7 names 6 before it
    assert take(desk, 7, 6) == Outcome(new=True, resend=(3, 6))
    assert take(desk, 8, 7) == Outcome(new=True)
    # the van sends the newest of them (a batch of two here), oldest first: 5 names 4,
    # which is missing too: ask for the rest
    assert take(desk, 5, 4) == Outcome(new=True, resend=(3, 4))
    assert take(desk, 6, 5) == Outcome(new=True)
    assert take(desk, 3, 2) == Outcome(new=True)
    assert take(desk, 4, 3) == Outcome(new=True)
    assert [e["id"] for e in desk.events("van-7")] == list(range(1, 9))
    assert take(desk, 7, 6) == Outcome()  # a copy: nothing more to do
    assert desk.overdue(time.time() + ASK_AGAIN_S) == Due([], [])


def test_what_is_still_missing_is_asked_for_again_then_given_up(tmp_path: Path) -> None:
    """The van's answer can be lost too (the same full queue): still missing after
    ASK_AGAIN_S with nothing heard from the van since, the rest is asked for again, from
    after what came; after MAX_TRIES the gap is reported lost (the van has pruned them)."""
    desk = AlarmDesk(tmp_path / "hq.db")
    now = time.time()
    take(desk, 1, 0)
    assert take(desk, 9, 8) == Outcome(new=True, resend=(2, 8))
    take(desk, 2, 1)
    take(desk, 3, 2)  # 4..8 lost again on the way
    assert desk.overdue(now + 1) == Due([], [])
    later = now + ASK_AGAIN_S + 1
    assert desk.overdue(later) == Due([("van-7", (4, 8))], [])
    assert desk.overdue(later + 1) == Due([], [])  # asked just now
    for n in range(2, MAX_TRIES):
        assert desk.overdue(later + n * ASK_AGAIN_S).ask == [("van-7", (4, 8))]
    assert desk.overdue(later + MAX_TRIES * ASK_AGAIN_S) == Due([], [("van-7", 8)])
    assert desk.overdue(later + (MAX_TRIES + 5) * ASK_AGAIN_S) == Due([], [])


def test_a_van_still_sending_is_not_asked_twice(tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    now = time.time()
    take(desk, 1, 0)
    assert take(desk, 9, 8).resend == (2, 8)
    arrival = read_arrival("mcw/v1/van-7/event", event(10, 9))
    assert arrival is not None
    desk.take(arrival, now + ASK_AGAIN_S)  # the backlog is still coming in
    assert desk.overdue(now + ASK_AGAIN_S + 1) == Due([], [])


def last(desk: AlarmDesk, number: int, now: float) -> None:
    arrival = read_arrival("mcw/v1/van-7/events/last", json.dumps({"id": number}).encode())
    assert arrival == Arrival("van-7", last=number)
    desk.take(arrival, now)


def test_the_newest_events_lost_with_nothing_after_them_are_asked_for(tmp_path: Path) -> None:
    """Events 4..5 lost with the bridge's queue and nothing made since: no later event shows
    the gap, the van's retained ``events/last`` (5) does, once the van has been quiet long
    enough for a backlog still on its way to have come."""
    desk = AlarmDesk(tmp_path / "hq.db")
    now = time.time()
    for n in range(1, 4):
        take(desk, n, n - 1, now)
    last(desk, 5, now)
    assert desk.overdue(now + ASK_AGAIN_S / 2) == Due([], [])
    assert desk.overdue(now + ASK_AGAIN_S + 1) == Due([("van-7", (4, 5))], [])
    assert desk.overdue(now + ASK_AGAIN_S + 2) == Due([], [])  # asked: once
    # the answer lost too: asked again like any gap
    assert desk.overdue(now + 2 * ASK_AGAIN_S + 2) == Due([("van-7", (4, 5))], [])
    take(desk, 4, 3, now)
    take(desk, 5, 4, now)
    assert desk.overdue(now + 4 * ASK_AGAIN_S) == Due([], [])


def test_a_newest_number_the_desk_has_or_gets_in_time_asks_for_nothing(
        tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    now = time.time()
    take(desk, 1, 0)
    last(desk, 1, now)  # had it already
    last(desk, 3, now)  # told before the events (state is not paced): they come meanwhile
    take(desk, 2, 1, now + ASK_AGAIN_S - 1)  # a backlog still coming in
    assert desk.overdue(now + ASK_AGAIN_S + 1) == Due([], [])
    take(desk, 3, 2)
    assert desk.overdue(now + 3 * ASK_AGAIN_S) == Due([], [])


def test_a_van_cannot_make_the_desk_track_more_than_a_few_gaps(tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    take(desk, 1, 0)
    for n in range(100):  # a broken van: every event names a missing one
        take(desk, 1000 + 2 * n, 999 + 2 * n)
    assert take(desk, 1000, 999) == Outcome()  # a copy: no new gap looked at
    due = desk.overdue(time.time() + ASK_AGAIN_S + 1)
    assert len(due.ask) == MAX_GAPS and all(last >= 999 + 2 * (100 - MAX_GAPS)
                                           for _, (_, last) in due.ask)


def test_a_restart_skips_numbers_without_a_loss(tmp_path: Path) -> None:
    """After a restart the van's numbers jump (blocks reserved on disk); ``prev`` says that
    nothing is missing."""
    desk = AlarmDesk(tmp_path / "hq.db")
    assert take(desk, 1, 0) == Outcome(new=True)
    assert take(desk, 1001, 1) == Outcome(new=True)
    assert take(desk, 2001, 1500) == Outcome(new=True, resend=(1002, 1500))


def test_a_van_met_late_is_asked_for_its_recent_past_only(tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    assert take(desk, 5000, 4999) == Outcome(new=True, resend=(4000, 4999))
    assert take(desk, 4500, 4499) == Outcome(new=True, resend=(4000, 4499))  # walking back
    assert take(desk, 4000, 3999) == Outcome(new=True)  # the floor: no further


def test_copies_of_an_event_are_logged_once_in_the_vans_order(tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    arrivals = [read_arrival("mcw/v1/van-7/event", event(i)) for i in (3, 1, 2, 3, 1)]
    news = [desk.take(a).new for a in arrivals if a is not None]
    assert news == [True, True, True, False, False]
    assert [e["id"] for e in desk.events("van-7")] == [1, 2, 3]
    assert desk.copies == 2
    desk.close()
    again = AlarmDesk(tmp_path / "hq.db")  # after HQ's restart: still known
    one = read_arrival("mcw/v1/van-7/event", event(2))
    assert one is not None and again.take(one) == Outcome()


def test_the_same_event_number_of_two_vans_is_two_events(tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    for van in ("van-1", "van-2"):
        arrival = read_arrival(f"mcw/v1/{van}/event", event(1))
        assert arrival is not None and desk.take(arrival).new


def test_a_panic_gets_one_receipt_from_its_event_or_its_alarm(tmp_path: Path) -> None:
    desk = AlarmDesk(tmp_path / "hq.db")
    alarm = json.dumps({"active": True, "acked": False, "panic": "p-42", "severity": "critical"})
    first = read_arrival("mcw/v1/van-7/alarm/room/panic", alarm.encode())
    assert first == Arrival("van-7", panic="p-42")
    assert desk.take(first) == Outcome(receipt="p-42")
    assert desk.take(first) == Outcome(receipt="p-42")  # not sent yet: asked again
    desk.receipt_sent("van-7", "p-42")
    second = read_arrival("mcw/v1/van-7/event", event(9, what="panic", panic="p-42"))
    assert second is not None and desk.take(second) == Outcome(new=True)  # no 2nd receipt
    assert json.loads(receipt_command("p-42")) == {"id": "receipt-p-42",
                                                   "args": {"panic": "p-42"}}


def test_what_is_no_event_and_no_panic_is_ignored() -> None:
    for topic, payload in (
            ("mcw/v1/van-7/event", b'{"id": "7"}'), ("mcw/v1/van-7/event", b'{"id": 0}'),
            ("mcw/v1/van-7/event", b'{"id": true}'), ("mcw/v1/van-7/event", b"[1]"),
            ("mcw/v1/van-7/event", b'{"id": 5, "prev": 5}'),
            ("mcw/v1/van-7/event", b'{"id": 5, "prev": "4"}'),
            ("mcw/v1/van-7/event", b'{"id": 5, "prev": 4, "ts": "\\ud800"}'),
            ("mcw/v1/van-7/alarm/room/panic", b'{"active": true, "panic": "\\udc00"}'),
            ("mcw/v1/van-7/event", b"\xff"), ("mcw/v1/Van_7/event", event(1)),
            ("mcw/v2/van-7/event", event(1)), ("mcw/v1/van-7/state/x", event(1)),
            ("mcw/v1/van-7/event", event(1) + b" " * MAX_PAYLOAD),
            ("mcw/v1/van-7/alarm/room/panic", b'{"active": false, "panic": "p"}'),
            ("mcw/v1/van-7/alarm/room/panic", b'{"active": true, "panic": 5}'),
            ("mcw/v1/van-7/alarm/room/panic", b""),
            ("mcw/v1/van-7/events/last", b'{"id": 0}'), ("mcw/v1/van-7/events/last", b"7"),
            ("mcw/v1/van-7/events/last", b'{"id": 2.5}'),
            ("mcw/v1/van-7/events/last", b'{"id": 9007199254740992}')):
        assert read_arrival(topic, payload) is None, (topic, payload)


@settings(FUZZ)
@given(topic=st.text(max_size=80) | st.builds("mcw/v1/{}/{}".format, st.text(max_size=40),
                                              st.sampled_from(["event", "alarm/room/panic",
                                                               "events/last"])),
       payload=st.binary(max_size=300) | st.builds(
           lambda v: json.dumps(v).encode(),
           st.dictionaries(st.sampled_from(["id", "prev", "panic", "what", "active", "ts",
                                            "kind"]),
                           st.none() | st.booleans() | st.integers() | st.text(max_size=70))))
def test_any_message_is_read_or_ignored_and_logging_it_never_fails(
        topic: str, payload: bytes) -> None:
    arrival = read_arrival(topic, payload)
    if arrival is None:
        return
    desk = AlarmDesk(Path(":memory:"))
    outcome = desk.take(arrival)
    assert outcome.new == (arrival.event is not None) and outcome.receipt == arrival.panic
    if arrival.event is not None and arrival.event.get("prev", 0):
        prev = arrival.event["prev"]
        assert outcome.resend == (max(0, prev - FIRST_BACKLOG) + 1, prev)
    else:
        assert outcome.resend is None
