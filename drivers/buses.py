"""Buses and devices as a vehicle config declares them, and the bus workers built from them.

The schemas here are the ``[[bus]]`` and ``[[device]]`` sections of the vehicle config; the
supervisor, the simulator and the tests build their Modbus links and bus workers with
:func:`build_workers`, so a bus is set up the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.bus_worker import BusWorker, DeviceSpec, ReadingSink
from drivers.modbus_link import LinkSettings, ModbusLink
from drivers.profile import Profile, load_profile, load_profile_file

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
B = TypeVar("B", bound="TcpBus | RtuBus")


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
    # Set, a device's answer timeout adapts to its measured latency (5x) between this and
    # timeout_s: a unit that stops answering is known sooner and costs the bus less (a
    # Victron GX answers in a few ms). Unset: always timeout_s.
    timeout_min_s: float | None = Field(default=None, gt=0, le=30)

    @model_validator(mode="after")
    def _bounds(self) -> TcpBus:
        return _timeout_bounds(self)


class RtuBus(Strict):
    name: Name
    type: Literal["rtu"]
    port: str = Field(min_length=1, max_length=255)
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(default=0.3, gt=0, le=10)
    timeout_min_s: float | None = Field(default=None, gt=0, le=10)  # as for TcpBus

    @model_validator(mode="after")
    def _bounds(self) -> RtuBus:
        return _timeout_bounds(self)


def _timeout_bounds(bus: B) -> B:
    if bus.timeout_min_s is not None and bus.timeout_min_s > bus.timeout_s:
        raise ValueError("timeout_min_s must not be above timeout_s")
    return bus


Bus = Annotated[TcpBus | RtuBus, Field(discriminator="type")]


class DeviceConfig(Strict):
    id: Name
    # a shipped profile by name, or a van builder's profile file (relative paths: from the
    # vehicle config file's folder); exactly one of them
    profile: str | None = Field(default=None, pattern=r"^[a-z0-9_]+$", max_length=64)
    profile_file: Path | None = None
    # its registers as points device/{id}/{register}, and its writable ones as the technician
    # action device/{id}/write; by default for a profile file (nothing else uses its
    # registers), not for a shipped profile (the subsystems publish those in their terms)
    expose: bool | None = None
    bus: Name
    unit: int = Field(ge=0, le=247)
    label: str = Field(default="", max_length=80)
    poll_fast_s: float = Field(default=1.0, ge=0.05, le=3600)
    poll_slow_s: float = Field(default=5.0, ge=0.05, le=3600)

    @model_validator(mode="after")
    def _one_profile(self) -> DeviceConfig:
        if (self.profile is None) == (self.profile_file is None):
            raise ValueError("give either profile (a shipped one) or profile_file, not both")
        return self

    def load_profile(self) -> Profile:
        """The device's profile (ProfileError if it cannot be loaded)."""
        if self.profile_file is not None:
            return load_profile_file(self.profile_file)
        assert self.profile is not None
        return load_profile(self.profile)

    @property
    def exposed(self) -> bool:
        """Whether its registers are points and its writable ones a technician action."""
        return self.expose if self.expose is not None else self.profile_file is not None

    @property
    def profile_name(self) -> str:
        return self.profile or str(self.profile_file)


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
    return DeviceSpec(dev.id, dev.unit, dev.load_profile(), dev.poll_fast_s, dev.poll_slow_s)


def build_workers(buses: Sequence[TcpBus | RtuBus], devices: Sequence[DeviceConfig],
                  sink: ReadingSink, **options: Any) -> dict[str, BusWorker]:
    """One bus worker per configured bus, each with the devices configured on it
    (``options`` go to every :class:`BusWorker`, e.g. ``retry_unsupported_s``)."""
    workers: dict[str, BusWorker] = {}
    for bus in buses:
        specs = [device_spec(d) for d in devices if d.bus == bus.name]
        gap = rtu_frame_gap(bus) if isinstance(bus, RtuBus) else 0.0
        workers[bus.name] = BusWorker(bus.name, link_for(bus), specs, sink, frame_gap_s=gap,
                                      timeout_min_s=bus.timeout_min_s, **options)
    return workers


def worker_of_device(workers: Mapping[str, BusWorker]) -> dict[str, BusWorker]:
    """Each device's bus worker, by device id."""
    return {d: w for w in workers.values() for d in w.device_ids}
