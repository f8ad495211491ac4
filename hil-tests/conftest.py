"""HIL fixtures: broker + simulated van (in this process) + the real supervisor process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from supervisor.power import power_config
from supervisor.registry import load_config
from vansim.van import SimulatedVan


@dataclass
class Van:
    broker: Broker
    sim: SimulatedVan
    supervisor: SupervisorProcess
    monitor: Monitor
    run_dir: Path


# Power timings shortened from minutes to seconds for the power scenarios (same rules).
FAST_POWER = {
    "MCW_SHED_DELAY_S": "2", "MCW_SHED_MIN_OFF_S": "4", "MCW_SHED_RESTORE_HOLD_S": "2",
    "MCW_STAGGER_S": "0.3", "MCW_LVD_DELAY_S": "2", "MCW_AC_INPUT_DELAY_S": "2",
    "MCW_GEN_START_TIMEOUT_S": "8", "MCW_GEN_RETRY_PAUSE_S": "1", "MCW_GEN_MIN_RUN_S": "3",
    "MCW_GEN_WARM_UP_S": "2", "MCW_GEN_COOL_DOWN_S": "2", "MCW_GEN_DWELL_S": "1",
}


# Climate timings for scenarios in accelerated time: the plant, the heater and the weather
# run CLIMATE_SPEED times faster than the supervisor's clock, so its minutes are shortened.
CLIMATE_SPEED = 30.0
# Quiet hours (no generator for comfort) are one minute half a day away, whenever it runs.
_FAR = datetime.now() + timedelta(hours=12)
FAST_CLIMATE = {
    **FAST_POWER, "MCW_CLIMATE_MIN_CYCLE_S": "6", "MCW_CLIMATE_KEEP_ALIVE_S": "10",
    "MCW_AC_MIN_OFF_S": "5", "MCW_AC_MIN_RUN_S": "4", "MCW_CO_CLEAR_S": "3",
    "MCW_HEATER_LEVEL_CHANGE_S": "2", "MCW_HEATER_INTEGRAL_S": "40",
    "MCW_HEATER_MIN_OFF_S": "10",
    "MCW_QUIET_START": _FAR.strftime("%H:%M"),
    "MCW_QUIET_END": (_FAR + timedelta(minutes=1)).strftime("%H:%M"),
}


@pytest.fixture
async def van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    """The whole van, with the supervisor ready and its start-up switching done."""
    async with start_van(monkeypatch, {}) as whole:
        yield whole


@pytest.fixture
async def fast_van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    """The van with the power rules' minutes shortened to seconds."""
    async with start_van(monkeypatch, FAST_POWER) as whole:
        yield whole


@pytest.fixture
async def climate_van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    """The van in accelerated time for the climate scenarios (see FAST_CLIMATE)."""
    async with start_van(monkeypatch, FAST_CLIMATE, speed=CLIMATE_SPEED) as whole:
        yield whole


@asynccontextmanager
async def start_van(monkeypatch: pytest.MonkeyPatch, extra_env: dict[str, str],
                    speed: float = 1.0, broker_extra: Sequence[str] = (),
                    config_edit: Callable[[str], str] | None = None,
                    more_devices: Callable[[Path, AsyncExitStack], Awaitable[None]] | None
                    = None) -> AsyncIterator[Van]:
    """The whole van; ``broker_extra``: lines added to its broker's config (a bridge);
    ``config_edit``: the demo config's text changed for this van; ``more_devices``: starts
    simulated devices the demo van does not have (given the run folder, and the stack that
    stops them), before the supervisor."""
    # short path: Unix socket paths are limited to 107 bytes
    run_dir = Path(tempfile.mkdtemp(prefix="mcw-hil-"))
    async with AsyncExitStack() as stack:
        # each part is stopped by its own callback, whatever failed before it
        stack.callback(shutil.rmtree, run_dir, ignore_errors=True)
        broker = Broker(run_dir, extra=broker_extra)
        stack.push_async_callback(broker.stop)
        await broker.start()
        env = {**van_env(run_dir, broker.port, free_port()), **extra_env}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        config = DEMO_CONFIG
        if config_edit is not None:
            config = run_dir / "vehicle.toml"
            config.write_text(config_edit(DEMO_CONFIG.read_text()), encoding="utf-8")
        sim = SimulatedVan(load_config(config), speed=speed)
        stack.push_async_callback(sim.stop)
        await sim.start()
        if more_devices is not None:
            await more_devices(run_dir, stack)
        monitor = Monitor(broker.port)
        stack.push_async_callback(monitor.stop)
        await monitor.start()
        supervisor = SupervisorProcess(env, run_dir / "supervisor.log", config=config)
        stack.callback(_keep_log, supervisor.log_path)
        stack.push_async_callback(supervisor.stop)
        supervisor.start()
        whole = Van(broker, sim, supervisor, monitor, run_dir)
        await settled(whole)
        yield whole


@asynccontextmanager
async def simulated_van(monkeypatch: pytest.MonkeyPatch,
                        prefix: str) -> AsyncIterator[SimulatedVan]:
    """The simulated demo van alone (no broker, no supervisor), serving; its environment set
    for the test."""
    run_dir = Path(tempfile.mkdtemp(prefix=prefix))
    for key, value in van_env(run_dir, free_port(), free_port()).items():
        monkeypatch.setenv(key, value)
    async with SimulatedVan(load_config(DEMO_CONFIG)) as van:
        yield van


async def settled(van: Van) -> None:
    """Ready on MQTT, and every circuit in the state the crew chose (start-up sequencing)."""
    mon = van.monitor
    await wait_until(lambda: (mon.latest.get("status") or {}).get("state") == "ready",
                     what="status ready")
    names = [c.name for c in power_config(van.sim.config).circuit]
    await wait_until(lambda: all(
        mon.value(f"power/circuit/{n}/wanted") is not None
        and mon.value(f"power/circuit/{n}") == mon.value(f"power/circuit/{n}/wanted")
        for n in names), what="circuits switched as wanted")


def _keep_log(path: Path) -> None:
    """Copy the supervisor's log where a failed run can be read after the temp dir is gone."""
    if path.exists():
        shutil.copy(path, _artifact("supervisor.log"))


def _artifact(name: str) -> Path:
    out = Path(__file__).parent / "artifacts"
    out.mkdir(exist_ok=True)
    return out / name
