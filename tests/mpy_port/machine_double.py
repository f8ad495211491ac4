"""A stand-in for MicroPython's ``machine`` module on the room node's board, for running the
real ``main.py`` under MicroPython without the RP2040 (``main_on_fake_board.py``).

Pins remember their level, ADCs return what the test sets, the UART hands out queued bytes
and records what is written (and whether DE was high meanwhile), and the watchdog's
``feed()`` — one per turn of the main loop — runs the test's next step.
"""

try:  # noqa: SIM105  (MicroPython has no contextlib)
    from collections.abc import Callable
except ImportError:  # MicroPython: only mypy reads the annotations
    pass

PWRON_RESET = 1
WDT_RESET = 3

pins: "dict[int, Pin]" = {}  # pin id -> Pin
pwms: "dict[int, PWM]" = {}  # pin id -> PWM
adc_counts: dict[int, int] = {}  # pin id -> what read_u16() returns
sent: list[tuple[bytes, int]] = []  # frames written to the UART, with DE's level meanwhile
rx = bytearray()  # bytes waiting in the UART's receive buffer
feeds = [0]
on_feed: "list[Callable[[], None] | None]" = [None]  # the test's step, run at every feed


def reset_cause() -> int:
    return PWRON_RESET


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1

    def __init__(self, pin_id: int, mode: int = -1, pull: int = -1, value: int = 0) -> None:
        self.id = pin_id
        self.mode = mode
        self.level = value
        pins[pin_id] = self

    def value(self, level: int = -1) -> int:
        if level != -1:
            self.level = level
        return self.level


class ADC:
    def __init__(self, pin: Pin) -> None:
        self.pin = pin.id

    def read_u16(self) -> int:
        return adc_counts.get(self.pin, 0)


class PWM:
    def __init__(self, pin: Pin) -> None:
        self.pin = pin
        self.hz = 0
        self.duty = -1
        pins[pin.id] = pin
        pwms[pin.id] = self

    def freq(self, hz: int) -> None:
        self.hz = hz

    def duty_u16(self, duty: int) -> None:
        self.duty = duty



class UART:
    def __init__(self, uart_id: int, baudrate: int = 9600, bits: int = 8, parity: object = None,
                 stop: int = 1, tx: object = None, rx: object = None, rxbuf: int = 0,
                 timeout: int = 0) -> None:
        self.baudrate = baudrate

    def any(self) -> int:
        return len(rx)

    def read(self, n: int = -1) -> bytes:
        n = len(rx) if n < 0 else n
        data = bytes(rx[:n])
        rx[:n] = b""
        return data

    def write(self, data: bytes) -> int:
        de = pins[2].level if 2 in pins else -1
        sent.append((bytes(data), de))
        return len(data)

    def flush(self) -> None:
        pass

    def txdone(self) -> bool:
        return True


class WDT:
    def __init__(self, timeout: int = 5000) -> None:
        self.timeout = timeout

    def feed(self) -> None:
        feeds[0] += 1
        step = on_feed[0]
        if step is not None:
            step()
