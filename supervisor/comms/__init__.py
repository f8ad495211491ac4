"""Comms: where the van is (the GPS); the LTE router, the modem and the HQ link to come."""

from supervisor.comms.config import CommsConfig, check_comms
from supervisor.comms.subsystem import build
from supervisor.core.subsystem import SubsystemSpec

COMMS = SubsystemSpec("comms", CommsConfig, build, check_comms)
