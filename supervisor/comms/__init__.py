"""Comms: where the van is (the GPS), the mobile link (the LTE router, a modem), the path to HQ."""

from supervisor.comms.config import CommsConfig, check_comms
from supervisor.comms.subsystem import build
from supervisor.core.subsystem import SubsystemSpec

COMMS = SubsystemSpec("comms", CommsConfig, build, check_comms)
