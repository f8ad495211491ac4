"""Comms: the GPS receiver, the LTE router and/or modem, the path to HQ, and the van's
position.

GPS points: ``comms/gps/state`` (``fix``; ``no_fix``: the receiver talks but has no fix;
``offline``: not a valid sentence for ``gps.stale_s``), ``comms/gps/satellites``,
``comms/gps/speed_kmh``.

The mobile link, one model whichever device tells it: ``comms/lte/signal_dbm``,
``operator``, ``network_type``, ``registration`` come from the router's Modbus TCP server
(``[comms.router]``) or from a modem on AT commands (``[comms.modem]``, drivers/quectel_at.py;
the same texts as the router's: "Registered, home", "LTE"). With both, the router feeds them
while it answers and the modem while the router is offline: the router is the van's uplink,
the modem its stand-by; ``comms/lte/source`` (``router``, ``modem``, ``none``) says which,
``comms/modem/state`` (``online``, ``degraded``: garbage, a refusal or a silence in its last
round; ``offline``: three rounds in a row, or its port gone) how the modem answers. Only the
router tells ``wan_ip``, ``wan_up`` and ``data_today_mb`` (SIM 1, received and sent).

The position: from the GPS receiver while it has a fresh fix, else from the router's GPS
(``comms/position/source``: ``gps``, ``router`` or ``none``). It goes to MQTT as the config
allows (``comms/position/lat``, ``lon``, rounded to ``position.decimals``); the exact one is
kept on board as the local points ``comms/position/exact_lat`` and ``exact_lon`` (never on
MQTT): the room's panic reads them. With no source the points go stale and keep their last
value and its time (where the van was last seen).

The path to HQ (``[comms.hq_link]``, see link.py): a numbered ping as the point
``comms/hq/ping`` every ``heartbeat_s``, HQ's echo answering with ``comms/pong``;
``comms/hq/state`` (``up``, ``down``, ``unknown``; ``down`` at once when the van broker's
bridge notifies that it dropped: ``comms/bridge/<hq_link.bridge>``), ``comms/hq/rtt_ms``, and
the ``comms/hq_unreachable`` warning while down. The router watchdog (``[comms.router.watchdog]``)
power-cycles a hung router through its relay (``comms/router_power``, a GPIO output, safe:
on): the
``comms/router_power_cycled`` alarm and an event each time, its limits as points
(``comms/watchdog/enabled``, ``cycles_last_hour``); the crew (or a technician) turns it off
and on with ``comms/watchdog``, kept across a restart, and so are the times of the last
hour's cycles (on the card before the relay moves), so its hourly limit holds across
restarts. A van with a modem and no router has no watchdog: resetting the modem
(``AT+CFUN=1,1``) would pull its USB ports from under the connection manager that owns its
data session, which has its own recovery.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from drivers.gps import NmeaGps
from drivers.quectel_at import QuectelModem
from supervisor.comms.config import CommsConfig
from supervisor.comms.link import HOUR_S, LINK_STATES, HqLink, Power, RouterWatchdog
from supervisor.comms.router import MIN_SATELLITES, RouterGps, dotted
from supervisor.core.alarms import AlarmDef
from supervisor.core.commands import ON_BOARD, ActionSpec, ArgSpec
from supervisor.core.outputs import OutputDef
from supervisor.core.points import PointDef, PointType
from supervisor.core.subsystem import Context

LOOP_S = 1.0
GPS_STATES = ("fix", "no_fix", "offline")
SOURCES = ("gps", "router", "none")
EXACT = ("comms/position/exact_lat", "comms/position/exact_lon")
ROUNDED = ("comms/position/lat", "comms/position/lon")
ROUTER_SATELLITES = "comms/lte/gps_satellites"
AXES = ("Latitude", "Longitude")
ROUTER_POWER = "comms/router_power"
CYCLES_KEY = "watchdog_cycles"  # the setting with the wall times of the last hour's cycles
MODEM_STATES = ("online", "degraded", "offline")
LTE_SOURCES = ("router", "modem", "none")
# The mobile link's points, whichever device feeds them: type, unit, deadband, description
# (the types and units are the router's profile's: tests/test_comms_subsystem.py checks)
LTE_POINTS: dict[str, tuple[PointType, str, float, str]] = {
    "signal_dbm": ("number", "dBm", 2, "Mobile signal (RSSI)"),
    "operator": ("string", "", 0, "Mobile operator"),
    "network_type": ("string", "", 0, "Network type"),
    "registration": ("string", "", 0, "Network registration"),
}

HQ_UNREACHABLE = AlarmDef("comms/hq_unreachable", "warning", "Brak łączności z centralą",
                          "HQ unreachable")
ROUTER_CYCLED = AlarmDef("comms/router_power_cycled", "warning",
                         "Router LTE zrestartowany (brak łączności z centralą)",
                         "LTE router power-cycled (HQ unreachable)", latching=True)


class CommsSubsystem:
    def __init__(self, ctx: Context, cfg: CommsConfig) -> None:
        self.ctx, self.cfg = ctx, cfg
        self.store = ctx.points
        self._mono, self._wall = ctx.clock.monotonic, ctx.clock.wall
        self.wake = asyncio.Event()
        self.gps = None if cfg.gps is None else NmeaGps(
            str(cfg.gps.port), cfg.gps.baudrate, on_change=self.wake.set,
            monotonic=self._mono)
        self.router_gps = None if cfg.router is None else RouterGps(cfg.router.gps_byte_order)
        modem = cfg.modem
        self.modem = None if modem is None else QuectelModem(
            str(modem.port), modem.baudrate, poll_s=modem.poll_s, timeout_s=modem.timeout_s,
            on_change=self.wake.set, monotonic=self._mono, wall=self._wall)
        self._shown: tuple[float, float, float] | None = None  # lat, lon, ts put last
        self.actuator = ctx.actuator()
        hq = cfg.hq_link
        self.link = None if hq is None else HqLink(hq.heartbeat_s, hq.down_after_s,
                                                   self._mono())
        self._bridge_point = None if hq is None or hq.bridge is None else \
            f"comms/bridge/{hq.bridge}"
        dog = cfg.router.watchdog if cfg.router is not None else None
        self.watchdog = None if dog is None else RouterWatchdog(
            dog.after_s, dog.off_s, dog.max_per_hour,
            enabled=bool(ctx.settings.get("watchdog_enabled", True)),
            cycles=self._stored_cycles())
        self._define()
        self._define_link()

    def _define(self) -> None:
        define = self.store.define
        if self.gps is not None:
            define(PointDef("comms/gps/state", "enum", "", "GPS receiver",
                            enum=GPS_STATES, enum_set="gps_state"))
            define(PointDef("comms/gps/satellites", "integer", "", "Satellites in use"))
            define(PointDef("comms/gps/speed_kmh", "number", "km/h", "Speed over ground",
                            deadband=1.0, precision=0))
        if self.cfg.router is not None:
            self._define_router(self.cfg.router.device)
        self._define_lte()
        if self.gps is None and self.cfg.router is None:
            return
        define(PointDef("comms/position/source", "enum", "", "Where the position comes from",
                        enum=SOURCES, enum_set="position_source"))
        for pid, axis in zip(EXACT, AXES, strict=True):
            define(PointDef(pid, "number", "°", f"{axis} (exact, kept on board)",
                            precision=6, local=True))
        if self.cfg.position.publish:
            decimals = self.cfg.position.decimals
            for pid, axis in zip(ROUNDED, AXES, strict=True):
                define(PointDef(pid, "number", "°", f"{axis} ({decimals} decimals)",
                                precision=decimals))

    def _define_link(self) -> None:
        define, reg = self.store.define, self.ctx.actions.register
        if self.link is not None:
            define(PointDef("comms/hq/ping", "integer", "", "Ping to HQ (its number)"))
            define(PointDef("comms/hq/state", "enum", "", "The path to HQ, end to end",
                            enum=LINK_STATES, enum_set="hq_link"))
            define(PointDef("comms/hq/rtt_ms", "number", "ms", "Round trip to HQ",
                            deadband=50, precision=0))
            if self._bridge_point is not None:
                define(PointDef(self._bridge_point, "bool", "",
                                "The van broker's bridge to HQ is connected"))
            self.ctx.alarms.define(HQ_UNREACHABLE)
            reg(ActionSpec("comms/pong", self._pong_action, frozenset({"hq"}),
                           {"seq": ArgSpec("integer", min=1, max=2**53)},
                           "HQ's echo of a ping", event=False))
        dog = self.cfg.router.watchdog if self.cfg.router is not None else None
        if dog is not None:
            # not in the self-test: switching it off reboots the router (the link HQ may use)
            self.ctx.outputs.declare(OutputDef(ROUTER_POWER, True, line=dog.power_line,
                                               self_test=False))
            define(PointDef("comms/watchdog/enabled", "bool", "",
                            "The router watchdog may power-cycle it"))
            define(PointDef("comms/watchdog/cycles_last_hour", "integer", "",
                            "Router power cycles in the last hour"))
            self.ctx.alarms.define(ROUTER_CYCLED)
            reg(ActionSpec("comms/watchdog", self._watchdog_action, ON_BOARD,
                           {"enabled": ArgSpec("bool")},
                           "Let the watchdog power-cycle a hung LTE router, or not"))

    def _define_lte(self) -> None:
        """The mobile link's points: bound to the router's registers when it alone tells
        them; with a modem, defined here (stale after the modem's ``stale_s``) and fed by
        the router as well when there is one."""
        router, modem = self.cfg.router, self.cfg.modem
        for key, (kind, unit, deadband, description) in LTE_POINTS.items():
            pid = f"comms/lte/{key}"
            if modem is None:
                if router is not None:
                    self.ctx.devices.bind(router.device, key, pid, deadband=deadband,
                                          description=description)
                continue
            self.store.define(PointDef(pid, kind, unit, description, deadband=deadband,
                                       max_age_s=modem.stale_s))
            if router is not None:
                self.ctx.devices.follow(router.device, key, pid)
        if modem is not None:
            self.store.define(PointDef("comms/modem/state", "enum", "", "LTE modem",
                                       enum=MODEM_STATES, enum_set="modem_state"))
            self.store.define(PointDef("comms/lte/source", "enum", "",
                                       "Where the mobile link's data come from",
                                       enum=LTE_SOURCES, enum_set="lte_source"))

    def _define_router(self, router: str) -> None:
        bind, define, follow = self.ctx.devices.bind, self.store.define, self.ctx.devices.follow
        bind(router, "gps_satellites", ROUTER_SATELLITES, description="Router GPS satellites")
        define(PointDef("comms/lte/wan_ip", "string", "", "WAN address (0.0.0.0: down)"))
        follow(router, "wan_ip", "comms/lte/wan_ip", dotted)
        define(PointDef("comms/lte/wan_up", "bool", "", "The router's WAN is up"))
        follow(router, "wan_ip", "comms/lte/wan_up", lambda v: v != 0)
        define(PointDef("comms/lte/data_today_mb", "number", "MB", "Mobile data today (SIM 1)",
                        deadband=0.5, precision=1))

    async def run(self) -> None:
        """Listen to the receiver; judge the position every second and at every sentence."""
        async with asyncio.TaskGroup() as tg:
            if self.gps is not None:
                tg.create_task(self.gps.run(), name="gps")
            if self.modem is not None:
                tg.create_task(self.modem.run(), name="modem")
            await self.ctx.turns(self.wake, self.tick)

    async def tick(self) -> float:
        """One turn: the points, the path to HQ, the outputs; seconds until the next turn."""
        self.step()
        if self.link_step() == "cut":
            # the cycle on the card before the relay moves: a supervisor that crashes and
            # restarts meanwhile still counts it
            await self.ctx.settings.durable()
        await self.actuator.step()
        if self.link is None:
            return LOOP_S
        return min(LOOP_S, self.link.next_wake(self._mono()))

    def link_step(self) -> Power | None:
        """Ping HQ when due, judge the path, and let the watchdog act on the router (what it
        does to the router's power is returned)."""
        link = self.link
        if link is None:
            return None
        now, wall = self._mono(), self._wall()
        seq = link.ping_due(now)
        if seq is not None:
            self.store.update("comms/hq/ping", seq, wall)
        bridge = self.store.good(self._bridge_point) if self._bridge_point else None
        state = link.state(now, bridge if isinstance(bridge, bool) else None)
        self.store.update("comms/hq/state", state, wall)
        if link.rtt_s is not None:
            self.store.update("comms/hq/rtt_ms", link.rtt_s * 1000, wall)
        self.ctx.alarms.set(HQ_UNREACHABLE.id, state == "down", wall)
        dog = self.watchdog
        if dog is None or self.cfg.router is None:
            return None
        wan = self.store.good("comms/lte/wan_up")
        action = dog.step(now, state, wan if isinstance(wan, bool) else None)
        if action == "cut":
            self.ctx.settings.put(CYCLES_KEY, [wall - (now - cut) for cut in dog.cycles])
            self.ctx.alarms.set(ROUTER_CYCLED.id, True, wall, dog.reason)
            self.ctx.event({"kind": "comms", "what": "router_power_cycle", "reason": dog.reason,
                            "cycle": len(dog.cycles)})
            self.ctx.log.warning("router_power_cycle", reason=dog.reason)
        self.actuator.want(ROUTER_POWER, not dog.cutting)
        if action == "restore":
            self.ctx.alarms.set(ROUTER_CYCLED.id, False, wall)
        self.store.update("comms/watchdog/enabled", dog.enabled, wall)
        self.store.update("comms/watchdog/cycles_last_hour", len(dog.cycles), wall)
        return action

    def _stored_cycles(self) -> list[float]:
        """The last hour's power cycles from the disk as monotonic times. They are stored as
        wall times (monotonic time starts again at a boot); one ahead of the clock (set back
        since) counts as now: the limit errs on the side of fewer cycles."""
        stored = self.ctx.settings.get(CYCLES_KEY, [])
        now, wall = self._mono(), self._wall()
        ages = [max(0.0, wall - t) for t in (stored if isinstance(stored, list) else [])
                if isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)]
        return [now - age for age in ages if age < HOUR_S]

    async def _pong_action(self, args: dict[str, Any]) -> str:
        if self.link is None or not self.link.pong(int(args["seq"]), self._mono()):
            return "no such ping outstanding (answered already, or too old)"
        self.wake.set()
        return "pong"

    async def _watchdog_action(self, args: dict[str, Any]) -> str:
        assert self.watchdog is not None
        self.watchdog.enabled = bool(args["enabled"])
        self.ctx.settings.put("watchdog_enabled", self.watchdog.enabled)
        self.ctx.event({"kind": "comms", "what": "watchdog", "enabled": self.watchdog.enabled})
        self.wake.set()
        return "router watchdog on" if self.watchdog.enabled else \
            "router watchdog off: a hung router is not power-cycled"

    def step(self) -> None:
        """The receiver's state, the router's data use, the modem's link and the position on
        the points."""
        wall = self._wall()
        gps_fix = self._gps(wall)
        self._data_use(wall)
        self._lte(wall)
        if self.gps is None and self.cfg.router is None:
            return
        router_fix = self._router_fix()
        source, fix = ("gps", gps_fix) if gps_fix else ("router", router_fix) if router_fix \
            else ("none", None)
        self.store.update("comms/position/source", source, wall)
        position = EXACT + (ROUNDED if self.cfg.position.publish else ())
        if fix is None:
            for pid in position:
                self.store.mark(pid, "stale")
            self._shown = None
            return
        if fix == self._shown:
            return
        self._shown = fix
        lat, lon, ts = fix
        put = self.store.update
        put(EXACT[0], lat, ts)
        put(EXACT[1], lon, ts)
        if self.cfg.position.publish:
            decimals = self.cfg.position.decimals
            put(ROUNDED[0], round(lat, decimals), ts)
            put(ROUNDED[1], round(lon, decimals), ts)

    def _gps(self, wall: float) -> tuple[float, float, float] | None:
        """Put the receiver's state on its points; its fix (lat, lon, wall time) if fresh."""
        gps, cfg = self.gps, self.cfg.gps
        if gps is None or cfg is None:
            return None
        now = self._mono()
        heard = gps.last_heard_at is not None and now - gps.last_heard_at <= cfg.stale_s
        fresh = heard and gps.has_fix and gps.last_fix_at is not None \
            and now - gps.last_fix_at <= cfg.stale_s
        put = self.store.update
        put("comms/gps/state", "fix" if fresh else "no_fix" if heard else "offline", wall)
        if heard:
            put("comms/gps/satellites", gps.satellites, wall)
        fix = gps.fix
        if not fresh or fix is None or gps.last_fix_at is None:
            self.store.mark("comms/gps/speed_kmh", "stale")
            return None
        fixed_at = wall - (now - gps.last_fix_at)
        put("comms/gps/speed_kmh", fix.speed_kmh, fixed_at)
        return fix.lat, fix.lon, fixed_at

    def _router_fix(self) -> tuple[float, float, float] | None:
        """The router's GPS position (lat, lon, reading time) while it has one."""
        if self.cfg.router is None or self.router_gps is None:
            return None
        # the satellites' point is read with the position (one block): its quality and time
        # are the position's
        satellites = self.store.get(ROUTER_SATELLITES)
        if satellites is None or satellites.quality != "good" \
                or not isinstance(satellites.value, int) or satellites.value < MIN_SATELLITES:
            return None
        raw, device = self.ctx.devices.raw, self.cfg.router.device
        position = self.router_gps.position(raw.get((device, "gps_lat_raw")),
                                            raw.get((device, "gps_lon_raw")))
        return None if position is None else (*position, satellites.ts)

    def _lte(self, wall: float) -> None:
        """The modem's state, and its readings on the mobile link's points while the router
        (if any) is offline."""
        modem = self.modem
        if modem is None:
            return
        put = self.store.update
        put("comms/modem/state", modem.health.state, wall)
        router = self.cfg.router
        # no word from the router yet: its first answer is on the way
        router_state = None if router is None else \
            self.ctx.devices.status.get(router.device, {}).get("state", "online")
        source = "router" if router_state not in (None, "offline") else \
            "modem" if modem.health.state != "offline" else "none"
        put("comms/lte/source", source, wall)
        if source == "none":
            for key in LTE_POINTS:
                self.store.mark(f"comms/lte/{key}", "stale")
        if source != "modem":
            return
        now = self._mono()
        for key, reading in modem.readings.items():
            put(f"comms/lte/{key}", reading.value, wall - (now - reading.at))

    def _data_use(self, wall: float) -> None:
        if self.cfg.router is None:
            return
        raw = self.ctx.devices.raw
        device = self.cfg.router.device
        rx, tx = raw.get((device, "sim1_rx_today")), raw.get((device, "sim1_tx_today"))
        if isinstance(rx, int) and isinstance(tx, int):
            self.store.update("comms/lte/data_today_mb", (rx + tx) / 1e6, wall)

    def stop(self) -> None:
        """Nothing to switch: the GPS only listens, the router and the modem are only
        read."""


def build(ctx: Context, cfg: CommsConfig) -> CommsSubsystem:
    """The registry's entry point (see supervisor/registry.py)."""
    return CommsSubsystem(ctx, cfg)
