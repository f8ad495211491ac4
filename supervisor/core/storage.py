"""SQLite on disk: settings/counters, the event log and the command audit.

WAL with ``synchronous=FULL``: each committed write survives a power cut, which in the van
comes without warning. Writes are small and few (events, commands), so they run inline.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

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
"""


class Storage:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO kv(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def cold_start(self, boot_id_file: Path = BOOT_ID) -> bool:
        """Whether this is the supervisor's first start since the controller booted (the
        outputs' states are then unknown; a power cut is a new boot); remembers the boot
        for the next start."""
        boot_id = boot_id_file.read_text().strip()
        cold: bool = self.get("boot_id") != boot_id
        self.put("boot_id", boot_id)
        return cold

    def increment(self, key: str) -> int:
        """Add one to a persisted counter and return the new value."""
        with self.db:
            value = int(self.get(key, 0)) + 1
            self.put(key, value)
        return value

    def add_event(self, ts: float, kind: str, data: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO event(ts, kind, data) VALUES(?, ?, ?)", (ts, kind, json.dumps(data))
        )

    def events(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT ts, kind, data FROM event ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
        return [{"ts": ts, "kind": kind, **json.loads(data)} for ts, kind, data in rows]

    def command_seen(self, command_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM command WHERE id = ?", (command_id,)).fetchone()
        return row is not None

    def record_command(
        self,
        command_id: str,
        ts: float,
        action: str,
        role: str,
        source: str,
        args: dict[str, Any],
        status: str,
        code: str,
        message: str,
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO command VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (command_id, ts, action, role, source, json.dumps(args), status, code, message),
        )
