"""Downsampled history of a few points, in SQLite, for the panel's 24 h charts.

Every ``interval_s`` the current good value of each recorded point is stored; rows older than
the retention are dropped. A query returns at most ``max_points`` averaged buckets.
"""

from __future__ import annotations

from collections.abc import Callable

from supervisor.core.points import PointStore
from supervisor.core.storage import Storage

RECORDED = ("power/battery/soc", "power/battery/power", "power/battery/voltage",
            "power/solar/power", "climate/room/temperature")
MAX_POINTS = 288  # one per 5 min over 24 h


class History:
    def __init__(self, storage: Storage, store: PointStore, retention_s: float,
                 wall: Callable[[], float]) -> None:
        self.storage = storage
        self.db = storage.db
        self.store = store
        self.retention_s = retention_s
        self._wall = wall

    def sample(self) -> None:
        """Store the current value of every recorded point that is fresh."""
        now = self._wall()
        rows = []
        for pid in RECORDED:
            value = self.store.good(pid) if pid in self.store.defs else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                rows.append((now, pid, float(value)))
        self.storage.write("INSERT INTO history VALUES (?, ?, ?)", rows)
        self.storage.write("DELETE FROM history WHERE ts < ?", [(now - self.retention_s,)])

    def query(self, point: str, hours: float) -> tuple[list[float], list[float]]:
        """(times, values) of ``point`` over the last ``hours``, averaged into buckets."""
        now = self._wall()
        start = now - hours * 3600
        bucket = max(1.0, hours * 3600 / MAX_POINTS)
        rows = self.db.execute(
            "SELECT CAST((ts - ?) / ? AS INTEGER) AS b, AVG(ts), AVG(value) FROM history "
            "WHERE point = ? AND ts >= ? GROUP BY b ORDER BY b",
            (start, bucket, point, start)).fetchall()
        return [round(t, 1) for _, t, _ in rows], [round(v, 3) for _, _, v in rows]
