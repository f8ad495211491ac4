"""Waiting for a loop's wake-up event with a time limit, safely for cancellation.

Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that arrives as the awaited
event is set: a loop waiting that way may then never stop (a bus worker did, and a test hung
in its teardown). ``asyncio.timeout`` does not have that flaw: every loop that is cancelled at
shutdown waits through :func:`woken`, every other wait with a limit uses ``asyncio.timeout``,
and the Modbus link restores a cancellation pymodbus's own ``wait_for`` lost.
"""

from __future__ import annotations

import asyncio


async def woken(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passed; True if it was set."""
    try:
        async with asyncio.timeout(max(0.0, timeout_s)):
            await event.wait()
    except TimeoutError:
        return False
    return True
