"""Lighting: relay circuits and dimmers, scenes, auto-off, the driving interlock."""

from supervisor.core.subsystem import SubsystemSpec
from supervisor.lighting.config import LightingConfig, check_lighting
from supervisor.lighting.subsystem import build

LIGHTING = SubsystemSpec("lighting", LightingConfig, build, check_lighting)
