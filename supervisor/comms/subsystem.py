"""Comms: the GPS receiver, the LTE router, and the van's position.

GPS points: ``comms/gps/state`` (``fix``; ``no_fix``: the receiver talks but has no fix;
``offline``: not a valid sentence for ``gps.stale_s``), ``comms/gps/satellites``,
``comms/gps/speed_kmh``.

Router points (its Modbus TCP server): ``comms/lte/signal_dbm``, ``operator``,
``network_type``, ``registration``, ``wan_ip``, ``wan_up``, ``data_today_mb`` (SIM 1,
received and sent).

The position: from the GPS receiver while it has a fresh fix, else from the router's GPS
(``comms/position/source``: ``gps``, ``router`` or ``none``). It goes to MQTT as the config
allows (``comms/position/lat``, ``lon``, rounded to ``position.decimals``); the exact one is
kept on board as the local points ``comms/position/exact_lat`` and ``exact_lon`` (never on
MQTT): the room's panic reads them. With no source the points go stale and keep their last
value and its time (where the van was last seen).
"""

from __future__ import annotations

import asyncio

from drivers.gps import NmeaGps
from supervisor.comms.config import CommsConfig
from supervisor.comms.router import MIN_SATELLITES, RouterGps, dotted
from supervisor.core.points import PointDef
from supervisor.core.subsystem import Context

LOOP_S = 1.0
GPS_STATES = ("fix", "no_fix", "offline")
SOURCES = ("gps", "router", "none")
EXACT = ("comms/position/exact_lat", "comms/position/exact_lon")
ROUNDED = ("comms/position/lat", "comms/position/lon")
ROUTER_SATELLITES = "comms/lte/gps_satellites"
AXES = ("Latitude", "Longitude")


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
        self._shown: tuple[float, float, float] | None = None  # lat, lon, ts put last
        self._define()

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

    def _define_router(self, router: str) -> None:
        bind, define, follow = self.ctx.devices.bind, self.store.define, self.ctx.devices.follow
        bind(router, "signal_dbm", "comms/lte/signal_dbm", deadband=2,
             description="Mobile signal (RSSI)")
        bind(router, "operator", "comms/lte/operator", description="Mobile operator")
        bind(router, "network_type", "comms/lte/network_type", description="Network type")
        bind(router, "registration", "comms/lte/registration",
             description="Network registration")
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
            await self.ctx.turns(self.wake, self._turn)

    async def _turn(self) -> float:
        self.step()
        return LOOP_S

    def step(self) -> None:
        """The receiver's state, the router's data use and the position on the points."""
        wall = self._wall()
        gps_fix = self._gps(wall)
        self._data_use(wall)
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

    def _data_use(self, wall: float) -> None:
        if self.cfg.router is None:
            return
        raw = self.ctx.devices.raw
        device = self.cfg.router.device
        rx, tx = raw.get((device, "sim1_rx_today")), raw.get((device, "sim1_tx_today"))
        if isinstance(rx, int) and isinstance(tx, int):
            self.store.update("comms/lte/data_today_mb", (rx + tx) / 1e6, wall)

    def stop(self) -> None:
        """Nothing to switch: the GPS only listens, the router is only read."""


def build(ctx: Context, cfg: CommsConfig) -> CommsSubsystem:
    """The registry's entry point (see supervisor/registry.py)."""
    return CommsSubsystem(ctx, cfg)
