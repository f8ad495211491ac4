"""The van and HQ as two brokers joined by the shipped Mosquitto bridge, against the real
supervisor: the path supervised end to end over it, and a panic pressed while the link is
down reaching HQ once it is back.

HQ is a second Mosquitto with HQ's echo (``mcw-hq-echo``) and a monitor on it; between the
van's bridge and HQ a TCP relay stands in for LTE (``TcpRelay.down``: out of coverage, every
connection cut). The van's broker runs the bridge section of systemd/mosquitto-mcw.conf as
shipped (enable_bridge: uncommented, plain MQTT, the TLS lines left out).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testsupport import TcpRelay, enable_bridge

from conftest import Van, start_van
from harness import Broker, Monitor, hq_echo, wait_until

MOSQUITTO_CONF = Path(__file__).parents[1] / "systemd" / "mosquitto-mcw.conf"
HEARTBEAT_S, DOWN_S = 1.0, 4.0
BRIDGE_WAIT_S = 90.0  # the shipped bridge retries with a jittered backoff from 5 s


@dataclass
class Hq:
    broker: Broker
    relay: TcpRelay
    monitor: Monitor


@pytest.fixture
async def bridged(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Van, Hq]]:
    """HQ's broker, echo and monitor; the relay; the van whose broker bridges to HQ."""
    hq_dir = Path(tempfile.mkdtemp(prefix="mcw-hq-"))
    async with AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, hq_dir, ignore_errors=True)
        broker = Broker(hq_dir)
        stack.push_async_callback(broker.stop)
        await broker.start()
        relay = TcpRelay(broker.port)
        stack.push_async_callback(relay.close)
        await relay.start()
        shipped = enable_bridge(MOSQUITTO_CONF.read_text(encoding="utf-8"), "demo", relay.port)
        section = "connection hq" + shipped.partition("connection hq")[2]
        monitor = Monitor(broker.port)
        stack.push_async_callback(monitor.stop)
        await monitor.start()
        await stack.enter_async_context(hq_echo(broker.port, DOWN_S))
        env = {"MCW_HQ_HEARTBEAT_S": f"{HEARTBEAT_S:g}", "MCW_HQ_DOWN_S": f"{DOWN_S:g}"}
        van = await stack.enter_async_context(
            start_van(monkeypatch, env, broker_extra=section.splitlines()))
        yield van, Hq(broker, relay, monitor)


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
    hq.relay.down = True
    hq.relay.cut()
    await wait_until(lambda: mon.value("comms/bridge/hq") is False, what="the bridge down")
    await wait_until(lambda: mon.value("comms/hq/state") == "down", what="the path down")
    await wait_until(lambda: hq.monitor.latest.get("bridge/hq") == 0,
                     what="HQ told by the bridge's will")

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
    result = await hq.monitor.command("room/panic_received",
                                      {"id": "hq-receipt-1", "args": {"panic": panic}},
                                      role="hq")
    assert result["status"] == "done", result
    await wait_until(lambda: mon.value("room/panic/delivery") == "received",
                     what="the crew sees it received by HQ")
    await wait_until(lambda: mon.value("comms/hq/state") == "up", what="the path up again")
    # copies of the one panic only: the bridge's queue and its replay of the retained alarm
    # at reconnection can both deliver it (HQ keys on the panic id; exactly once per id is
    # issue 11's store-and-forward work, not done yet)
    actives = [v for t, v, _ in hq.monitor.messages
               if t == "alarm/room/panic" and isinstance(v, dict) and v.get("active")]
    assert {json.dumps(v, sort_keys=True) for v in actives} == {
        json.dumps(raised, sort_keys=True)}, actives
