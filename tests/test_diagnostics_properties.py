"""The technician's diagnostic actions and a builder device's write action take any payload:
whatever a command carries, it is answered with one result (done, rejected or failed), never
an exception, and nothing outside the profile's limits reaches the bus. Against a real bus
worker on the recording fake link of test_bus_worker."""

from __future__ import annotations

import asyncio
import json
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from test_bus_worker import Call, FakeLink
from testsupport import FUZZ

from drivers.bus_worker import BusWorker, DeviceSpec
from drivers.buses import DeviceConfig, RtuBus
from drivers.modbus_link import LinkSettings, ModbusLink
from supervisor.core.alarms import AlarmManager
from supervisor.core.commands import CommandRouter
from supervisor.core.config import SupervisorConfig, VehicleConfig
from supervisor.core.device_points import DevicePoints
from supervisor.core.diagnostics import register_diagnostics
from supervisor.core.exposed_devices import expose_devices
from supervisor.core.points import PointStore
from supervisor.core.storage import Storage
from supervisor.core.van_state import VanState

GAUGE = Path(__file__).resolve().parents[1] / "hil-tests" / "builder_profiles" / "tank_gauge.toml"
DEVICES = (DeviceConfig(id="relays", profile="waveshare_relay_8ch", bus="rs485", unit=2),
           DeviceConfig(id="tank", profile_file=GAUGE, bus="rs485", unit=9))
ACTIONS = ("diag/read", "diag/write", "device/tank/write")
SCALARS = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | \
    st.text(max_size=20)
ARGS = st.dictionaries(st.sampled_from(["device", "register", "value", "table", "address",
                                         "count", "dry_run", "x"]),
                       SCALARS | st.sampled_from(["relays", "tank", "relay_1", "alarm_level",
                                                  "mode", "pump", "level", "holding", "coil"]),
                       max_size=6)


async def answer(action: str, payload: str) -> tuple[dict[str, object], list[Call]]:
    with tempfile.TemporaryDirectory() as folder:
        db = Storage(Path(folder) / "db.sqlite")
        store = PointStore()
        cfg = SupervisorConfig(vehicle=VehicleConfig(id="demo"),
                               bus=(RtuBus(name="rs485", type="rtu", port="/dev/null"),),
                               device=DEVICES)
        router = CommandRouter(db)
        van = VanState(cfg, db, store, AlarmManager(), DevicePoints(store, DEVICES), router,
                       lambda: 1.8e9)
        link = FakeLink(settings=LinkSettings("rtu", 0.1))
        link.memory[(2, "holding", 0x8000)] = 200
        worker = BusWorker("rs485", cast(ModbusLink, link),
                           [DeviceSpec(d.id, d.unit, d.load_profile(), 1.0, 5.0) for d in DEVICES],
                           van.devices, idle_wake_s=0.01)
        expose_devices(van, worker.write)
        register_diagnostics(van, {"rs485": worker})
        task = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(10):
                result = await router.submit(action, payload, "technician", "mqtt")
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            db.close()
        return result.as_dict(), [c for c in link.calls if c.op == "write"]


@settings(FUZZ, deadline=None)
@given(st.sampled_from(ACTIONS), ARGS)
def test_any_arguments_get_one_answer_and_nothing_outside_the_limits_is_written(
        action: str, args: dict[str, Any]) -> None:
    payload = json.dumps({"id": "p1", "args": args}, allow_nan=True)
    result, writes = asyncio.run(answer(action, payload))
    assert result["status"] in ("done", "rejected", "failed"), result
    for call in writes:  # what did go on the bus is a register of a profile, in its range
        if call.unit == 9 and call.table == "holding" and call.address == 0:
            assert all(5 <= v <= 50 for v in call.values), (args, call)
        if call.unit == 9 and call.table == "holding" and call.address == 1:
            assert all(v in (0, 1, 2) for v in call.values), (args, call)
