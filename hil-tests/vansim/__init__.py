"""The simulated MCW van: plant model and device simulators behind real transports.

The real supervisor talks to it over Modbus TCP, Modbus RTU on a pty pair and a GPIO Unix
socket; HIL tests run it in-process and inject faults through :class:`SimulatedVan`.
"""

from vansim.plant import Plant
from vansim.van import SimulatedVan

__all__ = ["Plant", "SimulatedVan"]
