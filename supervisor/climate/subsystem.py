"""Climate subsystem, first slice: room temperature and humidity from the configured sensors."""

from __future__ import annotations

import asyncio

from supervisor.climate.config import ClimateConfig
from supervisor.core.subsystem import Context

# (sensor register, point suffix, deadband, precision)
SENSOR_POINTS = [("temperature", "temperature", 0.1, 1), ("humidity", "humidity", 0.5, 0)]


class ClimateSubsystem:
    """Defines ``climate/<sensor>/temperature`` and ``.../humidity``; no control yet."""

    def __init__(self, ctx: Context, cfg: ClimateConfig) -> None:
        self.ctx = ctx
        for sensor in cfg.sensor:
            for register, suffix, deadband, precision in SENSOR_POINTS:
                ctx.devices.bind(sensor.device, register, f"climate/{sensor.name}/{suffix}",
                                 deadband=deadband, precision=precision)

    async def run(self) -> None:
        """Nothing to control yet; beats so the watchdog sees the subsystem alive."""
        while True:
            self.ctx.heartbeat.beat()
            await asyncio.sleep(1.0)  # the heartbeat period of an idle subsystem

    def stop(self) -> None:
        """No outputs yet."""


def build(ctx: Context, cfg: ClimateConfig) -> ClimateSubsystem:
    """The registry's entry point (see supervisor/registry.py)."""
    return ClimateSubsystem(ctx, cfg)
