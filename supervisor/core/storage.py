"""SQLite on disk: settings/counters, the event log, the command audit and the history.

WAL with ``synchronous=FULL``: each committed write survives a power cut, which in the van
comes without warning. A commit waits for the card (an SD card's fsync takes milliseconds, at
worst far more), so no write runs on the event loop: writes are queued to one writer thread,
which commits whatever is queued together (a group commit: a flood of commands costs a few
fsyncs, not one each). Who must not answer before its write is on the card (a command's
result) awaits :meth:`Storage.durable`. Settings live in memory too (read from there), and
command ids not yet committed are remembered, so nothing reads a stale answer meanwhile.
The slowest commit is measured (``slowest_write_s``) and ``make bench`` reports it.

The van must be controlled even when the SD card is full, read-only or failing: a write that
fails is logged once, remembered in ``error`` (the supervisor raises an alarm from it) and
never raised to the caller. Tables are pruned by age and by size so the card never fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("supervisor.storage")

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # new at every boot of the controller
SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS command (
    id TEXT PRIMARY KEY, ts REAL NOT NULL, action TEXT NOT NULL, role TEXT NOT NULL,
    source TEXT NOT NULL, args TEXT NOT NULL, status TEXT NOT NULL, code TEXT NOT NULL,
    message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS command_ts ON command(ts);
CREATE TABLE IF NOT EXISTS history (ts REAL NOT NULL, point TEXT NOT NULL, value REAL NOT NULL);
CREATE INDEX IF NOT EXISTS history_point_ts ON history(point, ts);
CREATE INDEX IF NOT EXISTS event_number ON event(json_extract(data, '$.id'));
"""
# (table, time column, rows kept at most): what a day's worth of a busy van fits in many times
RETAINED = (("event", "ts", 200_000), ("command", "ts", 100_000), ("history", "ts", 500_000))
MAX_BATCH = 500  # writes committed together at most
DURABLE_WAIT_S = 2.0  # a card slower than this must not hold a command's answer for longer
CLOSE_WAIT_S = 10.0


@dataclass(frozen=True)
class _Write:
    seq: int
    sql: str
    rows: list[tuple[Any, ...]]
    alone: bool = False  # run outside a transaction (a PRAGMA)


class Storage:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # this connection only reads (the caller's thread); the writer thread has its own
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self._kv: dict[str, Any] = {
            key: json.loads(value) for key, value in self.db.execute("SELECT key, value FROM kv")
        }
        self.error: str | None = None  # the last write failure, until a write succeeds
        self.slowest_write_s = 0.0  # the slowest commit, in the writer thread
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._queued = 0  # sequence number of the last write queued
        self._lock = threading.Condition()
        self._committed = 0  # guarded by _lock, like the two below
        self._pending_ids: dict[str, int] = {}  # command id -> seq of its record
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer = threading.Thread(target=self._write_loop, name="storage-writer",
                                        daemon=True)
        self._writer.start()

    def close(self) -> None:
        """Commit what is queued, stop the writer and close."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(CLOSE_WAIT_S)
        self.db.close()

    # ---- writing, off the event loop --------------------------------------------------------

    def write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> int:
        """Queue one statement for each row (one transaction); returns its sequence number."""
        return self._put(sql, list(rows))

    def maintenance(self, sql: str) -> None:
        """Run one statement on the writing connection, in order with the writes (a PRAGMA)."""
        self._put(sql, [], alone=True)

    async def durable(self, timeout_s: float = DURABLE_WAIT_S) -> bool:
        """Wait until everything queued so far is on the card: True if it was committed,
        False if the card refused it or took longer than ``timeout_s``."""
        seq = self._queued
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._committed >= seq:
                return self.error is None
            self._loop = loop
            fut: asyncio.Future[bool] = loop.create_future()
            self._waiters.append((seq, fut))
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(fut)
        except TimeoutError:
            log.warning("storage_slow", waited_s=timeout_s)
            return False

    def flush(self, timeout_s: float = CLOSE_WAIT_S) -> bool:
        """Block until everything queued so far is committed (tests, tools, shutdown)."""
        seq = self._queued
        with self._lock:
            return self._lock.wait_for(lambda: self._committed >= seq, timeout_s)

    def _put(self, sql: str, rows: list[tuple[Any, ...]], alone: bool = False) -> int:
        self._queued += 1
        self._queue.put(_Write(self._queued, sql, rows, alone))
        return self._queued

    def _write_loop(self) -> None:
        db = sqlite3.connect(str(self.path), isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        carry: _Write | None = None
        stop = False  # close() asked, after what is queued before it
        try:
            while not stop:
                first = carry if carry is not None else self._queue.get()
                carry = None
                if first is None:
                    return
                batch = [first]
                # what is queued goes along, up to a statement that must run alone
                while not first.alone and len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    if item.alone:
                        carry = item
                        break
                    batch.append(item)
                self._committed_batch(batch, self._commit(db, batch))
        finally:
            db.close()

    def _commit(self, db: sqlite3.Connection, batch: list[_Write]) -> bool:
        """All of ``batch`` in one transaction; if that fails, each on its own, so that one
        refused write does not take the others with it."""
        start = time.perf_counter()
        try:
            ok = self._run(db, batch)
            if not ok and len(batch) > 1:
                ok = all([self._run(db, [item]) for item in batch])
            return ok
        finally:
            self.slowest_write_s = max(self.slowest_write_s, time.perf_counter() - start)

    def _run(self, db: sqlite3.Connection, items: list[_Write]) -> bool:
        try:
            if items[0].alone:
                db.execute(items[0].sql)
            else:
                with db:
                    for item in items:
                        db.executemany(item.sql, item.rows)
        except sqlite3.Error as exc:
            if self.error is None:
                log.error("storage_write_failed", error=str(exc))
            self.error = str(exc)
            return False
        if self.error is not None:
            log.info("storage_writes_again")
            self.error = None
        return True

    def _committed_batch(self, batch: list[_Write], ok: bool) -> None:
        last = batch[-1].seq
        with self._lock:
            self._committed = last
            for cid in [c for c, seq in self._pending_ids.items() if seq <= last]:
                del self._pending_ids[cid]
            done = [fut for seq, fut in self._waiters if seq <= last]
            self._waiters = [(seq, fut) for seq, fut in self._waiters if seq > last]
            self._lock.notify_all()
            loop = self._loop
        if done and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_answer, done, ok)

    def prune(self, now: float, keep_days: float) -> None:
        """Drop rows older than ``keep_days`` and beyond each table's size cap."""
        for table, ts, cap in RETAINED:
            self.write(f"DELETE FROM {table} WHERE {ts} < ?", [(now - keep_days * 86400,)])
            self.write(f"DELETE FROM {table} WHERE rowid <= "
                       f"(SELECT MAX(rowid) FROM {table}) - ?", [(cap,)])

    # ---- settings and counters ------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        return self._kv.get(key, default)

    def put(self, key: str, value: Any) -> None:
        """Set a setting now (in memory) and on the card (queued)."""
        value = json.loads(json.dumps(value))  # what a reader after a restart would get
        self._kv[key] = value
        self.write("INSERT INTO kv(key, value) VALUES(?, ?) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                   [(key, json.dumps(value))])

    def increment(self, key: str) -> int:
        """Add one to a persisted counter and return the new value."""
        value = int(self.get(key, 0)) + 1
        self.put(key, value)
        return value

    def cold_start(self, boot_id_file: Path = BOOT_ID) -> bool:
        """Whether this is the supervisor's first start since the controller booted (the
        outputs' states are then unknown; a power cut is a new boot); remembers the boot
        for the next start."""
        boot_id = boot_id_file.read_text().strip()
        cold: bool = self.get("boot_id") != boot_id
        self.put("boot_id", boot_id)
        return cold

    # ---- events and the command audit -----------------------------------------------------

    def add_event(self, ts: float, kind: str, data: dict[str, Any]) -> None:
        self.write("INSERT INTO event(ts, kind, data) VALUES(?, ?, ?)",
                   [(ts, kind, json.dumps(data))])

    def events(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT ts, kind, data FROM event ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
        return [{"ts": ts, "kind": kind, **json.loads(data)} for ts, kind, data in rows]

    def events_numbered(self, first: int, last: int, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` of the events numbered ``first`` to ``last`` (their ``id``),
        oldest first; only those committed (a write still queued is not read)."""
        rows = self.db.execute(
            "SELECT data FROM event WHERE json_extract(data, '$.id') BETWEEN ? AND ? "
            "ORDER BY json_extract(data, '$.id') DESC LIMIT ?", (first, last, limit)).fetchall()
        return [json.loads(data) for (data,) in reversed(rows)]

    def events_after(self, number: int, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` events numbered above ``number``, in number order; only those
        committed."""
        rows = self.db.execute(
            "SELECT data FROM event WHERE json_extract(data, '$.id') > ? "
            "ORDER BY json_extract(data, '$.id') LIMIT ?", (number, limit)).fetchall()
        return [json.loads(data) for (data,) in rows]

    def last_event_number(self) -> int:
        """The highest event number on disk (0: none)."""
        row = self.db.execute("SELECT max(json_extract(data, '$.id')) FROM event").fetchone()
        return int(row[0] or 0)

    def command_seen(self, command_id: str) -> bool:
        if command_id in self._pending_ids:
            return True
        row = self.db.execute("SELECT 1 FROM command WHERE id = ?", (command_id,)).fetchone()
        return row is not None

    def record_command(self, command_id: str, ts: float, action: str, role: str, source: str,
                       args: dict[str, Any], status: str, code: str, message: str) -> None:
        with self._lock:  # before it is queued: the writer may commit it at once
            self._pending_ids[command_id] = self._queued + 1
        self.write("INSERT OR REPLACE INTO command VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(command_id, ts, action, role, source, json.dumps(args), status, code,
                     message)])


def _answer(waiters: list[asyncio.Future[bool]], ok: bool) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(ok)
