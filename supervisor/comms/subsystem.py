"""Comms: the GPS receiver and the van's position.

Points: ``comms/gps/state`` (``fix``, ``no_fix``: the receiver talks but has no fix,
``offline``: not a valid sentence for ``gps.stale_s``), ``comms/gps/satellites``, the
position as the config allows it (``comms/position/lat``, ``lon``, rounded to
``position.decimals``) and ``comms/gps/speed_kmh``. The exact position is kept on board as
the local points ``comms/gps/lat`` and ``lon`` (never on MQTT): the room's panic reads them.
A position is good only while the fix is younger than ``stale_s``; after that the points go
stale and keep their last value and its time (where the van was last seen).
"""

from __future__ import annotations

import asyncio

from drivers.gps import NmeaGps
from supervisor.comms.config import CommsConfig
from supervisor.core.points import PointDef
from supervisor.core.subsystem import Context

LOOP_S = 1.0
GPS_STATES = ("fix", "no_fix", "offline")
EXACT = ("comms/gps/lat", "comms/gps/lon")
ROUNDED = ("comms/position/lat", "comms/position/lon")


class CommsSubsystem:
    def __init__(self, ctx: Context, cfg: CommsConfig) -> None:
        self.ctx, self.cfg = ctx, cfg
        self.store = ctx.points
        self._mono, self._wall = ctx.clock.monotonic, ctx.clock.wall
        self.wake = asyncio.Event()
        self.gps = None if cfg.gps is None else NmeaGps(
            str(cfg.gps.port), cfg.gps.baudrate, on_change=self.wake.set,
            monotonic=self._mono)
        self._fix_seen: float | None = None  # the fix last put on the points
        self._define()

    def _define(self) -> None:
        if self.gps is None:
            return
        define = self.store.define
        define(PointDef("comms/gps/state", "enum", "", "GPS receiver",
                        enum=GPS_STATES, enum_set="gps_state"))
        define(PointDef("comms/gps/satellites", "integer", "", "Satellites in use"))
        define(PointDef("comms/gps/speed_kmh", "number", "km/h", "Speed over ground",
                        deadband=1.0, precision=0))
        for pid, axis in zip(EXACT, ("Latitude", "Longitude"), strict=True):
            define(PointDef(pid, "number", "°", f"{axis} (exact, kept on board)",
                            precision=6, local=True))
        if self.cfg.position.publish:
            decimals = self.cfg.position.decimals
            for pid, axis in zip(ROUNDED, ("Latitude", "Longitude"), strict=True):
                define(PointDef(pid, "number", "°", f"{axis} ({decimals} decimals)",
                                precision=decimals))

    async def run(self) -> None:
        """Listen to the receiver; judge the fix every second and at every sentence."""
        async with asyncio.TaskGroup() as tg:
            if self.gps is not None:
                tg.create_task(self.gps.run(), name="gps")
            await self.ctx.turns(self.wake, self._turn)

    async def _turn(self) -> float:
        self.step()
        return LOOP_S

    def step(self) -> None:
        """Put the receiver's state and the position on the points."""
        gps, cfg = self.gps, self.cfg.gps
        if gps is None or cfg is None:
            return
        now, wall = self._mono(), self._wall()
        heard = gps.last_heard_at is not None and now - gps.last_heard_at <= cfg.stale_s
        fresh = heard and gps.has_fix and gps.last_fix_at is not None \
            and now - gps.last_fix_at <= cfg.stale_s
        put = self.store.update
        put("comms/gps/state", "fix" if fresh else "no_fix" if heard else "offline", wall)
        if heard:
            put("comms/gps/satellites", gps.satellites, wall)
        fix = gps.fix
        position = EXACT + (ROUNDED if self.cfg.position.publish else ())
        if fix is not None and fresh and gps.last_fix_at != self._fix_seen:
            self._fix_seen = gps.last_fix_at
            fixed_at = wall - (now - (gps.last_fix_at or now))
            put(EXACT[0], fix.lat, fixed_at)
            put(EXACT[1], fix.lon, fixed_at)
            if self.cfg.position.publish:
                decimals = self.cfg.position.decimals
                put(ROUNDED[0], round(fix.lat, decimals), fixed_at)
                put(ROUNDED[1], round(fix.lon, decimals), fixed_at)
            put("comms/gps/speed_kmh", fix.speed_kmh, fixed_at)
        elif not fresh:
            for pid in (*position, "comms/gps/speed_kmh"):
                self.store.mark(pid, "stale")

    def stop(self) -> None:
        """Nothing to switch: the GPS only listens."""


def build(ctx: Context, cfg: CommsConfig) -> CommsSubsystem:
    """The registry's entry point (see supervisor/registry.py)."""
    return CommsSubsystem(ctx, cfg)
