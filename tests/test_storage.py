"""SQLite on a card that fills up or turns read-only: the van keeps being controlled, the crew
sees an alarm, nothing raises; old rows are pruned by age and size so the card never fills."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from virtual_core import VirtualCore

from drivers.register_codec import Value
from supervisor.core import storage as storage_module
from supervisor.core.alarms import AlarmManager
from supervisor.core.commands import ActionSpec, ArgSpec, CommandRouter
from supervisor.core.config import SupervisorConfig, VehicleConfig
from supervisor.core.device_points import DevicePoints
from supervisor.core.points import PointStore
from supervisor.core.storage import Storage
from supervisor.core.subsystem import Clock
from supervisor.core.van_state import VanState
from supervisor.registry import load_config

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"


async def no_write(device: str, register: str, value: Value) -> Value | None:
    raise AssertionError("nothing is written to devices here")


def fill_up(db: Storage) -> None:
    """The card is full: the database may not grow by a single page."""
    pages = db.db.execute("PRAGMA page_count").fetchone()[0]
    db.maintenance(f"PRAGMA max_page_count = {pages}")
    for i in range(200):  # use up the free space inside the last pages
        db.add_event(0.0, "filler", {"i": i, "pad": "x" * 500})
    assert db.flush()


async def test_a_full_card_raises_an_alarm_and_commands_still_work(tmp_path: Path) -> None:
    core = VirtualCore(load_config(DEMO), tmp_path / "db.sqlite", no_write, Clock())
    van, applied = core.van, []

    async def switch(args: dict[str, Any]) -> str:
        applied.append(args)
        return "ok"

    van.router.register(ActionSpec("test/switch", switch, frozenset({"crew"}),
                                   {"on": ArgSpec("bool")}))
    fill_up(van.storage)
    assert van.storage.error is not None and "full" in van.storage.error
    van.check_storage()
    alarm = van.alarms.states["system/storage"]
    assert alarm.active and "full" in alarm.detail
    result = await van.router.submit("test/switch", b'{"id":"f1","args":{"on":true}}', "crew",
                                     "panel")
    assert result.status == "done" and applied == [{"on": True}]
    van.event({"kind": "test"})  # an event that cannot be stored is still told (no raise)
    # room again (the technician cleared the card): writes work, the alarm clears
    van.storage.maintenance("PRAGMA max_page_count = 1000000")
    van.storage.put("setting/x", 1)
    assert van.storage.flush()
    assert van.storage.error is None
    van.check_storage()
    assert not van.alarms.states["system/storage"].active


def test_a_read_only_card_is_reported_and_nothing_raises(tmp_path: Path) -> None:
    db = Storage(tmp_path / "db.sqlite")
    db.maintenance("PRAGMA query_only = ON")
    db.put("setting/a", 1)
    db.record_command("c1", 0.0, "a", "crew", "mqtt", {}, "done", "ok", "")
    assert db.flush()
    assert db.error is not None and "readonly" in db.error.replace("-", "").replace(" ", "")
    assert db.get("setting/a") == 1  # in force until a restart
    db.close()
    assert Storage(tmp_path / "db.sqlite").get("setting/a") is None  # never on the card


def test_old_rows_are_pruned_by_age_and_by_size(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    db = Storage(tmp_path / "db.sqlite")
    day = 86400.0
    for i in range(10):
        db.add_event(i * day, "e", {"i": i})
        db.record_command(f"c{i}", i * day, "a", "crew", "mqtt", {}, "done", "ok", "")
    db.prune(now=10 * day, keep_days=5)  # older than day 5 goes
    assert db.flush()
    assert [e["i"] for e in db.events()] == [9, 8, 7, 6, 5]
    assert not db.command_seen("c4") and db.command_seen("c5")
    monkeypatch.setattr(storage_module, "RETAINED", (("event", "ts", 2),))
    db.prune(now=10 * day, keep_days=30)
    assert db.flush()
    assert [e["i"] for e in db.events()] == [9, 8]  # at most the cap, the newest kept


async def test_a_card_that_stalls_never_stalls_the_van(tmp_path: Path) -> None:
    """Commits wait for the card in the writer thread: while the card does not take writes
    (here another connection holds the database locked), the event loop keeps running, a
    command's wait for its record gives up after its bound, and everything queued reaches the
    card once it takes writes again."""
    db = Storage(tmp_path / "db.sqlite")
    blocker = sqlite3.connect(str(tmp_path / "db.sqlite"), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)  # the loop's heartbeat, counted

    beating = asyncio.create_task(ticker())
    try:
        for i in range(300):
            db.add_event(float(i), "e", {"i": i})
            db.record_command(f"c{i}", float(i), "a", "crew", "mqtt", {}, "done", "ok", "")
        assert db.command_seen("c299")  # known at once, before it is on the card
        assert await db.durable(timeout_s=0.5) is False  # the card did not take it in time
        assert ticks >= 10  # the loop ran the whole time
    finally:
        beating.cancel()
        blocker.rollback()
        blocker.close()
    assert db.flush()
    assert await db.durable() is True
    assert len(db.events(limit=1000)) == 300 and db.command_seen("c0")
    db.close()
    again = Storage(tmp_path / "db.sqlite")
    assert again.command_seen("c299") and len(again.events(limit=1000)) == 300


def _van(db: Storage) -> VanState:
    store = PointStore()
    return VanState(SupervisorConfig(vehicle=VehicleConfig(id="demo", name="Demo")), db, store,
                    AlarmManager(), DevicePoints(store), CommandRouter(db), lambda: 1.8e9)


def test_event_ids_are_never_given_twice_across_a_power_cut(tmp_path: Path) -> None:
    """HQ drops an event whose id it has seen: after a power cut that lost the writes of the
    last moments, the van must not number a new event with an id it had already sent."""
    db = Storage(tmp_path / "db.sqlite")
    van, sent = _van(db), []
    van.event_added.add(lambda e: sent.append(e["id"]))
    van.event({"kind": "test"})
    db.put = lambda *_: None  # type: ignore[method-assign]  # from here nothing reaches the card
    for _ in range(5):
        van.event({"kind": "test"})
    assert sent == sorted(set(sent)), "in order, each once"
    after = _van(Storage(tmp_path / "db.sqlite"))  # the power is back: what is on the card
    again: list[int] = []
    after.event_added.add(lambda e: again.append(e["id"]))
    after.event({"kind": "test"})
    assert again[0] > max(sent), (sent, again)


async def test_events_chain_across_a_restart_and_are_read_back_by_number(
        tmp_path: Path) -> None:
    """Each event names the one before it (``prev``), also across a restart, where numbers
    jump; the log gives them back by number (what HQ asks for again, what the uplink sends
    next), oldest first."""
    db = Storage(tmp_path / "db.sqlite")
    van, sent = _van(db), list[dict[str, Any]]()
    van.event_added.add(sent.append)
    for _ in range(3):
        van.event({"kind": "test"})
    assert await db.durable()
    db.close()
    db = Storage(tmp_path / "db.sqlite")
    after = _van(db)
    after.event_added.add(sent.append)
    after.event({"kind": "test"})
    chain = [(e["id"], e["prev"]) for e in sent]
    assert chain[:3] == [(1, 0), (2, 1), (3, 2)]
    assert chain[3][1] == 3 and chain[3][0] > 3  # the jump of the restart, no gap in the chain
    assert await db.durable()
    assert db.events_numbered(2, chain[3][0], 500) == sent[1:]
    assert db.events_numbered(1, 10**6, 2) == sent[-2:]  # the newest of the range
    assert db.events_numbered(50, 60, 500) == []
    assert db.events_after(1, 2) == sent[1:3]  # the oldest above the number
    assert db.events_after(3, 500) == sent[3:]  # across the jump
    assert db.events_after(chain[3][0], 500) == []


def test_closing_right_after_a_write_commits_it_and_stops_the_writer(tmp_path: Path) -> None:
    """The stop request can be taken along with a batch: the writer must still stop (else a
    supervisor's shutdown waits out CLOSE_WAIT_S with the writer thread left behind)."""
    for _ in range(20):  # the race: the stop picked up inside a batch, or on its own
        db = Storage(tmp_path / "db.sqlite")
        for n in range(3):
            db.put(f"k{n}", n)
        db.close()
        assert not db._writer.is_alive()
        again = Storage(tmp_path / "db.sqlite")
        assert again.get("k2") == 2
        again.close()
