"""Autoterm (Planar) Air 2D / 4D diesel air heater over its own serial protocol.

The protocol is community reverse engineering (``../shared/devices/README.md`` §6, medium
confidence): request/response at 9600 8N1 over a 5 V TTL UART, frames
``AA dev len 00 cmd payload CRC`` with CRC-16/MODBUS sent high byte first. The controller
(``dev`` 0x03) asks, the heater (``dev`` 0x04) answers with the same ``cmd``.

This module holds the frame codec (:func:`encode`, :class:`FrameReader`), the
status and settings payloads (:func:`parse_status`, :func:`encode_status`,
:func:`parse_settings`), the state and error tables, and :class:`AutotermHeater`, the driver:
one per serial port, it polls the status and reconciles the heater with the wanted state.
Standard library and pyserial only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from drivers.modbus_frame import crc16  # the heater frames use the Modbus CRC
from drivers.serial_link import SerialLink
from drivers.wakeup import woken

log = logging.getLogger(__name__)

# ---- frame codec --------------------------------------------------------------------------

SYNC = 0xAA
HEADER_LEN = 5  # AA dev len 00 cmd
CRC_LEN = 2
RESERVED = 0x00  # the fourth byte: 00 in every captured frame, so a different one is no frame
# The longest frame known is the 72-byte diagnostic telemetry; a longer length byte is noise,
# refused at once instead of waiting for up to 255 bytes that belong to later frames.
MAX_PAYLOAD = 72


class Dev(IntEnum):
    """The sender byte of a frame."""

    BOOT = 0x00  # the heater during its power-up handshake
    DIAGNOSTIC = 0x02
    CONTROLLER = 0x03  # us, or an official panel
    HEATER = 0x04


class Cmd(IntEnum):
    """Commands the driver and the simulator know (§6.3). 0x07/0x08/0x13 are factory
    diagnostics and deliberately absent: never send them to a vehicle heater."""

    START = 0x01
    SETTINGS = 0x02  # empty: read; 6 bytes: change live
    STOP = 0x03
    SERIAL_NUMBER = 0x04
    VERSION = 0x06
    HISTORY = 0x0B
    UNLOCK = 0x0D  # after the error-37 lock-out; technician only
    STATUS = 0x0F
    PANEL_TEMPERATURE = 0x11
    HANDSHAKE = 0x1C
    VENTILATION = 0x23


def encode(dev: int, cmd: int, payload: bytes = b"") -> bytes:
    """The frame ``AA dev len 00 cmd payload CRC`` (CRC high byte first, as the heater sends).

    ValueError for a ``dev`` or ``cmd`` outside one byte or a payload over 255 bytes.
    """
    if not (0 <= dev <= 0xFF and 0 <= cmd <= 0xFF):
        raise ValueError(f"dev {dev} and cmd {cmd} must be bytes")
    if len(payload) > 0xFF:
        raise ValueError(f"payload of {len(payload)} bytes: at most 255 fit the length byte")
    body = bytes((SYNC, dev, len(payload), RESERVED, cmd)) + payload
    return body + crc16(body).to_bytes(CRC_LEN, "big")


@dataclass(frozen=True)
class Frame:
    """One frame with a good CRC."""

    dev: int
    cmd: int
    payload: bytes

    def to_bytes(self) -> bytes:
        """The frame on the wire."""
        return encode(self.dev, self.cmd, self.payload)


class FrameReader:
    """Incremental decoder: bytes in as they arrive, whole frames with a good CRC out.

    Bytes that cannot start a frame are skipped up to the next 0xAA and counted in
    ``garbage_bytes``; a header with a length over ``max_payload`` or a fourth byte other
    than 00 is a false start (its 0xAA counted as garbage). A frame whose CRC does not match
    counts one ``crc_errors`` and the search resumes at its second byte, so a real frame that
    began inside it is still found (its other bytes then count as garbage). After each call
    the buffer holds less than one frame of at most ``max_payload``. Never raises.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self.crc_errors = 0
        self.garbage_bytes = 0
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held: the start of a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames they complete, in order."""
        self._buf += data
        return self._scan()

    def flush(self) -> list[Frame]:
        """The line went quiet: a frame begun in the buffer will never complete.

        Its 0xAA was a false start; the search resumes after it, so frames inside the held
        bytes are still returned, and what is left is counted as garbage.
        """
        frames = self._scan()
        while self._buf:
            self._skip(1)
            frames += self._scan()
        return frames

    def _skip(self, count: int) -> None:
        self.garbage_bytes += count
        del self._buf[:count]

    def _scan(self) -> list[Frame]:
        frames: list[Frame] = []
        buf = self._buf
        while buf:
            if buf[0] != SYNC:
                start = buf.find(SYNC)
                self._skip(len(buf) if start < 0 else start)
                continue
            if (len(buf) > 2 and buf[2] > self.max_payload) or (len(buf) > 3
                                                                and buf[3] != RESERVED):
                self._skip(1)
                continue
            if len(buf) < HEADER_LEN:
                break
            size = HEADER_LEN + buf[2] + CRC_LEN
            if len(buf) < size:
                break
            body = bytes(buf[:size - CRC_LEN])
            if crc16(body) != int.from_bytes(buf[size - CRC_LEN:size], "big"):
                self.crc_errors += 1
                del buf[:1]
                continue
            frames.append(Frame(body[1], body[4], body[HEADER_LEN:]))
            del buf[:size]
        return frames


# ---- status -------------------------------------------------------------------------------

State = Literal["off", "standby", "starting", "running", "ventilation", "cooling",
                "shutting_down", "unknown"]

# (major, minor) -> (state, what the heater is doing); §6.4 "States"
STATE_TABLE: dict[tuple[int, int], tuple[State, str]] = {
    (0, 0): ("off", "off"),
    (0, 1): ("standby", "standby"),
    (1, 0): ("cooling", "cooling the flame sensor"),
    (1, 1): ("cooling", "ventilating (purge)"),
    (2, 1): ("starting", "glow-plug pre-heat"),
    (2, 2): ("starting", "ignition 1"),
    (2, 3): ("starting", "ignition 2"),
    (2, 4): ("starting", "ramp-up"),
    (3, 0): ("running", "heating"),
    (3, 35): ("ventilation", "ventilation only"),
    (3, 4): ("cooling", "cooling down"),
    (4, 0): ("shutting_down", "shutting down"),
}
# a minor code missing from the table still means this (any 2.x is a step of the start)
MAJOR_STATES: dict[int, State] = {2: "starting"}
IDLE_STATES: frozenset[State] = frozenset({"off", "standby"})
# the heater burns off fuel and cools its chamber: it must keep its 12 V supply
RUN_ON_STATES: frozenset[State] = frozenset({"cooling", "shutting_down"})

NO_SENSOR = 0x7F  # external temperature byte: no sensor connected
KELVIN = 273.15
STATUS_LENGTHS = (10, 19)  # PU-27/Comfort captures; longer firmware

# code -> (short id, English, Polish); §6.4 "Error codes"
ERROR_CODES: dict[int, tuple[str, str, str]] = {
    1: ("overheat", "Overheat", "Przegrzanie"),
    2: ("possible_overheat", "Possible overheat", "Możliwe przegrzanie"),
    5: ("flame_sensor", "Flame sensor fault", "Usterka czujnika płomienia"),
    6: ("temperature_sensor", "Temperature sensor fault", "Usterka czujnika temperatury"),
    9: ("glow_plug", "Glow plug fault", "Usterka świecy żarowej"),
    10: ("fan_speed", "Fan motor speed fault", "Nieprawidłowe obroty wentylatora"),
    11: ("air_sensor", "Air temperature sensor fault",
         "Usterka czujnika temperatury powietrza"),
    12: ("over_voltage", "Supply voltage too high", "Zbyt wysokie napięcie zasilania"),
    13: ("no_start", "Did not start (2 attempts)", "Nieudane uruchomienie (2 próby)"),
    15: ("under_voltage", "Supply voltage too low", "Zbyt niskie napięcie zasilania"),
    16: ("ventilation_timeout", "Ventilation time exceeded", "Przekroczony czas przedmuchu"),
    17: ("fuel_pump", "Fuel pump fault", "Usterka pompy paliwa"),
    20: ("no_communication", "No communication with the controller",
         "Brak komunikacji ze sterownikiem"),
    29: ("flame_out", "Flame blow-out", "Zgaśnięcie płomienia"),
    30: ("flame_before_start", "Flame detected before start",
         "Płomień wykryty przed uruchomieniem"),
    31: ("outlet_overheat", "Outlet overheat", "Przegrzanie na wylocie"),
    33: ("control_lockout", "Control lock-out", "Blokada sterowania"),
    37: ("locked", "Heater locked: needs unlocking by a technician",
         "Nagrzewnica zablokowana: wymaga odblokowania przez serwis"),
}


def describe_error(code: int) -> tuple[str, str, str]:
    """(short id, English, Polish) of an error code, also for one missing from the table."""
    return ERROR_CODES.get(code, (f"error_{code}", f"Unknown error {code}",
                                  f"Nieznany błąd {code}"))


def state_of(code: tuple[int, int]) -> State:
    """The state a major.minor code means; "unknown" for a code in no table."""
    known = STATE_TABLE.get(code)
    if known is not None:
        return known[0]
    return MAJOR_STATES.get(code[0], "unknown")


@dataclass(frozen=True)
class HeaterStatus:
    """One status reply (cmd 0x0F). ``fan_*`` and ``pump_hz`` only come in 19-byte replies."""

    state: State
    state_code: tuple[int, int]
    error: int  # 0: none
    intake_c: int
    external_c: int | None  # None: no external sensor connected
    voltage_v: float
    flame_c: float
    fan_hz: int | None = None  # actual (x60 = rpm)
    pump_hz: float | None = None  # scale uncertain (kalutep x10, esdete2 x100): x10 used
    fan_set_hz: int | None = None

    @property
    def in_run_on(self) -> bool:
        """Cooling or shutting down: the heater must keep its power, and may not be started."""
        return self.state in RUN_ON_STATES

    @property
    def state_text(self) -> str:
        """What the heater is doing, in words (the raw code for an unknown one)."""
        known = STATE_TABLE.get(self.state_code)
        major, minor = self.state_code
        return known[1] if known is not None else f"{self.state} ({major}.{minor})"

    @property
    def error_info(self) -> tuple[str, str, str] | None:
        """(short id, English, Polish) of the error, None without one."""
        return describe_error(self.error) if self.error else None


def _int8(byte: int) -> int:
    return byte - 0x100 if byte > 0x7F else byte


def _byte(value: int, low: int, high: int) -> int:
    return min(max(value, low), high) & 0xFF


def parse_status(payload: bytes) -> HeaterStatus:
    """The status in a 10- or 19-byte 0x0F payload; ValueError for any other length."""
    if len(payload) not in STATUS_LENGTHS:
        raise ValueError(f"status payload of {len(payload)} bytes, expected 10 or 19")
    code = (payload[0], payload[1])
    long = len(payload) == STATUS_LENGTHS[1]
    return HeaterStatus(
        state=state_of(code),
        state_code=code,
        error=payload[2],
        intake_c=_int8(payload[3]),
        external_c=None if payload[4] == NO_SENSOR else _int8(payload[4]),
        voltage_v=int.from_bytes(payload[5:7], "big") / 10,
        flame_c=round(int.from_bytes(payload[7:9], "big") - KELVIN, 2),
        fan_hz=payload[12] if long else None,
        pump_hz=payload[14] / 10 if long else None,
        fan_set_hz=payload[11] if long else None,
    )


def encode_status(status: HeaterStatus) -> bytes:
    """The 0x0F payload for ``status`` (the heater's side, for the simulator): 19 bytes when
    it has fan or pump values, else 10. Values that do not fit are clamped."""
    out = bytearray(STATUS_LENGTHS[1])
    out[0], out[1] = (_byte(part, 0, 0xFF) for part in status.state_code)
    out[2] = _byte(status.error, 0, 0xFF)
    out[3] = _byte(status.intake_c, -0x80, 0x7F)
    out[4] = NO_SENSOR if status.external_c is None else _byte(status.external_c, -0x80, 0x7E)
    out[5:7] = min(max(round(status.voltage_v * 10), 0), 0xFFFF).to_bytes(2, "big")
    out[7:9] = min(max(round(status.flame_c + KELVIN), 0), 0xFFFF).to_bytes(2, "big")
    if status.fan_hz is None and status.fan_set_hz is None and status.pump_hz is None:
        return bytes(out[:STATUS_LENGTHS[0]])
    out[11] = _byte(status.fan_set_hz or 0, 0, 0xFF)
    out[12] = _byte(status.fan_hz or 0, 0, 0xFF)
    out[14] = _byte(round((status.pump_hz or 0.0) * 10), 0, 0xFF)
    return bytes(out)


# ---- settings -----------------------------------------------------------------------------

KEEP = 0xFF  # in a settings byte: keep the heater's current value (as the Comfort panel sends)
SETTINGS_LEN = 6
LEVELS = range(10)  # power / fan level 0-9
SETPOINTS_C = range(1, 31)  # target temperature 1-30 °C


class Regulation(IntEnum):
    """The ``mode`` byte of the settings: what the heater regulates by."""

    HEATER_SENSOR = 1
    PANEL_SENSOR = 2  # needs periodic 0x11 reports
    EXTERNAL_SENSOR = 3
    POWER_LEVEL = 4


@dataclass(frozen=True)
class HeaterSettings:
    """The 6-byte settings of 0x01 start and 0x02 settings: ``[t1 t2][mode][setpoint][vent]
    [level]``. ``run_time`` is the raw two bytes, big-endian (panels send 0xFFFF; their
    meaning differs between sources); ``vent`` is the "wait mode" byte, whose meaning also
    conflicts between sources, so the driver sends back what the heater reports."""

    run_time: int
    mode: int
    setpoint_c: int
    vent: int
    level: int

    def payload(self) -> bytes:
        """The 6 payload bytes."""
        return self.run_time.to_bytes(2, "big") + bytes(
            (self.mode, self.setpoint_c, self.vent, self.level))


def parse_settings(payload: bytes) -> HeaterSettings:
    """The settings in a 6-byte payload; ValueError for any other length."""
    if len(payload) != SETTINGS_LEN:
        raise ValueError(f"settings payload of {len(payload)} bytes, expected 6")
    return HeaterSettings(int.from_bytes(payload[:2], "big"), payload[2], payload[3],
                          payload[4], payload[5])


def ventilation_payload(level: int) -> bytes:
    """0x23 payload in the PU-27 form ``FF FF [level] 0F`` (captured)."""
    return bytes((KEEP, KEEP, level, 0x0F))


# ---- driver -------------------------------------------------------------------------------

WantedMode = Literal["off", "heat", "ventilation"]


@dataclass(frozen=True)
class Wanted:
    """What the heater should do. ``heat`` regulates by ``level`` (mode 4) when it is given,
    else by the heater's own sensor to ``setpoint_c`` (mode 1)."""

    mode: WantedMode
    setpoint_c: int | None = None
    level: int | None = None


POLL_FAILURES_OFFLINE = 3  # polls in a row without a status: the heater no longer answers
COMMAND_REPEAT_S = 10.0  # stop repeated until idle, as official panels do; start/settings retried
START_TRIES = 2  # start sent this often without the heater reacting: give up
REOPEN_MIN_S = 0.5
REOPEN_MAX_S = 5.0
# Silence inside a frame this long means it will not complete (a USB adapter's latency timer
# can hold bytes for 16 ms, so well above that).
LINE_IDLE_S = 0.05
ERROR_KINDS = ("timeout", "crc", "garbage", "invalid", "io")
ACTIVE_MODE: dict[State, WantedMode] = {
    "starting": "heat", "running": "heat", "ventilation": "ventilation"}

StatusCallback = Callable[[HeaterStatus | None], None]


class AutotermHeater:
    """The driver of one heater on one serial port, with its own state machine.

    :meth:`run` polls the status every ``poll_s`` and reconciles the heater with
    :attr:`wanted` (None until a ``want_*`` call: a supervisor restart leaves a running heater
    alone until its logic says what it wants):

    * wanted on and the heater off/standby: start (0x01) or ventilation (0x23); retried after
      :data:`COMMAND_REPEAT_S` if the heater does not react, given up after
      :data:`START_TRIES` (``start_blocked`` = "no_response");
    * wanted off, or the heater doing the other kind of thing: stop (0x03), repeated every
      :data:`COMMAND_REPEAT_S` until the heater reports standby/off;
    * running as wanted: level/setpoint changed live with 0x02 (fan level with 0x23);
    * never a start while the heater is in run-on (cooling/shutting down): it waits;
    * a heater that stops on its own while wanted on (a fault, or someone at its panel) is not
      started again (``start_blocked`` = "stopped_itself") until the wanted mode changes, e.g.
      ``want_off()`` then ``want_heat()``: repeated starts of a faulty heater are what ends in
      its lock-out (error 37).

    ``on_status`` gets every good status, and None once when the heater stops answering
    (:data:`POLL_FAILURES_OFFLINE` polls in a row, or the port gone). ``errors`` counts
    failures by kind: timeout, crc, garbage (bytes), invalid (a reply of the wrong shape), io.
    Rate limits use ``monotonic``; waits for I/O use the event loop's time.
    """

    def __init__(self, port: str, baudrate: int = 9600, poll_s: float = 1.0,
                 timeout_s: float = 0.5, on_status: StatusCallback | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.baudrate = baudrate
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.wanted: Wanted | None = None
        self.last_status: HeaterStatus | None = None  # None while the heater does not answer
        self.last_settings: HeaterSettings | None = None  # as the heater last reported them
        self.errors: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        self.start_blocked: str | None = None
        self._on_status = on_status
        self._monotonic = monotonic
        self._reader = FrameReader()
        self._frames: deque[Frame] = deque(maxlen=32)  # whole frames heard, oldest first
        self._wake = asyncio.Event()
        self._failed_polls = 0
        self._offline_reported = False
        self._answered = False  # since the port was last opened
        self._port_trouble = False  # logged once per outage
        self._callback_failed = False
        self._unlock_waiters: list[asyncio.Future[bool]] = []
        self._seen_active = False  # the heater did what is wanted since it was wanted
        self._start_tries = 0
        self._last_start_at: float | None = None
        self._last_adjust_at: float | None = None
        self._stopping = False  # a stop was sent and the heater is not idle yet
        self._last_stop_at: float | None = None

    # -- what is wanted -------------------------------------------------------------------

    def want_off(self) -> None:
        """The heater should be off (standby)."""
        self._set_wanted(Wanted("off"))

    def want_heat(self, setpoint_c: int | None = None, level: int | None = None) -> None:
        """The heater should heat: at power ``level`` 0-9 (mode 4) when given, since the van
        regulates from its own zone sensor; else to ``setpoint_c`` 1-30 °C by the heater's own
        sensor (mode 1). ValueError when out of range or neither is given."""
        if level is None and setpoint_c is None:
            raise ValueError("want_heat needs a setpoint or a level")
        if level is not None and level not in LEVELS:
            raise ValueError(f"level {level} outside 0-9")
        if setpoint_c is not None and setpoint_c not in SETPOINTS_C:
            raise ValueError(f"setpoint {setpoint_c} °C outside 1-30")
        self._set_wanted(Wanted("heat", setpoint_c, level))

    def want_ventilation(self, level: int) -> None:
        """The heater should only run its fan, at ``level`` 0-9. ValueError when out of range."""
        if level not in LEVELS:
            raise ValueError(f"level {level} outside 0-9")
        self._set_wanted(Wanted("ventilation", None, level))

    def _set_wanted(self, wanted: Wanted) -> None:
        if wanted == self.wanted:
            return
        if self.wanted is None or wanted.mode != self.wanted.mode:
            self._reset_request()
        self._last_adjust_at = None  # a new wish is applied at once
        log.info("autoterm %s: wanted %s", self.port, wanted)
        self.wanted = wanted
        self._wake.set()

    def _reset_request(self) -> None:
        """A new wanted mode: what was learnt about starting for the previous one is void."""
        self.start_blocked = None
        self._seen_active = False
        self._start_tries = 0
        self._last_start_at = None
        self._last_adjust_at = None

    async def unlock(self, timeout_s: float = 5.0) -> bool:
        """Technician only: send 0x0D, which lifts the error-37 lock-out, once, at the next
        cycle of :meth:`run`. True when the heater acknowledged within ``timeout_s``."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._unlock_waiters.append(waiter)
        self._wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(waiter)
        except TimeoutError:
            return False
        finally:
            if waiter in self._unlock_waiters:
                self._unlock_waiters.remove(waiter)

    def _stop_on_exit(self) -> bool:
        status = self.last_status
        return status is not None and status.state not in ("off", "standby", "cooling",
                                                            "shutting_down")

    @property
    def online(self) -> bool:
        """Whether the heater answered its last polls."""
        return self.last_status is not None

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Talk to the heater until cancelled. Never returns and never raises (but
        CancelledError): a port that cannot be opened or vanishes (USB adapter unplugged) is
        reopened with a backoff of 0.5 s doubling to 5 s."""
        backoff = REOPEN_MIN_S
        while True:
            self._answered = False
            link: SerialLink | None = None
            try:
                link = SerialLink(self.port, self.baudrate,
                                  lambda data: self._frames.extend(self._reader.feed(data)))
                if self._port_trouble:
                    log.info("autoterm %s: port open again", self.port)
                    self._port_trouble = False
                await self._session(link)
            except asyncio.CancelledError:
                # the controller stops (shutdown, restart): a heater left burning would run
                # with nobody watching its CO alarm, so it is told to stop (its run-on is
                # its own) when off is wanted or it burns for us
                if link is not None and self._stop_on_exit():
                    with contextlib.suppress(OSError):
                        link.write(encode(Dev.CONTROLLER, Cmd.STOP))
                raise
            except Exception as exc:  # OSError (serial.SerialException is one) or a bug
                self._port_lost(exc)
            finally:
                if link is not None:
                    link.close()
            if self._answered:
                backoff = REOPEN_MIN_S
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, REOPEN_MAX_S)

    async def _session(self, link: SerialLink) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            status = await self._poll(link)
            if status is not None:
                await self._reconcile(link, status)
            await self._serve_unlock(link)
            await woken(self._wake, self.poll_s - (loop.time() - started))
            self._wake.clear()

    def _port_lost(self, exc: Exception) -> None:
        self.errors["io"] += 1
        if not self._port_trouble:
            self._port_trouble = True
            if isinstance(exc, OSError):
                log.warning("autoterm %s: serial port unusable: %s", self.port, exc)
            else:
                log.exception("autoterm %s: unexpected error, reopening", self.port,
                              exc_info=exc)
        self._failed_polls = max(self._failed_polls, POLL_FAILURES_OFFLINE - 1)
        self._poll_failed()

    # -- transactions ---------------------------------------------------------------------

    async def _transact(self, link: SerialLink, cmd: int, payload: bytes = b"") -> Frame | None:
        """Send one request and return the heater's answer, None after ``timeout_s``."""
        # whatever arrived since the last answer is stale or noise
        self._reader.flush()
        self._frames.clear()
        link.write(encode(Dev.CONTROLLER, cmd, payload))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            while True:
                while self._frames:
                    frame = self._frames.popleft()
                    if frame.dev == Dev.HEATER and frame.cmd == cmd:
                        return frame
                link.check()
                remaining = deadline - loop.time()
                if remaining <= 0:
                    self.errors["timeout"] += 1
                    return None
                if not await link.wait_rx(min(remaining, LINE_IDLE_S)) and self._reader.pending:
                    # a false start in noise holds back what follows; the line is quiet now
                    self._frames.extend(self._reader.flush())
        finally:
            self.errors["crc"] = self._reader.crc_errors
            self.errors["garbage"] = self._reader.garbage_bytes

    async def _poll(self, link: SerialLink) -> HeaterStatus | None:
        frame = await self._transact(link, Cmd.STATUS)
        if frame is None:
            self._poll_failed()
            return None
        try:
            status = parse_status(frame.payload)
        except ValueError:
            self.errors["invalid"] += 1
            self._poll_failed()
            return None
        self._answered = True
        previous, self.last_status = self.last_status, status
        self._failed_polls = 0
        self._offline_reported = False
        if previous is None or (previous.state_code, previous.error) != (status.state_code,
                                                                         status.error):
            log.info("autoterm %s: %s (%d.%d), error %d", self.port, status.state_text,
                     *status.state_code, status.error)
        self._notify(status)
        return status

    def _poll_failed(self) -> None:
        self._failed_polls += 1
        if self._failed_polls >= POLL_FAILURES_OFFLINE and not self._offline_reported:
            self._offline_reported = True
            self.last_status = None
            self.last_settings = None  # learnt again from the heater that answers next
            log.warning("autoterm %s: heater does not answer", self.port)
            self._notify(None)

    def _notify(self, status: HeaterStatus | None) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(status)
        except Exception:  # the listener's bug must not stop the heater's driver
            if not self._callback_failed:
                self._callback_failed = True
                log.exception("autoterm %s: on_status failed", self.port)

    async def _command(self, link: SerialLink, cmd: Cmd, payload: bytes = b"") -> Frame | None:
        """Send a command; a settings-shaped answer (0x01/0x02/0x23 echo) updates
        ``last_settings``, any other answer makes them unknown until read again."""
        log.info("autoterm %s: sending %s %s", self.port, cmd.name, payload.hex(" "))
        frame = await self._transact(link, cmd, payload)
        if frame is not None and cmd in (Cmd.START, Cmd.SETTINGS, Cmd.VENTILATION):
            try:
                self.last_settings = parse_settings(frame.payload)
            except ValueError:
                self.last_settings = None
        return frame

    async def _serve_unlock(self, link: SerialLink) -> None:
        if not self._unlock_waiters:
            return
        waiters, self._unlock_waiters = self._unlock_waiters, []
        answered = await self._command(link, Cmd.UNLOCK) is not None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(answered)

    # -- reconciliation -------------------------------------------------------------------

    def _due(self, last: float | None, now: float) -> bool:
        return last is None or now - last >= COMMAND_REPEAT_S

    async def _reconcile(self, link: SerialLink, status: HeaterStatus) -> None:
        """One step towards :attr:`wanted` from a fresh ``status``."""
        wanted = self.wanted
        if wanted is None:
            return
        now = self._monotonic()
        idle = status.state in IDLE_STATES
        if idle:
            self._stopping = False
            self._last_stop_at = None
        active = ACTIVE_MODE.get(status.state)
        if active is not None and active == wanted.mode:
            self._seen_active = True
            self._start_tries = 0
        mismatch = active is not None and active != wanted.mode
        if not idle and (wanted.mode == "off" or mismatch or self._stopping):
            if self._due(self._last_stop_at, now):
                self._last_stop_at = now
                self._stopping = True
                await self._command(link, Cmd.STOP)
            return
        if idle and wanted.mode != "off":
            # only ever from idle: never in the run-on (cooling/shutting down), which waits
            await self._start(link, wanted, status, now)
        elif status.state in ("running", "ventilation"):  # as wanted: no mismatch here
            await self._adjust(link, wanted, now)

    async def _start(self, link: SerialLink, wanted: Wanted, status: HeaterStatus,
                     now: float) -> None:
        if self.start_blocked is not None:
            return
        if self._seen_active:
            self._block("stopped_itself", status)
            return
        if not self._due(self._last_start_at, now):
            return
        if self._start_tries >= START_TRIES:
            self._block("no_response", status)
            return
        self._start_tries += 1
        self._last_start_at = now
        if wanted.mode == "ventilation":
            await self._command(link, Cmd.VENTILATION, ventilation_payload(wanted.level or 0))
            return
        if self.last_settings is None:  # the vent byte to send back is the heater's own
            await self._command(link, Cmd.SETTINGS)
        await self._command(link, Cmd.START, self._heat_settings(wanted).payload())

    def _block(self, reason: str, status: HeaterStatus) -> None:
        self.start_blocked = reason
        log.warning("autoterm %s: not starting again (%s), heater %s, error %d; waiting for "
                    "the wanted mode to change", self.port, reason, status.state_text,
                    status.error)

    def _heat_settings(self, wanted: Wanted) -> HeaterSettings:
        vent = self.last_settings.vent if self.last_settings is not None else KEEP
        if wanted.level is not None:
            setpoint = wanted.setpoint_c if wanted.setpoint_c is not None else KEEP
            return HeaterSettings(0xFFFF, Regulation.POWER_LEVEL, setpoint, vent, wanted.level)
        assert wanted.setpoint_c is not None  # want_heat() requires one of the two
        return HeaterSettings(0xFFFF, Regulation.HEATER_SENSOR, wanted.setpoint_c, vent, KEEP)

    def _settings_match(self, wanted: Wanted) -> bool:
        have = self.last_settings
        if have is None:
            return False
        if wanted.mode == "ventilation":
            return have.level == wanted.level
        if wanted.level is not None:
            return have.mode == Regulation.POWER_LEVEL and have.level == wanted.level
        return have.mode == Regulation.HEATER_SENSOR and have.setpoint_c == wanted.setpoint_c

    async def _adjust(self, link: SerialLink, wanted: Wanted, now: float) -> None:
        """Level or setpoint of a heater running as wanted: read the settings when unknown,
        change them when they differ (at most every COMMAND_REPEAT_S if the heater does not
        take them)."""
        if self._settings_match(wanted) or not self._due(self._last_adjust_at, now):
            return
        self._last_adjust_at = now
        if self.last_settings is None:
            await self._command(link, Cmd.SETTINGS)
            if self.last_settings is None or self._settings_match(wanted):
                return
        if wanted.mode == "ventilation":
            await self._command(link, Cmd.VENTILATION, ventilation_payload(wanted.level or 0))
        else:
            await self._command(link, Cmd.SETTINGS, self._heat_settings(wanted).payload())
