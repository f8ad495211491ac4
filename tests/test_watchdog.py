"""The systemd watchdog pings only while every bus worker and subsystem loop makes progress."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from testsupport import wait_until
from virtual_core import VirtualCore

from drivers.register_codec import Value
from supervisor.core.listeners import Listeners
from supervisor.core.subsystem import Clock, Heartbeat
from supervisor.core.ticker import Watchdog, progress_counter, tick
from supervisor.registry import load_config

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"


def test_a_loop_that_stops_beating_stops_the_watchdog() -> None:
    now = [0.0]
    healthy, stuck = Heartbeat("power"), Heartbeat("climate")
    dog = Watchdog({"power": progress_counter(healthy), "climate": progress_counter(stuck)},
                   stall_s=10, monotonic=lambda: now[0])
    for _ in range(30):  # 15 s: power beats, climate stopped after its first beat
        healthy.beat()
        now[0] += 0.5
        alive = dog.alive()
        if now[0] <= 10:
            assert alive
    assert not alive and dog.stalled == {"climate"}
    stuck.beat()  # it recovered
    assert dog.alive() and dog.stalled == set()


class CountingWatchdog(Watchdog):
    """Counts the ticker's checks, so the test can wait for ticks rather than time."""

    checks = 0

    def alive(self) -> bool:
        self.checks += 1
        return super().alive()


async def no_write(device: str, register: str, value: Value) -> Value | None:
    raise AssertionError("nothing is written here")


async def test_pings_reach_systemd_only_while_every_loop_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # ping every 50 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    core = VirtualCore(load_config(DEMO), tmp_path / "db.sqlite", no_write, Clock())
    loop_beat = Heartbeat("power")
    dog = CountingWatchdog({"power": progress_counter(loop_beat)}, stall_s=0.3)
    pings: list[bytes] = []
    beating = True

    async def subsystem_loop() -> None:
        while beating:
            loop_beat.beat()
            await asyncio.sleep(0.02)  # the loop's own period

    def received() -> int:
        try:
            while True:
                pings.append(sock.recv(64))
        except BlockingIOError:
            return len(pings)

    ticker = asyncio.create_task(tick(core.van, core.port, {}, dog, period_s=0.02))
    looping = asyncio.create_task(subsystem_loop())
    try:
        await wait_until(lambda: received() >= 3, timeout=10, what="pings while healthy")
        assert set(pings) == {b"WATCHDOG=1"}
        beating = False  # the subsystem hangs
        await looping
        await wait_until(lambda: dog.stalled == {"power"}, timeout=10, what="stall noticed")
        received()
        before, ticks = len(pings), dog.checks
        # ten more ticks (each a chance to ping) with the loop stalled: not one ping
        await wait_until(lambda: dog.checks >= ticks + 10, timeout=10, what="ten ticks")
        assert received() == before
    finally:
        ticker.cancel()
        looping.cancel()
        sock.close()


def test_a_failing_listener_is_logged_once_and_the_others_still_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[int] = []
    fan = Listeners[int]("test")

    def broken(value: int) -> None:
        raise RuntimeError("listener bug")

    fan.add(broken)
    fan.add(seen.append)
    for value in range(3):
        fan(value)  # never raises to the caller
    assert seen == [0, 1, 2]
    assert capsys.readouterr().out.count("listener_failed") == 1
