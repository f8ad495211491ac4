"""A simulated device's end of its serial line (the heater's, the modem's, the room node's).

Opened non-blocking on the event loop: what arrives is handed to ``on_data`` as it comes,
what the device sends is written as is, and what the tty cannot take is lost, as on a real
line. A line that goes away under the device closes its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

import serial

log = logging.getLogger("vansim.sim_port")
READ_CHUNK = 4096


class SimPort:
    def __init__(self, port: str, baudrate: int, on_data: Callable[[bytes], None],
                 read_chunk: int = READ_CHUNK) -> None:
        self.port, self.baudrate, self.on_data = port, baudrate, on_data
        self.read_chunk = read_chunk
        self._serial: serial.Serial | None = None
        self._fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open(self) -> None:
        """Open the port (nothing if open); OSError if it cannot be opened."""
        if self._fd is not None:
            return
        link = serial.Serial(port=self.port, baudrate=self.baudrate, timeout=0, write_timeout=0)
        try:
            fd: int = link.fileno()
            os.set_blocking(fd, False)
            asyncio.get_running_loop().add_reader(fd, self._on_readable)
        except BaseException:
            link.close()
            raise
        self._serial, self._fd = link, fd

    def close(self) -> None:
        """Close the port. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
        link, self._serial = self._serial, None
        if link is not None:
            with contextlib.suppress(Exception):
                link.close()

    def send(self, data: bytes) -> None:
        """Bytes onto the line (nothing while closed)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):  # what the tty cannot take is lost
                os.write(self._fd, data)

    def _on_readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, self.read_chunk)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # the line went away under us
            log.debug("sim port %s lost: %s", self.port, exc)
            self.close()
            return
        self.on_data(data)
