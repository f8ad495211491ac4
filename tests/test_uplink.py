"""The uplink: the van's events handed to the HQ bridge (``uplink/event``) only while the
bridge says it is connected, oldest first, each once, paced; what HQ asks for again comes
from SQLite through the same pace.

Against a real Mosquitto (the rig of test_mqtt_outbox); the bridge's notification is
published the way the van's broker does it (retained ``bridge/hq``). The token bucket's
bound is a property over any sequence of takes in virtual time.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiomqtt
from hypothesis import given
from hypothesis import strategies as st
from test_mqtt_outbox import ALARM, HOST, Observer, broker, make_rig, observe, topic
from testsupport import DEADLINE_S, Broker, wait_until

from supervisor.interfaces.uplink import RESEND_HELD, RESEND_MAX, TokenBucket


async def bridge_says(port: int, up: bool) -> None:
    """The van's broker's notification for its HQ bridge."""
    async with aiomqtt.Client(HOST, port, timeout=DEADLINE_S) as client:
        await client.publish(topic("bridge/hq"), b"1" if up else b"0", qos=1, retain=True)


__all__ = ["broker"]  # the fixture: a real Mosquitto, one per test


def uplinked(hq: Observer) -> list[int]:
    return [e["n"] for e in hq.on("uplink/event") if "n" in e]


async def test_events_go_to_hq_only_while_the_bridge_is_up_each_once_in_order(
        broker: Broker, tmp_path: Path) -> None:
    async with make_rig(tmp_path, broker.port) as rig, \
            observe(broker.port, "event", "uplink/event") as hq:
        await rig.start()
        for n in range(3):  # out of coverage: the crew sees them, HQ's copy waits
            rig.van.event({"kind": "test", "n": n})
        await hq.until(lambda: len(hq.events("test")) == 3, "the local events")
        await bridge_says(broker.port, True)
        await hq.until(lambda: uplinked(hq) == [0, 1, 2], "the backlog once up")
        rig.van.event({"kind": "test", "n": 3})
        await hq.until(lambda: uplinked(hq) == [0, 1, 2, 3], "a new event at once")
        await bridge_says(broker.port, False)
        await wait_until(lambda: rig.bridge.uplink is not None and not rig.bridge.uplink.up,
                         what="the uplink told")
        rig.van.event({"kind": "test", "n": 4})
        await hq.until(lambda: len(hq.events("test")) == 5, "the local event")
        assert uplinked(hq) == [0, 1, 2, 3], "nothing handed to a bridge that is down"
        await rig.stop()  # the supervisor restarts, still out of coverage
    async with make_rig(tmp_path, broker.port) as rig, \
            observe(broker.port, "uplink/event") as hq:
        await rig.start()
        rig.van.event({"kind": "test", "n": 5})
        await bridge_says(broker.port, True)
        await hq.until(lambda: uplinked(hq) == [4, 5], "from where it was, none again")
        ids = [e["id"] for e in hq.on("uplink/event")]
        assert ids == sorted(ids)


async def test_a_backlog_goes_no_faster_than_its_pace(broker: Broker, tmp_path: Path) -> None:
    """A burst, then the rate: the k-th event cannot reach HQ before (k + 1 - burst) / rate
    seconds after the link came back (a loaded machine only makes it later)."""
    rate, burst, count = 40.0, 10, 90
    async with make_rig(tmp_path, broker.port, uplink_rate=rate, uplink_burst=burst) as rig, \
            observe(broker.port, "uplink/event") as hq:
        await rig.start()
        for n in range(count):
            rig.van.event({"kind": "test", "n": n})
        opened = time.monotonic()
        await bridge_says(broker.port, True)
        await hq.until(lambda: len(hq.received) >= count, "the whole backlog",
                       timeout=DEADLINE_S + count / rate)
        assert uplinked(hq) == list(range(count))
        early = [(k, r.at - opened) for k, r in enumerate(hq.received)
                 if r.at - opened < (k + 1 - burst) / rate]
        assert not early, early


async def test_what_hq_asks_for_again_comes_from_the_log_marked_resent(
        broker: Broker, tmp_path: Path) -> None:
    async with make_rig(tmp_path, broker.port) as rig, \
            observe(broker.port, "uplink/event") as hq:
        await rig.start()
        await bridge_says(broker.port, True)
        for n in range(3):
            rig.van.event({"kind": "test", "n": n})
        await hq.until(lambda: uplinked(hq) == [0, 1, 2], "sent once")
        first = hq.on("uplink/event")
        assert rig.van.resend is not None
        assert rig.van.resend(first[1]["id"], first[2]["id"]) == 2
        await hq.until(lambda: len(hq.on("uplink/event")) == 5, "the two again")
        assert hq.on("uplink/event")[3:] == [{**e, "resent": True} for e in first[1:]]
        assert rig.van.resend(10**9, 10**9 + 5) == 0  # none such


async def test_requests_to_send_again_are_held_only_up_to_a_bound(
        broker: Broker, tmp_path: Path) -> None:
    """While the bridge is down the requests wait; beyond RESEND_HELD events nothing more is
    taken (HQ's desk asks again later), so a flood of requests cannot grow the supervisor."""
    async with make_rig(tmp_path, broker.port) as rig:
        for n in range(RESEND_MAX + 10):
            rig.van.event({"kind": "test", "n": n})
        assert await rig.storage.durable()
        assert rig.van.resend is not None
        taken = [rig.van.resend(1, 10**6) for _ in range(RESEND_HELD // RESEND_MAX + 2)]
        assert sum(taken) == RESEND_HELD and taken[-1] == 0, taken


@given(st.lists(st.tuples(st.floats(0, 5), st.integers(1, 50)), max_size=60),
       st.floats(0.5, 100), st.integers(1, 20))
def test_a_token_bucket_gives_at_most_its_burst_and_then_its_rate(
        steps: list[tuple[float, int]], rate: float, burst: int) -> None:
    now = [0.0]
    bucket = TokenBucket(rate, burst, lambda: now[0])
    taken = 0
    for advance, wanted in steps:
        now[0] += advance
        got = bucket.take(wanted)
        assert 0 <= got <= wanted
        taken += got
        assert taken <= burst + rate * now[0] + 1e-6
        if got < wanted:  # it said when the next one comes, and it does
            now[0] += bucket.wait_s()
            assert bucket.take(1) == 1
            taken += 1


async def test_alarms_not_shown_are_cleared_again_each_time_the_hq_bridge_connects(
        broker: Broker, tmp_path: Path) -> None:
    """The bridge sends the retained alarms at each connection, not a clear made while it was
    down: the supervisor clears again, at each connection, every alarm not shown (and only
    those: an active one is left as it is)."""
    async with make_rig(tmp_path, broker.port) as rig, \
            observe(broker.port, f"alarm/{ALARM}") as hq:
        await rig.start()
        rig.alarms.set(ALARM, True, rig.now)
        await hq.until(lambda: hq.on(f"alarm/{ALARM}"), "the alarm")
        await bridge_says(broker.port, True)
        await wait_until(lambda: rig.bridge.uplink is not None and rig.bridge.uplink.up,
                         what="the uplink told")
        assert await rig.bridge.flush(DEADLINE_S)
        assert None not in hq.on(f"alarm/{ALARM}"), "an active alarm is not cleared"
        await bridge_says(broker.port, False)
        rig.alarms.set(ALARM, False, rig.now)
        rig.alarms.ack(ALARM)
        await hq.until(lambda: hq.on(f"alarm/{ALARM}")[-1:] == [None], "cleared")
        await bridge_says(broker.port, True)
        await hq.until(lambda: hq.on(f"alarm/{ALARM}").count(None) == 2,
                       "cleared again for HQ")
