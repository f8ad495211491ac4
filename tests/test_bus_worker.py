"""The bus worker's order of work, against a fake link that records every request.

Real profiles (Waveshare relay board, XY-MD02 sensor), a recording sink and a fake monotonic
clock: a block becomes due only when the test moves the clock, so each test says exactly
which polls are pending. The worker runs as a task; the tests wait for what it does (with a
deadline) and use its public ``progress`` counter to know it has looked at its work again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import pytest
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse
from testsupport import wait_until

from drivers.bus_worker import IDENTIFY_AGAIN_S, BusWorker, DeviceSpec
from drivers.errors import WriteError
from drivers.modbus_link import LinkSettings, ModbusError, ModbusLink
from drivers.profile import Table, load_profile
from drivers.register_codec import Value

CLIMATE_UNIT, RELAY_UNIT = 1, 2
FAST_S, SLOW_S = 0.1, 0.4  # fake seconds
WAIT_S = 5.0


class Call(NamedTuple):
    op: str  # "read" or "write"
    table: Table
    address: int
    size: int  # registers or bits
    unit: int
    values: tuple[int, ...] = ()


# the two poll blocks: the sensor's two input registers, the board's eight coils
CLIMATE_POLL = Call("read", "input", 1, 2, CLIMATE_UNIT)
RELAY_POLL = Call("read", "coil", 0, 8, RELAY_UNIT)
# the board says what it is (software version 2.00: protocol V2) at first contact
RELAY_IDENTITY = Call("read", "holding", 0x8000, 1, RELAY_UNIT)


@dataclass
class FakeLink:
    """Stands in for ModbusLink: remembers what was written and records every request."""

    settings: LinkSettings = field(default_factory=lambda: LinkSettings("rtu", 0.1))
    calls: list[Call] = field(default_factory=list)
    memory: dict[tuple[int, Table, int], int] = field(default_factory=dict)
    fail: dict[str, ModbusError] = field(default_factory=dict)  # op -> error to raise
    stuck: set[tuple[int, Table, int]] = field(default_factory=set)  # writes change nothing
    closed: bool = False
    timeouts: list[float] = field(default_factory=list)  # the answer timeout of each request

    def set_timeout(self, timeout_s: float) -> None:
        self.timeouts.append(timeout_s)

    async def read(self, table: Table, address: int, count: int, unit: int) -> list[int]:
        self.calls.append(Call("read", table, address, count, unit))
        await asyncio.sleep(0)  # a real request lets other tasks run
        if "read" in self.fail:
            raise self.fail["read"]
        return [self.memory.get((unit, table, a), 0) for a in range(address, address + count)]

    async def write(self, table: Table, address: int, values: list[int], unit: int) -> None:
        self.calls.append(Call("write", table, address, len(values), unit, tuple(values)))
        await asyncio.sleep(0)
        if "write" in self.fail:
            raise self.fail["write"]
        for offset, value in enumerate(values):
            if (unit, table, address + offset) not in self.stuck:
                self.memory[(unit, table, address + offset)] = value

    def close(self) -> None:
        self.closed = True


class RecordingSink:
    """The ReadingSink: the latest value per register and every health state reported."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], Value | None] = {}
        # per delivery of a device: the registers decoded, and those read the same again
        self.deliveries: list[tuple[str, set[str], set[str]]] = []
        self.states: dict[str, list[object]] = {}
        self.status: dict[str, dict[str, object]] = {}

    def values(self, device: str, values: dict[str, Value | None], ts: float,
               same: Sequence[str] = ()) -> None:
        for name in same:
            assert (device, name) in self.last, f"{device}.{name} read the same as never before"
        self.deliveries.append((device, set(values), set(same)))
        for name, value in values.items():
            self.last[(device, name)] = value

    def unavailable(self, device: str, registers: Sequence[str], quality: str) -> None:
        for name in registers:
            self.last.pop((device, name), None)

    def health(self, device: str, status: dict[str, object]) -> None:
        self.states.setdefault(device, []).append(status["state"])
        self.status[device] = status

    def state(self, device: str) -> object:
        return self.states[device][-1]


class Clock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Bus:
    worker: BusWorker
    link: FakeLink
    sink: RecordingSink
    clock: Clock

    def new_calls(self, since: int) -> list[Call]:
        return self.link.calls[since:]

    async def settled(self) -> None:
        """Wait until the worker has looked at its work twice more, doing whatever was due."""
        seen = self.worker.progress
        await wait_until(lambda: self.worker.progress >= seen + 2, WAIT_S, "worker idle again")

    async def advance_to(self, t: float, expected_calls: int) -> list[Call]:
        """Move the clock, wait for ``expected_calls`` requests and then for the worker to
        settle; return every request it made (more than expected shows up here too)."""
        before = len(self.link.calls)
        self.clock.now = t
        await wait_until(lambda: len(self.link.calls) >= before + expected_calls, WAIT_S,
                         f"{expected_calls} requests at t={t}")
        await self.settled()
        return self.new_calls(before)


@asynccontextmanager
async def running_bus(relay_version: int = 200) -> AsyncIterator[Bus]:
    """A worker on an RTU bus with the sensor (listed first, slow) and the relay board (fast,
    answering ``relay_version`` (x 0.01) as its software version), started at t=0."""
    link, sink, clock = FakeLink(), RecordingSink(), Clock()
    link.memory[(RELAY_UNIT, "holding", 0x8000)] = relay_version
    devices = [
        DeviceSpec(id="climate", unit=CLIMATE_UNIT, profile=load_profile("xy_md02"),
                   poll_fast_s=FAST_S, poll_slow_s=SLOW_S),
        DeviceSpec(id="relays", unit=RELAY_UNIT, profile=load_profile("waveshare_relay_8ch"),
                   poll_fast_s=FAST_S, poll_slow_s=SLOW_S),
    ]
    # idle_wake_s: the fake clock moves without waking the worker; it looks every 10 ms
    worker = BusWorker(name="rs485", link=cast(ModbusLink, link), devices=devices, sink=sink,
                       monotonic=clock, wall=lambda: 1_700_000_000.0, idle_wake_s=0.01)
    task = asyncio.create_task(worker.run())
    try:
        whole = Bus(worker, link, sink, clock)
        await wait_until(lambda: {"climate", "relays"} <= sink.states.keys(), WAIT_S, "seen")
        await whole.settled()
        yield whole
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    assert link.closed, "the worker did not close its link when stopped"


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    """The bus left idle once both devices are online."""
    async with running_bus() as whole:
        assert set(whole.link.calls) == {CLIMATE_POLL, RELAY_IDENTITY, RELAY_POLL}
        yield whole


async def test_a_unit_of_another_model_is_reported_not_read_until_it_is_swapped() -> None:
    """A protocol V1 relay board (software version 0.50) on the relay board's unit: reported
    as the wrong device, nothing it answers is used or written; swapped for a V2 board, it is
    found at the next check and read as usual. The sensor on the same bus never notices."""
    async with running_bus(relay_version=50) as bus:
        status = bus.sink.status["relays"]
        assert status["state"] == "degraded"
        assert "software_version reads 0.5" in str(status["wrong_identity"]), status
        assert RELAY_POLL not in bus.link.calls
        assert not [key for key in bus.sink.last if key[0] == "relays"]
        with pytest.raises(WriteError) as refused:
            await write_at(bus, 0.0, "relays", "relay_1", True)
        assert refused.value.code == "wrong_device"
        assert not [c for c in bus.link.calls if c.op == "write"]
        assert await bus.advance_to(5.0, 1) == [CLIMATE_POLL]  # not asked again before 30 s
        bus.link.memory[(RELAY_UNIT, "holding", 0x8000)] = 200  # the right board now
        calls = await bus.advance_to(5.0 + IDENTIFY_AGAIN_S, 3)
        assert calls[:2] == [RELAY_IDENTITY, RELAY_POLL] or calls[1:3] == [RELAY_IDENTITY,
                                                                           RELAY_POLL], calls
        assert bus.sink.status["relays"]["state"] == "online"
        assert bus.sink.status["relays"]["wrong_identity"] == ""
        assert ("relays", "relay_1") in bus.sink.last


async def write_at(bus: Bus, t: float, device: str, register: str, value: Value) -> Value | None:
    """Move the clock and queue the write in one step: every block overdue at ``t`` is still
    pending when the write is queued, whenever the worker wakes up."""
    async with asyncio.timeout(WAIT_S):  # not wait_for: that would start write() later
        bus.clock.now = t
        return await bus.worker.write(device, register, value)


async def test_a_queued_write_and_its_read_back_go_before_pending_polls(bus: Bus) -> None:
    before = len(bus.link.calls)
    # at t=1 both blocks are overdue (relays since 0.1, sensor since 0.4)
    assert await write_at(bus, 1.0, "relays", "relay_5", True) is True
    await wait_until(lambda: len(bus.link.calls) >= before + 4, WAIT_S, "the polls after it")
    calls = bus.new_calls(before)
    assert calls[:2] == [
        Call("write", "coil", 4, 1, RELAY_UNIT, (1,)),
        Call("read", "coil", 4, 1, RELAY_UNIT),  # the read-back, of the same coil
    ]
    assert calls[2:4] == [RELAY_POLL, CLIMATE_POLL]


async def test_write_returns_what_the_device_reads_back(bus: Bus) -> None:
    assert await write_at(bus, 0.0, "relays", "relay_3", True) is True
    assert bus.sink.last[("relays", "relay_3")] is True
    # a relay that does not switch: the write is accepted, the read-back tells the truth
    bus.link.stuck.add((RELAY_UNIT, "coil", 6))
    assert await write_at(bus, 0.0, "relays", "relay_7", True) is False
    assert bus.sink.last[("relays", "relay_7")] is False


async def test_only_registers_whose_words_changed_are_decoded_again(bus: Bus) -> None:
    """A poll reading what the last one read decodes nothing: its registers are delivered
    as read the same (their points only get a new time). A changed word is decoded, also
    when it differs only from a write's read-back; a device back from offline is decoded
    whole."""
    relays = {f"relay_{i}" for i in range(1, 9)}

    def last_relay_delivery() -> tuple[set[str], set[str]]:
        return next((v, s) for d, v, s in reversed(bus.sink.deliveries) if d == "relays")

    await bus.advance_to(0.15, 1)
    assert last_relay_delivery() == (set(), relays)
    bus.link.memory[(RELAY_UNIT, "coil", 2)] = 1  # relay_3 switched by hand
    await bus.advance_to(0.27, 1)
    assert last_relay_delivery() == ({"relay_3"}, relays - {"relay_3"})
    assert bus.sink.last[("relays", "relay_3")] is True
    assert await write_at(bus, 0.29, "relays", "relay_5", True) is True
    bus.link.memory[(RELAY_UNIT, "coil", 4)] = 0  # and it drops out again before the poll
    await bus.advance_to(0.39, 1)
    assert last_relay_delivery() == ({"relay_5"}, relays - {"relay_5"})
    assert bus.sink.last[("relays", "relay_5")] is False
    bus.link.fail["read"] = ModbusError("timeout", "no answer")
    t = 0.39
    while bus.sink.state("relays") != "offline":
        t += 0.5
        await bus.advance_to(t, 0)
    offline_at = len(bus.sink.deliveries)
    del bus.link.fail["read"]
    while bus.sink.state("relays") != "online":
        t += 0.5
        await bus.advance_to(t, 0)
    back = [(v, s) for d, v, s in bus.sink.deliveries[offline_at:] if d == "relays"]
    assert back[0] == (relays, set())


async def test_the_most_overdue_block_is_polled_first(bus: Bus) -> None:
    # after start-up (t=0) the sensor is due at 0.4 and the relays at 0.1
    assert await bus.advance_to(0.35, 1) == [RELAY_POLL]  # relays due again at 0.45
    # t=0.5: the sensor is 0.1 s overdue, the relays 0.05 s: the slower sensor goes first
    assert await bus.advance_to(0.5, 2) == [CLIMATE_POLL, RELAY_POLL]
    # t=1.0: the sensor (due 0.9) 0.1 s overdue, the relays (due 0.6) 0.4 s: relays first,
    # although the sensor is listed first
    assert await bus.advance_to(1.0, 2) == [RELAY_POLL, CLIMATE_POLL]


async def test_each_block_is_polled_again_only_when_due(bus: Bus) -> None:
    # after start-up (t=0) the relays are due at 0.1, the sensor at 0.4; clock steps avoid
    # landing exactly on a due time
    assert await bus.advance_to(0.05, 0) == []
    assert await bus.advance_to(0.15, 1) == [RELAY_POLL]  # next at 0.25
    assert await bus.advance_to(0.2, 0) == []
    assert await bus.advance_to(0.27, 1) == [RELAY_POLL]  # next at 0.37
    assert await bus.advance_to(0.39, 1) == [RELAY_POLL]  # next at 0.49
    assert await bus.advance_to(0.41, 1) == [CLIMATE_POLL]  # next at 0.81
    assert await bus.advance_to(0.5, 1) == [RELAY_POLL]


async def test_a_failed_write_raises_a_bus_error_and_the_worker_goes_on(bus: Bus) -> None:
    bus.link.fail["write"] = ModbusError("timeout", "no answer from unit 2")
    before = len(bus.link.calls)
    with pytest.raises(WriteError) as caught:
        await write_at(bus, 0.0, "relays", "relay_5", True)
    assert caught.value.code == "bus_timeout"
    # nothing to read back after a write that failed
    assert bus.new_calls(before) == [Call("write", "coil", 4, 1, RELAY_UNIT, (1,))]
    assert bus.sink.state("relays") == "degraded"

    del bus.link.fail["write"]
    polls = await bus.advance_to(0.15, 1)  # still polling (due at 0.1)
    assert polls and set(polls) == {RELAY_POLL}
    assert bus.sink.state("relays") == "online"
    assert await write_at(bus, 0.15, "relays", "relay_5", True) is True  # and writing


async def test_every_failed_answer_shows_in_the_error_counts(bus: Bus) -> None:
    """A technician watching a device's status sees each damaged answer counted, not only the
    first one (the one that made the device degraded)."""
    bus.link.fail["write"] = ModbusError("framing", "CRC mismatch")
    for expected in (1, 2):
        with pytest.raises(WriteError):
            await write_at(bus, 0.0, "relays", "relay_5", True)
        errors = bus.sink.status["relays"]["errors"]
        assert isinstance(errors, dict) and errors["framing"] == expected
        assert bus.sink.state("relays") == "degraded"


async def test_a_read_only_register_is_refused_without_a_request(bus: Bus) -> None:
    before = len(bus.link.calls)
    with pytest.raises(WriteError) as caught:
        await write_at(bus, 0.0, "climate", "temperature", 21.5)
    assert caught.value.code == "read_only"
    assert bus.new_calls(before) == []


async def test_a_flood_of_writes_does_not_starve_the_polls(bus: Bus) -> None:
    before = len(bus.link.calls)
    bus.clock.now = 1.0  # both blocks overdue
    writes = [asyncio.create_task(bus.worker.write("relays", f"relay_{i}", True))
              for i in range(1, 6)]
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*writes)
    calls = bus.new_calls(before)
    ops = ["poll" if c in (RELAY_POLL, CLIMATE_POLL) else c.op for c in calls]
    # each write with its read-back, and an overdue poll between writes: never two writes
    # in a row while a block is overdue (both were, at t=1)
    polls = [i for i, op in enumerate(ops) if op == "poll"]
    writes_at = [i for i, op in enumerate(ops) if op == "write"]
    assert len(writes_at) == 5 and len(polls) == 2
    assert polls[0] < writes_at[1] and polls[1] < writes_at[2]


async def test_a_bus_that_stops_answering_takes_every_device_offline_at_once(bus: Bus) -> None:
    bus.link.fail["read"] = ModbusError("timeout", "no answer")
    # three failed requests in a row on the bus, whichever devices they were for
    await bus.advance_to(1.0, 2)
    await bus.advance_to(2.0, 1)
    assert bus.sink.state("climate") == "offline"
    assert bus.sink.state("relays") == "offline"


async def test_a_connection_lost_takes_every_device_offline_at_once(bus: Bus) -> None:
    bus.link.fail["read"] = ModbusError("connection", "connection refused")
    await bus.advance_to(1.0, 1)
    assert bus.sink.state("climate") == "offline" and bus.sink.state("relays") == "offline"


async def test_an_offline_device_is_back_within_two_seconds_of_answering(bus: Bus) -> None:
    bus.link.fail["read"] = ModbusError("timeout", "no answer")

    async def at(t: float) -> None:
        bus.clock.now = t
        await bus.settled()

    t = 0.0
    for _ in range(20):  # 10 s of a dead bus: the re-probe backoff grows to its cap
        t += 0.5
        await at(t)
    assert bus.sink.state("relays") == "offline"
    del bus.link.fail["read"]  # the bus answers again
    answered_at = t
    while bus.sink.state("relays") != "online":
        t += 0.1
        await at(t)
        assert t - answered_at <= 2.0, "not back within 2 s"


async def test_a_cancellation_lost_inside_pymodbus_still_stops_the_link(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.11's wait_for (which pymodbus awaits its answer with) can return the answer
    and drop a cancellation that came with it; the link must still stop its task, or a bus
    worker polls on after shutdown (a test once hung so in its teardown)."""
    link = ModbusLink(LinkSettings("tcp", 0.5, host="127.0.0.1", port=1))
    answer = ReadHoldingRegistersResponse(registers=[7])

    async def answer_swallowing_the_cancel(*_: object, **__: object) -> object:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with suppress(asyncio.CancelledError):  # what 3.11's wait_for does in that race
            await asyncio.sleep(0)
        return answer

    monkeypatch.setattr(link._client, "read_holding_registers", answer_swallowing_the_cancel)
    monkeypatch.setattr(ModbusLink, "connected", property(lambda _: True))
    with pytest.raises(asyncio.CancelledError):
        await link.read("holding", 0, 1, unit=1)


async def test_the_answer_timeout_follows_each_devices_latency_within_the_bounds() -> None:
    """Unknown (never answered): the longest; answering: 5x its latency, not under the
    shortest; after a failure, the longest again (a slow device is not taken for dead)."""
    link, sink, clock = FakeLink(settings=LinkSettings("rtu", 0.3)), RecordingSink(), Clock()
    link.memory[(RELAY_UNIT, "holding", 0x8000)] = 200
    worker = BusWorker(name="rs485", link=cast(ModbusLink, link), devices=[
        DeviceSpec(id="relays", unit=RELAY_UNIT, profile=load_profile("waveshare_relay_8ch"),
                   poll_fast_s=FAST_S, poll_slow_s=SLOW_S)], sink=sink, monotonic=clock,
        wall=lambda: 1_700_000_000.0, idle_wake_s=0.01, timeout_min_s=0.1)
    health = worker.health("relays")
    assert health.answer_timeout(0.1, 0.3) == 0.3  # never answered
    health.success(0.030, 1.0)  # 30 ms
    assert health.answer_timeout(0.1, 0.3) == pytest.approx(0.15)
    health.success(0.001, 2.0)
    assert health.answer_timeout(0.1, 0.3) >= 0.1  # never under the shortest
    health.failure("timeout", "no answer", 3.0)
    assert health.answer_timeout(0.1, 0.3) == 0.3
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: len(link.timeouts) >= 2, WAIT_S, "requests")
        assert link.timeouts[0] == 0.3 and all(0.1 <= t <= 0.3 for t in link.timeouts)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
