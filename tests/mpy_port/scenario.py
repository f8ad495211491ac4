"""The room node's core driven through a long reproducible scenario, under either Python.

Run by ``tests/test_room_node_micropython.py`` under CPython and under real MicroPython (the
WebAssembly port, ``run.mjs``): it asserts the node's main behaviours as it goes, then prints
one line per step of a pseudo-random session (requests good and bad for this unit, for
others, broadcasts, garbage, input changes, time jumps across the ticks wrap and past the
lease). The test compares the two transcripts line by line, so anything the firmware does
differently on the board's interpreter shows up as the first differing step.

Written in the subset both interpreters share: no typing imports, no f-strings.
"""

from roomnode import board
from roomnode.modbus import crc16, with_crc
from roomnode.node import REGISTERS, SAFE_CALM_LIGHT, Node
from roomnode.ticks import TICKS_MAX, ticks_add

UNIT = 7
STEPS = 1500
AT_REST = board.adc_counts(board.R_EOL)
PRESSED = board.adc_counts(board.R_EOL + board.R_ALARM)
# readings a loop may give: at rest, pressed, cut, shorted, and near each band's bounds
LOOP_READINGS = (AT_REST, PRESSED, board.ADC_FULL, 0, board.SHORT_BELOW - 1, board.SHORT_BELOW,
                 board.ALARM_FROM - 1, board.ALARM_FROM, board.OPEN_FROM - 1, board.OPEN_FROM)


class Lcg:
    """The same pseudo-random numbers under both interpreters (``random`` differs)."""

    def __init__(self, seed: int) -> None:
        self.state = seed

    def below(self, n: int) -> int:
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 8) % n

    def pick(self, items: tuple[int, ...]) -> int:
        return items[self.below(len(items))]


def frame(*body: int) -> bytes:
    return with_crc(bytes(body))


def exchange(node: Node, request: bytes, now: int) -> tuple[bytes | None, int]:
    """Send ``request`` at ``now``; the answer once the line went quiet, and the time then."""
    node.receive(request, now)
    now = ticks_add(now, node.slave.gap_ms)
    return node.poll(now), now


def fixed_checks() -> None:
    assert crc16(b"\x01\x03\x00\x00\x00\x01") == 0x0A84  # the specification's example
    now = TICKS_MAX - 3000  # the ticks wrap during these checks
    node = Node(now)
    answer, now = exchange(node, frame(UNIT, 4, 0, 16, 0, 2), now)
    assert answer == frame(UNIT, 4, 4, 0x52, 0x4E, 1, 0)  # identity "RN", version 1.0
    answer, now = exchange(node, frame(UNIT, 3, 0, 103, 0, 2), now)
    assert answer == frame(UNIT, 3, 4, SAFE_CALM_LIGHT >> 8, SAFE_CALM_LIGHT & 0xFF, 0, 100)
    answer, now = exchange(node, frame(UNIT, 5, 0, 100, 0xFF, 0), now)
    assert answer == frame(UNIT, 0x85, 1)
    answer, now = exchange(node, frame(UNIT, 3, 0, 99, 0, 1), now)
    assert answer == frame(UNIT, 0x83, 2)
    answer, now = exchange(node, frame(UNIT, 6, 0, 103, 0x03, 0xE9), now)  # 100.1 %
    assert answer == frame(UNIT, 0x86, 3)
    answer, now = exchange(node, frame(UNIT + 1, 4, 0, 0, 0, 1), now)
    assert answer is None and node.slave.frame_errors == 0
    answer, now = exchange(node, frame(UNIT, 4, 0, 0, 0, 1)[:-1] + b"\x00", now)
    assert answer is None and node.slave.frame_errors == 1
    # outputs on with a 1 s lease, renewed once, then left to expire
    answer, now = exchange(node, frame(UNIT, 16, 0, 100, 0, 5, 10, 0, 1, 0, 1, 0, 1, 3, 0xE8,
                                       0, 10), now)
    assert answer == frame(UNIT, 16, 0, 100, 0, 5)
    assert node.outputs() == (1, 1, 1, 1000)
    now = ticks_add(now, 900)
    answer, now = exchange(node, frame(UNIT, 6, 0, 102, 0, 0), now)
    now = ticks_add(now, 990)
    node.poll(now)
    assert node.outputs() == (1, 1, 0, 1000)  # renewed 990 ms ago: still held
    now = ticks_add(now, 20)
    node.poll(now)
    assert node.outputs() == (0, 0, 0, SAFE_CALM_LIGHT)
    assert node.values()["lease_expiries"] == 1 and node.errors() & 1
    # a press latches; the acknowledgement clears it only once the button is at rest
    for _ in range(10):
        now = ticks_add(now, board.SAMPLE_MS)
        node.sample(now, PRESSED, AT_REST, False, False, False)
    assert node.panic_latched == 1 and node.panic_presses == 1
    exchange(node, frame(UNIT, 6, 0, 105, 0, 1), now)
    assert node.panic_latched == 1
    for _ in range(10):
        now = ticks_add(now, board.SAMPLE_MS)
        node.sample(now, AT_REST, AT_REST, False, False, False)
    assert node.panic_latched == 0 and node.panic_presses == 1


def random_request(rng: Lcg) -> bytes:
    unit = rng.pick((UNIT, UNIT, UNIT, UNIT, UNIT, UNIT, 0, 1, 2, 247))
    fc = rng.pick((3, 3, 4, 4, 4, 6, 6, 16, 16, 16, 1, 43))
    if rng.below(4) == 0:  # anywhere, any count: mostly refused
        address = rng.pick((0, 24, 99, 106, rng.below(65536)))
        count = rng.pick((0, 2, 7, 125, 126, rng.below(65536)))
    elif fc == 4:  # inside the input table
        address = rng.below(24)
        count = 1 + rng.below(24 - address)
    else:  # inside the holding table
        address = 100 + rng.below(6)
        count = 1 + rng.below(106 - address)
    if fc == 6:
        value = rng.pick((0, 1, 1, 2, 3, 5, 300, 600, 601, 1000, 1001, rng.below(65536)))
        body = [unit, fc, address >> 8, address & 0xFF, value >> 8, value & 0xFF]
    elif fc == 16:
        count &= 0x7F
        body = [unit, fc, address >> 8, address & 0xFF, 0, count, 2 * count]
        for _ in range(count):
            value = rng.pick((0, 1, 1, 3, 50, 300, 1000, rng.below(65536)))
            body += [value >> 8, value & 0xFF]
    else:
        body = [unit, fc, address >> 8, address & 0xFF, count >> 8, count & 0xFF]
    request = frame(*body)
    damage = rng.below(12)
    if damage == 0:  # a bit flipped by noise
        at = rng.below(len(request))
        request = request[:at] + bytes((request[at] ^ (1 << rng.below(8)),)) + request[at + 1:]
    elif damage == 1:  # cut short
        request = request[: rng.below(len(request))]
    elif damage == 2:  # garbage
        request = bytes(rng.below(256) for _ in range(1 + rng.below(300)))
    return request


def transcript() -> None:
    rng = Lcg(20240601)
    now = TICKS_MAX - 20000  # the ticks wrap early in the session
    node = Node(now, hold_ms=40)
    inputs = [AT_REST, AT_REST, 0, 0, 0]
    for step in range(STEPS):
        action = rng.below(10)
        answer = None
        if action < 6:
            request = random_request(rng)
            if request:
                answer, now = exchange(node, request, now)
        else:
            which = rng.below(5)
            inputs[which] = rng.pick(LOOP_READINGS) if which < 2 else rng.below(2)
        # time passes: mostly a few samples, sometimes long enough for the lease to run out
        for _ in range(1 + rng.below(20)):
            now = ticks_add(now, board.SAMPLE_MS)
            node.sample(now, inputs[0], inputs[1], inputs[2] == 1, inputs[3] == 1,
                        inputs[4] == 1)
            node.poll(now)
        if rng.below(25) == 0:
            now = ticks_add(now, 1000 * rng.below(70))
            node.poll(now)
        values = node.values()
        words = " ".join(str(values[reg[0]]) for reg in REGISTERS)
        print(step, answer.hex() if answer else "-", words)


fixed_checks()
transcript()
print("done")
