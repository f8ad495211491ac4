"""A van builder's devices, without code: a ``[[device]]`` whose registers are exposed.

Every readable, polled register becomes the point ``device/{id}/{register}`` (on MQTT, the
panel and ``mcwctl`` like any point, stale when the device stops answering); the writable
ones are written with the technician action ``device/{id}/write`` (``register``, ``value``),
checked against the profile (access, type, write range, enum codes) before anything goes on
the bus, and confirmed by the device's read-back. Every write is audited like any command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from drivers.buses import DeviceConfig
from drivers.errors import WriteError
from drivers.profile import Profile
from drivers.register_codec import Value
from supervisor.core.commands import ActionSpec, ArgSpec, CommandFailed
from supervisor.core.outputs import same_value
from supervisor.core.van_state import VanState

BusWrite = Callable[[str, str, Value], Awaitable[Value | None]]


def expose_devices(van: VanState, write: BusWrite) -> None:
    """Define the points and register the write action of every exposed device."""
    for dev in van.cfg.device:
        if not dev.exposed:
            continue
        profile = dev.load_profile()
        for reg in profile.registers:
            if reg.readable and reg.poll != "never":
                van.devices.bind(dev.id, reg.name, f"device/{dev.id}/{reg.name}",
                                 description=reg.note or dev.label or dev.id)
        writable = tuple(r.name for r in profile.registers if r.writable)
        if writable:
            van.router.register(ActionSpec(
                f"device/{dev.id}/write", _writer(dev, profile, write), frozenset({"technician"}),
                {"register": ArgSpec("enum", enum=writable),
                 "value": ArgSpec("scalar", description="true/false for a bool register")},
                f"Write a register of {dev.label or dev.id} (technician; the profile's limits)"))


def checked_value(profile: Profile, device: str, register: str,
                  value: float | bool) -> float | bool:
    """``value`` as it may be written to ``register`` (a JSON 5.0 for an integer register
    becomes 5); CommandFailed ``out_of_range`` when the profile refuses it (access, type,
    write range, enum codes)."""
    if isinstance(value, float) and value.is_integer() and profile.get(register).scale == 1:
        value = int(value)
    refused = profile.check_write(register, value)
    if refused is not None:
        raise CommandFailed("out_of_range", f"{device}: {refused}", "rejected")
    return value


async def write_confirmed(write: BusWrite, profile: Profile, device: str, register: str,
                          value: float | bool) -> Value | None:
    """Write ``value`` (checked by the profile first) and return the read-back; CommandFailed
    when the write fails or the read-back says something else."""
    value = checked_value(profile, device, register, value)
    try:
        back = await write(device, register, value)
    except WriteError as exc:
        raise CommandFailed(exc.code, f"{device}: {exc}") from exc
    if not same_value(back, value, profile.get(register).scale):
        raise CommandFailed("not_confirmed", f"{device}.{register} reads {back} after "
                                             f"writing {value}")
    return back


def _writer(dev: DeviceConfig, profile: Profile,
            write: BusWrite) -> Callable[[dict[str, Any]], Awaitable[str]]:
    async def handler(args: dict[str, Any]) -> str:
        register = str(args["register"])
        back = await write_confirmed(write, profile, dev.id, register, args["value"])
        return f"{dev.id}.{register} = {back}"
    return handler
