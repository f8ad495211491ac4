"""A broker's retained topics as a subscriber arriving now gets them, for the tools that read
the van's state from its broker (``mcwctl``'s views, the support bundle).

The broker sends the retained copies in one burst after the subscription; QUIET_S of silence
ends it. Bounded whatever the broker holds: at most ``max_topics`` topics and ``max_bytes`` of
payload, and ``wait_s`` for the whole session (connect, subscribe, read; a second of it is
left to disconnect). Free of the terminal libraries: the daemon's ``diag/bundle`` uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiomqtt

QUIET_S = 0.5  # retained messages come in one burst; this much silence ends it
MAX_TOPICS = 20_000  # retained topics one reading takes at most: a flood must end
MAX_BYTES = 30 * 1024 * 1024  # of their payloads


async def read_retained(host: str, port: int, filters: Sequence[str], user: str | None,
                        password: str | None, *, wait_s: float, connect_timeout_s: float,
                        max_topics: int = MAX_TOPICS, max_bytes: int = MAX_BYTES,
                        ) -> tuple[dict[str, bytes], str | None]:
    """Topic -> payload of the retained messages on ``filters``, and why reading stopped
    early (None: the burst ended). aiomqtt.MqttError when the broker refuses or is away;
    TimeoutError when the session took longer than ``wait_s``."""
    found: dict[str, bytes] = {}
    total = 0
    cut: str | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    async with asyncio.timeout(wait_s), \
            aiomqtt.Client(host, port, username=user, password=password,
                           timeout=connect_timeout_s) as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        while True:
            if len(found) >= max_topics:
                cut = f"stopped after {max_topics} topics"
                break
            if total >= max_bytes:
                cut = f"stopped after {max_bytes} bytes"
                break
            wait = min(QUIET_S, deadline - loop.time() - 1.0)  # leave a second to disconnect
            if wait <= 0:
                cut = f"stopped after {wait_s - 1.0:g} s (still arriving)"
                break
            try:
                async with asyncio.timeout(wait):
                    msg = await anext(client.messages)
            except TimeoutError:
                break
            if not msg.retain:
                continue
            raw = payload_bytes(msg.payload)
            total += len(raw)
            found[msg.topic.value] = raw
    return found, cut


def payload_bytes(payload: Any) -> bytes:
    """An MQTT message's payload as bytes (aiomqtt may give text or a number)."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
