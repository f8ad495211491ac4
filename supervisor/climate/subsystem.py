"""Climate subsystem, first slice: room temperature and humidity from the configured sensors."""

from __future__ import annotations

from supervisor.core.config import ClimateConfig
from supervisor.core.device_points import DevicePoints
from supervisor.core.points import PointDef, PointStore

SENSOR_MAX_AGE_S = 15.0

# (sensor register, point suffix, unit, deadband)
SENSOR_POINTS = [("temperature", "temperature", "degC", 0.1), ("humidity", "humidity", "%", 0.5)]


def bind_climate(cfg: ClimateConfig, store: PointStore, devices: DevicePoints) -> None:
    """Define ``climate/<sensor>/temperature`` and ``.../humidity`` and bind them."""
    for sensor in cfg.sensor:
        for register, suffix, unit, deadband in SENSOR_POINTS:
            pid = f"climate/{sensor.name}/{suffix}"
            store.define(
                PointDef(pid, "number", unit, deadband=deadband, max_age_s=SENSOR_MAX_AGE_S)
            )
            devices.bind(sensor.device, register, pid)
