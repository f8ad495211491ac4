"""MqttBridge against a real Mosquitto: coalescing, event order, reconnects and commands.

The bridge's ``run()`` is a task in the test's event loop, talking to a real broker (one per
test, on a port the kernel picked, stopped by its pid whatever happens). Plain aiomqtt
clients stand in for headquarters and the crew: they observe what reaches the broker and
publish commands. Nothing is mocked.

The broker keeps its state on disk (``persistence true``), so a restart keeps what was
retained before it (a stale value would show) and an observer's persistent session, which
queues what the bridge publishes while the observer is reconnecting.

The last group keeps fixed what was found on the way: a command retained while the
supervisor listens, commands sent while it is away (its session is persistent), a quiet van
after a network drop, a retained payload cut off mid-publish.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from testsupport import DEADLINE_S, Broker, TcpRelay, require_tool, wait_until

from supervisor.core.alarms import AlarmDef, AlarmManager
from supervisor.core.commands import ActionSpec, ArgSpec, CommandRouter
from supervisor.core.config import MqttConfig, SupervisorConfig, VehicleConfig
from supervisor.core.device_points import DevicePoints
from supervisor.core.points import PointDef, PointStore
from supervisor.core.storage import Storage
from supervisor.core.van_state import VanState
from supervisor.interfaces.mqtt_bridge import MAX_PER_ACTION, MqttBridge

HOST = "127.0.0.1"
PREFIX = "mcw/v1/demo"
SOC = "power/battery/soc"
ALARM = "battery_low"
ACTION = "lights/interior"
# A bridge republishes within milliseconds of connecting; this is generous on a loaded machine.
REPUBLISH_WAIT_S = 5.0


def topic(suffix: str) -> str:
    return f"{PREFIX}/{suffix}"


# ---- the supervisor side: a VanState with its MqttBridge -------------------------------------


class Rig:
    """The van's state (one point, one alarm, one crew action) and its MQTT bridge."""

    def __init__(self, tmp_path: Path, mqtt_port: int, **mqtt: Any) -> None:
        self.now = 1_800_000_000.0
        self.storage = Storage(tmp_path / "db.sqlite")
        self.store = PointStore()
        self.store.define(PointDef(SOC, "number", "%"))
        self.alarms = AlarmManager()
        self.alarms.define(AlarmDef(ALARM, "warning", "Niski stan baterii", "Battery low"))
        self.router = CommandRouter(self.storage, wall=lambda: self.now)
        cfg = SupervisorConfig(
            vehicle=VehicleConfig(id="demo", name="Demo"),
            mqtt=MqttConfig(host=HOST, port=mqtt_port, reconnect_min_s=0.05,
                            reconnect_max_s=0.5, **mqtt),
        )
        self.van = VanState(cfg, self.storage, self.store, self.alarms,
                            DevicePoints(self.store), self.router, lambda: self.now)
        self.applied: list[dict[str, Any]] = []

        async def switch(args: dict[str, Any]) -> str:
            self.applied.append(args)
            return "switched"

        self.router.register(ActionSpec(ACTION, switch, frozenset({"crew"}),
                                        {"on": ArgSpec("bool")}))
        self.bridge = MqttBridge(self.van)
        self.store.update(SOC, 80.0, self.now)  # the van has a reading before MQTT is up
        self._task: asyncio.Task[None] | None = None

    def set_soc(self, value: float) -> None:
        self.now += 1
        self.store.update(SOC, value, self.now)

    async def start(self) -> None:
        """Run the bridge and return once it is connected with its outbox on the broker."""
        self._task = asyncio.create_task(self.bridge.run(), name="bridge")
        await wait_until(lambda: self.bridge.connected, what="the bridge to connect")
        assert await self.bridge.flush(DEADLINE_S), "the bridge did not drain its outbox"

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# ---- the observers: plain MQTT clients --------------------------------------------------------


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float = field(default_factory=time.monotonic)  # when it reached the observer


@dataclass
class Observer:
    client: aiomqtt.Client
    received: list[Received] = field(default_factory=list)

    async def collect(self) -> None:
        with suppress(aiomqtt.MqttError):  # the broker went away: what was seen stays
            async for message in self.client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                self.received.append(Received(message.topic.value, payload, message.retain))

    def on(self, suffix: str) -> list[Any]:
        """The decoded payloads received on ``suffix``, oldest first (None: empty)."""
        return [json.loads(r.payload) if r.payload else None
                for r in self.received if r.topic == topic(suffix)]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.on("event") if e.get("kind") == kind]

    def results(self, role: str, action: str) -> list[dict[str, Any]]:
        return list(self.on(f"result/{role}/{action}"))

    async def until(self, predicate: Callable[[], object], what: str,
                    timeout: float = DEADLINE_S) -> Any:
        return await wait_until(predicate, timeout=timeout, what=what)


@asynccontextmanager
async def observe(port: int, *suffixes: str, identifier: str | None = None,
                  persistent: bool = False, subscribe: bool = True) -> AsyncIterator[Observer]:
    """A subscriber to ``suffixes`` under the vehicle's prefix (QoS 1), collecting all it gets.

    ``persistent``: a session the broker keeps (and queues for) while the client is away;
    ``subscribe=False`` reconnects to such a session without subscribing again (which would
    also resend the retained copies).
    """
    client = aiomqtt.Client(HOST, port, identifier=identifier, clean_session=not persistent,
                            timeout=DEADLINE_S)
    await client.__aenter__()
    try:
        observer = Observer(client)
        if subscribe:
            for suffix in suffixes:
                await client.subscribe(topic(suffix), qos=1)
        task = asyncio.create_task(observer.collect(), name="observer")
        try:
            yield observer
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    finally:
        with suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)


async def retained_on_broker(port: int, *suffixes: str) -> dict[str, Any]:
    """What a subscriber arriving now gets as retained on ``suffixes`` (decoded payloads).

    A fence makes "nothing retained" a definite answer: the broker sends a client the retained
    messages of each subscription in turn, then what it publishes afterwards.
    """
    fence = f"test/fence/{uuid.uuid4().hex}"
    async with observe(port, *suffixes) as observer:
        await observer.client.subscribe(fence, qos=1)
        await observer.client.publish(fence, b"fence", qos=1)
        await observer.until(lambda: any(r.topic == fence for r in observer.received),
                             "the fence")
    return {r.topic.removeprefix(f"{PREFIX}/"): json.loads(r.payload) if r.payload else None
            for r in observer.received if r.retain}


async def publish(port: int, suffix: str, body: dict[str, Any], retain: bool = False) -> None:
    """A crew app's one-shot publish."""
    async with aiomqtt.Client(HOST, port, timeout=DEADLINE_S) as client:
        await client.publish(topic(suffix), json.dumps(body), qos=1, retain=retain)


# ---- a network link that can fail -------------------------------------------------------------


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    require_tool("mosquitto")
    workdir = tmp_path / "broker"
    workdir.mkdir()
    b = Broker(workdir, extra=["persistence true", f"persistence_location {workdir}/"])
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


@pytest.fixture
async def link(broker: Broker) -> AsyncIterator[TcpRelay]:
    relay = TcpRelay(broker.port)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.close()


@asynccontextmanager
async def make_rig(tmp_path: Path, port: int, **mqtt: Any) -> AsyncIterator[Rig]:
    """A rig (``mqtt``: more of its MqttConfig), stopped and its storage closed after."""
    r = Rig(tmp_path, port, **mqtt)
    try:
        yield r
    finally:
        await r.stop()
        r.storage.close()


@pytest.fixture
async def rig(tmp_path: Path, broker: Broker) -> AsyncIterator[Rig]:
    """A rig on the broker, not yet running (the test calls ``start()``)."""
    async with make_rig(tmp_path, broker.port) as r:
        yield r


@pytest.fixture
async def linked_rig(tmp_path: Path, link: TcpRelay) -> AsyncIterator[Rig]:
    """A rig that reaches the broker through ``link``, not yet running."""
    async with make_rig(tmp_path, link.port) as r:
        yield r


async def broker_down(broker: Broker, rig: Rig) -> None:
    await broker.stop()
    await wait_until(lambda: not rig.bridge.connected, what="the bridge to notice")


# ---- 1. coalescing ----------------------------------------------------------------------------


async def test_changes_while_the_broker_is_away_arrive_as_the_newest_value_only(
    broker: Broker, rig: Rig,
) -> None:
    await rig.start()
    await broker_down(broker, rig)
    await rig.stop()  # held back until the watcher is there; its outbox is kept
    values = [80 - i / 10 for i in range(1, 301)]  # 79.9 … 50.0, each one a real change
    for value in values:
        rig.set_soc(value)
    await broker.start()
    # watching before the supervisor is back: the broker's own retained copy first (it
    # kept 80.0 across its restart), then what the supervisor sends on reconnecting
    async with observe(broker.port, f"state/{SOC}", "event") as hq:
        await hq.until(lambda: hq.on(f"state/{SOC}"), "the reading the broker kept")
        await rig.start()
        rig.van.event({"kind": "fence"})  # events go after retained topics: seeing it ends
        await hq.until(lambda: hq.events("fence"), "the fence event after the reconnect")
        after = hq.on(f"state/{SOC}")
    assert [p["v"] for p in after] == [80.0, 50.0], "only the newest value is sent, once"
    assert after[1]["q"] == "good"
    fresh = await retained_on_broker(broker.port, f"state/{SOC}")
    assert fresh[f"state/{SOC}"]["v"] == 50.0


# ---- 2. order of events -----------------------------------------------------------------------


async def test_events_arrive_in_the_order_they_were_emitted(broker: Broker, rig: Rig) -> None:
    await rig.start()
    async with observe(broker.port, "event") as hq:
        for n in range(300):
            rig.van.event({"kind": "test", "n": n})
        await hq.until(lambda: len(hq.events("test")) >= 300, "300 events")
        assert [e["n"] for e in hq.events("test")] == list(range(300))
        assert all(not r.retain for r in hq.received)


async def test_an_alarm_goes_ahead_of_readings_already_queued(broker: Broker, rig: Rig) -> None:
    """A panic must not wait behind a poll's worth of readings (each a broker round trip; on
    an LTE link tens of ms): alarms leave the outbox first."""
    for n in range(200):
        rig.store.define(PointDef(f"test/p{n}", "number"))
    await rig.start()
    async with observe(broker.port, "state/test/#", f"alarm/{ALARM}") as hq:
        for n in range(200):  # queued in one go, as a poll of many registers does
            rig.store.update(f"test/p{n}", float(n), rig.now)
        rig.alarms.set(ALARM, True, rig.now)
        await hq.until(lambda: len(hq.received) >= 201, "the readings and the alarm")
        order = [r.topic for r in hq.received]
    assert order[0] == topic(f"alarm/{ALARM}"), order[:3]
    assert order[1:] == [topic(f"state/test/p{n}") for n in range(200)], "readings in order"


async def test_the_bridge_notifications_reach_their_point_and_nothing_else(
        broker: Broker, rig: Rig) -> None:
    """The van broker's bridge says "1" / "0" on bridge/<connection>; the point
    comms/bridge/<connection> follows where the van has one, anything else is ignored."""
    rig.store.define(PointDef("comms/bridge/hq", "bool"))
    await rig.start()
    for payload, expected in ((b"1", True), (b"0", False), (b"garbage", None)):
        async with aiomqtt.Client(HOST, broker.port, timeout=DEADLINE_S) as client:
            await client.publish(topic("bridge/hq"), payload, qos=1, retain=True)
        quality = "invalid" if expected is None else "good"

        def followed(value: bool | None = expected, quality: str = quality) -> bool:
            pv = rig.store.get("comms/bridge/hq")
            return pv is not None and pv.value == value and pv.quality == quality

        await wait_until(followed, what=f"the point after {payload!r}")
    async with aiomqtt.Client(HOST, broker.port, timeout=DEADLINE_S) as client:
        await client.publish(topic("bridge/other"), b"1", qos=1)  # no point: ignored
        await client.publish(topic("bridge/../x"), b"1", qos=1)
    await publish(broker.port, "cmd/crew/" + ACTION, {"id": "after", "args": {"on": True}})
    await wait_until(lambda: rig.applied, what="commands still served")


# ---- 3. nothing lost across a reconnect -------------------------------------------------------


async def test_events_queued_while_the_broker_is_away_all_arrive_and_the_session_grows(
    broker: Broker, rig: Rig,
) -> None:
    await rig.start()
    async with observe(broker.port, "status", "event", identifier="hq-events",
                       persistent=True) as hq:
        status = await hq.until(lambda: hq.on("status"), "the status")
        session = status[-1]["session"]
        assert status[-1]["state"] == "ready"
        await broker_down(broker, rig)

    for n in range(200):  # well within the backlog (1000)
        rig.van.event({"kind": "test", "n": n})
    await broker.start()

    async with observe(broker.port, identifier="hq-events", persistent=True,
                       subscribe=False) as hq:
        await hq.until(lambda: len(hq.events("test")) >= 200, "the 200 queued events")
        assert [e["n"] for e in hq.events("test")] == list(range(200))
    fresh = await retained_on_broker(broker.port, "status")
    assert fresh["status"]["session"] == session + 1
    assert fresh["status"]["state"] == "ready"


# ---- 4. commands ------------------------------------------------------------------------------


async def test_a_command_gets_exactly_one_result_with_its_id(broker: Broker, rig: Rig) -> None:
    await rig.start()
    async with observe(broker.port, f"result/crew/{ACTION}") as crew:
        await publish(broker.port, f"cmd/crew/{ACTION}", {"id": "c1", "args": {"on": True}})
        # a second command is the fence: by its result, a second answer to c1 would show
        await publish(broker.port, f"cmd/crew/{ACTION}", {"id": "c2", "args": {"on": False}})
        await crew.until(lambda: any(r["id"] == "c2" for r in crew.results("crew", ACTION)),
                         "the result of c2")
        results = crew.results("crew", ACTION)
    assert sorted((r["id"], r["status"], r["code"]) for r in results) == [
        ("c1", "done", "ok"), ("c2", "done", "ok")]
    assert rig.applied == [{"on": True}, {"on": False}]


async def answer_fence(port: int, crew: Observer) -> None:
    """Send a crew command and wait for its result: the bridge answers what reaches it in order,
    so by then every answer to an earlier command has arrived (a second one would show).
    ``crew`` must watch ``result/crew/{ACTION}``; the fence's own args are ``{"on": False}``."""
    await publish(port, f"cmd/crew/{ACTION}", {"id": "fence", "args": {"on": False}})
    await crew.until(lambda: any(r["id"] == "fence" for r in crew.results("crew", ACTION)),
                     "the fence command's result")


def answers(crew: Observer, role: str, action: str) -> list[tuple[Any, ...]]:
    """(id, status, code) of every result on ``result/{role}/{action}`` but the fence's."""
    return [(r["id"], r["status"], r["code"]) for r in crew.results(role, action)
            if r["id"] != "fence"]


async def test_a_retained_command_is_rejected_once_and_not_applied(
    broker: Broker, rig: Rig,
) -> None:
    # retained before the supervisor subscribes, so it is delivered with the retain flag
    await publish(broker.port, f"cmd/crew/{ACTION}", {"id": "r1", "args": {"on": True}},
                  retain=True)
    async with observe(broker.port, f"result/crew/{ACTION}") as crew:
        await rig.start()
        await crew.until(lambda: answers(crew, "crew", ACTION), "the result")
        await answer_fence(broker.port, crew)
    assert [(status, code) for _, status, code in answers(crew, "crew", ACTION)] == [
        ("rejected", "retained")]
    assert rig.applied == [{"on": False}]  # the fence's only
    # and the broker no longer offers it to whoever subscribes next
    assert f"cmd/crew/{ACTION}" not in await retained_on_broker(broker.port, f"cmd/crew/{ACTION}")


async def test_a_command_to_an_unknown_role_is_rejected_once(broker: Broker, rig: Rig) -> None:
    await rig.start()
    async with observe(broker.port, "result/admin/x", f"result/crew/{ACTION}") as crew:
        await publish(broker.port, "cmd/admin/x", {"id": "a1", "args": {}})
        await crew.until(lambda: answers(crew, "admin", "x"), "the result")
        await answer_fence(broker.port, crew)
    assert [(status, code) for _, status, code in answers(crew, "admin", "x")] == [
        ("rejected", "unknown_role")]
    assert rig.applied == [{"on": False}]  # the fence's only


@pytest.mark.parametrize("case", ["retained", "unknown_role"])
async def test_a_rejection_carries_the_command_id(broker: Broker, rig: Rig, case: str) -> None:
    """DESIGN 4: every command gets one result, with its id when the id could be read."""
    role, action = ("crew", ACTION) if case == "retained" else ("admin", "x")
    body = {"id": "k1", "args": {"on": True}}
    if case == "retained":
        await publish(broker.port, f"cmd/{role}/{action}", body, retain=True)
    async with observe(broker.port, f"result/{role}/{action}") as crew:
        await rig.start()
        if case == "unknown_role":
            await publish(broker.port, f"cmd/{role}/{action}", body)
        await crew.until(lambda: [a for a in answers(crew, role, action) if a[2] == case],
                         "the result")
    assert [cid for cid, _, code in answers(crew, role, action) if code == case] == ["k1"]


async def test_hostile_messages_never_end_the_session(broker: Broker, rig: Rig) -> None:
    """The hostile tester's messages, over a real broker: each is answered once (with its id
    where it can be read), nothing is applied, and the session never drops."""
    await rig.start()
    session = rig.bridge.session
    on = b'"args":{"on":true}'
    hostile: list[tuple[str, bytes]] = [
        (f"cmd/crew/{ACTION}", b'{"id":"h1",' + on + b',"x":' + b"[" * 2000 + b"]" * 2000
         + b"}"),
        (f"cmd/crew/{ACTION}", b'{"id":"h2",' + on + b',"expires":' + b"9" * 400 + b"}"),
        (f"cmd/crew/{ACTION}", b'{"id":"h3",' + on + b',"expires":NaN}'),
        (f"cmd/crew/{ACTION}", rb'{"id":"\ud800",' + on + b"}"),
        (f"cmd/crew/{ACTION}", b'{"id":"h5","args":{"on":"\xed\xa0\x80"}}'),
        ("cmd/crew/" + "a" * 60_000, b'{"id":"h6",' + on + b"}"),
        ("cmd/" + "r" * 60_000 + "/x", b'{"id":"h7",' + on + b"}"),
        (f"cmd/crew/{ACTION}", b"\xed\xa0\x80"),
    ]
    async with observe(broker.port, "result/#") as crew:
        async with aiomqtt.Client(HOST, broker.port, timeout=DEADLINE_S) as client:
            for suffix, payload in hostile:
                await client.publish(topic(suffix), payload, qos=1)
        await answer_fence(broker.port, crew)
        results = [r for r in crew.on("result/crew/" + ACTION) if r["id"] != "fence"] \
            + crew.on("result/invalid")
    assert len(results) == len(hostile)  # one answer each, and the fence came after them
    assert {r["status"] for r in results} == {"rejected"}
    # ids that can be read come back; 2000-deep JSON, a lone surrogate id and bytes that are
    # not UTF-8 have none that can be
    assert sorted(str(r["id"]) for r in results) == sorted(
        ["None", "h2", "h3", "None", "None", "h6", "h7", "None"])
    assert rig.applied == [{"on": False}]  # only the fence
    assert rig.bridge.session == session and rig.bridge.connected


# ---- bugs found on the way, kept fixed ------------------------------------------------------


async def test_a_command_retained_while_the_supervisor_listens_is_not_applied(
    broker: Broker, rig: Rig,
) -> None:
    await rig.start()
    async with observe(broker.port, f"result/crew/{ACTION}") as crew:
        await publish(broker.port, f"cmd/crew/{ACTION}", {"id": "r2", "args": {"on": True}},
                      retain=True)
        await crew.until(lambda: answers(crew, "crew", ACTION), "the result")
        await answer_fence(broker.port, crew)
    assert rig.applied == [{"on": False}]  # the fence's only
    assert answers(crew, "crew", ACTION) == [("r2", "rejected", "retained")]


async def test_a_command_sent_while_the_supervisor_is_away_is_answered_when_it_is_back(
    broker: Broker, rig: Rig,
) -> None:
    await rig.start()
    async with observe(broker.port, f"result/crew/{ACTION}") as crew:
        await rig.stop()  # the supervisor restarts
        await publish(broker.port, f"cmd/crew/{ACTION}", {"id": "w1", "args": {"on": True}})
        await rig.start()
        # the broker hands a returning session its queued command before anything newer,
        # so by the result of a command sent now, w1's result must have arrived
        await publish(broker.port, f"cmd/crew/{ACTION}", {"id": "w2", "args": {"on": False}})
        await crew.until(lambda: any(r["id"] == "w2" for r in crew.results("crew", ACTION)),
                         "the result of w2")
        ids = [r["id"] for r in crew.results("crew", ACTION)]
    assert ids == ["w1", "w2"]
    assert rig.applied == [{"on": True}, {"on": False}]


async def test_status_is_republished_after_a_network_drop_in_a_quiet_van(
    broker: Broker, link: TcpRelay, linked_rig: Rig,
) -> None:
    rig = linked_rig
    await rig.start()
    session = rig.bridge.session
    async with observe(broker.port, "status") as hq:
        await hq.until(lambda: [s for s in hq.on("status") if s["session"] == session],
                       "the status")
        seen = len(hq.on("status"))
        link.cut()
        # the will may be followed at once by the reconnected bridge's status: look at all
        await hq.until(lambda: any(s["state"] == "lost" for s in hq.on("status")[seen:]),
                       "the last will")
        await wait_until(lambda: rig.bridge.connected and rig.bridge.session == session + 1,
                         what="the bridge to reconnect")
        await hq.until(lambda: hq.on("status")[-1]["state"] == "ready",
                       "the status to be republished", timeout=REPUBLISH_WAIT_S)
    assert hq.on("status")[-1]["session"] == session + 1


async def test_an_alarm_cleared_as_the_link_drops_is_cleared_on_the_broker(
    broker: Broker, link: TcpRelay, linked_rig: Rig,
) -> None:
    rig = linked_rig
    await rig.start()
    session = rig.bridge.session
    async with observe(broker.port, f"alarm/{ALARM}", "event") as hq:
        rig.alarms.set(ALARM, True, rig.now, "11.2 V")
        await hq.until(lambda: hq.on(f"alarm/{ALARM}"), "the raised alarm")
        assert hq.on(f"alarm/{ALARM}")[-1]["active"] is True

        link.stall()
        rig.alarms.set(ALARM, False, rig.now + 60)  # cleared (and, not latching, acknowledged)
        await wait_until(lambda: link.dropped_bytes > 0, what="the bridge to send the clear")
        link.cut()
        await wait_until(lambda: rig.bridge.connected and rig.bridge.session == session + 1,
                         what="the bridge to reconnect")
        rig.van.event({"kind": "fence"})  # wakes the sender; retained topics go before it
        await hq.until(lambda: hq.events("fence"), "the fence event")
    assert f"alarm/{ALARM}" not in await retained_on_broker(broker.port, f"alarm/{ALARM}")


async def test_beyond_the_intake_a_command_is_busy_and_another_action_is_still_served(
    broker: Broker, rig: Rig
) -> None:
    """While MAX_PER_ACTION commands of one action are in progress, one more of that action is
    answered ``busy`` at once (nothing applied), and a command of another action is served."""
    release = asyncio.Event()
    held: list[dict[str, Any]] = []

    async def slow(args: dict[str, Any]) -> str:
        held.append(args)
        await release.wait()  # a write that takes its time
        return "done slowly"

    rig.router.register(ActionSpec("lights/slow", slow, frozenset({"crew"}),
                                   {"on": ArgSpec("bool")}))
    await rig.start()
    async with observe(broker.port, "result/crew/#") as crew:
        for i in range(MAX_PER_ACTION):
            await publish(broker.port, "cmd/crew/lights/slow",
                          {"id": f"s{i}", "args": {"on": True}})
        await crew.until(lambda: len(held) == MAX_PER_ACTION, "the slow commands in progress")
        await publish(broker.port, "cmd/crew/lights/slow", {"id": "over", "args": {"on": True}})
        await publish(broker.port, f"cmd/crew/{ACTION}", {"id": "other", "args": {"on": True}})
        await crew.until(lambda: {r["id"] for r in crew.results("crew", "lights/slow")} >= {"over"}
                         and crew.results("crew", ACTION), "the busy and the other answers")
        assert [(r["id"], r["status"], r["code"]) for r in crew.results("crew", "lights/slow")] \
            == [("over", "rejected", "busy")]
        assert [(r["id"], r["status"]) for r in crew.results("crew", ACTION)] == [("other", "done")]
        assert len(held) == MAX_PER_ACTION and rig.bridge.busy == 1
        release.set()
        await crew.until(lambda: len(crew.results("crew", "lights/slow")) == MAX_PER_ACTION + 1,
                         "the slow commands answered")
    assert {r["status"] for r in crew.results("crew", "lights/slow")[1:]} == {"done"}
