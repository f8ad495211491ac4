"""Bus workers against the simulated devices over real Modbus TCP and RTU (no supervisor)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, suppress

import pytest
from testsupport import wait_until

from conftest import simulated_van
from drivers.bus_worker import BusWorker
from drivers.buses import build_workers
from drivers.profile import load_profile
from drivers.register_codec import Value
from supervisor.core.config import SupervisorConfig
from vansim.van import SimulatedVan


class Recorder:
    """A ReadingSink that remembers everything."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], Value | None] = {}
        self.quality: dict[tuple[str, str], str] = {}
        self.states: dict[str, list[object]] = {}
        self.batches: dict[str, list[int]] = {}  # how many registers each delivery carried

    def values(self, device: str, values: dict[str, Value | None], ts: float,
               same: Sequence[str] = ()) -> None:
        self.batches.setdefault(device, []).append(len(values) + len(same))
        for reg in same:
            self.quality[(device, reg)] = ("good" if self.last[(device, reg)] is not None
                                           else "invalid")
        for reg, value in values.items():
            self.last[(device, reg)] = value
            self.quality[(device, reg)] = "good" if value is not None else "invalid"

    def unavailable(self, device: str, registers: Sequence[str], quality: str) -> None:
        for reg in registers:
            self.quality[(device, reg)] = quality

    def health(self, device: str, status: dict[str, object]) -> None:
        seen = self.states.setdefault(device, [])
        if not seen or seen[-1] != status["state"]:  # transitions; counts are refreshed too
            seen.append(status["state"])


def make_worker(cfg: SupervisorConfig, bus_name: str, sink: Recorder,
                retry_unsupported_s: float = 300.0) -> BusWorker:
    """The bus worker the supervisor would build, polling faster (0.2 s / 0.5 s)."""
    devices = [d.model_copy(update={"poll_fast_s": 0.2, "poll_slow_s": 0.5})
               for d in cfg.device if d.bus == bus_name]
    return build_workers([cfg.bus_by_name(bus_name)], devices, sink,
                         retry_unsupported_s=retry_unsupported_s)[bus_name]


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SimulatedVan]:
    async with simulated_van(monkeypatch, "mcw-bus-") as van:
        yield van


async def running(stack: AsyncExitStack, worker: BusWorker) -> None:
    task = asyncio.create_task(worker.run())

    async def stop() -> None:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)


async def test_whole_gx_maps_are_read_in_one_request_each(sim: SimulatedVan) -> None:
    sink = Recorder()
    worker = make_worker(sim.config, "gx", sink)
    async with AsyncExitStack() as stack:
        await running(stack, worker)
        await wait_until(lambda: ("gx_system", "battery_voltage") in sink.last, what="values")
        # all eleven registers 806..860 come in each read (holes read through on TCP), and
        # every request delivered them all
        profile_size = len(load_profile("victron_gx_system").registers)
        assert set(sink.batches["gx_system"]) == {profile_size}
        assert worker.health("gx_system").requests == len(sink.batches["gx_system"])
        assert sink.last[("gx_system", "battery_soc")] == pytest.approx(sim.plant.battery.soc,
                                                                         abs=1)


async def test_exception_replies_mark_points_invalid_and_recover(sim: SimulatedVan) -> None:
    sink = Recorder()
    worker = make_worker(sim.config, "gx", sink, retry_unsupported_s=1.0)
    async with AsyncExitStack() as stack:
        await running(stack, worker)
        await wait_until(lambda: sink.quality.get(("multiplus", "mode")) == "good", what="good")
        sim.set_exception("multiplus", 2)  # illegal data address on every request
        await wait_until(lambda: sink.quality.get(("multiplus", "mode")) == "invalid",
                         what="invalid")
        assert worker.health("multiplus").state == "degraded"  # it answers: not offline
        seen = worker.health("battery").requests
        await wait_until(lambda: worker.health("battery").requests > seen + 2,
                         what="battery keeps being polled")
        sim.set_exception("multiplus", None)
        await wait_until(lambda: sink.quality.get(("multiplus", "mode")) == "good",
                         what="recovered")
        assert sink.last[("multiplus", "mode")] == 3


async def test_write_is_confirmed_by_read_back_and_goes_before_polls(sim: SimulatedVan) -> None:
    sink = Recorder()
    worker = make_worker(sim.config, "rs485", sink)
    async with AsyncExitStack() as stack:
        await running(stack, worker)
        await wait_until(lambda: ("relays", "relay_1") in sink.last, what="first poll")
        for wanted in (True, False, True):
            back = await asyncio.wait_for(worker.write("relays", "relay_5", wanted), 5)
            assert back is wanted
            assert sim.relay("relays", "relay_5") is wanted
            assert sink.last[("relays", "relay_5")] is wanted


async def test_silent_device_goes_offline_once_and_is_reprobed(sim: SimulatedVan) -> None:
    sink = Recorder()
    worker = make_worker(sim.config, "rs485", sink)
    async with AsyncExitStack() as stack:
        await running(stack, worker)
        await wait_until(lambda: sink.states.get("room_climate") == ["online"], what="online")
        sim.set_silent("room_climate", True)
        await wait_until(lambda: worker.health("room_climate").state == "offline", what="off")
        assert sink.quality[("room_climate", "temperature")] == "stale"
        requests = worker.health("room_climate").requests
        offline_at = asyncio.get_running_loop().time()
        await wait_until(lambda: worker.health("room_climate").requests >= requests + 2,
                         what="two re-probes")
        # re-probed with backoff (1 s, then 2 s), not hammered every 0.5 s poll period
        assert asyncio.get_running_loop().time() - offline_at >= 2.9
        assert sink.states["room_climate"] == ["online", "degraded", "offline"]  # logged once
        sim.set_silent("room_climate", False)
        await wait_until(lambda: worker.health("room_climate").state == "online", what="back")
        assert sink.states["room_climate"][-1] == "online"
