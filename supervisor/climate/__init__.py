"""Climate: temperatures, humidity, heating and cooling of the crew area and the room."""

from supervisor.climate.config import ClimateConfig, check_climate
from supervisor.climate.subsystem import build
from supervisor.core.config import SupervisorConfig
from supervisor.core.subsystem import SubsystemSpec, section

CLIMATE = SubsystemSpec("climate", ClimateConfig, build, check_climate)


def climate_config(cfg: SupervisorConfig) -> ClimateConfig:
    """The van's [climate] section (its defaults when the file has none)."""
    return section(cfg, CLIMATE) or ClimateConfig()
