"""Climate: temperatures, humidity, heating and cooling of the crew area and the room."""

from supervisor.climate.config import ClimateConfig, check_climate
from supervisor.climate.subsystem import build
from supervisor.core.subsystem import SubsystemSpec

CLIMATE = SubsystemSpec("climate", ClimateConfig, build, check_climate)
