"""MicroPython entry of the room node: the RP2040's pins wired to the core (roomnode/).

Runs at boot (MicroPython runs main.py). Everything that decides lives in roomnode/ and is
tested under CPython and MicroPython; this file only moves bytes and levels between the
hardware and :class:`roomnode.node.Node`. Not run by the tests, compiled by mpy-cross there.

An exception escaping the loop drops MicroPython to its REPL with the watchdog still armed
(the RP2040's cannot be stopped): the board resets, and reports ``watchdog`` as its reset
cause. The outputs are driven low at that reset, so a crash ends like a lost lease.
"""

import time

import machine
from machine import ADC, PWM, UART, WDT, Pin

from roomnode import board
from roomnode.node import RESET_POWER_ON, RESET_SOFT, RESET_WATCHDOG, SAFE_CALM_LIGHT, Node


def reset_cause() -> int:
    """Why the board started, as the reset_cause register tells it."""
    cause = machine.reset_cause()
    if cause == getattr(machine, "WDT_RESET", -1):
        return RESET_WATCHDOG
    if cause == getattr(machine, "SOFT_RESET", -1):
        return RESET_SOFT
    return RESET_POWER_ON


class Board:
    """The node's pins."""

    def __init__(self) -> None:
        self.de = Pin(board.PIN_DE, Pin.OUT, value=0)  # listening until there is an answer
        self.uart = UART(board.UART_ID, baudrate=board.BAUDRATE, bits=8, parity=None, stop=1,
                         tx=Pin(board.PIN_TX), rx=Pin(board.PIN_RX), rxbuf=512, timeout=0)
        self.desk = ADC(Pin(board.PIN_PANIC_DESK))
        self.door_loop = ADC(Pin(board.PIN_PANIC_DOOR))
        self.door = Pin(board.PIN_DOOR, Pin.IN, Pin.PULL_UP)
        self.session = Pin(board.PIN_SESSION, Pin.IN, Pin.PULL_UP)
        self.occupancy = Pin(board.PIN_OCCUPANCY, Pin.IN)
        self.door_sign = Pin(board.PIN_DOOR_SIGN, Pin.OUT, value=0)
        self.recording = Pin(board.PIN_RECORDING, Pin.OUT, value=0)
        self.buzzer = Pin(board.PIN_BUZZER, Pin.OUT, value=0)
        self.calm = PWM(Pin(board.PIN_CALM_LIGHT))
        self.calm.freq(board.CALM_PWM_HZ)
        self.shown = (-1, -1, -1, -1)  # outputs as last set: nothing yet

    def sample(self, node: Node, now: int) -> None:
        node.sample(now, self.desk.read_u16(), self.door_loop.read_u16(),
                    self.door.value() == 1,  # the reed opens with the door: pulled high
                    self.session.value() == 0,  # the button pulls its pin to GND
                    self.occupancy.value() == 1)

    def transmit(self, frame: bytes) -> None:
        """Drive the bus for one answer and let go of it as soon as the last bit is out."""
        self.de.value(1)
        self.uart.write(frame)
        self.uart.flush()  # waits until the FIFO is empty...
        while not self.uart.txdone():  # ...and the shift register too
            pass
        self.de.value(0)
        if self.uart.any():  # an echo, if /RE was wired low after all: not a request
            self.uart.read()

    def show(self, outputs: tuple[int, int, int, int]) -> None:
        if outputs == self.shown:
            return
        door_sign, recording, buzzer, calm = outputs
        self.door_sign.value(door_sign)
        self.recording.value(recording)
        self.buzzer.value(buzzer)
        self.calm.duty_u16(calm * 65535 // 1000)
        self.shown = outputs


def maintenance_requested() -> bool:
    """BOOTSEL pressed within a second of the reset: stay at the REPL for mpremote, without
    the watchdog (which cannot be stopped once started). On the board, out of a user's reach."""
    try:
        import rp2
    except ImportError:
        return False
    deadline = time.ticks_add(time.ticks_ms(), board.MAINTENANCE_WINDOW_MS)
    while time.ticks_diff(deadline, time.ticks_ms()) > 0:
        if rp2.bootsel_button():
            return True
        time.sleep_ms(10)
    return False


def run() -> None:
    """The main loop: receive, sample, answer, drive the outputs, feed the watchdog."""
    cause = reset_cause()
    pins = Board()
    pins.show((0, 0, 0, SAFE_CALM_LIGHT))  # the safe states from the first moment
    if maintenance_requested():
        print("room node: maintenance, not started (reset to run)")
        return
    wdt = WDT(timeout=board.WDT_TIMEOUT_MS)
    now = time.ticks_ms()
    node = Node(now, reset_cause=cause)
    last_sample = time.ticks_add(now, -board.SAMPLE_MS)
    while True:
        now = time.ticks_ms()
        waiting = pins.uart.any()
        if waiting:
            node.receive(pins.uart.read(waiting), now)
        if time.ticks_diff(now, last_sample) >= board.SAMPLE_MS:
            last_sample = now
            pins.sample(node, now)
        answer = node.poll(now)
        if answer:
            pins.transmit(answer)
        pins.show(node.outputs())
        wdt.feed()
        time.sleep_ms(1)


run()
