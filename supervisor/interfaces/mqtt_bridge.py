"""MQTT interface v1 (see DESIGN.md section 4) on the local broker, with aiomqtt.

One outbox feeds one sender: retained topics are coalesced (only the newest payload of a topic
is kept), events queue in order. While the broker is away the supervisor keeps controlling the
van; on every (re)connect the session counter grows, everything retained is republished and
queued events are flushed. Reconnects back off exponentially with jitter.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import socket
import time
from collections import Counter, OrderedDict, deque
from typing import TYPE_CHECKING, Any

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from supervisor.core.alarms import AlarmDef, AlarmState
from supervisor.core.commands import ROLE_NAMES, Result
from supervisor.core.points import PointDef, PointValue
from supervisor.core.van_state import (
    VanState,
    alarm_payload,
    device_payload,
    dumps,
    last_event_payload,
    state_payload,
)
from supervisor.interfaces.mqtt_publish import publish_in_order
from supervisor.interfaces.uplink import Uplink

if TYPE_CHECKING:
    from supervisor.interfaces.ha_discovery import HaDiscovery

log = structlog.get_logger("supervisor.mqtt")

SESSION_EXPIRY_S = 7 * 86400  # the broker keeps our session (and queues commands) this long
# Events kept for the broker while it is away or slow (they are in SQLite too); the oldest
# go first beyond this. Results are never dropped: each answers a command the broker
# delivered, and the broker's own queue (max_queued_messages) bounds how many those are.
EVENT_BACKLOG = 10000
QOS = 1
# Retained state (status, meta, state/…, device/…, events/last) goes to the local broker at
# QoS 0: it converges rather than queues (a lost connection is followed by a republish of
# everything, and only the newest value of a topic matters), and an acknowledgement per
# reading would be most of the supervisor's work on a busy bus. Alarms, events and results
# stay at QoS 1: the broker's receipt of an alarm is what a panic's delivery reports.
STATE_QOS = 0
PUBLISH_BATCH = 20  # results or events in flight at once (mosquitto's default max_inflight)
# Commands in progress at once, in all and of one role's one action; beyond either a command
# is answered "busy" at once (cheaply: no audit, counted), so a flood of one kind is drained
# fast and cannot crowd out the crew's other commands.
MAX_INTAKE = 100
MAX_PER_ACTION = 25
BUSY_LOG_EVERY_S = 10.0
MAX_ACTION = 120  # characters of a role or an action id in a command topic
# the van broker's bridges tell their state on bridge/<connection> ("1" up, "0" down: the
# remote's will); it is the point comms/bridge/<connection> where the comms subsystem has one
BRIDGE_NAME = re.compile(r"[a-z0-9_]{1,32}")
_SHAPE = re.compile(r"[a-z0-9_]+(/[a-z0-9_]+){0,7}")


class MqttBridge:
    """Commands arrive on ``cmd/{role}/{action}`` (the broker ACL binds each role's subtree
    to its login, so the topic tells who sent it); results go to ``result/{role}/{action}``,
    which only the supervisor may publish."""

    def __init__(self, van: VanState) -> None:
        self.cfg = van.cfg.mqtt
        cfg = self.cfg
        self.van = van
        self.prefix = f"mcw/v1/{van.cfg.vehicle.id}"
        self.storage = van.storage
        self.router = van.router
        # retained topics waiting for the broker, latest payload each; alarms go first
        # (a panic must not queue behind a poll's worth of readings on a slow link)
        self._alarms: OrderedDict[str, bytes] = OrderedDict()
        self._retained: OrderedDict[str, bytes] = OrderedDict()
        self._events: deque[tuple[str, bytes]] = deque(maxlen=EVENT_BACKLOG)
        self._results: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._republish = asyncio.Event()
        self._drained = asyncio.Event()  # set by the sender whenever the outbox is empty
        self._intake = 0  # commands being handled now
        self._per_action: Counter[tuple[str, str]] = Counter()  # of them, by (role, action)
        self.busy = 0  # commands answered "busy" since the start
        self._busy_logged = (0, float("-inf"))  # (count, monotonic time) when last logged
        self.connected = False
        self.session = int(self.storage.get("mqtt_session", 0))
        self.published = 0
        self._password = (
            cfg.password_file.read_text().strip() if cfg.password_file is not None else None
        )
        van.session = lambda: self.session
        van.points.changed.add(self._point)
        van.alarms.changed.add(self._alarm)
        van.devices.health_changed.add(
            lambda device, status: self.retain(f"device/{device}/status", device_payload(status)))
        van.status_changed.add(lambda _state: self.retain("status", van.status_payload()))
        van.event_added.add(self.event)
        # the van's events for HQ, paced, while the HQ bridge is connected
        self.uplink = (None if cfg.uplink_bridge is None else
                       Uplink(self.storage, self.prefix, cfg.uplink_rate, cfg.uplink_burst))
        if self.uplink is not None:
            van.resend = self.uplink.resend
        ha = van.cfg.home_assistant
        self.ha: HaDiscovery | None = None  # kept across sessions
        if ha.enabled:
            # loaded only where it is enabled (off by default)
            from supervisor.interfaces.ha_discovery import HaDiscovery

            self.ha = HaDiscovery(van, ha)

    def _point(self, pdef: PointDef, pv: PointValue) -> None:
        if not pdef.local:
            self.retain(f"state/{pdef.id}", state_payload(pv))

    def _alarm(self, adef: AlarmDef, state: AlarmState | None, what: str) -> None:
        self.retain(f"alarm/{adef.id}", alarm_payload(adef, state))

    # ---- what the rest of the supervisor calls --------------------------------------

    def retain(self, suffix: str, payload: bytes) -> None:
        """Queue a retained topic (an empty payload clears it on the broker)."""
        queue = self._alarms if suffix.startswith("alarm/") else self._retained
        queue[suffix] = payload
        queue.move_to_end(suffix)
        self._wake.set()

    def event(self, payload: dict[str, Any]) -> None:
        self._events.append((f"{self.prefix}/event", dumps(payload)))
        if self.uplink is not None:  # events/last is HQ's, for its tail check
            self.retain("events/last", last_event_payload(int(payload["id"])))
            self.uplink.added()

    def request_republish(self) -> None:
        self._republish.set()
        self._wake.set()

    # ---- connection ------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected forever, backing off between attempts."""
        delay = self.cfg.reconnect_min_s
        while True:
            try:
                await self._session()
            except* aiomqtt.MqttError as group:  # from connect, or from the session's tasks
                if self.connected:
                    log.warning("mqtt_disconnected", error=str(group.exceptions[0]))
                    delay = self.cfg.reconnect_min_s
                self.connected = False
            wait = delay * (0.5 + random.random())  # jitter: a fleet must not reconnect in step
            await asyncio.sleep(wait)  # reconnect backoff
            delay = min(delay * 2, self.cfg.reconnect_max_s)

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued is on the broker (False if not within the time)."""
        if not self.connected:
            return False
        self._drained.clear()
        self._wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                await self._drained.wait()
        except TimeoutError:
            return False
        return True

    async def _session(self) -> None:
        will = aiomqtt.Will(
            f"{self.prefix}/status",
            dumps({"state": "lost", "session": self.session + 1}),
            qos=QOS,
            retain=True,
        )
        async with aiomqtt.Client(
            self.cfg.host,
            self.cfg.port,
            identifier=f"mcw-supervisor-{self.prefix}",
            username=self.cfg.username,
            password=self._password,
            will=will,
            keepalive=self.cfg.keepalive_s,
            timeout=10,
            # small JSON messages: without this, Nagle + delayed ACK add ~40 ms per command
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            # MQTT 5, a session the broker keeps while we are away (commands sent during a
            # restart are queued and answered when we are back, or expired)
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=_session_properties(),
        ) as client:
            # aiomqtt calls in flight at once on purpose (it warns beyond its threshold of
            # 10): the sender's batch, the uplink's, HA's and, for each command in progress,
            # the clearing of a retained one
            client.pending_calls_threshold = 3 + MAX_INTAKE
            self.session = self.storage.increment("mqtt_session")
            self.connected = True
            log.info("mqtt_connected", host=self.cfg.host, port=self.cfg.port, session=self.session)
            # retainAsPublished: a retained command shows as one even when it arrives live;
            # noLocal: our own clearing of one does not come back; retainHandling 1: the
            # retained copies are sent when the subscription is new, not at every reconnect
            await client.subscribe(f"{self.prefix}/cmd/#", options=SubscribeOptions(
                qos=QOS, noLocal=True, retainAsPublished=True, retainHandling=1))
            if self.uplink is not None:
                self.uplink.bridge_changed(False)  # until its retained notification comes
            await client.subscribe(f"{self.prefix}/bridge/+", qos=QOS)
            self.request_republish()  # everything again, whatever the broker kept
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sender(client), name="mqtt-sender")
                if self.uplink is not None:
                    tg.create_task(self.uplink.run(client), name="mqtt-uplink")
                if self.ha is not None:
                    tg.create_task(self.ha.run(client), name="ha-discovery")
                async for message in client.messages:
                    topic = message.topic.value
                    if topic.startswith(f"{self.prefix}/bridge/"):
                        self._bridge_note(message)
                    elif topic.startswith(f"{self.prefix}/cmd/"):
                        tg.create_task(self._command(message, client), name="mqtt-command")
                    elif self.ha is not None:
                        # the persistent session keeps a subscription of an earlier run
                        # (Home Assistant disabled since): anything else is not a command
                        self.ha.route(message)

    def _bridge_note(self, message: aiomqtt.Message) -> None:
        """A Mosquitto bridge's notification: its point, if the van has one, and the uplink's
        gate for the HQ bridge."""
        payload = message.payload if isinstance(message.payload, bytes) else b""
        suffix = message.topic.value.removeprefix(f"{self.prefix}/")
        note = bridge_note(suffix, payload)
        if self.uplink is not None and suffix == f"bridge/{self.cfg.uplink_bridge}":
            up = note is not None and note[1] is True
            if up and not self.uplink.up:
                self._clear_at_hq()
            self.uplink.bridge_changed(up)
        if note is not None and note[0] in self.van.points.defs:
            self.van.points.update(note[0], note[1], time.time())
    def _clear_at_hq(self) -> None:
        """The HQ bridge has just connected: clear again every alarm that is not shown here.
        It sends the van's retained topics once each (alarms at QoS 0, not queued while it
        was down), and a retained topic cleared meanwhile is not among them, so HQ would
        keep showing it; a clear of a topic with nothing retained changes nothing here."""
        for aid in self.van.alarms.defs.keys() - self.van.alarms.states.keys():
            self.retain(f"alarm/{aid}", b"")

    async def _sender(self, client: aiomqtt.Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._republish.is_set():
                self._republish.clear()
                retained = self.van.retained()
                if self.uplink is not None and self.van.last_event_id:
                    retained["events/last"] = last_event_payload(self.van.last_event_id)
                for suffix, payload in retained.items():
                    (self._alarms if suffix.startswith("alarm/") else self._retained)[
                        suffix] = payload
            while self._alarms or self._retained:
                # removed once sent (an alarm: once the broker has it): a publish cut off by
                # a lost link (an error or a cancellation) leaves them queued for the next
                # connection
                queue = self._alarms or self._retained
                batch = list(itertools.islice(queue.items(), PUBLISH_BATCH))
                messages = [(f"{self.prefix}/{s}", p) for s, p in batch]
                await publish_in_order(client, messages,
                                       QOS if queue is self._alarms else STATE_QOS, retain=True)
                for suffix, payload in batch:
                    if queue.get(suffix) is payload:  # not replaced meanwhile
                        del queue[suffix]
                    self.published += 1
                    if suffix.startswith("alarm/") and payload:
                        # the broker has it: a panic's delivery may say "sent" from here
                        self.van.alarms.published(suffix.removeprefix("alarm/"))
            # a batch of results and of events, published together (in order) rather than
            # one round trip each; then the state again, so a flood of commands never holds
            # back the readings
            await _publish_batch(client, self._results, self._events)
            if self._results or self._events:
                self._wake.set()
            elif not self._wake.is_set():
                self._drained.set()

    async def _command(self, message: aiomqtt.Message, client: aiomqtt.Client) -> None:
        """Answer one message on cmd/#, whatever it holds: exactly one result, and nothing it
        carries may end the session (its task runs in the session's TaskGroup)."""
        role, _, action = message.topic.value.removeprefix(f"{self.prefix}/cmd/").partition("/")
        payload = message.payload if isinstance(message.payload, bytes | str) else b""
        topic = self._result_topic(role, action)
        self._intake += 1
        try:
            result = await self._answer(message, client, role, action, payload)
        except Exception:  # a bug must still give the sender an answer, and keep the session
            log.exception("mqtt_command_error", topic=message.topic.value[:200])
            result = self.router.refuse(action[:MAX_ACTION], payload, role[:MAX_ACTION], "mqtt",
                                        "internal_error", "the command could not be handled")
        finally:
            self._intake -= 1
        if result is not None:
            self._results.append((topic, dumps(result.as_dict())))
            self._wake.set()

    async def _answer(self, message: aiomqtt.Message, client: aiomqtt.Client, role: str,
                      action: str, payload: bytes | str) -> Result | None:
        topic = message.topic.value
        refuse = self.router.refuse
        if not (_well_formed(role) and _well_formed(action)):
            return refuse(action[:MAX_ACTION], payload, role[:MAX_ACTION], "mqtt", "bad_topic",
                          "commands go to cmd/<role>/<action>, lower case, at most "
                          f"{MAX_ACTION} characters")
        if role not in ROLE_NAMES:
            return refuse(action, payload, role, "mqtt", "unknown_role",
                          f"commands go to cmd/{{{'|'.join(ROLE_NAMES)}}}/<action>")
        if message.retain:
            # kept by the broker for whoever subscribes next: meant for another moment, never
            # applied; cleared so that it is not offered again
            if payload:
                await client.publish(topic, b"", qos=QOS, retain=True)
            return refuse(action, payload, role, "mqtt", "retained",
                          "retained commands are never applied")
        key = (role, action)
        if self._intake > MAX_INTAKE or self._per_action[key] >= MAX_PER_ACTION:
            self._count_busy()
            return refuse(action, payload, role, "mqtt", "busy",
                          f"too many commands in progress (at most {MAX_INTAKE}, "
                          f"{MAX_PER_ACTION} of one action); try again", audit=False)
        self._per_action[key] += 1
        try:
            return await self.router.submit(action, payload, role, "mqtt")
        finally:
            self._per_action[key] -= 1
            if not self._per_action[key]:
                del self._per_action[key]

    def _count_busy(self) -> None:
        """Count an overload's answer; logged as a sum, at most every BUSY_LOG_EVERY_S."""
        self.busy += 1
        logged, at = self._busy_logged
        now = time.monotonic()
        if now - at >= BUSY_LOG_EVERY_S:
            log.warning("commands_busy", answered_busy=self.busy - logged, total=self.busy)
            self._busy_logged = (self.busy, now)

    def _result_topic(self, role: str, action: str) -> str:
        if _well_formed(role) and _well_formed(action):
            return f"{self.prefix}/result/{role}/{action}"
        return f"{self.prefix}/result/invalid"  # a topic we cannot echo back


async def _publish_batch(client: aiomqtt.Client, *queues: deque[tuple[str, bytes]]) -> None:
    """Publish up to PUBLISH_BATCH messages from the head of each of ``queues`` at once (in
    that order: a command's result goes with its audit event) and remove them only once the
    broker has them all."""
    batches = [[queue[i] for i in range(min(PUBLISH_BATCH, len(queue)))] for queue in queues]
    await publish_in_order(client, [message for batch in batches for message in batch], QOS)
    for queue, batch in zip(queues, batches, strict=True):
        for _ in batch:
            queue.popleft()


def _session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    return props


def _well_formed(name: str) -> bool:
    """A role or action id fit to be echoed in a result topic."""
    return len(name) <= MAX_ACTION and _SHAPE.fullmatch(name) is not None


def bridge_note(suffix: str, payload: bytes) -> tuple[str, bool | None] | None:
    """A bridge notification (``bridge/<connection>`` below the vehicle's prefix, payload
    ``1`` up or ``0`` down) as (its point, up); anything else on the bridge's payload is
    (point, None): the point is invalid; a topic that is no notification is None."""
    kind, _, name = suffix.partition("/")
    if kind != "bridge" or not BRIDGE_NAME.fullmatch(name):
        return None
    return f"comms/bridge/{name}", {b"1": True, b"0": False}.get(payload.strip())

