"""A simulated Autoterm Air 2D/4D heater speaking its serial protocol on a pty.

The heater's side of ``drivers.autoterm``'s protocol (the codec is imported from there, so
both ends agree by construction; the captured frames in the unit tests pin it to the real
heater). It answers every command, runs the heater's state machine in its own time —
``time_scale`` times faster than real time, so a 3-minute run-on passes in seconds — and
models what the van sees of it: heat into the cabin (``heat_w``) and the 12 V draw
(``current_a``). Faults are injected by the test: a failed start, a flame blow-out, overheat,
supply voltage out of range, a silent heater.

Serve it on the ``sim_side`` of an :class:`vansim.rtu_line.RtuLine`; the driver opens the
other side.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drivers.autoterm import (
    KEEP,
    Cmd,
    Dev,
    FrameReader,
    HeaterSettings,
    HeaterStatus,
    Regulation,
    encode,
    encode_status,
    state_of,
)
from vansim.sim_port import SimPort

Code = tuple[int, int]
OFF: Code = (0, 0)
STANDBY: Code = (0, 1)
PURGE: Code = (1, 1)
GLOW: Code = (2, 1)
IGNITION_1: Code = (2, 2)
IGNITION_2: Code = (2, 3)
RAMP_UP: Code = (2, 4)
RUNNING: Code = (3, 0)
VENTILATION: Code = (3, 35)
COOLING: Code = (3, 4)

IDLE: frozenset[Code] = frozenset({OFF, STANDBY})
COMBUSTION: frozenset[Code] = frozenset({GLOW, IGNITION_1, IGNITION_2, RAMP_UP, RUNNING})

# How long a phase lasts (heater seconds) and the phase after it; a start takes 60 s, as on
# a real Air 2D. The branches (a failed ignition, the end of a purge) are in _phase_done.
PHASES: dict[Code, tuple[float, Code | None]] = {
    GLOW: (20.0, IGNITION_1),
    IGNITION_1: (10.0, IGNITION_2),
    IGNITION_2: (10.0, RAMP_UP),
    RAMP_UP: (20.0, RUNNING),
    PURGE: (20.0, None),
    COOLING: (150.0, STANDBY),  # 120-180 s on the real heater
}

UNDER_VOLTAGE_V = 10.5
OVER_VOLTAGE_V = 16.0
ERROR_OVERHEAT = 1
ERROR_OVER_VOLTAGE = 12
ERROR_NO_START = 13
ERROR_UNDER_VOLTAGE = 15
ERROR_FLAME_OUT = 29
ERROR_LOCKED = 37
START_ATTEMPTS = 2

# model -> (heat output at level 0, at level 9) in W
MODELS: dict[str, tuple[float, float]] = {"2D": (800.0, 2000.0), "4D": (1000.0, 4000.0)}

# 12 V draw per phase: (A at level 0, extra A per level); the glow plug takes 8-10 A
CURRENT_A: dict[Code, tuple[float, float]] = {
    OFF: (0.02, 0.0),
    STANDBY: (0.05, 0.0),
    GLOW: (9.0, 0.0),
    IGNITION_1: (9.5, 0.0),
    IGNITION_2: (9.5, 0.0),
    RAMP_UP: (2.5, 0.0),
    RUNNING: (1.0, 0.1),
    VENTILATION: (0.3, 0.1),
    PURGE: (1.2, 0.0),  # fan only
    COOLING: (1.2, 0.0),  # fan only
}

# heat-exchanger temperature the phase heads for (°C above the intake air, per level)
FLAME_RISE_C: dict[Code, tuple[float, float]] = {
    IGNITION_1: (40.0, 0.0), IGNITION_2: (60.0, 0.0), RAMP_UP: (100.0, 0.0),
    RUNNING: (120.0, 10.0),
}
FLAME_TAU_S = 20.0
TICK_S = 0.02  # real seconds between state-machine steps


@dataclass
class _Settings:
    """The heater's settings memory (what 0x02 reads)."""

    run_time: int = 0x0078  # 120 min, as heaters were seen to echo
    mode: int = Regulation.POWER_LEVEL
    setpoint_c: int = 20
    vent: int = 0x00
    level: int = 2

    def update(self, payload: bytes) -> None:
        """Apply a 6-byte settings payload; 0xFF keeps a byte's current value."""
        if len(payload) != 6:
            return
        if payload[:2] != b"\xff\xff":
            self.run_time = int.from_bytes(payload[:2], "big")
        for name, byte in zip(("mode", "setpoint_c", "vent", "level"), payload[2:],
                              strict=True):
            if byte != KEEP:
                setattr(self, name, byte)

    def payload(self) -> bytes:
        return HeaterSettings(self.run_time, self.mode, self.setpoint_c, self.vent,
                              self.level).payload()


class SimulatedHeater:
    """The heater side of the protocol on the serial port ``port`` (a pty path)."""

    def __init__(self, port: Path | str, *, time_scale: float = 1.0, model: str = "2D",
                 baudrate: int = 9600, clock: Callable[[], float] = time.monotonic) -> None:
        self.port = str(port)
        self.time_scale = time_scale
        self.baudrate = baudrate
        self.model = model
        self.supply_v = 12.6
        self.intake_c = 20
        self.external_c: int | None = None
        self.state_code: Code = STANDBY
        self.error = 0
        self.settings = _Settings()
        self.commands: Counter[int] = Counter()  # every command received, by cmd
        # (heater time, cmd, state code when it arrived), the latest ones
        self.received: deque[tuple[float, int, Code]] = deque(maxlen=10_000)
        self.flame_c = float(self.intake_c)
        self.now = 0.0  # heater seconds since start()
        self._clock = clock
        self._phase_left = 0.0
        self._attempt = 0
        self._fail_start = False
        self._silent = False
        self._prefix = b""
        self._prefixed = 0
        self._reader = FrameReader()
        self._line = SimPort(self.port, baudrate, self._heard)
        self._ticker: asyncio.Task[None] | None = None

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the port and start the heater's clock; OSError if the port cannot be opened."""
        if self._ticker is not None:
            return
        self._line.open()
        self._ticker = asyncio.create_task(self._tick(), name=f"autoterm sim {self.port}")

    async def stop(self) -> None:
        """Stop the clock and close the port (the heater keeps its state). Idempotent."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self._line.close()

    # -- what the van sees ----------------------------------------------------------------

    @property
    def state(self) -> str:
        """The state name the driver's table gives the current code."""
        return state_of(self.state_code)

    @property
    def level(self) -> int:
        """The power level burning now: the set one (mode 4), or the heater's own choice
        from the distance to its setpoint (temperature modes)."""
        if self.settings.mode == Regulation.POWER_LEVEL:
            return min(max(self.settings.level, 0), 9)
        return min(max(2 * (self.settings.setpoint_c - self.intake_c) + 1, 0), 9)

    @property
    def heat_w(self) -> float:
        """Heat into the cabin: by level while running, half the minimum while ramping up."""
        low, high = MODELS[self.model]
        if self.state_code == RUNNING:
            return low + (high - low) * self.level / 9
        return low / 2 if self.state_code == RAMP_UP else 0.0

    @property
    def current_a(self) -> float:
        """The 12 V current the heater draws now."""
        base, per_level = CURRENT_A.get(self.state_code, (0.05, 0.0))
        level = self.level if self.state_code == RUNNING else self.settings.level
        return base + per_level * level

    def status(self) -> HeaterStatus:
        """What a status request is answered with now."""
        return HeaterStatus(
            state=state_of(self.state_code), state_code=self.state_code, error=self.error,
            intake_c=self.intake_c, external_c=self.external_c,
            voltage_v=round(self.supply_v, 1), flame_c=round(self.flame_c, 2))

    # -- faults ---------------------------------------------------------------------------

    def fail_start(self) -> None:
        """The next start fails: no flame in either of its two attempts, then error 13, a
        purge, and off."""
        self._fail_start = True

    def lose_flame(self) -> None:
        """The flame blows out: error 29 and cooling, if the heater is burning."""
        if self.state_code in COMBUSTION:
            self._fault(ERROR_FLAME_OUT)

    def overheat(self) -> None:
        """Overheat: error 1, and the heater stops (cooling if it was burning)."""
        self._fault(ERROR_OVERHEAT)

    def set_silent(self, silent: bool) -> None:
        """Stop answering (and hearing) anything on the line, or start again."""
        self._silent = silent

    def prefix_answers(self, noise: bytes, count: int) -> None:
        """Noise right before each of the next ``count`` answers, in the same burst."""
        self._prefix, self._prefixed = noise, count

    def _fault(self, code: int) -> None:
        self.error = code
        if self.state_code in COMBUSTION:
            self._enter(COOLING)
        elif self.state_code == VENTILATION:
            self._enter(STANDBY)

    # -- the state machine ----------------------------------------------------------------

    def _enter(self, code: Code) -> None:
        self.state_code = code
        self._phase_left = PHASES.get(code, (0.0, None))[0]

    async def _tick(self) -> None:
        last = self._clock()
        while True:
            await asyncio.sleep(TICK_S)  # the heater's own clock: it runs whatever we hear
            now = self._clock()
            self.advance((now - last) * self.time_scale)
            last = now

    def advance(self, dt: float) -> None:
        """Let ``dt`` heater seconds pass."""
        self.now += dt
        if self.state_code in COMBUSTION or self.state_code == VENTILATION:
            if self.supply_v < UNDER_VOLTAGE_V:
                self._fault(ERROR_UNDER_VOLTAGE)
            elif self.supply_v > OVER_VOLTAGE_V:
                self._fault(ERROR_OVER_VOLTAGE)
        rise, per_level = FLAME_RISE_C.get(self.state_code, (0.0, 0.0))
        target = self.intake_c + rise + per_level * self.level
        self.flame_c += (target - self.flame_c) * min(1.0, dt / FLAME_TAU_S)
        if self.state_code in PHASES:
            self._phase_left -= dt
            if self._phase_left <= 0:
                self._phase_done()

    def _phase_done(self) -> None:
        code = self.state_code
        if code == IGNITION_2 and self._fail_start:  # no flame this attempt
            if self._attempt >= START_ATTEMPTS:
                self._fail_start = False
                self.error = ERROR_NO_START
            self._enter(PURGE)
        elif code == PURGE:
            if self.error:
                self._enter(OFF)
            else:
                self._attempt += 1
                self._enter(GLOW)
        else:
            following = PHASES[code][1]
            if following is not None:
                self._enter(following)

    # -- the protocol ---------------------------------------------------------------------

    def _heard(self, data: bytes) -> None:
        for frame in self._reader.feed(data):
            if self._silent or frame.dev != Dev.CONTROLLER:
                continue
            self.commands[frame.cmd] += 1
            self.received.append((self.now, frame.cmd, self.state_code))
            answer = encode(Dev.HEATER, frame.cmd, self.answer(frame.cmd, frame.payload))
            if self._prefixed > 0:
                self._prefixed -= 1
                answer = self._prefix + answer
            self._send(answer)

    def _send(self, data: bytes) -> None:
        self._line.send(data)

    def answer(self, cmd: int, payload: bytes = b"") -> bytes:
        """Apply a command as if it arrived on the line; the payload of the answer."""
        if cmd == Cmd.STATUS:
            return encode_status(self.status())
        if cmd == Cmd.START:
            self._start(payload)
            return self.settings.payload()
        if cmd == Cmd.SETTINGS:
            self.settings.update(payload)
            return self.settings.payload()
        if cmd == Cmd.STOP:
            if self.state_code in COMBUSTION:
                self._enter(COOLING)
            elif self.state_code == VENTILATION:
                self._enter(STANDBY)
            return b""
        if cmd == Cmd.VENTILATION:
            self._ventilate(payload)
            return self.settings.payload()
        if cmd == Cmd.UNLOCK:
            if self.error == ERROR_LOCKED:
                self.error = 0
            return b""
        if cmd == Cmd.VERSION:
            return bytes((0x03, 0x01, 0x0E, 0x02, 0x03))  # as captured
        if cmd == Cmd.SERIAL_NUMBER:
            return bytes((0x00, 0x17, 0x00, 0x12, 0x34))
        return b""  # anything else: acknowledged, nothing done

    def _start(self, payload: bytes) -> None:
        if self.state_code not in IDLE:
            return  # already on, or in its run-on: a start changes nothing
        self.settings.update(payload)
        if self.error == ERROR_LOCKED:
            return
        self.error = 0
        if self.supply_v < UNDER_VOLTAGE_V:
            self.error = ERROR_UNDER_VOLTAGE
        elif self.supply_v > OVER_VOLTAGE_V:
            self.error = ERROR_OVER_VOLTAGE
        else:
            self._attempt = 1
            self._enter(GLOW)

    def _ventilate(self, payload: bytes) -> None:
        # PU-27: FF FF [level] 0F; Comfort: [t_hi][t_lo][level]
        if len(payload) not in (3, 4) or self.state_code not in IDLE | {VENTILATION}:
            return
        self.settings.level = min(payload[2], 9)
        if self.state_code != VENTILATION and self.error != ERROR_LOCKED:
            self.error = 0
            self._enter(VENTILATION)
