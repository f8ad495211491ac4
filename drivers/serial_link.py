"""A serial port read through the event loop, never blocking it (the heater, the GPS, the
modem), and the pieces their drivers share.

pyserial opens and configures the port (baud, raw mode, exclusive lock); bytes move with
os.read/os.write on its non-blocking descriptor, and every chunk read is handed to the
driver's ``on_data`` at once, in the loop's thread. :func:`keep_open` reopens a port that
cannot be opened or vanishes (a USB adapter unplugged); :class:`LineReader` cuts a text
protocol's byte stream into lines of bounded length.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import NoReturn

import serial

from drivers.wakeup import woken

log = logging.getLogger(__name__)

READ_CHUNK = 4096
REOPEN_MIN_S, REOPEN_MAX_S = 0.5, 5.0


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


async def keep_open(name: str, port: str, baudrate: int, on_data: Callable[[bytes], None],
                    use: Callable[[SerialLink], Awaitable[None]],
                    on_error: Callable[[OSError], None],
                    progress: Callable[[], int]) -> NoReturn:
    """Open ``port`` and ``use`` it until it fails, for ever (until cancelled): a port that
    cannot be opened or vanishes is reopened with a backoff of 0.5 s doubling to 5 s, back
    to 0.5 s once ``progress`` (the driver's count of good messages) grew while it was open.
    Each failure goes to ``on_error``; the first of a run of them is logged, and so is the
    port's return."""
    backoff = REOPEN_MIN_S
    trouble = False
    while True:
        link: SerialLink | None = None
        before = progress()
        try:
            link = SerialLink(port, baudrate, on_data)
            if trouble:
                log.info("%s %s: port open again", name, port)
                trouble = False
            await use(link)
        except OSError as exc:  # serial.SerialException is one
            on_error(exc)
            if not trouble:
                log.warning("%s %s: serial port unusable: %s", name, port, exc)
                trouble = True
        finally:
            if link is not None:
                link.close()
        if progress() > before:
            backoff = REOPEN_MIN_S
        await asyncio.sleep(backoff)  # the backoff itself, not a wait for a condition
        backoff = min(backoff * 2, REOPEN_MAX_S)


class LineReader:
    """Cuts a byte stream into lines; a line that grows past ``max_line`` is dropped up to its
    end (so a babbling device costs bounded memory) and counted in ``overlong``."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._skipping = False
        self.overlong = 0

    def feed(self, data: bytes) -> list[bytes]:
        """The whole lines completed by ``data`` (without their line ends; blank ones left
        out)."""
        lines: list[bytes] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            chunk = data[start:] if end < 0 else data[start:end]
            if not self._skipping:
                self._buf += chunk
                if len(self._buf) > self.max_line + 1:
                    self._buf.clear()
                    self._skipping = True
                    self.overlong += 1
            if end < 0:
                return lines
            if not self._skipping:
                line = bytes(self._buf).rstrip(b"\r")
                if len(line) > self.max_line:  # one over, ended by LF alone
                    self.overlong += 1
                elif line:
                    lines.append(line)
            self._buf.clear()
            self._skipping = False
            start = end + 1
