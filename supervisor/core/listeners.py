"""Listener lists whose members cannot hurt each other or the caller.

Point, alarm, health, event and audit changes fan out to listeners (MQTT, panel, history,
lamps). A listener that raises is logged once (not on every change, which would fill the SD
card) and the others still run; the exception never reaches the code that made the change,
which may be a bus worker in the middle of a poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, ParamSpec

import structlog

log = structlog.get_logger("supervisor.listeners")
P = ParamSpec("P")


class Listeners(Generic[P]):
    """An ordered list of callbacks, each called in isolation."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._callbacks: list[Callable[P, None]] = []
        self._failed: set[int] = set()  # listeners already logged as failing

    def add(self, callback: Callable[P, None]) -> None:
        self._callbacks.append(callback)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for callback in self._callbacks:
            try:
                callback(*args, **kwargs)
            except Exception:
                if id(callback) not in self._failed:
                    self._failed.add(id(callback))
                    log.exception("listener_failed", what=self.what,
                                  listener=getattr(callback, "__qualname__", repr(callback)))
