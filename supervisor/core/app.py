"""The supervisor daemon: the single composition root and the ``mcw-supervisor`` command.

Everything is built from the validated config. One event loop, one top-level TaskGroup; each
child restarts its own work after a failure so one bad device never cancels its siblings.
SIGTERM drives every output to its safe state, publishes ``offline`` and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import structlog

from drivers.bus_worker import BusWorker, DeviceSpec
from drivers.gpio import GpioBridge, LineSpec
from drivers.modbus_link import LinkSettings, ModbusLink
from drivers.profile import load_profile
from drivers.register_codec import Value
from supervisor.climate.subsystem import bind_climate
from supervisor.core.alarms import AlarmDef, AlarmManager, AlarmState
from supervisor.core.commands import ActionSpec, ArgSpec, CommandFailed, CommandRouter, Result
from supervisor.core.config import (
    ConfigError,
    RtuBus,
    SupervisorConfig,
    check_on_target,
    load_config,
)
from supervisor.core.device_points import DevicePoints
from supervisor.core.history import History
from supervisor.core.logs import setup_logging
from supervisor.core.points import PointDef, PointStore, PointValue
from supervisor.core.storage import Storage
from supervisor.core.systemd_notify import notify, watchdog_interval
from supervisor.interfaces.mqtt_bridge import MqttBridge, dumps, iso
from supervisor.interfaces.panel import Panel
from supervisor.power.subsystem import CREW_ROLES, PowerSubsystem

log = structlog.get_logger("supervisor")

TICK_S = 1.0
SAFE_STATE_TIMEOUT_S = 5.0
RESTART_BACKOFF_MAX_S = 30.0
WORKER_STALL_S = 10.0
DEVICE_STATUS_REFRESH_S = 10.0
ALL_ROLES = frozenset({"hq", "crew", "technician"})

try:
    VERSION = version("mcw-controller")
except PackageNotFoundError:  # running from a source tree
    VERSION = "0.0.0"


class _Shutdown(Exception):
    """Raised inside the TaskGroup to end it after a clean shutdown."""


def rtu_frame_gap(bus: RtuBus) -> float:
    """3.5 character times (11 bits each), at least 1.75 ms as the Modbus spec fixes above 19200."""
    return max(3.5 * 11 / bus.baudrate, 0.00175)


class Supervisor:
    """Owns every part of the running supervisor."""

    def __init__(self, cfg: SupervisorConfig, wall: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.wall = wall
        self.storage = Storage(cfg.storage.path)
        self.store = PointStore()
        self.alarms = AlarmManager()
        self.router = CommandRouter(self.storage, wall)
        self.devices = DevicePoints(self.store)
        self.workers: dict[str, BusWorker] = {}
        self.worker_of: dict[str, BusWorker] = {}
        for bus in cfg.bus:
            specs = [
                DeviceSpec(d.id, d.unit, load_profile(d.profile), d.poll_fast_s, d.poll_slow_s)
                for d in cfg.device
                if d.bus == bus.name
            ]
            if isinstance(bus, RtuBus):
                link = ModbusLink(
                    LinkSettings(
                        "rtu",
                        bus.timeout_s,
                        port=bus.port,
                        baudrate=bus.baudrate,
                        parity=bus.parity,
                        stopbits=bus.stopbits,
                    )
                )
                gap = rtu_frame_gap(bus)
            else:
                link = ModbusLink(LinkSettings("tcp", bus.timeout_s, host=bus.host, port=bus.port))
                gap = 0.0
            worker = BusWorker(bus.name, link, specs, self.devices, frame_gap_s=gap)
            self.workers[bus.name] = worker
            for spec in specs:
                self.worker_of[spec.id] = worker

        ignition = next((ln.name for ln in cfg.gpio.line if ln.role == "ignition"), None)
        self.power = PowerSubsystem(
            cfg.power, cfg.vehicle, self.store, self.devices, self.alarms, self.write, wall,
            self.storage, self.emit_event, self._set_gpio, ignition,
        )
        bind_climate(cfg.climate, self.store, self.devices)
        self.gpio = GpioBridge(
            [
                LineSpec(
                    ln.name,
                    ln.pin,
                    ln.direction,
                    ln.active == "high",
                    ln.debounce_ms / 1000,
                    ln.safe_state,
                )
                for ln in cfg.gpio.line
            ],
            cfg.gpio.backend,
            self._on_input,
            cfg.gpio.sim_socket,
        )
        for line in cfg.gpio.line:
            self.store.define(PointDef(f"io/{line.name}", "bool", description=line.label))
        self.lamps = [ln.name for ln in cfg.gpio.line if ln.role == "status_lamp"]

        self.panel: Panel | None = None
        if cfg.panel is not None and cfg.panel.enabled:
            history = History(self.storage, self.store, cfg.panel.history_days * 86400, wall)
            self.panel = Panel(cfg.panel, self.router, self.storage, history,
                               self.panel_hello, self.panel_snapshot)
        self.mqtt = MqttBridge(cfg.mqtt, cfg.vehicle.id, self.storage, self.router, self.snapshot)
        self._register_actions()
        self.store.subscribe(self._on_point)
        self.devices.on_health(self._on_health)
        self.alarms.subscribe(self._on_alarm)
        self.router.on_audit(self._on_audit)
        self.state = "ready"
        self._last_progress: dict[str, tuple[int, float]] = {}

    # ---- outputs ---------------------------------------------------------------------

    async def write(self, device: str, register: str, value: Value) -> Value | None:
        """Write a device register through its bus worker and return the read-back."""
        return await self.worker_of[device].write(device, register, value)

    async def apply_safe_states(self, why: str) -> None:
        """Drive every bus output to its declared safe state and confirm it by read-back."""
        outputs = self.power.safe_outputs()
        results = await asyncio.gather(
            *(self.write(dev, reg, value) for dev, reg, value in outputs),
            return_exceptions=True,
        )
        for (dev, reg, value), res in zip(outputs, results, strict=True):
            if isinstance(res, BaseException) or res != value:
                log.error(
                    "safe_state_not_confirmed",
                    why=why,
                    device=dev,
                    register=reg,
                    wanted=value,
                    result=str(res),
                )
        log.info("safe_states_applied", why=why, outputs=len(outputs))

    # ---- actions ----------------------------------------------------------------------

    def _register_actions(self) -> None:
        self.power.actions(self.router)
        self.router.register(
            ActionSpec(
                "system/republish",
                self._republish,
                ALL_ROLES,
                {},
                "Republish every retained topic (status, meta, state, devices, alarms)",
            )
        )
        self.router.register(
            ActionSpec(
                "alarm/ack",
                self._ack,
                CREW_ROLES,
                {"alarm": ArgSpec("string", description="alarm id, e.g. power/low_soc")},
                "Acknowledge an alarm",
            )
        )

    async def _republish(self, args: dict[str, Any]) -> str:
        self.mqtt.request_republish()
        return "republishing"

    async def _ack(self, args: dict[str, Any]) -> str:
        if not self.alarms.ack(args["alarm"]):
            raise CommandFailed("no_such_alarm", f"no shown alarm {args['alarm']!r}", "rejected")
        return f"{args['alarm']} acknowledged"

    # ---- listeners ----------------------------------------------------------------------

    def _on_point(self, pdef: PointDef, pv: PointValue) -> None:
        self.mqtt.retain(f"state/{pdef.id}", self._state_payload(pv))
        if self.panel is not None:
            self.panel.broadcast({"type": "point", "id": pdef.id, **pv.as_dict()})

    @staticmethod
    def _state_payload(pv: PointValue) -> bytes:
        return dumps({"v": pv.value, "q": pv.quality, "ts": iso(pv.ts)})

    def emit_event(self, data: dict[str, Any]) -> None:
        """An event for the log, the SQLite event table and the MQTT ``event`` topic."""
        now = self.wall()
        event = {**data, "ts": iso(now)}
        self.storage.add_event(now, str(data.get("kind", "event")), event)
        self.mqtt.event(event)

    def _set_gpio(self, name: str, active: bool) -> None:
        if self.gpio.output(name) != active:
            self.gpio.set_output(name, active)
        self.store.update(f"io/{name}", active, self.wall())

    def _on_input(self, name: str, active: bool) -> None:
        self.store.update(f"io/{name}", active, self.wall())

    def _on_health(self, device: str, status: dict[str, Any]) -> None:
        self.mqtt.retain(f"device/{device}/status", self._device_payload(status))
        if self.panel is not None:
            self.panel.broadcast({"type": "device", "id": device, "status": status})
        self._update_state()

    @staticmethod
    def _device_payload(status: dict[str, Any]) -> bytes:
        return dumps({**status, "last_ok": iso(status.get("last_ok"))})

    def _on_alarm(self, adef: AlarmDef, state: AlarmState | None, what: str) -> None:
        payload = b"" if state is None else self._alarm_payload(adef, state)
        self.mqtt.retain(f"alarm/{adef.id}", payload)
        if self.panel is not None:
            self.panel.broadcast({"type": "alarm", "id": adef.id,
                                  "alarm": None if state is None else state.as_dict(adef)})
        self.emit_event({"kind": "alarm", "alarm": adef.id, "what": what,
                         "severity": adef.severity, "text": adef.text_en,
                         "text_pl": adef.text_pl, "detail": "" if state is None else state.detail})
        self._drive_lamps()

    @staticmethod
    def _alarm_payload(adef: AlarmDef, state: AlarmState) -> bytes:
        return dumps({**state.as_dict(adef), "since": iso(state.since)})

    def _on_audit(self, result: Result, role: str, source: str, args: dict[str, Any]) -> None:
        now = self.wall()
        event = {
            "kind": "command",
            "action": result.action,
            "args": args,
            "role": role,
            "source": source,
            **result.as_dict(),
            "ts": iso(now),
        }
        self.mqtt.event(event)

    def _update_state(self) -> None:
        states = [s.get("state") for s in self.devices.status.values()]
        new = "ready" if all(s == "online" for s in states) else "degraded"
        if new != self.state:
            self.state = new
            log.info("supervisor_state", state=new)
            self.mqtt.retain("status", self._status_payload())
            if self.panel is not None:
                self.panel.broadcast({"type": "status", "state": new})

    def _drive_lamps(self) -> None:
        ok = not self.alarms.active("critical")
        for lamp in self.lamps:
            self.gpio.set_output(lamp, ok)

    # ---- MQTT snapshot ------------------------------------------------------------------

    def _status_payload(self, state: str | None = None) -> bytes:
        return dumps(
            {
                "state": state or self.state,
                "session": self.mqtt.session,
                "version": VERSION,
                "ts": iso(self.wall()),
            }
        )

    def meta(self) -> dict[str, Any]:
        return {
            "vehicle": self.cfg.vehicle.id,
            "name": self.cfg.vehicle.name,
            "version": VERSION,
            "points": [p.meta() for p in self.store.defs.values()],
            "actions": self.router.meta(),
            "alarms": [
                {
                    "id": a.id,
                    "severity": a.severity,
                    "text": a.text_en,
                    "text_pl": a.text_pl,
                    "latching": a.latching,
                }
                for a in self.alarms.defs.values()
            ],
            "devices": [
                {"id": d.id, "profile": d.profile, "bus": d.bus, "unit": d.unit, "label": d.label}
                for d in self.cfg.device
            ],
        }

    def panel_hello(self) -> dict[str, Any]:
        return {"vehicle": {"id": self.cfg.vehicle.id, "name": self.cfg.vehicle.name},
                "meta": self.meta()}

    def panel_snapshot(self) -> dict[str, Any]:
        """Everything a freshly opened panel page needs, with epoch-second timestamps."""
        return {
            "points": {pid: pv.as_dict() for pid, pv in self.store.values.items()},
            "alarms": {aid: st.as_dict(self.alarms.defs[aid])
                       for aid, st in self.alarms.states.items()},
            "devices": self.devices.status,
            "status": {"state": self.state, "version": VERSION},
        }

    def snapshot(self) -> dict[str, bytes]:
        """Every retained topic with its current payload, for a (re)publish."""
        out = {"status": self._status_payload(), "meta": dumps(self.meta())}
        for pid, pv in self.store.values.items():
            out[f"state/{pid}"] = self._state_payload(pv)
        for dev, status in self.devices.status.items():
            out[f"device/{dev}/status"] = self._device_payload(status)
        for aid, state in self.alarms.states.items():
            out[f"alarm/{aid}"] = self._alarm_payload(self.alarms.defs[aid], state)
        return out

    # ---- running -----------------------------------------------------------------------

    async def _ticker(self) -> None:
        """Once a second: age points, time-based rules, the systemd watchdog."""
        ping_every = watchdog_interval()
        last_ping = last_refresh = 0.0
        while True:
            now = self.wall()
            self.store.sweep(now)
            mono = time.monotonic()
            if mono - last_refresh >= DEVICE_STATUS_REFRESH_S:
                self._refresh_device_status()
                last_refresh = mono
            if ping_every is not None and mono - last_ping >= ping_every and self._workers_alive():
                notify("WATCHDOG=1")
                last_ping = mono
            await asyncio.sleep(TICK_S)  # the tick period

    def _refresh_device_status(self) -> None:
        """Publish health counts and last_ok between transitions (transitions go at once)."""
        for device, worker in self.worker_of.items():
            snapshot = worker.health(device).snapshot()
            if device in self.devices.status and snapshot != self.devices.status[device]:
                self.devices.health(device, snapshot)

    def _workers_alive(self) -> bool:
        """True while every bus worker keeps turning its loop (a hung worker stops the pings)."""
        mono = time.monotonic()
        alive = True
        for name, worker in self.workers.items():
            count, since = self._last_progress.get(name, (-1, mono))
            if worker.progress != count:
                self._last_progress[name] = (worker.progress, mono)
            elif mono - since > WORKER_STALL_S:
                alive = False
        return alive

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT, then shut down cleanly."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.gpio.open(loop)
        try:
            async with asyncio.TaskGroup() as tg:
                for name, worker in self.workers.items():
                    tg.create_task(supervised(f"bus:{name}", worker.run), name=f"bus:{name}")
                tg.create_task(supervised("gpio", self.gpio.run), name="gpio")
                tg.create_task(supervised("mqtt", self.mqtt.run), name="mqtt")
                tg.create_task(supervised("ticker", self._ticker), name="ticker")
                if self.panel is not None:
                    tg.create_task(supervised("panel", self.panel.run), name="panel")
                # READY once the outputs are confirmed in their safe states (or given up on)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.apply_safe_states("start"), SAFE_STATE_TIMEOUT_S)
                tg.create_task(self.power.apply_settings(), name="settings")
                # then the crew's circuits come on, staggered (start-up sequencing)
                power = tg.create_task(supervised("power", self.power.run), name="power")
                self._drive_lamps()
                notify("READY=1")
                log.info(
                    "supervisor_ready",
                    vehicle=self.cfg.vehicle.id,
                    version=VERSION,
                    buses=len(self.workers),
                    devices=len(self.worker_of),
                )
                await stop.wait()
                notify("STOPPING=1")
                log.info("supervisor_stopping")
                power.cancel()  # nothing may switch a circuit back on from here
                self.gpio.apply_safe_states()
                await asyncio.wait_for(self.apply_safe_states("shutdown"), SAFE_STATE_TIMEOUT_S)
                self.mqtt.retain("status", self._status_payload("offline"))
                await self.mqtt.flush(2.0)
                raise _Shutdown
        except* _Shutdown:
            pass
        finally:
            self.gpio.close()
            self.storage.close()
            log.info("supervisor_stopped")


async def supervised(name: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` forever, restarting it with backoff if it fails; cancellation ends it."""
    delay = 0.5
    while True:
        try:
            await work()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task_failed", task=name, restart_in_s=delay)
        await asyncio.sleep(delay)  # restart backoff
        delay = min(delay * 2, RESTART_BACKOFF_MAX_S)


def main(argv: list[str] | None = None) -> int:
    """``mcw-supervisor --config FILE``: run the daemon (exit 2 on a bad config)."""
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
    asyncio.run(_serve(cfg))
    return 0


async def _serve(cfg: SupervisorConfig) -> None:
    # built inside the loop: the Modbus clients bind to the running loop
    await Supervisor(cfg).run()


if __name__ == "__main__":
    sys.exit(main())
