"""Buses and devices as a vehicle config declares them, and the bus workers built from them.

The schemas here are the ``[[bus]]`` and ``[[device]]`` sections of the vehicle config; the
supervisor, the simulator and the tests build their Modbus links and bus workers with
:func:`build_workers`, so a bus is set up the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivers.bus_worker import BusWorker, DeviceSpec, ReadingSink
from drivers.modbus_link import LinkSettings, ModbusLink
from drivers.profile import load_profile

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]


class Strict(BaseModel):
    """Base of every config section: unknown keys are refused, values are frozen, numbers
    are finite (a NaN threshold would never trip) and text has no NUL (a path or host with
    one would pass here and fail only at start, with a traceback)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str | Path) and "\0" in str(value):
            raise ValueError("must not contain a NUL character")
        return value


class TcpBus(Strict):
    name: Name
    type: Literal["tcp"]
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=502, ge=1, le=65535)
    timeout_s: float = Field(default=1.0, gt=0, le=30)


class RtuBus(Strict):
    name: Name
    type: Literal["rtu"]
    port: str = Field(min_length=1, max_length=255)
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(default=0.3, gt=0, le=10)


Bus = Annotated[TcpBus | RtuBus, Field(discriminator="type")]


class DeviceConfig(Strict):
    id: Name
    profile: str = Field(pattern=r"^[a-z0-9_]+$", max_length=64)
    bus: Name
    unit: int = Field(ge=0, le=247)
    label: str = Field(default="", max_length=80)
    poll_fast_s: float = Field(default=1.0, ge=0.05, le=3600)
    poll_slow_s: float = Field(default=5.0, ge=0.05, le=3600)


def rtu_frame_gap(bus: RtuBus) -> float:
    """3.5 character times (11 bits each), at least 1.75 ms as the Modbus spec fixes above 19200."""
    return max(3.5 * 11 / bus.baudrate, 0.00175)


def link_for(bus: TcpBus | RtuBus) -> ModbusLink:
    """The Modbus link of one configured bus."""
    if isinstance(bus, RtuBus):
        return ModbusLink(LinkSettings("rtu", bus.timeout_s, port=bus.port, baudrate=bus.baudrate,
                                       parity=bus.parity, stopbits=bus.stopbits))
    return ModbusLink(LinkSettings("tcp", bus.timeout_s, host=bus.host, port=bus.port))


def device_spec(dev: DeviceConfig) -> DeviceSpec:
    """What a bus worker needs to know of one configured device."""
    return DeviceSpec(dev.id, dev.unit, load_profile(dev.profile), dev.poll_fast_s, dev.poll_slow_s)


def build_workers(buses: Sequence[TcpBus | RtuBus], devices: Sequence[DeviceConfig],
                  sink: ReadingSink, **options: Any) -> dict[str, BusWorker]:
    """One bus worker per configured bus, each with the devices configured on it
    (``options`` go to every :class:`BusWorker`, e.g. ``retry_unsupported_s``)."""
    workers: dict[str, BusWorker] = {}
    for bus in buses:
        specs = [device_spec(d) for d in devices if d.bus == bus.name]
        gap = rtu_frame_gap(bus) if isinstance(bus, RtuBus) else 0.0
        workers[bus.name] = BusWorker(bus.name, link_for(bus), specs, sink, frame_gap_s=gap,
                                      **options)
    return workers
