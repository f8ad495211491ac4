"""The output port and the actuator: safe states that honour locks, a final shutdown, one
writer per output with read-back, offs before staggered ons, and a backoff for refused writes.
Writes go to a recording fake device; time is virtual."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from virtual_core import Lines, VirtualCore

from drivers.errors import WriteError
from drivers.register_codec import Value
from supervisor.core.actuator import Actuator
from supervisor.core.outputs import OutputDef
from supervisor.core.points import PointDef
from supervisor.core.subsystem import Clock
from supervisor.registry import load_config

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"


class Relays:
    """The relay board: remembers its relays, answers writes with the read-back."""

    def __init__(self) -> None:
        self.state: dict[str, Value] = {}
        self.writes: list[tuple[str, Value]] = []
        self.refuse: set[str] = set()  # registers that keep their value (a stuck relay)
        self.fail = False  # the bus does not answer

    async def write(self, device: str, register: str, value: Value) -> Value | None:
        self.writes.append((register, value))
        if self.fail:
            raise WriteError("bus_timeout", "no answer")
        if register not in self.refuse:
            self.state[register] = value
        return self.state.get(register)


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.now = 1000.0
        self.relays = Relays()
        self.core = VirtualCore(load_config(DEMO), tmp_path / "db.sqlite", self.relays.write,
                                Clock(lambda: self.now, lambda: self.now), Lines())
        self.port = self.core.port
        self.points = self.core.van.points
        self.points.define(PointDef("climate/heater/after_run", "bool"))
        for relay, lock in (("relay_1", None), ("relay_2", None),
                            ("relay_7", "climate/heater/after_run")):
            self.port.declare(OutputDef(f"test/{relay}", False, device="relays",
                                        register=relay, lock=lock))

    def read_back(self) -> None:
        """A poll of the board: what the port knows as the outputs' actual values."""
        self.core.devices.values("relays", dict(self.relays.state), self.now)

    def actuator(self, stagger_s: float = 0.0) -> Actuator:
        return Actuator(self.port, lambda: self.now, self.core.context("test").log, stagger_s)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


async def test_safe_states_leave_a_locked_output_alone_until_its_lock_ends(rig: Rig) -> None:
    rig.points.update("climate/heater/after_run", True, rig.now)  # the heater cools down
    await rig.port.apply_safe_states("start")
    assert ("relay_7", False) not in rig.relays.writes
    assert {("relay_1", False), ("relay_2", False)} <= set(rig.relays.writes)
    await rig.port.settle_deferred()
    assert ("relay_7", False) not in rig.relays.writes  # still in its after-run
    rig.points.update("climate/heater/after_run", False, rig.now)
    await rig.port.settle_deferred()
    assert ("relay_7", False) in rig.relays.writes


async def test_a_lock_that_cannot_be_read_counts_as_set(rig: Rig) -> None:
    await rig.port.apply_safe_states("start")  # the lock point has no value yet
    assert ("relay_7", False) not in rig.relays.writes
    rig.points.update("climate/heater/after_run", True, rig.now)
    rig.points.mark("climate/heater/after_run", "stale")  # its source went offline
    await rig.port.apply_safe_states("shutdown")
    assert ("relay_7", False) not in rig.relays.writes


async def test_a_subsystem_that_took_over_cancels_a_deferred_safe_state(rig: Rig) -> None:
    await rig.port.apply_safe_states("start")
    rig.port.release({"test/relay_7"})
    rig.points.update("climate/heater/after_run", False, rig.now)
    await rig.port.settle_deferred()
    assert ("relay_7", False) not in rig.relays.writes


async def test_shutdown_is_final_only_safe_values_are_written(rig: Rig) -> None:
    rig.port.shutdown()
    with pytest.raises(WriteError) as err:
        await rig.port.write("test/relay_1", True)
    assert err.value.code == "shutting_down"
    assert rig.relays.writes == []
    assert await rig.port.write("test/relay_1", False) is False


async def test_offs_go_first_and_ons_are_staggered(rig: Rig) -> None:
    rig.relays.state.update(relay_1=True, relay_2=False, relay_7=False)
    rig.read_back()
    act = rig.actuator(stagger_s=2.0)
    act.want("test/relay_2", True, inrush=True)
    act.want("test/relay_7", True, inrush=True)
    act.want("test/relay_1", False, inrush=True)
    await act.step()
    # the off at once, then one on; the second on waits for the stagger
    assert rig.relays.writes == [("relay_1", False), ("relay_2", True)]
    rig.read_back()
    rig.now += 1.0
    await act.step()
    assert len(rig.relays.writes) == 2
    rig.now += 1.0
    await act.step()
    assert rig.relays.writes[-1] == ("relay_7", True)


async def test_a_refused_write_backs_off_instead_of_rewriting_every_loop(rig: Rig) -> None:
    rig.relays.state.update(relay_1=False)
    rig.relays.refuse.add("relay_1")  # the relay reads back off whatever is written
    rig.read_back()
    act = rig.actuator()
    act.want("test/relay_1", True)
    start, times = rig.now, []
    for _ in range(80):  # 40 s of a loop turning every half second
        before = len(rig.relays.writes)
        await act.step()
        if len(rig.relays.writes) > before:
            times.append(rig.now - start)
        rig.now += 0.5
    assert times == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0]  # 1, 2, 4, 8, 16 s apart: not 80 writes


async def test_a_command_is_answered_from_the_writers_read_back(rig: Rig) -> None:
    rig.relays.state.update(relay_1=False)
    rig.read_back()
    act = rig.actuator()
    act.want("test/relay_1", True)

    async def writer() -> None:
        await act.wake.wait()
        await act.step()

    task = asyncio.create_task(writer())
    assert await act.confirm("test/relay_1", True, timeout_s=5) is True
    await task
    assert rig.relays.writes == [("relay_1", True)]  # the writer wrote it, once


async def test_a_command_fails_with_the_bus_error_and_the_writer_keeps_trying(rig: Rig) -> None:
    rig.relays.state.update(relay_1=False)
    rig.read_back()
    rig.relays.fail = True
    act = rig.actuator()
    act.want("test/relay_1", True)
    act.wake.clear()
    waiting = asyncio.create_task(act.confirm("test/relay_1", True, timeout_s=5))
    await act.wake.wait()  # the command has asked
    await act.step()
    with pytest.raises(WriteError) as err:
        await waiting
    assert err.value.code == "bus_timeout"
    rig.relays.fail = False
    rig.now += 1.0
    await act.step()
    assert rig.relays.state["relay_1"] is True


async def test_a_rule_that_changes_the_target_answers_the_waiting_command(rig: Rig) -> None:
    rig.relays.state.update(relay_1=False)
    rig.read_back()
    act = rig.actuator()
    act.want("test/relay_1", True)
    act.wake.clear()
    waiting = asyncio.create_task(act.confirm("test/relay_1", True, timeout_s=5))
    await act.wake.wait()  # the command has asked
    act.want("test/relay_1", False)  # e.g. shed before the writer came round
    with pytest.raises(WriteError) as err:
        await waiting
    assert err.value.code == "overridden"


async def test_a_write_outside_the_devices_range_is_refused_before_the_bus(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.port.declare(OutputDef("test/mode", None, device="multiplus", register="mode"))
    rig.port.declare(OutputDef("test/limit", None, device="multiplus",
                               register="ac_in_current_limit"))
    for output, value in (("test/mode", 7), ("test/limit", 150.0), ("test/limit", True)):
        with pytest.raises(WriteError) as err:
            await rig.port.write(output, value)
        assert err.value.code == "out_of_range"
    assert rig.relays.writes == []
    assert await rig.port.write("test/mode", 4) == 4  # "off" in the profile's inverter_mode
