"""A GPS receiver on a serial port, speaking NMEA 0183 (u-blox class: 9600 8N1, 1 Hz).

The driver listens (it never writes), keeps the latest fix and counts what it had to throw
away. A fix is the position of a GGA with a fix quality above 0 or of an RMC marked valid;
a GGA with quality 0 or an RMC marked void means the receiver has lost its fix. The caller
judges age: :attr:`NmeaGps.last_fix_at` and :attr:`NmeaGps.last_heard_at` are monotonic
times, so a receiver that goes silent and one that hears no satellites are told apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from drivers.nmea import LineReader, NmeaError, parse, parse_gga, parse_rmc
from drivers.serial_link import REOPEN_MAX_S, SerialLink, keep_open

ERROR_KINDS = ("checksum", "invalid", "overlong", "io")


@dataclass(frozen=True)
class Fix:
    """Where the van is, as the receiver last said."""

    lat: float
    lon: float
    satellites: int | None = None
    hdop: float | None = None
    speed_kmh: float | None = None


class NmeaGps:
    """Run :meth:`run` as a task; read :attr:`fix`, :attr:`has_fix` and the counters."""

    def __init__(self, port: str, baudrate: int = 9600,
                 on_change: Callable[[], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.port, self.baudrate = port, baudrate
        self.fix: Fix | None = None  # the last fix, kept after the fix is lost
        self.has_fix = False  # the receiver's last word: it has a fix now
        # from the last GGA (satellites in use, HDOP) and RMC (speed over ground)
        self.satellites: int | None = None
        self.hdop: float | None = None
        self.speed_kmh: float | None = None
        self.last_fix_at: float | None = None
        self.last_heard_at: float | None = None  # any valid sentence
        self.sentences = 0
        self.errors: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        self._on_change = on_change or (lambda: None)
        self._mono = monotonic
        self._lines = LineReader()

    def feed(self, data: bytes) -> None:
        """Bytes from the receiver (the serial link calls this; tests may too)."""
        before = self._lines.overlong
        for line in self._lines.feed(data):
            self._line(line)
        self.errors["overlong"] += self._lines.overlong - before

    def _line(self, line: bytes) -> None:
        try:
            sentence = parse(line)
            if sentence.kind == "GGA":
                gga = parse_gga(sentence)
                self.satellites, self.hdop = gga.satellites, gga.hdop
                self._heard(gga.quality > 0, gga.lat, gga.lon)
            elif sentence.kind == "RMC":
                rmc = parse_rmc(sentence)
                self.speed_kmh = rmc.speed_kmh
                self._heard(rmc.valid, rmc.lat, rmc.lon)
            else:
                self._heard(None, None, None)  # GSA, GSV, VTG, TXT: alive, nothing to use
        except NmeaError as exc:
            kind = "checksum" if "checksum" in str(exc) else "invalid"
            self.errors[kind] += 1

    def _heard(self, valid: bool | None, lat: float | None, lon: float | None) -> None:
        now = self._mono()
        self.sentences += 1
        self.last_heard_at = now
        if valid is None:
            return
        if valid and lat is not None and lon is not None:
            self.fix = Fix(lat, lon, self.satellites, self.hdop, self.speed_kmh)
            self.has_fix, self.last_fix_at = True, now
        else:
            self.has_fix = False
        self._on_change()

    async def run(self) -> None:
        """Listen until cancelled; a port that cannot be opened or vanishes (a USB receiver
        unplugged) is reopened with a backoff (see :func:`drivers.serial_link.keep_open`)."""
        await keep_open("gps", self.port, self.baudrate, self.feed, self._listen,
                        self._port_failed, lambda: self.sentences)

    @staticmethod
    async def _listen(link: SerialLink) -> None:
        while True:  # the link hands every chunk to feed(); here only its failure is awaited
            await link.wait_rx(REOPEN_MAX_S)
            link.check()

    def _port_failed(self, _exc: OSError) -> None:
        self.errors["io"] += 1
