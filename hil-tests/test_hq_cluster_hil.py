"""HQ as a cluster of two broker nodes, one of which dies: the van's bridge and HQ's consumer
fail over to the other and nothing is lost.

HQ: a Redis server and two nodes of hq/broker.js (aedes; sessions, retained messages and the
QoS 1 queues of persistent sessions in Redis, messages fanned out between the nodes through
it), A and B, each on its own port. The van: a real Mosquitto running the bridge section of
systemd/mosquitto-mcw.conf as shipped (enable_bridge: its address line becomes the failover
list ``A B``; plain MQTT, the bridge's TLS is tested in test_hq_bridge_hil.py). A publisher on
the van's broker stands in for the supervisor: numbered events (``id``, as the supervisor's)
on uplink/event, continuously. HQ's consumer is a persistent session (cleansession false, QoS 1) on
``mcw/v1/+/event/#``, alarms and the bridges' notifications, with the same address list.

Node A, where the bridge and the consumer are, is killed (SIGKILL: no goodbye to anyone). The
bridge must come back on B (HQ sees its notification "0", the dead connection's will, then
"1"), the consumer must get its session back on B without subscribing again, and every event
must reach it, each number once, none lost (HQ orders by number: the van's bridge may send a
message made at the reconnection ahead of its backlog); the retained state and alarm that
the van published while the bridge was down must be retained on B.

Also: a node acknowledges a van's message only once Redis has it (so a node that dies cannot
take an acknowledged message with it), and a van reaches only its own topics.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from testsupport import (
    Broker,
    HqNode,
    RedisServer,
    enable_bridge,
    needs_tool,
    wait_until,
)

MOSQUITTO_CONF = Path(__file__).parents[1] / "systemd" / "mosquitto-mcw.conf"
ARTIFACTS = Path(__file__).parent / "artifacts"
VEHICLE = "demo"
PREFIX = f"mcw/v1/{VEHICLE}"
CONSUMER_ID = "hq-events"
BRIDGE_ID = f"mcw-{VEHICLE}"  # the shipped section's remote_clientid
# the shipped bridge retries with a jittered backoff from 5 s; generous for a loaded machine
BRIDGE_WAIT_S = 90.0
EVENT_PERIOD_S = 0.05  # 20 events a second, far more than a van makes
RETRY_PAUSE_S = 0.2

redis_installed = needs_tool("redis-server")
mosquitto_installed = needs_tool("mosquitto")


@dataclass
class Cluster:
    redis: RedisServer
    a: HqNode
    b: HqNode


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """Redis and the nodes A and B, each stopped by its own pid afterwards, whatever happens;
    their logs are kept in hil-tests/artifacts/ for a failed run."""
    workdir = Path(tempfile.mkdtemp(prefix="mcw-hq-cluster-"))
    async with AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        stack.callback(_keep_logs, workdir)
        redis = RedisServer(workdir)
        stack.push_async_callback(asyncio.to_thread, redis.stop_blocking)
        await asyncio.to_thread(redis.start_blocking)
        nodes = [HqNode(workdir, node_id, redis.url) for node_id in ("hq-a", "hq-b")]
        for node in nodes:
            stack.push_async_callback(asyncio.to_thread, node.stop_blocking)
            await asyncio.to_thread(node.start_blocking)
        yield Cluster(redis, *nodes)


def _keep_logs(workdir: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copy(log, ARTIFACTS / f"hq-cluster-{log.name}")


@dataclass
class Subscriber:
    """An MQTT client that keeps reconnecting, trying ``ports`` in turn (the first one first),
    and records every message: HQ's consumer (persistent session, subscribing only on its
    first connection) or a monitor (clean session, subscribing at every connection)."""

    ports: list[int]
    topics: list[str]
    client_id: str
    persistent: bool = True
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (time, connection)
    port: int | None = None  # the node it is connected to now
    connections: int = 0
    _subscribed: bool = False
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await wait_until(lambda: self.port is not None and self._subscribed,
                         what=f"{self.client_id} subscribed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        attempt = 0
        while True:
            port = self.ports[attempt % len(self.ports)]
            try:
                async with aiomqtt.Client("127.0.0.1", port, identifier=self.client_id,
                                          clean_session=not self.persistent,
                                          keepalive=10) as client:
                    self.connections += 1
                    if not (self.persistent and self._subscribed):
                        for topic in self.topics:
                            await client.subscribe(topic, qos=1)
                    self._subscribed = True
                    self.port = port
                    async for msg in client.messages:
                        payload = msg.payload if isinstance(msg.payload, bytes) else b""
                        self.messages.append((msg.topic.value, payload, bool(msg.retain)))
                        self.arrivals.append((time.monotonic(), self.connections))
            except aiomqtt.MqttError:
                self.port = None
                attempt += 1
                await asyncio.sleep(RETRY_PAUSE_S)  # the pace of reconnection attempts

    def payloads(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in self.messages if t == topic]

    def event_ids(self) -> list[int]:
        """The ids of the events received, each once, in the order of first arrival."""
        seen: dict[int, None] = {}
        for topic, payload, _ in self.messages:
            if topic.endswith("/event"):
                seen.setdefault(int(json.loads(payload)["id"]), None)
        return list(seen)


@dataclass
class Publisher:
    """The supervisor's stand-in on the van's broker: numbered events, continuously."""

    port: int
    last_id: int = 0
    client: aiomqtt.Client | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.client = aiomqtt.Client("127.0.0.1", self.port, identifier="supervisor-stand-in")
        await self.client.__aenter__()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self.client is not None
        while True:
            self.last_id += 1
            # what the supervisor's uplink hands the bridge (HQ's event): not gated on the
            # bridge's notification here, so the bridge's queue carries them over the failover
            await self.publish("uplink/event", {"id": self.last_id, "what": "test",
                                         "ts": time.time()}, retain=False)
            await asyncio.sleep(EVENT_PERIOD_S)  # the events' pace

    async def publish(self, subtopic: str, value: dict[str, Any], retain: bool) -> None:
        assert self.client is not None
        await self.client.publish(f"{PREFIX}/{subtopic}", json.dumps(value), qos=1,
                                  retain=retain)

    async def stop_events(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def close(self) -> None:
        await self.stop_events()
        if self.client is not None:
            with suppress(aiomqtt.MqttError):
                await self.client.__aexit__(None, None, None)


def bridge_section(ports: list[int]) -> list[str]:
    """The shipped bridge section for VEHICLE, its address line the failover list ``ports``."""
    shipped = enable_bridge(MOSQUITTO_CONF.read_text(encoding="utf-8"), VEHICLE, ports[0],
                            failover_ports=ports[1:])
    return ("connection hq" + shipped.partition("connection hq")[2]).splitlines()


def arrival_log(sub: Subscriber, since: float) -> list[str]:
    """The events' ids as they arrived (copies too), with the time since ``since`` and the
    connection they came on: what a failure message needs to tell a reorder from a loss."""
    out = []
    for (topic, payload, _), (at, conn) in zip(sub.messages, sub.arrivals, strict=True):
        if topic.endswith("/event"):
            out.append(f"{json.loads(payload)['id']}@{at - since:+.2f}s#{conn}")
    return out


async def retained(port: int, topics: list[str]) -> dict[str, bytes]:
    """What a client arriving now on the node at ``port`` gets as retained for ``topics``."""
    got: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier="hq-dashboard-new") as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        async with asyncio.timeout(30):
            async for msg in client.messages:
                if msg.retain and isinstance(msg.payload, bytes):
                    got[msg.topic.value] = msg.payload
                if set(topics) <= got.keys():
                    break
    return got


async def test_a_dead_hq_node_loses_nothing_the_bridge_and_hq_fail_over_to_the_other(
        cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    workdir = a.workdir
    async with AsyncExitStack() as stack:
        consumer = Subscriber([a.port, b.port],
                              ["mcw/v1/+/event/#", "mcw/v1/+/alarm/#", "mcw/v1/+/bridge/hq"],
                              CONSUMER_ID)
        stack.push_async_callback(consumer.stop)
        await consumer.start()
        assert consumer.port == a.port
        await wait_until(lambda: a.connected(CONSUMER_ID), what="the consumer on A's log")

        van_dir = workdir / "van"
        van_dir.mkdir()
        van = Broker(van_dir, extra=bridge_section([a.port, b.port]))
        stack.push_async_callback(van.stop)
        await van.start()
        van_monitor = Subscriber([van.port], [f"{PREFIX}/bridge/hq"], "van-monitor",
                                 persistent=False)
        stack.push_async_callback(van_monitor.stop)
        await van_monitor.start()
        notification = f"{PREFIX}/bridge/hq"
        await wait_until(lambda: consumer.payloads(notification)[-1:] == [b"1"],
                         what="HQ told the bridge is up", timeout=BRIDGE_WAIT_S)
        assert a.connected(BRIDGE_ID) and not b.connected(BRIDGE_ID)

        publisher = Publisher(van.port)
        stack.push_async_callback(publisher.close)
        await publisher.start()
        await publisher.publish("state/fleet/failover", {"v": "before", "q": "good"},
                                retain=True)
        await wait_until(lambda: len(consumer.event_ids()) >= 20, what="events at HQ")

        # node A dies with the bridge's and the consumer's connections
        await asyncio.to_thread(a.stop_blocking, signal.SIGKILL)
        killed_at = time.monotonic()
        notices_before = len(consumer.payloads(notification))
        await wait_until(lambda: van_monitor.payloads(notification)[-1:] == [b"0"],
                         what="the van's broker knows its bridge is down")
        # published on the van while its bridge has no HQ: its queue must bring them to B
        state = {"v": "during", "q": "good", "ts": time.time()}
        alarm = {"severity": "warning", "active": True, "acked": False,
                 "text": "failover test", "since": time.time()}
        await publisher.publish("state/fleet/failover", state, retain=True)
        await publisher.publish("alarm/fleet/failover", alarm, retain=True)

        def bridge_back_on_b() -> bool:
            after = consumer.payloads(notification)[notices_before:]
            return b"0" in after and after[-1] == b"1" and b.connected(BRIDGE_ID)

        await wait_until(bridge_back_on_b, what="the bridge back on B, HQ told",
                         timeout=BRIDGE_WAIT_S)
        assert consumer.port == b.port and b.connected(CONSUMER_ID)
        assert consumer.connections == 2

        # a few more events through B, then HQ must have every one
        resumed_at = publisher.last_id
        await wait_until(lambda: publisher.last_id >= resumed_at + 20, what="more events")
        await publisher.stop_events()
        last = publisher.last_id
        await wait_until(lambda: last in consumer.event_ids(), what=f"event {last} at HQ",
                         timeout=60)
        ids = consumer.event_ids()
        copies = sum(1 for t, _, _ in consumer.messages if t.endswith("/event"))
        # every number once; HQ orders by number, not by arrival: the van's bridge can send
        # a message made at the reconnection ahead of its backlog (hq_desk.py)
        assert sorted(ids) == list(range(1, last + 1)), (
            f"missing {sorted(set(range(1, last + 1)) - set(ids))}, "
            f"arrivals {arrival_log(consumer, killed_at)}")
        overtaken = [(x, y) for x, y in itertools.pairwise(ids) if y < x]
        print(f"{last} events at HQ ({copies - last} duplicates, {len(overtaken)} overtaken) "
              "across the failover")

        alarm_topic = f"{PREFIX}/alarm/fleet/failover"
        state_topic = f"{PREFIX}/state/fleet/failover"
        await wait_until(lambda: consumer.payloads(alarm_topic), what="the alarm at HQ")
        assert json.loads(consumer.payloads(alarm_topic)[-1]) == alarm
        on_b = await retained(b.port, [state_topic, alarm_topic])
        assert json.loads(on_b[state_topic]) == state, on_b
        assert json.loads(on_b[alarm_topic]) == alarm, on_b


async def test_a_van_reaches_only_its_own_topics(cluster: Cluster) -> None:
    """HQ's per-van rule (hq/broker.js): the client id mcw-<vehicle> may subscribe and
    publish under mcw/v1/<vehicle>/ only; HQ's own services are not limited."""
    a, b = cluster.a, cluster.b
    async with AsyncExitStack() as stack:
        watcher = Subscriber([b.port], ["mcw/v1/#"], "hq-watcher", persistent=False)
        stack.push_async_callback(watcher.stop)
        await watcher.start()
        async with aiomqtt.Client("127.0.0.1", a.port, identifier="mcw-other") as other:
            granted = await other.subscribe(f"{PREFIX}/cmd/hq/#", qos=1)
            assert list(granted) == [128], granted  # refused: another van's commands
            granted = await other.subscribe("mcw/v1/other/cmd/hq/#", qos=1)
            assert list(granted) == [1], granted
            await other.publish("mcw/v1/other/state/x", b'{"v":1}', qos=1)
        await wait_until(lambda: watcher.payloads("mcw/v1/other/state/x"),
                         what="the van's own message across the nodes")
        # publishing into another van's tree: refused, and the connection closed
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", a.port, identifier="mcw-other") as other:
                await other.publish(f"{PREFIX}/state/x", b'{"v":"forged"}', qos=0)
                async for _ in other.messages:  # until the node closes the connection
                    pass
        async with aiomqtt.Client("127.0.0.1", a.port, identifier="hq-service") as hq:
            await hq.publish(f"{PREFIX}/cmd/hq/comms/pong", b'{"id":"hq-1"}', qos=1)
        await wait_until(lambda: watcher.payloads(f"{PREFIX}/cmd/hq/comms/pong"),
                         what="HQ's command")
        assert not watcher.payloads(f"{PREFIX}/state/x"), "a forged message got through"


async def redis_command(port: int, *args: str) -> bytes:
    """One command to the Redis at ``port`` (RESP over a socket); its first reply line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
        writer.write(request.encode())
        async with asyncio.timeout(30):
            return await reader.readline()
    finally:
        writer.close()


async def test_a_node_acknowledges_a_message_only_once_redis_has_it(cluster: Cluster) -> None:
    """A node's PUBACK means the message is in Redis (HQ's persistent sessions have it): with
    Redis holding every write, the van's message is not acknowledged, so a node dying then
    cannot lose it; once Redis takes writes again, PUBACK and delivery. (aedes 1.2.0 answers
    before it stores; hq/broker.js holds the PUBACK.)"""
    a, b = cluster.a, cluster.b
    async with AsyncExitStack() as stack:
        consumer = Subscriber([b.port], ["mcw/v1/+/event/#"], CONSUMER_ID)
        stack.push_async_callback(consumer.stop)
        await consumer.start()
        # the van's bridge, byte by byte (aiomqtt would wait for the PUBACK in publish)
        reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
        stack.callback(writer.close)
        writer.write(b"\x10\x14\x00\x04MQTT\x04\x00\x00\x3c\x00\x08" + BRIDGE_ID.encode())
        async with asyncio.timeout(30):
            assert await reader.readexactly(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
        assert await redis_command(cluster.redis.port, "CLIENT", "PAUSE", "20000",
                                   "WRITE") == b"+OK\r\n"
        stack.push_async_callback(redis_command, cluster.redis.port, "CLIENT", "UNPAUSE")
        topic, body = f"{PREFIX}/event".encode(), b'{"id":1}'
        writer.write(bytes([0x32, 2 + len(topic) + 2 + len(body)]) + len(topic).to_bytes(2)
                     + topic + b"\x00\x07" + body)  # PUBLISH QoS 1, packet id 7
        # a bounded look for what must not come: no PUBACK while Redis holds the store
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(2):
                await reader.read(4)
        assert await redis_command(cluster.redis.port, "CLIENT", "UNPAUSE") == b"+OK\r\n"
        async with asyncio.timeout(30):
            assert await reader.readexactly(4) == b"\x40\x02\x00\x07"  # PUBACK of packet 7
        await wait_until(lambda: consumer.event_ids() == [1], what="the event at HQ")
