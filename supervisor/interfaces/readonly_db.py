"""The supervisor's SQLite opened read-only, for the tools that read it beside a running
supervisor (``mcwctl events``/``alarms``, the support bundle).

A ``mode=ro`` URI: nothing is written or locked for writing, so a running supervisor is never
disturbed; with the supervisor stopped the file is read as unchanging (``immutable``), so
that no -wal or -shm file is created beside it either. Free of the terminal libraries: the
daemon's ``diag/bundle`` reads through it too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_S = 2.0  # the supervisor's writer holds no lock a reader waits on in WAL mode


class HistoryError(Exception):
    """The history cannot be read: a one-line reason."""


def open_readonly(path: Path) -> sqlite3.Connection:
    """The supervisor's SQLite opened read-only (HistoryError when it cannot be)."""
    if not path.exists():
        raise HistoryError(f"no database at {path} (is [storage] path right, does the "
                           "supervisor run here?)")
    uri = path.absolute().as_uri() + "?mode=ro"
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if not wal.exists():
        # The supervisor is not running (it closed cleanly: everything is in the file). A
        # reader would create the -wal and -shm files and leave them behind, owned by whoever
        # ran mcwctl (root?), which could keep the supervisor from opening its database at
        # its next start; read as unchanging, nothing is created.
        uri += "&immutable=1"
    elif not shm.exists():
        raise HistoryError(f"cannot read {path}: its -wal file holds changes but the -shm "
                           "file is missing (the supervisor stopped without closing it?); "
                           "start the supervisor, or read a copy of the three files")
    try:
        return _checked(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S))
    except sqlite3.Error as exc:
        raise HistoryError(f"cannot read {path}: {exc} (read access to the file and its -wal "
                           "and -shm files is needed: run as the supervisor's user or a "
                           "member of its group)") from exc


def _checked(db: sqlite3.Connection) -> sqlite3.Connection:
    """``db`` once it reads as the supervisor's (it has the event table); closed if not."""
    try:
        db.execute("SELECT 1 FROM event LIMIT 1").fetchall()
    except sqlite3.Error:
        db.close()
        raise
    return db
