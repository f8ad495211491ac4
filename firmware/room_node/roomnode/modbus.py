"""Modbus RTU slave: frames delimited by line silence, CRC-16, FC03/04/06/16 and exceptions.

The node shares a multi-drop RS-485 bus with other slaves, so it hears every request of the
master and every other slave's answer. A frame is whatever arrived between two silences of
3.5 character times (the RTU rule), which keeps the node in step whatever it hears: a frame
is taken apart only once it is whole, never by guessing its length from its function code
(another slave's answer would be misread as a request). Then:

* a frame that is too short, too long or fails its CRC counts in ``frame_errors`` and gets
  no answer (the master cannot even tell whom it was for);
* a whole frame for another unit (a request to another slave, or another slave's answer) is
  ignored and counts nowhere, and so is an exception answer (function code 128 and above:
  never a request);
* unit 0 is a broadcast: writes are applied and never answered, reads are ignored;
* a request for this unit gets its answer or an exception: 01 function not supported,
  02 address outside the map or not writable, 03 a value, count or length out of range.
  Checks run in the order of the Modbus specification's state diagrams (function, then
  count and length, then address, then values), and a multi-register write is checked
  whole before any register changes.

The slave does not know the register map: its :class:`RegisterBank` does.
"""

from roomnode.ticks import ticks_diff

MAX_FRAME = 256  # the RTU limit: address + PDU (253) + CRC
MAX_READ = 125  # registers per FC03/FC04 request
MAX_WRITE = 123  # registers per FC16 request
BROADCAST = 0

FC_READ_HOLDING = 3
FC_READ_INPUT = 4
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()  # table-driven: eight times fewer steps on the RP2040


def crc16(data: bytes | bytearray | memoryview) -> int:
    """Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF) of ``data``."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes | bytearray) -> bytes:
    """``body`` followed by its CRC, low byte first (as RTU sends it)."""
    crc = crc16(body)
    return bytes(body) + bytes((crc & 0xFF, crc >> 8))


def frame_gap_ms(baudrate: int) -> int:
    """Silence that ends a frame, in whole milliseconds, rounded up and one more.

    3.5 characters of 11 bits (the RTU character, whatever the parity), at least 1.75 ms as
    the specification fixes above 19200 baud. Ticks count whole milliseconds, so a measured
    silence of N ms may be N - 1 ms long: one more keeps a frame from being cut in two.
    """
    gap_us = 3500 * 11 * 1000 // baudrate
    if gap_us < 1750:
        gap_us = 1750
    return (gap_us + 999) // 1000 + 1


def _word(data: bytes | bytearray, at: int) -> int:
    return (data[at] << 8) | data[at + 1]


class RegisterBank:
    """What the slave reads and writes: the device's register map (subclassed by the node)."""

    def read_words(self, fc: int, address: int, count: int) -> list[int] | int:
        """``count`` words from ``address`` of the table ``fc`` reads (FC03 holding, FC04
        input), or an exception code."""
        raise NotImplementedError

    def write_words(self, address: int, words: list[int]) -> int:
        """Write holding registers from ``address``: 0, or an exception code (then nothing
        was written)."""
        raise NotImplementedError


class RtuSlave:
    """One unit on the bus: feed it bytes with :meth:`receive`, call :meth:`poll` often and
    send what it returns."""

    def __init__(self, unit: int, bank: RegisterBank, baudrate: int = 9600) -> None:
        self.unit = unit
        self.bank = bank
        self.gap_ms = frame_gap_ms(baudrate)
        self.frame_errors = 0  # wraps at 65536, as the register that shows it
        self._buf = bytearray()
        self._overrun = False
        self._pending = False
        self._last_rx = 0

    def receive(self, data: bytes | bytearray, now_ms: int) -> None:
        """Bytes from the line, as the UART delivered them at ``now_ms``."""
        if not data:
            return
        if self._overrun or len(self._buf) + len(data) > MAX_FRAME:
            # longer than any frame: noise or a babbling device; kept no more, counted once
            self._overrun = True
            self._buf = bytearray()
        else:
            self._buf.extend(data)
        self._pending = True
        self._last_rx = now_ms

    def pending(self) -> bool:
        """Whether bytes wait for the silence that ends their frame."""
        return self._pending

    def poll(self, now_ms: int) -> bytes | None:
        """The answer to send now, if a frame for this unit ended with enough silence."""
        if not self._pending or ticks_diff(now_ms, self._last_rx) < self.gap_ms:
            return None
        frame = bytes(self._buf)
        overrun = self._overrun
        self._buf = bytearray()
        self._pending = False
        self._overrun = False
        if overrun:
            self._count_error()
            return None
        return self.handle(frame)

    def handle(self, frame: bytes) -> bytes | None:
        """The answer to one whole frame (None: say nothing)."""
        n = len(frame)
        if n < 4 or crc16(memoryview(frame)[: n - 2]) != frame[n - 2] | (frame[n - 1] << 8):
            self._count_error()
            return None
        unit = frame[0]
        if unit != self.unit and unit != BROADCAST:
            return None  # another slave's request, or another slave's answer
        fc = frame[1]
        if fc & 0x80:
            return None  # an exception answer on the line, not a request
        data = frame[2 : n - 2]
        if unit == BROADCAST:
            if fc in (FC_WRITE_SINGLE, FC_WRITE_MULTIPLE):
                self._execute(fc, data)
            return None  # a broadcast is never answered, not even with an exception
        answer = self._execute(fc, data)
        if isinstance(answer, int):
            return with_crc(bytes((unit, fc | 0x80, answer)))
        return with_crc(bytes((unit, fc)) + answer)

    def _count_error(self) -> None:
        self.frame_errors = (self.frame_errors + 1) & 0xFFFF

    def _execute(self, fc: int, data: bytes) -> bytes | int:
        """The answer's PDU after the function code, or an exception code."""
        if fc in (FC_READ_HOLDING, FC_READ_INPUT):
            return self._read(fc, data)
        if fc == FC_WRITE_SINGLE:
            if len(data) != 4:
                return ILLEGAL_DATA_VALUE
            code = self.bank.write_words(_word(data, 0), [_word(data, 2)])
            return code if code else data  # the answer echoes the request
        if fc == FC_WRITE_MULTIPLE:
            return self._write_multiple(data)
        return ILLEGAL_FUNCTION

    def _read(self, fc: int, data: bytes) -> bytes | int:
        if len(data) != 4:
            return ILLEGAL_DATA_VALUE
        count = _word(data, 2)
        if count < 1 or count > MAX_READ:
            return ILLEGAL_DATA_VALUE
        words = self.bank.read_words(fc, _word(data, 0), count)
        if isinstance(words, int):
            return words
        out = bytearray((2 * count,))
        for word in words:
            out.append(word >> 8)
            out.append(word & 0xFF)
        return bytes(out)

    def _write_multiple(self, data: bytes) -> bytes | int:
        if len(data) < 5:
            return ILLEGAL_DATA_VALUE
        count = _word(data, 2)
        if count < 1 or count > MAX_WRITE or data[4] != 2 * count or len(data) != 5 + 2 * count:
            return ILLEGAL_DATA_VALUE
        words = [_word(data, 5 + 2 * i) for i in range(count)]
        code = self.bank.write_words(_word(data, 0), words)
        return code if code else bytes(data[:4])  # the answer: start address and count
