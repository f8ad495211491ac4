"""A Quectel-class LTE modem on the simulated van: AT commands over its own serial line.

It answers as an EC25 does on its AT port (V1 result codes framed by CR LF, echo on until
``ATE0``): ``AT``, ``ATE0``/``ATE1``, ``AT+CSQ``, ``AT+CEREG?``, ``AT+CGREG?`` (and their
``=<n>``), ``AT+COPS?``; anything else is ``ERROR``. On LTE (AcT 7) both registrations
report the state; on 2G/3G the EPS one says "not registered" and the packet domain's tells.
With ``report_mode`` 1 or 2 (what ModemManager sets) a change of registration is also sent
by itself, as ``+CEREG: <stat>`` (unsolicited).

The test's hands: the signal (``signal_dbm`` or ``rssi``), ``registration`` (27.007 stat:
1 home, 2 searching, 3 denied, 5 roaming), ``operator``, ``act`` (access technology),
``refuse`` (a command answered with an error line such as ``+CME ERROR: 10``), ``silent``
(reads, answers nothing), ``garbage`` (answers with noise), :meth:`urc` and :meth:`inject`.
Serve it on the ``sim_side`` of a :class:`vansim.rtu_line.RtuLine` (wire time at the baud
rate); :meth:`receive` is the modem without a port (what it would send back for some bytes),
and :class:`DirectLine` puts it straight behind a driver for tests of the driver's logic.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vansim.sim_port import SimPort

MAX_COMMAND = 512  # a modem's command buffer; a longer line is dropped
NOISE = bytes(range(0x80, 0xA0)) + b"\x00\x07 +CSQ 2\xff\r\n"
REGISTERED = (1, 5)
LTE = 7


class SimulatedModem:
    """``start()`` opens the modem's end of its line and begins answering."""

    def __init__(self, port: Path | str | None = None, *, baudrate: int = 115200) -> None:
        self.port, self.baudrate = None if port is None else str(port), baudrate
        self.rssi, self.ber = 22, 99  # -69 dBm
        self.operator = "Orange PL"
        self.act = LTE
        self.report_mode = 0  # <n> of +CEREG / +CGREG: 1 or 2 sends changes by itself
        self.echo = True
        self.silent = False
        self.garbage = False
        self.refuse: dict[str, str] = {}  # command (upper case) -> its error line
        self.commands: list[str] = []  # every command heard, in order
        self._registration = 1
        self._pending = bytearray()
        self._line = None if self.port is None else SimPort(self.port, baudrate, self._heard)

    # ---- the hands -----------------------------------------------------------------------

    @property
    def signal_dbm(self) -> int:
        """The signal as ``AT+CSQ`` reports it (-113 + 2 rssi)."""
        return -113 + 2 * self.rssi

    @signal_dbm.setter
    def signal_dbm(self, dbm: int) -> None:
        self.rssi = min(31, max(0, (dbm + 113) // 2))

    @property
    def registration(self) -> int:
        """The registration state (27.007 stat)."""
        return self._registration

    @registration.setter
    def registration(self, stat: int) -> None:
        changed = stat != self._registration
        self._registration = stat
        if changed and self.report_mode >= 1:
            self.urc(f"+CEREG: {stat}")

    def urc(self, text: str) -> None:
        """An unsolicited result code, framed as the modem frames one."""
        self.inject(b"\r\n" + text.encode("ascii") + b"\r\n")

    def inject(self, data: bytes) -> None:
        """Bytes on the line as they are (noise, a babbling modem)."""
        if self._line is not None:
            self._line.send(data)

    # ---- the modem -----------------------------------------------------------------------

    def receive(self, data: bytes) -> bytes:
        """Bytes from the controller; what the modem sends back (echo and answers)."""
        out = bytearray()
        self._pending += data
        while (end := self._pending.find(b"\r")) >= 0:
            raw = bytes(self._pending[:end])
            del self._pending[:end + 1]
            command = raw.strip(b"\n ").decode("ascii", "replace")
            if not command or len(raw) > MAX_COMMAND:
                continue
            self.commands.append(command)
            if self.silent:
                continue
            if self.garbage:
                out += NOISE
                continue
            if self.echo:
                out += raw + b"\r"
            out += self._answer(command.upper())
        if len(self._pending) > MAX_COMMAND:
            self._pending.clear()
        return bytes(out)

    def _answer(self, command: str) -> bytes:
        if command in self.refuse:
            return _lines(self.refuse[command])
        if command in ("ATE0", "ATE1"):
            self.echo = command == "ATE1"
        if command in ("AT", "ATE0", "ATE1"):
            return _lines("OK")
        if command == "AT+CSQ":
            return _lines(f"+CSQ: {self.rssi},{self.ber}", "OK")
        for name in ("CEREG", "CGREG"):
            if command == f"AT+{name}?":
                return _lines(self._registration_answer(name), "OK")
            if command.startswith(f"AT+{name}=") and command[-1:] in "012":
                self.report_mode = int(command[-1])
                return _lines("OK")
        if command == "AT+COPS?":
            if self._registration not in REGISTERED:
                return _lines("+COPS: 0", "OK")
            return _lines(f'+COPS: 0,0,"{self.operator}",{self.act}', "OK")
        return _lines("ERROR")

    def _registration_answer(self, name: str) -> str:
        # outside LTE the EPS registration is lost, the packet domain's tells
        stat = 0 if name == "CEREG" and self.act != LTE else self._registration
        where = ',"D6E7","844D92A",' + str(self.act) \
            if self.report_mode == 2 and stat in REGISTERED else ""
        return f"+{name}: {self.report_mode},{stat}{where}"

    # ---- the port ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the modem's end of its line; OSError if it cannot be opened."""
        if self._line is not None:
            self._line.open()

    async def stop(self) -> None:
        """Close the port. Idempotent."""
        if self._line is not None:
            self._line.close()

    def _heard(self, data: bytes) -> None:
        reply = self.receive(data)
        if reply:
            self.inject(reply)


def _lines(*lines: str) -> bytes:
    """Result lines as a modem sends them with ATV1: each framed by CR LF."""
    return b"".join(b"\r\n" + line.encode("ascii") + b"\r\n" for line in lines)


class DirectLine:
    """A driver's port with the modem straight behind it (no pty, no wire time): what the
    driver writes is answered at once, in ``chunk``-byte pieces as a serial line delivers."""

    def __init__(self, modem: SimulatedModem, feed: Callable[[bytes], None],
                 chunk: int = 7) -> None:
        self.modem, self.feed, self.chunk = modem, feed, chunk
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        """The driver sends ``data``; the modem's answer is fed back before this returns."""
        self.sent.append(data)
        reply = self.modem.receive(data)
        for i in range(0, len(reply), self.chunk):
            self.feed(reply[i:i + self.chunk])

    def check(self) -> None:
        """This line never breaks."""
