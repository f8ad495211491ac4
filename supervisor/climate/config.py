"""The ``[climate]`` section of the vehicle config: its schema and its cross-checks."""

from __future__ import annotations

from supervisor.core.config import Checker, Name, Strict


class ClimateSensor(Strict):
    name: Name
    device: Name


class ClimateConfig(Strict):
    sensor: tuple[ClimateSensor, ...] = ()


def check_climate(cfg: ClimateConfig, chk: Checker) -> None:
    """Every sensor names a configured device."""
    for i, sensor in enumerate(cfg.sensor):
        chk.device(f"sensor[{i}].device", sensor.device)
