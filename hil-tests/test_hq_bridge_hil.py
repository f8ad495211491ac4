"""The van and HQ as two brokers joined by the shipped Mosquitto bridge, against the real
supervisor: the path supervised end to end over it, and a panic pressed while the link is
down reaching HQ once it is back.

How HQ's side is set up (brokers, TLS, the relay standing in for LTE): hil-tests/hq_side.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest
from hq_side import DOWN_S, HEARTBEAT_S, Hq, bridged_van, event_ids

from conftest import Van
from harness import BIN, Monitor, run, wait_until
from supervisor.interfaces.hq_desk import ASK_AGAIN_S

BRIDGE_WAIT_S = 90.0  # the shipped bridge retries with a jittered backoff from 5 s


@pytest.fixture
async def bridged(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Van, Hq]]:
    async with bridged_van(monkeypatch) as both:
        yield both


async def assert_every_event_once_in_order(van: Van, hq: Hq) -> None:
    """HQ's alarm desk logged every event the van published since the bridge first carried
    one, each once and in the van's order (its numbers): none lost (what the bridge dropped,
    the desk asks the van for again, which may take a few rounds); a plain subscriber at HQ
    got each of them too (copies and all)."""
    last = event_ids(van.monitor)[-1]

    def whole() -> tuple[list[int], list[int]] | None:
        logged = [i for i in hq.desk_log() if i <= last]  # the van goes on making events
        expected = [i for i in event_ids(van.monitor) if logged[:1] and logged[0] <= i <= last]
        return (logged, expected) if logged and logged == expected else None

    try:
        _, expected = await wait_until(whole, 2 * ASK_AGAIN_S + 30,
                                       "HQ's log of the van's events whole")
    except AssertionError:
        logged = [i for i in hq.desk_log() if i <= last]
        raise AssertionError(("HQ's log", logged, "the van's events",
                              event_ids(van.monitor))) from None
    await wait_until(lambda: set(expected) <= set(event_ids(hq.monitor)),
                     what="and each at HQ's subscriber")


async def fleet_command(hq: Hq, *args: str) -> subprocess.CompletedProcess[str]:
    """``mcwctl fleet`` on HQ's broker, as HQ's operator runs it."""
    return await run([str(BIN / "mcwctl"), "fleet", *args, "--port", str(hq.broker.port)])


def alarm(mon: Monitor, alarm_id: str) -> dict[str, Any]:
    value = mon.latest.get(f"alarm/{alarm_id}")
    return value if isinstance(value, dict) else {}


async def test_the_path_over_the_bridge_and_a_panic_from_an_outage(
        bridged: tuple[Van, Hq]) -> None:
    van, hq = bridged
    mon = van.monitor
    await wait_until(lambda: mon.value("comms/bridge/hq") is True, what="the bridge up",
                     timeout=BRIDGE_WAIT_S)
    await wait_until(lambda: mon.value("comms/hq/state") == "up",
                     what="HQ's echo back over the bridge")
    await wait_until(lambda: hq.monitor.value("comms/hq/state") == "up",
                     what="HQ sees the van's state")

    # out of coverage: the bridge drops, the van knows at once (not after DOWN_S), HQ from
    # the bridge's will
    reports = len(hq.echo.reports)
    hq.relay.down = True
    hq.relay.cut()
    await wait_until(lambda: mon.value("comms/bridge/hq") is False, what="the bridge down")
    await wait_until(lambda: mon.value("comms/hq/state") == "down", what="the path down")
    await wait_until(lambda: hq.monitor.latest.get("bridge/hq") == 0,
                     what="HQ told by the bridge's will")
    # and HQ's echo, from the pings that stopped: within its down_after (DOWN_S)
    cut_at = time.time()
    report = await hq.echo.says(DOWN_S + 30, since=reports, vehicle="demo", link="down")
    assert report["at"] - cut_at <= DOWN_S + 2 * HEARTBEAT_S + 2, report

    # HQ sends two commands meanwhile: HQ's broker queues them for the bridge's session
    async with aiomqtt.Client("127.0.0.1", hq.broker.port) as hq_client:
        for cid, expires in (("stale-1", time.time() + 0.5), ("fresh-1", time.time() + 600)):
            await hq_client.publish("mcw/v1/demo/cmd/hq/comms/pong", json.dumps(
                {"id": cid, "args": {"seq": 1}, "expires": expires}), qos=1)
    van.sim.room_node("room_node").press("desk")
    await wait_until(lambda: alarm(mon, "room/panic").get("active") is True,
                     what="the panic on the van's broker")
    await wait_until(lambda: mon.value("room/panic/delivery") == "sent",
                     what="sent: the van's broker has it")
    panic = str(alarm(mon, "room/panic")["panic"])
    assert not alarm(hq.monitor, "room/panic"), "HQ cannot have it yet"

    # back in coverage: the bridge's queue brings the panic; HQ's receipt comes back down
    hq.relay.down = False
    await wait_until(lambda: alarm(hq.monitor, "room/panic").get("active") is True,
                     what="the panic at HQ after the outage", timeout=BRIDGE_WAIT_S)
    raised = alarm(hq.monitor, "room/panic")
    assert raised["panic"] == panic and raised["position"]["fix"] is True
    # HQ's alarm desk answers it with the receipt by itself: the crew sees it received
    await wait_until(lambda: mon.value("room/panic/delivery") == "received",
                     what="the crew sees it received by HQ")
    # HQ's operator sees it in the fleet view and acknowledges it from there
    listing = await fleet_command(hq, "--json")
    (row,) = json.loads(listing.stdout)
    assert (row["vehicle"], row["panic"], row["panic_delivery"], row["link"]) == \
        ("demo", panic, "received", "up"), row
    assert "critical room/panic" in row["alarms"] and row["lat"] is not None
    acked = await fleet_command(hq, "ack", "demo")
    assert acked.returncode == 0 and acked.stdout.startswith("demo: done"), acked
    await wait_until(lambda: not alarm(hq.monitor, "room/panic"),
                     what="the panic ended at HQ too")
    (row,) = json.loads((await fleet_command(hq, "--json")).stdout)
    assert row["panic"] is None, row
    await wait_until(lambda: mon.value("comms/hq/state") == "up", what="the path up again")
    # HQ's commands from the outage came down the bridge: the stale one expired, not applied

    def results() -> dict[str, str]:
        return {str(v.get("id")): str(v.get("status")) for t, v, _ in hq.monitor.messages
                if t == "result/hq/comms/pong" and isinstance(v, dict)}

    await wait_until(lambda: {"stale-1", "fresh-1"} <= results().keys(),
                     what="both results at HQ")
    assert results()["stale-1"] == "expired" and results()["fresh-1"] == "done", results()
    # copies of the one panic only: the bridge's queue and its replay of the retained alarm
    # at reconnection can both deliver it; the desk keys on the panic id (one receipt)
    actives = [v for t, v, _ in hq.monitor.messages if t == "alarm/room/panic"
               and isinstance(v, dict) and v.get("active") and not v.get("acked")]
    assert {json.dumps(v, sort_keys=True) for v in actives} == {
        json.dumps(raised, sort_keys=True)}, actives
    receipts = [v for t, v, _ in hq.monitor.messages if t == "result/hq/room/panic_received"]
    assert [r["status"] for r in receipts] == ["done"], receipts
    await wait_until(lambda: event_ids(hq.monitor)[-1:] == event_ids(mon)[-1:],
                     what="HQ has the van's last event")
    await assert_every_event_once_in_order(van, hq)


async def test_a_panic_cancelled_in_an_outage_with_a_broker_restart_converges_at_hq(
        bridged: tuple[Van, Hq]) -> None:
    """A panic HQ shows; out of coverage the van's broker restarts (its queue on disk), the
    crew cancels the panic, the supervisor is killed and started again: back in coverage HQ
    learns all of it, every event once and in order, and its retained copy of the alarm ends
    cleared like the van's (the bridge does not send a clear made while it was down: the
    supervisor clears it again when the bridge connects)."""
    van, hq = bridged
    mon = van.monitor
    await wait_until(lambda: hq.monitor.value("comms/hq/state") == "up",
                     what="the path up", timeout=BRIDGE_WAIT_S)
    van.sim.room_node("room_node").press("desk")
    await wait_until(lambda: alarm(hq.monitor, "room/panic").get("active") is True,
                     what="the panic at HQ")
    panic = str(alarm(mon, "room/panic")["panic"])
    hq.relay.down = True
    hq.relay.cut()
    await wait_until(lambda: mon.value("comms/hq/state") == "down", what="the path down")
    await van.broker.stop()
    await van.broker.start()
    await wait_until(lambda: (mon.latest.get("status") or {}).get("state") == "ready"
                     and mon.value("comms/hq/state") == "down",
                     what="the supervisor back on its broker")
    van.sim.room_node("room_node").release("desk")
    result = await mon.command("room/panic_ack", {"id": "crew-cancel-1"}, role="crew")
    assert result["status"] == "done", result
    await wait_until(lambda: not alarm(mon, "room/panic"), what="cancelled on the van")
    # the supervisor crashes too (killed), still out of coverage, and comes back
    session = mon.latest["status"]["session"]
    await van.supervisor.stop(signal.SIGKILL)
    van.supervisor.start()
    await wait_until(lambda: mon.latest["status"].get("session", 0) > session
                     and mon.latest["status"].get("state") == "ready"
                     and mon.value("comms/hq/state") == "down",
                     what="the supervisor back, still out of coverage")
    result = await mon.command("room/walk_test", {"id": "after-crash", "args": {"on": False}})
    assert result["status"] == "done", result
    assert alarm(hq.monitor, "room/panic").get("active") is True, "HQ cannot know yet"

    hq.relay.down = False

    def events() -> list[dict[str, Any]]:
        return [v for t, v, _ in hq.monitor.messages
                if t == "event" and isinstance(v, dict) and v.get("panic") == panic]

    await wait_until(lambda: any(e.get("what") == "panic_cancelled" for e in events()),
                     what="the cancellation at HQ", timeout=BRIDGE_WAIT_S)
    order = [e["what"] for e in events() if e.get("what") in ("panic", "panic_cancelled")]
    assert order[0] == "panic" and order[-1] == "panic_cancelled", order
    await wait_until(lambda: not alarm(hq.monitor, "room/panic"),
                     what="HQ's alarm cleared like the van's")
    await wait_until(lambda: event_ids(hq.monitor)[-1:] == event_ids(mon)[-1:],
                     what="HQ has the van's last event")
    await assert_every_event_once_in_order(van, hq)
    async with aiomqtt.Client("127.0.0.1", hq.broker.port) as fresh:  # a dashboard arriving now
        await fresh.subscribe("mcw/v1/demo/alarm/room/panic", qos=1)
        await fresh.subscribe("mcw/v1/demo/state/comms/hq/ping", qos=1)
        retained: dict[str, bytes] = {}
        async with asyncio.timeout(30):
            async for message in fresh.messages:  # the ping is retained and always there
                payload = message.payload if isinstance(message.payload, bytes) else b""
                retained[message.topic.value] = payload
                if message.topic.value.endswith("/ping"):
                    break
    assert not retained.get("mcw/v1/demo/alarm/room/panic"), retained


QUEUE_LIMIT = 20


async def test_a_bridge_that_never_connected_and_then_overflowed_its_queue_sends_once_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two known bridge failures: the first connection fails (no coverage at start), and the
    queue for HQ overflows (a tiny limit here): the link dies unnoticed (no byte gets
    through, no error) while the crew works, and the events handed to the bridge meanwhile
    are more than its queue keeps. Once the link is back the bridge connects and carries the
    van again: what it kept, then everything new, and HQ's desk, seeing the gap in the van's
    chain of events, gets what the queue dropped from the van's own log."""
    async with bridged_van(monkeypatch, coverage=False,
                           broker_extra=[f"max_queued_messages {QUEUE_LIMIT}"]) as (van, hq):
        mon = van.monitor
        await wait_until(lambda: mon.value("comms/hq/state") == "down", what="never up")
        result = await mon.command("room/walk_test", {"id": "before-1", "args": {"on": True}})
        assert result["status"] == "done", result
        hq.relay.down = False
        await wait_until(lambda: mon.value("comms/hq/state") == "up",
                         what="the first connection at last", timeout=BRIDGE_WAIT_S)
        await wait_until(lambda: event_ids(hq.monitor)[-1:] == event_ids(mon)[-1:],
                         what="HQ has the events from before")
        def handed() -> int:  # events the supervisor gave the bridge for HQ
            return len([t for t, _, _ in mon.messages if t == "uplink/event"])

        before = handed()
        hq.relay.stall()  # a dead radio link: the bridge still thinks it is connected
        # more than the bridge's in-flight window (20) and queue hold: each walk-test switch
        # makes at least one event
        for n in range(3 * QUEUE_LIMIT):
            result = await mon.command("room/walk_test",
                                       {"id": f"during-{n}", "args": {"on": n % 2 == 0}})
            assert result["status"] == "done", result
        await wait_until(lambda: handed() > before + 2 * QUEUE_LIMIT,
                         what="more events handed to the bridge than it can keep")
        hq.relay.down = True
        hq.relay.cut()
        await wait_until(lambda: mon.value("comms/bridge/hq") is False, what="the bridge down")
        hq.relay.down = False
        await wait_until(lambda: mon.value("comms/hq/state") == "up",
                         what="connected again", timeout=BRIDGE_WAIT_S)
        result = await mon.command("room/walk_test", {"id": "after-1", "args": {"on": True}})
        assert result["status"] == "done", result
        # what the full queue dropped, HQ's desk asked the van for again: none lost
        await assert_every_event_once_in_order(van, hq)
        missing = [r["missing"] for r in hq.echo.reports if r.get("vehicle") == "demo"
                   and "missing" in r]
        assert missing, ("the queue dropped events: the desk must have asked for them",
                         hq.desk_log(), event_ids(van.monitor))


async def test_a_slow_laggy_link_still_carries_the_panic_and_every_event(
        bridged: tuple[Van, Hq]) -> None:
    """A poor LTE link (250 ms each way, 3 kB/s each way) after an outage: the backlog of
    events comes through it paced, none lost, in order; a panic pressed meanwhile reaches HQ
    and HQ's receipt comes back; the path stays up."""
    van, hq = bridged
    mon = van.monitor
    await wait_until(lambda: hq.monitor.value("comms/hq/state") == "up",
                     what="the path up", timeout=BRIDGE_WAIT_S)
    hq.relay.down = True
    hq.relay.cut()
    await wait_until(lambda: mon.value("comms/bridge/hq") is False, what="the bridge down")
    for n in range(40):  # the crew works on out of coverage
        result = await mon.command("room/walk_test",
                                   {"id": f"slow-{n}", "args": {"on": n % 2 == 0}})
        assert result["status"] == "done", result
    hq.relay.delay_s, hq.relay.rate_bps = 0.25, 3000.0
    hq.relay.down = False
    await wait_until(lambda: mon.value("comms/bridge/hq") is True, what="the bridge back",
                     timeout=BRIDGE_WAIT_S)
    van.sim.room_node("room_node").press("desk")
    await wait_until(lambda: alarm(hq.monitor, "room/panic").get("active") is True,
                     what="the panic at HQ over the slow link", timeout=60)
    await wait_until(lambda: mon.value("room/panic/delivery") == "received",
                     what="HQ's receipt back at the van", timeout=60)
    await wait_until(lambda: event_ids(hq.monitor)[-1:] == event_ids(mon)[-1:],
                     what="HQ has the van's last event", timeout=120)
    await assert_every_event_once_in_order(van, hq)
    assert mon.value("comms/hq/state") == "up"
