"""The vehicle itself, below every subsystem: GPIO lines as ``io/<name>`` points, the ignition
as ``vehicle/driving``, the supervisor's status lamp and the core actions (acknowledge an
alarm, republish)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor.core.alarms import AlarmDef, AlarmState
from supervisor.core.commands import EVERYONE, ActionSpec, ArgSpec, CommandFailed
from supervisor.core.outputs import GpioOutputs, OutputDef, OutputPort
from supervisor.core.points import PointDef
from supervisor.core.van_state import VanState

STATUS_LAMP = "system/status_lamp"


class GpioPoints:
    """The GPIO lines as the output port sees them; every level also becomes an io/ point."""

    def __init__(self, van: VanState, gpio: GpioOutputs) -> None:
        self.van = van
        self.gpio = gpio
        self._ignition = van.cfg.vehicle.ignition
        for line in van.cfg.gpio.line:
            van.points.define(PointDef(f"io/{line.name}", "bool", description=line.label))
        van.points.define(PointDef("vehicle/driving", "bool", description="Ignition on: driving"))

    def set_output(self, name: str, active: bool) -> None:
        if self.gpio.output(name) != active:
            self.gpio.set_output(name, active)
        self.van.points.update(f"io/{name}", active, self.van.wall())

    def output(self, name: str) -> bool:
        return self.gpio.output(name)

    def on_input(self, name: str, active: bool) -> None:
        """A debounced input level (called on the event loop)."""
        now = self.van.wall()
        self.van.points.update(f"io/{name}", active, now)
        if name == self._ignition:
            self.van.points.update("vehicle/driving", active, now)

    def publish_driving(self) -> None:
        """vehicle/driving is known (false) on a van whose ignition is not wired."""
        if self._ignition is None:
            self.van.points.update("vehicle/driving", False, self.van.wall())


class VehicleCore:
    """Core actions and the status lamp (lit while no critical alarm is active)."""

    def __init__(self, van: VanState, port: OutputPort, republish: Callable[[], None]) -> None:
        self.van = van
        self.port = port
        self._republish = republish
        lamp = van.cfg.vehicle.status_lamp
        if lamp is not None:
            safe = next(ln.safe_state for ln in van.cfg.gpio.line if ln.name == lamp)
            port.declare(OutputDef(STATUS_LAMP, safe, line=lamp))
            van.alarms.changed.add(self._alarm_changed)
        register = van.router.register
        register(ActionSpec("system/republish", self._republish_action, EVERYONE, {},
                            "Republish every retained topic (status, meta, state, devices, "
                            "alarms)"))
        register(ActionSpec("system/events_resend", self._resend_action, frozenset({"hq"}),
                            {"first": ArgSpec("integer", min=1, max=2**53),
                             "last": ArgSpec("integer", min=1, max=2**53)},
                            "HQ asks for the events it missed (numbers first..last) again",
                            event=False))
        register(ActionSpec("alarm/ack", self._ack, EVERYONE,
                            {"alarm": ArgSpec("string", description="alarm id, e.g. "
                                                                    "power/low_soc")},
                            "Acknowledge an alarm"))

    def drive_lamp(self) -> None:
        if STATUS_LAMP in self.port.outputs and not self.port.shutting_down:
            self.port.write_line(STATUS_LAMP, not self.van.alarms.active("critical"))

    def _alarm_changed(self, adef: AlarmDef, state: AlarmState | None, what: str) -> None:
        self.drive_lamp()

    async def _republish_action(self, args: dict[str, Any]) -> str:
        self._republish()
        return "republishing"

    async def _resend_action(self, args: dict[str, Any]) -> str:
        first, last = int(args["first"]), int(args["last"])
        if last < first:
            raise CommandFailed("bad_range", "last is before first", "rejected")
        if self.van.resend is None:
            raise CommandFailed("no_uplink", "this van sends no events to HQ "
                                "(mqtt.uplink_bridge is not set)", "rejected")
        sent = self.van.resend(first, last)
        return f"{sent} events to be sent again"

    async def _ack(self, args: dict[str, Any]) -> str:
        if not self.van.alarms.ack(args["alarm"]):
            raise CommandFailed("no_such_alarm", f"no shown alarm {args['alarm']!r}", "rejected")
        return f"{args['alarm']} acknowledged"
