"""A GPS receiver on the simulated van: NMEA 0183 over a serial line, u-blox style.

Once a second (real time: a receiver does not run faster with the plant) it sends RMC, GGA
and GSV, as a u-blox receiver at its default 9600 8N1, 1 Hz; on a paced line (``wire.py``)
the burst takes its wire time. The test's hands: move the van (``lat``, ``lon``,
``speed_kmh``), lose the fix (``fix = False``: empty positions, quality 0, status V),
silence it (``silent``), and put garbage on the line (:meth:`inject`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import serial

from drivers.nmea import KNOT_KMH, sentence

WARSAW = (52.22977, 21.01178)


def nmea_coordinate(value: float, axis: str) -> tuple[str, str]:
    """Signed degrees as NMEA ``ddmm.mmmmm`` / ``dddmm.mmmmm`` and its hemisphere."""
    hemisphere = ("N" if value >= 0 else "S") if axis == "lat" else ("E" if value >= 0 else "W")
    value = abs(value)
    degrees = int(value)
    minutes = round((value - degrees) * 60, 5)
    if minutes >= 60:  # rounding carried into the next degree
        degrees, minutes = degrees + 1, 0.0
    width = 2 if axis == "lat" else 3
    return f"{degrees:0{width}d}{minutes:08.5f}", hemisphere


class SimulatedGps:
    """``start()`` opens the simulator's end of the GPS line and begins talking."""

    def __init__(self, port: Path | str, *, baudrate: int = 9600, period_s: float = 1.0) -> None:
        self.port, self.baudrate, self.period_s = str(port), baudrate, period_s
        self.lat, self.lon = WARSAW
        self.speed_kmh = 0.0
        self.satellites = 9
        self.fix = True
        self.silent = False
        self.bursts = 0
        self._fd: int | None = None
        self._serial: serial.Serial | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        link = serial.Serial(port=self.port, baudrate=self.baudrate, timeout=0, write_timeout=0)
        self._serial, self._fd = link, link.fileno()
        os.set_blocking(self._fd, False)
        self._task = asyncio.create_task(self._talk(), name=f"gps sim {self.port}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        link, self._serial, self._fd = self._serial, None, None
        if link is not None:
            with contextlib.suppress(Exception):
                link.close()

    def burst(self) -> bytes:
        """One second's sentences for the van's state now."""
        utc = time.gmtime()
        hms, dmy = time.strftime("%H%M%S.00", utc), time.strftime("%d%m%y", utc)
        if self.fix:
            lat, ns = nmea_coordinate(self.lat, "lat")
            lon, ew = nmea_coordinate(self.lon, "lon")
            knots = f"{self.speed_kmh / KNOT_KMH:.3f}"
            rmc = f"GNRMC,{hms},A,{lat},{ns},{lon},{ew},{knots},,{dmy},,,A"
            gga = f"GNGGA,{hms},{lat},{ns},{lon},{ew},1,{self.satellites:02d},0.9,112.5,M,33.6,M,,"
        else:
            rmc = f"GNRMC,{hms},V,,,,,,,{dmy},,,N"
            gga = f"GNGGA,{hms},,,,,0,00,99.99,,,,,,"
        gsv = f"GPGSV,1,1,{self.satellites:02d},05,45,120,38,12,60,210,41"
        return b"".join(sentence(s) for s in (rmc, gga, gsv))

    def inject(self, data: bytes) -> None:
        """Bytes on the line as they are (noise, a babbling receiver)."""
        self._write(data)

    async def _talk(self) -> None:
        while True:
            if not self.silent:
                self._write(self.burst())
                self.bursts += 1
            await asyncio.sleep(self.period_s)  # the receiver's own 1 Hz, not a wait

    def _write(self, data: bytes) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # what the tty cannot take is lost
                os.write(self._fd, data)
