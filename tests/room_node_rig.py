"""The room node's firmware core on virtual time, for its unit tests.

The rig plays the board's main loop: it samples the inputs every ``SAMPLE_MS`` and polls the
core, in milliseconds that the test advances, so a 10 s lease takes no real time.
"""

from __future__ import annotations

from typing import Any

from roomnode import board
from roomnode.modbus import crc16, with_crc
from roomnode.node import Node
from roomnode.ticks import TICKS_MAX

UNIT = 7
AT_REST = board.adc_counts(board.R_EOL)
PRESSED = board.adc_counts(board.R_EOL + board.R_ALARM)
CUT = board.adc_counts(-1)
SHORTED = board.adc_counts(0)


def frame(*body: int) -> bytes:
    """A frame of ``body`` bytes with its CRC."""
    return with_crc(bytes(body))


def read_request(fc: int, address: int, count: int, unit: int = UNIT) -> bytes:
    return frame(unit, fc, address >> 8, address & 0xFF, count >> 8, count & 0xFF)


def write_single(address: int, value: int, unit: int = UNIT) -> bytes:
    return frame(unit, 6, address >> 8, address & 0xFF, value >> 8, value & 0xFF)


def write_multiple(address: int, values: list[int], unit: int = UNIT) -> bytes:
    body = [unit, 16, address >> 8, address & 0xFF, 0, len(values), 2 * len(values)]
    for value in values:
        body += [value >> 8, value & 0xFF]
    return frame(*body)


def crc_ok(data: bytes) -> bool:
    """Whether ``data`` ends with the CRC of what precedes it."""
    return len(data) >= 4 and crc16(data[:-2]) == data[-2] | data[-1] << 8


def exception_code(answer: bytes | None) -> int | None:
    """The exception code of an exception answer (None for any other answer)."""
    if answer is None or len(answer) != 5 or not answer[1] & 0x80:
        return None
    return answer[2]


class Rig:
    """A node whose inputs the test sets and whose time the test advances."""

    def __init__(self, start_ms: int = 0, **node_options: Any) -> None:
        self.now = start_ms
        self.node = Node(start_ms, **node_options)
        self.loops = [AT_REST, AT_REST]  # desk, door (ADC counts)
        self.door_open = False
        self.session = False
        self.occupied = False

    def run(self, ms: int) -> list[bytes]:
        """Let ``ms`` milliseconds pass, sampling and polling as the main loop does; the
        answers the node sent meanwhile."""
        answers = []
        end = self.now + ms
        while self.now < end:
            self.now = min(self.now + board.SAMPLE_MS, end)
            now = self.now & TICKS_MAX  # the rig's time is unbounded, ticks wrap
            self.node.sample(now, self.loops[0], self.loops[1], self.door_open, self.session,
                             self.occupied)
            answer = self.node.poll(now)
            if answer is not None:
                answers.append(answer)
        return answers

    def send(self, data: bytes) -> bytes | None:
        """Put ``data`` on the line and wait out the silence: the node's answer, if any."""
        self.node.receive(data, self.now & TICKS_MAX)
        answers = self.run(self.node.slave.gap_ms)
        assert len(answers) <= 1
        return answers[0] if answers else None

    def read(self, fc: int, address: int, count: int) -> list[int]:
        """The words a read answers (the answer is checked whole)."""
        answer = self.send(read_request(fc, address, count))
        assert answer is not None and crc_ok(answer)
        assert answer[:3] == bytes((UNIT, fc, 2 * count)) and len(answer) == 5 + 2 * count
        return [answer[3 + 2 * i] << 8 | answer[4 + 2 * i] for i in range(count)]

    def write(self, address: int, *values: int) -> None:
        """Write holding registers and check the node accepted them."""
        if len(values) == 1:
            request = write_single(address, values[0])
            assert self.send(request) == request  # FC06 echoes
        else:
            answer = self.send(write_multiple(address, list(values)))
            assert answer == frame(UNIT, 16, address >> 8, address & 0xFF, 0, len(values))

    def value(self, name: str) -> int:
        return self.node.values()[name]

