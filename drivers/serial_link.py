"""A serial port read through the event loop, never blocking it (the heater's line, the GPS).

pyserial opens and configures the port (baud, raw mode, exclusive lock); bytes move with
os.read/os.write on its non-blocking descriptor, and every chunk read is handed to the
driver's ``on_data`` at once, in the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import serial

from drivers.wakeup import woken

READ_CHUNK = 4096


class SerialLink:
    """An open serial port: ``on_data`` gets what arrives, :meth:`write` sends."""

    def __init__(self, port: str, baudrate: int, on_data: Callable[[bytes], None]) -> None:
        self._on_data = on_data
        self.failure: OSError | None = None
        self._rx = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._serial = serial.Serial(port=port, baudrate=baudrate, timeout=0,
                                     write_timeout=0, exclusive=True)
        try:
            self._fd: int = self._serial.fileno()
            os.set_blocking(self._fd, False)
            self._loop.add_reader(self._fd, self._on_readable)
        except BaseException:
            self._serial.close()
            raise

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO: the adapter is gone
            self._fail(exc)
            return
        if not data:
            self._fail(OSError("serial port closed"))
            return
        self._on_data(data)
        self._rx.set()

    def _fail(self, exc: OSError) -> None:
        # stop watching at once: a dead descriptor stays readable and would spin the loop
        self.failure = exc
        self._loop.remove_reader(self._fd)
        self._rx.set()

    def check(self) -> None:
        """Raise the error that broke the port, if one did."""
        if self.failure is not None:
            raise self.failure

    def write(self, data: bytes) -> None:
        """Send a frame whole (a few bytes: the tty buffer takes them), or raise OSError."""
        self.check()
        if os.write(self._fd, data) != len(data):
            raise OSError("serial write incomplete")

    async def wait_rx(self, timeout: float) -> bool:
        """Wait for received bytes (or the port's failure); False after ``timeout``."""
        self._rx.clear()
        return await woken(self._rx, timeout)

    def close(self) -> None:
        """Stop watching and close the port; errors of a vanished port are of no interest."""
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._fd)
        with contextlib.suppress(Exception):
            self._serial.close()
