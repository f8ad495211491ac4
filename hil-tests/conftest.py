"""HIL fixtures: broker + simulated van (in this process) + the real supervisor process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import (
    DEMO_CONFIG,
    Broker,
    Monitor,
    SupervisorProcess,
    free_port,
    van_env,
    wait_until,
)
from supervisor.config import load_config
from vansim.van import SimulatedVan


@dataclass
class Van:
    broker: Broker
    sim: SimulatedVan
    supervisor: SupervisorProcess
    monitor: Monitor
    run_dir: Path


@pytest.fixture
async def van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    """The whole van, with the supervisor reported ready on MQTT."""
    # short path: Unix socket paths are limited to 107 bytes
    run_dir = Path(tempfile.mkdtemp(prefix="mcw-hil-"))
    async with AsyncExitStack() as stack:
        # each part is stopped by its own callback, whatever failed before it
        stack.callback(shutil.rmtree, run_dir, ignore_errors=True)
        broker = Broker(run_dir)
        stack.push_async_callback(broker.stop)
        await broker.start()
        env = van_env(run_dir, broker.port, free_port())
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sim = SimulatedVan(load_config(DEMO_CONFIG))
        stack.push_async_callback(sim.stop)
        await sim.start()
        monitor = Monitor(broker.port)
        stack.push_async_callback(monitor.stop)
        await monitor.start()
        supervisor = SupervisorProcess(env, run_dir / "supervisor.log")
        stack.callback(_keep_log, supervisor.log_path)
        stack.push_async_callback(supervisor.stop)
        supervisor.start()
        await wait_until(lambda: (monitor.latest.get("status") or {}).get("state") == "ready",
                         what="status ready")
        # start-up safe states applied (comms is declared on when the supervisor is away)
        await wait_until(lambda: monitor.value("power/circuit/comms") is True, what="safe")
        yield Van(broker, sim, supervisor, monitor, run_dir)


def _keep_log(path: Path) -> None:
    """Copy the supervisor's log where a failed run can be read after the temp dir is gone."""
    if path.exists():
        shutil.copy(path, _artifact("supervisor.log"))


def _artifact(name: str) -> Path:
    out = Path(__file__).parent / "artifacts"
    out.mkdir(exist_ok=True)
    return out / name
