"""The subsystems this supervisor runs: adding one is a line here and a package beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from supervisor.climate import CLIMATE
from supervisor.core import config
from supervisor.core.subsystem import SubsystemSpec
from supervisor.power import POWER

SUBSYSTEMS: tuple[SubsystemSpec[Any], ...] = (POWER, CLIMATE)


def load_config(path: Path | str) -> config.SupervisorConfig:
    """Read and check a vehicle config with every registered subsystem's section."""
    return config.load_config(path, SUBSYSTEMS)
