"""The subsystems this supervisor runs: adding one is a line here and a package beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from supervisor.climate import CLIMATE
from supervisor.comms import COMMS
from supervisor.core import config
from supervisor.core.subsystem import SubsystemSpec
from supervisor.lighting import LIGHTING
from supervisor.power import POWER
from supervisor.room import ROOM

# comms before the room (a panic reads the position); the room before lighting and climate
# (they read its session point)
SUBSYSTEMS: tuple[SubsystemSpec[Any], ...] = (POWER, COMMS, ROOM, CLIMATE, LIGHTING)


def load_config(path: Path | str) -> config.SupervisorConfig:
    """Read and check a vehicle config with every registered subsystem's section."""
    return config.load_config(path, SUBSYSTEMS)
