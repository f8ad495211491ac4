"""SQLite on disk: settings/counters, the event log, the command audit and the history.

WAL with ``synchronous=FULL``: each committed write survives a power cut, which in the van
comes without warning. Writes are small and few (events, commands, a history row a minute),
so they run inline; the slowest one is measured (``slowest_write_s``) and ``make bench``
reports it.

The van must be controlled even when the SD card is full, read-only or failing: a write that
fails is logged once, remembered in ``error`` (the supervisor raises an alarm from it) and
never raised to the caller. Tables are pruned by age and by size so the card never fills.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
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
"""
# (table, time column, rows kept at most): what a day's worth of a busy van fits in many times
RETAINED = (("event", "ts", 200_000), ("command", "ts", 100_000), ("history", "ts", 500_000))


class Storage:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.error: str | None = None  # the last write failure, until a write succeeds
        self.slowest_write_s = 0.0

    def close(self) -> None:
        self.db.close()

    # ---- writing, contained ---------------------------------------------------------------

    def write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> bool:
        """Run one statement for each row in one transaction; False (logged once) when the
        disk refuses it."""
        start = time.perf_counter()
        try:
            with self.db:
                self.db.executemany(sql, rows)
        except sqlite3.Error as exc:
            if self.error is None:
                log.error("storage_write_failed", error=str(exc))
            self.error = str(exc)
            return False
        finally:
            self.slowest_write_s = max(self.slowest_write_s, time.perf_counter() - start)
        if self.error is not None:
            log.info("storage_writes_again")
            self.error = None
        return True

    def prune(self, now: float, keep_days: float) -> None:
        """Drop rows older than ``keep_days`` and beyond each table's size cap."""
        for table, ts, cap in RETAINED:
            self.write(f"DELETE FROM {table} WHERE {ts} < ?", [(now - keep_days * 86400,)])
            self.write(f"DELETE FROM {table} WHERE rowid <= "
                       f"(SELECT MAX(rowid) FROM {table}) - ?", [(cap,)])

    # ---- settings and counters ------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
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

    def command_seen(self, command_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM command WHERE id = ?", (command_id,)).fetchone()
        return row is not None

    def record_command(self, command_id: str, ts: float, action: str, role: str, source: str,
                       args: dict[str, Any], status: str, code: str, message: str) -> None:
        self.write("INSERT OR REPLACE INTO command VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(command_id, ts, action, role, source, json.dumps(args), status, code,
                     message)])
