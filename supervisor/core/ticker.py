"""Keeping the loops alive: each task restarts its own work after a failure (``supervised``),
and once a second the ticker ages the points, refreshes device counts, watches the disk
(pruning old rows hourly), settles deferred safe states and pings the systemd watchdog while
every loop makes progress.

The watchdog watches progress counters: each bus worker's and each subsystem's heartbeat. A
counter that has not moved for ``stall_s`` stops the pings, so systemd restarts a supervisor
whose loop hangs even though the process and its ticker still run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

from drivers.bus_worker import BusWorker
from supervisor.core.outputs import OutputPort
from supervisor.core.subsystem import Heartbeat
from supervisor.core.systemd_notify import notify, watchdog_interval
from supervisor.core.van_state import VanState

log = structlog.get_logger("supervisor.ticker")

RESTART_BACKOFF_MAX_S = 30.0
TICK_S = 1.0
STALL_S = 10.0
DEVICE_STATUS_REFRESH_S = 10.0
PRUNE_S = 3600.0


class Watchdog:
    """Decides whether every watched loop is still turning."""

    def __init__(self, counters: Mapping[str, Callable[[], int]], stall_s: float = STALL_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.counters = counters
        self.stall_s = stall_s
        self._mono = monotonic
        self._seen: dict[str, tuple[int, float]] = {}
        self.stalled: set[str] = set()

    def alive(self) -> bool:
        now = self._mono()
        for name, counter in self.counters.items():
            count = counter()
            last, since = self._seen.get(name, (-1, now))
            if count != last:
                self._seen[name] = (count, now)
                self.stalled.discard(name)
            elif now - since > self.stall_s and name not in self.stalled:
                self.stalled.add(name)
                log.error("loop_stalled", loop=name, stalled_s=round(now - since, 1))
        return not self.stalled


async def tick(van: VanState, port: OutputPort, workers: Mapping[str, BusWorker],
               watchdog: Watchdog, period_s: float = TICK_S) -> None:
    """The ticker task."""
    ping_every = watchdog_interval()
    last_ping = last_refresh = last_prune = float("-inf")
    while True:
        van.points.sweep(van.wall())
        van.check_storage()
        mono = time.monotonic()
        if mono - last_prune >= PRUNE_S:
            van.storage.prune(van.wall(), van.cfg.storage.keep_days)
            last_prune = mono
        if mono - last_refresh >= DEVICE_STATUS_REFRESH_S:
            _refresh_device_status(van, workers)
            last_refresh = mono
        await port.settle_deferred()
        if watchdog.alive() and ping_every is not None and mono - last_ping >= ping_every:
            notify("WATCHDOG=1")
            last_ping = mono
        await asyncio.sleep(period_s)  # the tick period


def _refresh_device_status(van: VanState, workers: Mapping[str, BusWorker]) -> None:
    """Publish health counts and last_ok between transitions (transitions go at once)."""
    for worker in workers.values():
        for device in worker.device_ids:
            snapshot = worker.status(device)
            if device in van.devices.status and snapshot != van.devices.status[device]:
                van.devices.health(device, snapshot)


def progress_counter(loop: BusWorker | Heartbeat) -> Callable[[], int]:
    """The progress counter of a bus worker or a subsystem loop, for the watchdog."""
    if isinstance(loop, Heartbeat):
        return lambda: loop.count
    return lambda: loop.progress


async def supervised(name: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` forever, restarting it with backoff if it fails; cancellation ends it."""
    delay = 0.5
    while True:
        try:
            await work()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task_failed", task=name, restart_in_s=delay)
        await asyncio.sleep(delay)  # restart backoff
        delay = min(delay * 2, RESTART_BACKOFF_MAX_S)
