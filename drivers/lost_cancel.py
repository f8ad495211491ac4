"""Python 3.11's ``asyncio.wait_for`` (inside pymodbus and aiomqtt) can swallow a
cancellation that arrives together with the answer it waits for: the cancelled task goes on
as if nothing happened, and whoever awaits it (a TaskGroup closing, a fixture's teardown)
waits for ever. Call :func:`reraise_lost_cancel` after such an await."""

from __future__ import annotations

import asyncio


def reraise_lost_cancel() -> None:
    """Raise CancelledError if the current task was asked to stop (its request lost)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
