"""Awaiting MQTT messages in the bench, on the clock of their arrival.

The bench's monitors (bench/run.py's ``TimedMonitor``, bench/robustness.py's ``Recorder``)
hand every message they receive to ``Arrivals.offer`` with its ``time.perf_counter()`` stamp;
``Arrivals.watch`` gives a future resolved with the stamp of the next message a ``Match``
accepts, so a plant change or a command and its effect are timed on one clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Match = Callable[[str, Any], bool]
"""Accepts a message: ``(topic below the vehicle prefix, decoded payload) -> bool``."""


class Arrivals:
    """The pending watches of one monitor."""

    def __init__(self) -> None:
        self._pending: list[tuple[Match, asyncio.Future[float]]] = []

    def watch(self, match: Match) -> asyncio.Future[float]:
        """A future resolved with the arrival time of the next message ``match`` accepts."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pending.append((match, fut))
        return fut

    def offer(self, topic: str, value: Any, arrived: float) -> None:
        """Resolve the watches ``(topic, value)`` matches; forget those already done."""
        if not self._pending:
            return
        keep = []
        for match, fut in self._pending:
            if fut.done():  # cancelled, e.g. its wait timed out
                continue
            if match(topic, value):
                fut.set_result(arrived)
            else:
                keep.append((match, fut))
        self._pending = keep
