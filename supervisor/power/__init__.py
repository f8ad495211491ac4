"""Power: battery, inverter/charger, shore, generator, solar and the load circuits."""

from supervisor.core.config import SupervisorConfig
from supervisor.core.subsystem import SubsystemSpec, section
from supervisor.power.config import PowerConfig, check_power
from supervisor.power.subsystem import build

POWER = SubsystemSpec("power", PowerConfig, build, check_power)


def power_config(cfg: SupervisorConfig) -> PowerConfig:
    """The van's [power] section (its defaults when the file has none)."""
    return section(cfg, POWER) or PowerConfig()
