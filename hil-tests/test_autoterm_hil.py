"""The Autoterm driver against the simulated heater over a pty line in wire time (9600 baud).

The whole world runs SCALE times faster: the simulated heater's clock and the clock injected
into the driver, so a 60 s start takes 1 s, a 150 s run-on 2.5 s, and the driver's stop,
repeated every 10 s of its clock, comes every 1/6 s. Polls are 0.05 s apart in real time
(3 heater seconds), so a stop sent at every poll would show.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from testsupport import wait_until

from drivers.autoterm import AutotermHeater, Cmd, HeaterStatus
from vansim.autoterm_sim import (
    COOLING,
    GLOW,
    RUNNING,
    STANDBY,
    VENTILATION,
    SimulatedHeater,
)
from vansim.rtu_line import RtuLine

SCALE = 60.0
POLL_S = 0.05
TIMEOUT_S = 0.3
STOP_REPEAT_S = 10.0  # as official panels repeat stop: what the driver must do


def scaled_clock(scale: float) -> Callable[[], float]:
    """A monotonic clock running ``scale`` times faster than real time."""
    origin = time.monotonic()
    return lambda: origin + (time.monotonic() - origin) * scale


@dataclass
class Rig:
    line: RtuLine
    sim: SimulatedHeater
    heater: AutotermHeater
    seen: list[HeaterStatus | None] = field(default_factory=list)

    def state(self) -> str | None:
        status = self.heater.last_status
        return status.state if status is not None else None

    def statuses(self) -> list[HeaterStatus]:
        return [s for s in self.seen if s is not None]

    def stops_since(self, index: int) -> list[float]:
        """Heater times at which stop commands arrived, from the ``index``-th command on."""
        return [at for at, cmd, _ in list(self.sim.received)[index:] if cmd == Cmd.STOP]

    async def running(self, level: int = 4) -> None:
        self.heater.want_heat(level=level)
        await wait_until(lambda: self.state() == "running", what="heater running")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """Line, simulated heater and driver, each stopped by its own handle whatever happens."""
    async with AsyncExitStack() as stack:
        line = RtuLine(tmp_path / "heater", baudrate=9600)
        stack.push_async_callback(line.stop)
        await line.start()
        sim = SimulatedHeater(line.sim_side, time_scale=SCALE)
        stack.push_async_callback(sim.stop)
        await sim.start()
        seen: list[HeaterStatus | None] = []
        heater = AutotermHeater(str(line.supervisor_side), poll_s=POLL_S, timeout_s=TIMEOUT_S,
                                on_status=seen.append, monotonic=scaled_clock(SCALE))
        task = asyncio.create_task(heater.run(), name="autoterm driver")
        stack.push_async_callback(_cancel, task)
        rig = Rig(line, sim, heater, seen)
        await wait_until(lambda: rig.state() == "standby", what="first status")
        yield rig
        assert not task.done(), "run() ended"


async def test_heat_wanted_starts_runs_and_takes_a_new_level(rig: Rig) -> None:
    await rig.running(level=4)
    states = [s.state for s in rig.statuses()]
    assert states.index("starting") < states.index("running")
    assert rig.sim.commands[Cmd.START] == 1
    assert 1.0 <= rig.sim.current_a <= 2.0
    low_heat = rig.sim.heat_w
    assert low_heat > 0
    rig.heater.want_heat(level=8)  # changed live with 0x02, no restart
    await wait_until(lambda: rig.sim.settings.level == 8, what="level 8 on the heater")
    assert rig.sim.heat_w > low_heat
    await wait_until(lambda: rig.heater.last_settings is not None
                     and rig.heater.last_settings.level == 8, what="settings echoed")
    rig.heater.want_heat(setpoint_c=22)  # by the heater's own sensor (mode 1)
    await wait_until(lambda: (rig.sim.settings.mode, rig.sim.settings.setpoint_c) == (1, 22),
                     what="mode 1 to 22 °C on the heater")
    assert rig.sim.commands[Cmd.START] == 1 and rig.state() == "running"


async def test_off_wanted_runs_on_with_stop_repeated_until_standby(rig: Rig) -> None:
    await rig.running()
    first = len(rig.sim.received)
    rig.heater.want_off()
    cooling: HeaterStatus = await wait_until(
        lambda: rig.heater.last_status if rig.state() == "cooling" else None,
        what="cooling")
    assert cooling.in_run_on
    await wait_until(lambda: rig.state() == "standby", what="standby after the run-on")
    stops = rig.stops_since(first)
    # every 10 s of heater time through the 150 s run-on, as official panels do
    assert len(stops) >= 5, stops
    gaps = [b - a for a, b in itertools.pairwise(stops)]
    # the sim's clock steps 1.2 heater seconds a tick (more on a loaded machine)
    assert min(gaps) >= STOP_REPEAT_S - 4, gaps
    # idle now: no more stops
    count, polls = rig.sim.commands[Cmd.STOP], rig.sim.commands[Cmd.STATUS]
    await wait_until(lambda: rig.sim.commands[Cmd.STATUS] >= polls + 10, what="more polls")
    assert rig.sim.commands[Cmd.STOP] == count
    assert rig.sim.current_a < 0.1 and rig.sim.heat_w == 0


async def test_no_start_during_run_on(rig: Rig) -> None:
    # someone at the heater's own panel starts it: nothing is wanted yet, so it is left alone
    rig.sim.answer(Cmd.START, bytes.fromhex("FF FF 04 FF 00 03"))
    await wait_until(lambda: rig.state() == "running", what="running by the panel")
    rig.sim.answer(Cmd.STOP)  # ... and stops it: the run-on begins
    await wait_until(lambda: rig.state() == "cooling", what="cooling")
    rig.heater.want_heat(level=2)  # wanted on during a run-on we did not cause
    await wait_until(lambda: rig.sim.commands[Cmd.START] == 1, what="start after the run-on")
    codes_at_start = [code for _, cmd, code in rig.sim.received if cmd == Cmd.START]
    assert codes_at_start == [STANDBY]
    assert rig.sim.commands[Cmd.STOP] == 0
    await wait_until(lambda: rig.state() == "starting", what="starting")


async def test_failed_start_reports_error_13_and_is_not_retried(rig: Rig) -> None:
    rig.sim.fail_start()
    rig.heater.want_heat(level=3)
    failed: HeaterStatus = await wait_until(
        lambda: rig.heater.last_status if rig.state() == "off" else None, what="off")
    assert failed.error == 13 and failed.error_info is not None
    assert failed.error_info[0] == "no_start"
    assert any(s.state == "starting" for s in rig.statuses())
    await wait_until(lambda: rig.heater.start_blocked == "stopped_itself", what="blocked")
    polls = rig.sim.commands[Cmd.STATUS]
    await wait_until(lambda: rig.sim.commands[Cmd.STATUS] >= polls + 10, what="more polls")
    assert rig.sim.commands[Cmd.START] == 1


async def test_flame_out_reports_error_29_and_cools(rig: Rig) -> None:
    await rig.running()
    rig.sim.lose_flame()
    status: HeaterStatus = await wait_until(
        lambda: rig.heater.last_status if rig.heater.last_status
        and rig.heater.last_status.error == 29 else None, what="error 29")
    assert status.state == "cooling" and status.in_run_on
    await wait_until(lambda: rig.heater.start_blocked == "stopped_itself",
                     what="not restarted after the blow-out")
    assert rig.sim.commands[Cmd.START] == 1


async def test_under_voltage_reports_error_15(rig: Rig) -> None:
    await rig.running()
    rig.sim.supply_v = 10.2
    status: HeaterStatus = await wait_until(
        lambda: rig.heater.last_status if rig.heater.last_status
        and rig.heater.last_status.error == 15 else None, what="error 15")
    assert status.voltage_v == 10.2 and status.state == "cooling"


async def test_start_refused_twice_is_given_up(rig: Rig) -> None:
    rig.sim.supply_v = 10.0  # the heater refuses to start: error 15, stays in standby
    rig.heater.want_heat(level=2)
    await wait_until(lambda: rig.heater.start_blocked == "no_response", what="given up")
    assert rig.sim.commands[Cmd.START] == 2
    assert rig.heater.last_status is not None and rig.heater.last_status.error == 15


async def test_silent_heater_reported_once_then_back(rig: Rig) -> None:
    rig.sim.set_silent(True)
    await wait_until(lambda: None in rig.seen, what="on_status(None)")
    assert not rig.heater.online
    timeouts = rig.heater.errors["timeout"]
    await wait_until(lambda: rig.heater.errors["timeout"] >= timeouts + 3,
                     what="more failed polls")
    assert rig.seen.count(None) == 1
    rig.sim.set_silent(False)
    await wait_until(lambda: rig.seen[-1] is not None, what="status again")
    assert rig.heater.online and rig.seen.count(None) == 1


async def test_noise_on_the_line_is_counted_and_polling_goes_on(rig: Rig) -> None:
    rng = random.Random(7)
    rig.line.corrupt(2)  # the next two answers damaged: CRC errors

    def noisy() -> bool:
        # a false header claiming 48 bytes, then random noise, at each look
        rig.line.inject(b"\xaa\x04\x30\x00\x0f" + rng.randbytes(rng.randint(1, 30)))
        return rig.heater.errors["crc"] >= 2 and rig.heater.errors["garbage"] > 200

    await wait_until(noisy, what="crc and garbage counted")
    seen = len(rig.statuses())
    await wait_until(lambda: len(rig.statuses()) >= seen + 10, what="statuses go on")
    assert None not in rig.seen  # noise never made the heater look gone
    rig.heater.want_heat(level=2)
    await wait_until(lambda: rig.state() == "starting", what="still commands the heater")


async def test_false_header_before_an_answer_does_not_cost_the_poll(rig: Rig) -> None:
    # a burst claiming a 48-byte frame right before the answer: the answer completes that
    # false frame's bytes only when the line goes quiet, and must still be taken
    timeouts, polls = rig.heater.errors["timeout"], rig.sim.commands[Cmd.STATUS]
    rig.sim.prefix_answers(b"\xaa\x04\x30\x00\x0f\x01", 5)
    await wait_until(lambda: rig.sim.commands[Cmd.STATUS] >= polls + 8, what="polls")
    assert rig.heater.errors["timeout"] == timeouts
    assert rig.heater.errors["garbage"] >= 5 * 6


async def test_port_vanishes_and_is_reopened(rig: Rig) -> None:
    await rig.sim.stop()
    await rig.line.stop()  # the USB adapter pulled: the serial device disappears
    await wait_until(lambda: None in rig.seen, what="heater gone")
    errors = rig.heater.errors["io"]
    await wait_until(lambda: rig.heater.errors["io"] >= errors + 1, what="reopen attempts")
    await rig.line.start()
    await rig.sim.start()
    await wait_until(lambda: rig.seen[-1] is not None, what="status again")
    assert rig.seen.count(None) == 1


async def test_ventilation_level_change_then_heat(rig: Rig) -> None:
    rig.heater.want_ventilation(3)
    await wait_until(lambda: rig.state() == "ventilation", what="ventilation")
    assert rig.sim.settings.level == 3
    rig.heater.want_ventilation(6)
    await wait_until(lambda: rig.sim.settings.level == 6, what="fan level 6")
    rig.heater.want_heat(level=2)  # the other kind of running: stop, then start from standby
    await wait_until(lambda: rig.state() == "starting", what="heating instead")
    assert [code for _, cmd, code in rig.sim.received if cmd in (Cmd.STOP, Cmd.START)] == [
        VENTILATION, STANDBY]


async def test_unlock_only_when_asked(rig: Rig) -> None:
    rig.sim.error = 37
    await wait_until(lambda: rig.heater.last_status and rig.heater.last_status.error == 37,
                     what="error 37 seen")
    assert rig.sim.commands[Cmd.UNLOCK] == 0
    assert await rig.heater.unlock()
    assert rig.sim.commands[Cmd.UNLOCK] == 1
    await wait_until(lambda: rig.heater.last_status and rig.heater.last_status.error == 0,
                     what="unlocked")


def test_simulated_heater_model_in_heater_time() -> None:
    """The simulator's own timeline, without a line: start, glow current, heat, run-on."""
    sim = SimulatedHeater("/unused")
    sim.answer(Cmd.START, bytes.fromhex("FF FF 04 FF FF 09"))
    assert sim.state_code == GLOW and 8.0 <= sim.current_a <= 10.0 and sim.heat_w == 0
    for _ in range(61):
        sim.advance(1.0)
    assert sim.state_code == RUNNING and sim.heat_w == 2000.0
    sim.answer(Cmd.STOP)
    assert sim.state_code == COOLING and 0.5 < sim.current_a < 2.0 and sim.heat_w == 0
    for _ in range(149):
        sim.advance(1.0)
    assert sim.state_code == COOLING  # 150 s of run-on
    sim.advance(2.0)
    assert sim.state_code == STANDBY
    sim.supply_v = 17.0
    sim.answer(Cmd.START, bytes.fromhex("FF FF 04 FF FF 02"))
    assert (sim.state_code, sim.error) == (STANDBY, 12)
