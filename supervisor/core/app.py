"""The supervisor daemon: the single composition root and the ``mcw-supervisor`` command.

Everything is built from the validated config: the core (points, alarms, commands, storage,
outputs), one bus worker per bus, the GPIO lines, every registered subsystem (each with its
own context) and the interfaces. One event loop, one top-level TaskGroup; each child restarts
its own work after a failure so one bad device never cancels its siblings. SIGTERM is final:
commands are refused, subsystems stop, every output goes to its safe state (locked ones are
left alone), ``offline`` is published and the exit code is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from drivers.buses import build_workers, worker_of_device
from drivers.gpio import GpioBridge, LineSpec
from drivers.register_codec import Value
from supervisor.core.alarms import AlarmManager
from supervisor.core.commands import CommandRouter
from supervisor.core.config import ConfigError, SupervisorConfig, check_on_target
from supervisor.core.device_points import DevicePoints
from supervisor.core.diagnostics import register_bundle_action, register_diagnostics
from supervisor.core.exposed_devices import expose_devices
from supervisor.core.history import History
from supervisor.core.logs import setup_logging
from supervisor.core.outputs import OutputPort
from supervisor.core.points import PointStore
from supervisor.core.self_test import register_self_test
from supervisor.core.storage import Storage
from supervisor.core.subsystem import (
    Clock,
    Context,
    Heartbeat,
    Subsystem,
    SubsystemSpec,
    make_context,
)
from supervisor.core.systemd_notify import notify
from supervisor.core.ticker import Watchdog, progress_counter, supervised, tick
from supervisor.core.van_state import VERSION, VanState
from supervisor.core.vehicle import GpioPoints, VehicleCore
from supervisor.interfaces.mqtt_bridge import MqttBridge

if TYPE_CHECKING:
    from supervisor.interfaces.panel import Panel

log = structlog.get_logger("supervisor")

SAFE_STATE_TIMEOUT_S = 5.0
REAL_TIME = Clock()


class _Shutdown(Exception):
    """Raised inside the TaskGroup to end it after a clean shutdown."""


class Supervisor:
    """Owns every part of the running supervisor."""

    def __init__(self, cfg: SupervisorConfig, subsystems: Sequence[SubsystemSpec[Any]],
                 clock: Clock = REAL_TIME, config_path: Path | str = "config") -> None:
        self.cfg = cfg
        self.storage = Storage(cfg.storage.path)
        points = PointStore()
        self.devices = DevicePoints(points, cfg.device)
        router = CommandRouter(self.storage, clock.wall)
        self.van = VanState(cfg, self.storage, points, AlarmManager(), self.devices, router,
                            clock.wall)
        self.workers = build_workers(cfg.bus, cfg.device, self.devices)
        worker_of = worker_of_device(self.workers)
        lines = [LineSpec(ln.name, ln.pin, ln.direction, ln.active == "high",
                          ln.debounce_ms / 1000, ln.safe_state) for ln in cfg.gpio.line]
        self.gpio = GpioBridge(lines, cfg.gpio.backend, lambda n, a: self.io.on_input(n, a),
                               cfg.gpio.sim_socket)
        self.io = GpioPoints(self.van, self.gpio)
        def bus_write(device: str, register: str, value: Value) -> Awaitable[Value | None]:
            return worker_of[device].write(device, register, value)

        self.port = OutputPort(bus_write, self.io, self.devices, points)
        expose_devices(self.van, bus_write)
        register_diagnostics(self.van, self.workers)
        self.mqtt = MqttBridge(self.van)
        self.core = VehicleCore(self.van, self.port, self.mqtt.request_republish)
        self.heartbeats: list[Heartbeat] = []
        self.subsystems: dict[str, Subsystem] = {}
        for spec in subsystems:
            section = cfg.section(spec.name)
            if section is not None:
                ctx = self._context(spec.name, clock)
                self.subsystems[spec.name] = spec.build(ctx, section)
                self.heartbeats.extend(ctx.loop_heartbeats)
        register_self_test(self.van, self.port)  # once every subsystem declared its outputs
        register_bundle_action(self.van, Path(config_path))
        problem = router.grant(cfg.access.grant)
        if problem is not None:
            raise ConfigError(config_path, f"access.grant.{problem}", "not a registered action")
        self.panel: Panel | None = None
        if cfg.panel is not None and cfg.panel.enabled:
            # its web server (aiohttp, ~7 MB) is loaded only for a van that has the panel
            from supervisor.interfaces.panel import Panel
            history = History(self.storage, points, cfg.panel.history_days * 86400, clock.wall)
            self.panel = Panel(cfg.panel, self.van, history)
        counters = {f"bus:{n}": progress_counter(w) for n, w in self.workers.items()}
        counters.update({hb.name: progress_counter(hb) for hb in self.heartbeats})
        self.watchdog = Watchdog(counters)

    def _context(self, name: str, clock: Clock) -> Context:
        ctx = make_context(name, self.van, self.port, clock)
        self.heartbeats.append(ctx.heartbeat)
        return ctx

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT, then shut down cleanly."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.gpio.open(loop)
        self.io.publish_driving()
        try:
            async with asyncio.TaskGroup() as tg:
                def start(name: str, work: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
                    return tg.create_task(supervised(name, work), name=name)

                for name, worker in self.workers.items():
                    start(f"bus:{name}", worker.run)
                start("gpio", self.gpio.run)
                start("mqtt", self.mqtt.run)
                start("ticker", lambda: tick(self.van, self.port, self.workers, self.watchdog))
                if self.panel is not None:
                    start("panel", self.panel.run)
                # READY once the outputs are confirmed in their safe states (or given up on);
                # after a crash (same boot) they are as the last run left them: no blink
                if self.storage.cold_start():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(SAFE_STATE_TIMEOUT_S):
                            await self.port.apply_safe_states("start")
                self.port.release(set(self.port.outputs))  # the subsystems take over
                running = [start(name, sub.run) for name, sub in self.subsystems.items()]
                self.core.drive_lamp()
                notify("READY=1")
                log.info("supervisor_ready", vehicle=self.cfg.vehicle.id, version=VERSION,
                         buses=len(self.workers), subsystems=list(self.subsystems))
                await stop.wait()
                await self._shutdown(running)
                raise _Shutdown
        except* _Shutdown:
            pass
        finally:
            self.gpio.close()
            self.storage.close()
            log.info("supervisor_stopped")

    async def _shutdown(self, running: list[asyncio.Task[None]]) -> None:
        """Final: nothing switches on from here; every output to its safe state."""
        notify("STOPPING=1")
        log.info("supervisor_stopping")
        self.van.router.close()
        self.port.shutdown()
        for sub in self.subsystems.values():
            sub.stop()
        for task in running:
            task.cancel()
        try:
            async with asyncio.timeout(SAFE_STATE_TIMEOUT_S):
                await self.port.apply_safe_states("shutdown")
        except TimeoutError:
            log.error("safe_states_timed_out", timeout_s=SAFE_STATE_TIMEOUT_S)
        self.van.update_state("offline")
        await self.mqtt.flush(2.0)


def main(argv: list[str] | None = None) -> int:
    """``mcw-supervisor --config FILE``: run the daemon (exit 2 on a bad config)."""
    from supervisor.registry import SUBSYSTEMS, load_config

    parser = argparse.ArgumentParser(prog="mcw-supervisor", description=__doc__)
    parser.add_argument("--config", "-c", type=Path, required=True, help="vehicle TOML file")
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        check_on_target(cfg, args.config)
    except ConfigError as exc:
        print(f"mcw-supervisor: config error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"{args.config}: OK")
        return 0
    setup_logging(cfg.log.level)
    try:
        asyncio.run(_serve(cfg, SUBSYSTEMS, args.config))
    except ConfigError as exc:  # found while building (e.g. a grant of an unknown action)
        print(f"mcw-supervisor: config error: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(cfg: SupervisorConfig, subsystems: Sequence[SubsystemSpec[Any]],
                 path: Path) -> None:
    # built inside the loop: the Modbus clients bind to the running loop
    await Supervisor(cfg, subsystems, config_path=path).run()


if __name__ == "__main__":
    sys.exit(main())
