"""MQTT interface v1 (see DESIGN.md section 4) on the local broker, with aiomqtt.

One outbox feeds one sender: retained topics are coalesced (only the newest payload of a topic
is kept), events queue in order. While the broker is away the supervisor keeps controlling the
van; on every (re)connect the session counter grows, everything retained is republished and
queued events are flushed. Reconnects back off exponentially with jitter.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import structlog

from supervisor.core.commands import CommandRouter
from supervisor.core.config import MqttConfig
from supervisor.core.storage import Storage

log = structlog.get_logger("supervisor.mqtt")

EVENT_BACKLOG = 1000
QOS = 1


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC with milliseconds."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


Snapshot = Callable[[], dict[str, bytes]]


class MqttBridge:
    def __init__(
        self,
        cfg: MqttConfig,
        vehicle_id: str,
        storage: Storage,
        router: CommandRouter,
        snapshot: Snapshot,
    ) -> None:
        self.cfg = cfg
        self.prefix = f"mcw/v1/{vehicle_id}"
        self.storage = storage
        self.router = router
        self._snapshot = snapshot  # every retained topic (suffix -> payload) for a republish
        self._retained: OrderedDict[str, bytes] = OrderedDict()
        self._events: deque[bytes] = deque(maxlen=EVENT_BACKLOG)
        self._results: deque[tuple[str, bytes]] = deque(maxlen=EVENT_BACKLOG)
        self._wake = asyncio.Event()
        self._republish = asyncio.Event()
        self._drained = asyncio.Event()  # set by the sender whenever the outbox is empty
        self.connected = False
        self.session = int(storage.get("mqtt_session", 0))
        self.published = 0
        self._password = (
            cfg.password_file.read_text().strip() if cfg.password_file is not None else None
        )

    # ---- what the rest of the supervisor calls --------------------------------------

    def retain(self, suffix: str, payload: bytes) -> None:
        """Queue a retained topic (an empty payload clears it on the broker)."""
        self._retained[suffix] = payload
        self._retained.move_to_end(suffix)
        self._wake.set()

    def event(self, payload: dict[str, Any]) -> None:
        self._events.append(dumps(payload))
        self._wake.set()

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
            await asyncio.wait_for(self._drained.wait(), timeout_s)
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
        ) as client:
            self.session = self.storage.increment("mqtt_session")
            self.connected = True
            log.info("mqtt_connected", host=self.cfg.host, port=self.cfg.port, session=self.session)
            await client.subscribe(f"{self.prefix}/cmd/#", qos=QOS)
            self._republish.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sender(client), name="mqtt-sender")
                async for message in client.messages:
                    tg.create_task(self._command(message), name="mqtt-command")

    async def _sender(self, client: aiomqtt.Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._republish.is_set():
                self._republish.clear()
                for suffix, payload in self._snapshot().items():
                    self._retained[suffix] = payload
            while self._retained:
                suffix, payload = self._retained.popitem(last=False)
                try:
                    await client.publish(f"{self.prefix}/{suffix}", payload, qos=QOS, retain=True)
                except aiomqtt.MqttError:
                    self._retained[suffix] = payload  # keep it for the next connection
                    raise
                self.published += 1
            while self._results:
                topic, payload = self._results[0]
                await client.publish(topic, payload, qos=QOS)
                self._results.popleft()
            while self._events:
                await client.publish(f"{self.prefix}/event", self._events[0], qos=QOS)
                self._events.popleft()
            if not self._wake.is_set():
                self._drained.set()

    async def _command(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        action = topic.removeprefix(f"{self.prefix}/cmd/")
        if action.endswith("/result") or action == "result":
            return  # our own answers come back through the same subscription
        payload = message.payload if isinstance(message.payload, bytes | str) else b""
        result = await self.router.submit(action, payload, self.cfg.role, "mqtt")
        self._results.append((f"{self.prefix}/cmd/{action}/result", dumps(result.as_dict())))
        self._wake.set()
