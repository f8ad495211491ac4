"""HQ's subscriber in a process of its own, for the benchmarks' press-to-alarm figures.

The simulated van's event loop (the room node's firmware sampling every 5 ms, the Modbus
servers answering polls, the plant) runs in the bench's process: a subscriber there stamps a
message only when that loop gets to it, which adds the simulator's delays to the van's.
This process only listens: each message is stamped with ``time.perf_counter()`` as it
arrives (CLOCK_MONOTONIC, one clock for every process of the machine) and printed as one
line ``<stamp> <topic below the prefix> <payload>``.

Usage: ``python bench/hq_subscriber.py HOST PORT PREFIX FILTER`` (prints ``ready`` once
subscribed). :class:`HqSubscriber` runs it and hands the lines to ``Arrivals``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt

if TYPE_CHECKING:
    from bench.arrivals import Arrivals, Match
else:
    from arrivals import Arrivals, Match

READY_TIMEOUT_S = 30.0


async def listen(host: str, port: int, prefix: str, topic_filter: str) -> None:
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(f"{prefix}/{topic_filter}", qos=1)
        print("ready", flush=True)
        async for message in client.messages:
            stamp = time.perf_counter()
            payload = message.payload if isinstance(message.payload, bytes) else b""
            topic = message.topic.value.removeprefix(f"{prefix}/")
            sys.stdout.write(f"{stamp:.6f} {topic} {payload.decode(errors='replace')}\n")
            sys.stdout.flush()


class HqSubscriber:
    """The subscriber process, started by :meth:`start`, stopped by its own pid."""

    def __init__(self, port: int, prefix: str, topic_filter: str) -> None:
        self.args = ("127.0.0.1", str(port), prefix, topic_filter)
        self.arrivals = Arrivals()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__)), *self.args, stdout=asyncio.subprocess.PIPE)
        assert self._proc.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT_S):
            line = await self._proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"HQ subscriber did not start: {line!r}")
        self._reader = asyncio.create_task(self._read(), name="hq subscriber")

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            stamp, topic, payload = line.decode().rstrip("\n").split(" ", 2)
            value: Any = None
            with contextlib.suppress(ValueError):
                value = json.loads(payload) if payload else None
            self.arrivals.offer(topic, value, float(stamp))

    def watch(self, match: Match) -> asyncio.Future[float]:
        """A future resolved with the arrival stamp of the next message ``match`` accepts."""
        return self.arrivals.watch(match)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


if __name__ == "__main__":
    host, port, prefix, topic_filter = sys.argv[1:5]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(listen(host, int(port), prefix, topic_filter))
