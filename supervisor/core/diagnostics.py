"""A technician's diagnostic actions on the Modbus devices, over MQTT (so a technician at HQ
can use them too) and from ``mcwctl modbus``: ``diag/read`` reads a register by name or any
registers by address; ``diag/write`` writes a register of the device's profile, within the
profile's limits, or with ``dry_run`` only shows the frame it would send. Both go through the
bus worker, between its polls (it stays the bus's only master), and both are technician
only and audited like every command.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from drivers.bus_worker import BusWorker
from drivers.modbus_frame import frame, write_pdu
from drivers.modbus_link import ModbusError
from drivers.profile import Profile, Register, Table
from drivers.register_codec import CodecError, decode, encode
from supervisor.core.commands import ActionSpec, ArgSpec, CommandFailed
from supervisor.core.exposed_devices import checked_value, write_confirmed
from supervisor.core.van_state import VanState

TECHNICIAN = frozenset({"technician"})
TABLES = ("holding", "input", "coil", "discrete")
MAX_SHOWN = 64  # words or bits listed in a result


def register_diagnostics(van: VanState, workers: Mapping[str, BusWorker]) -> None:
    """Register ``diag/read`` and ``diag/write`` for the devices on the bus workers."""
    worker_of = {d: w for w in workers.values() for d in w.device_ids}
    if not worker_of:
        return
    devices = tuple(sorted(worker_of))
    profiles = {d.id: d.load_profile() for d in van.cfg.device if d.id in worker_of}
    kinds = {d.id: van.cfg.bus_by_name(d.bus).type for d in van.cfg.device if d.id in worker_of}
    units = {d.id: d.unit for d in van.cfg.device}

    async def read(args: dict[str, Any]) -> str:
        device = str(args["device"])
        profile = profiles[device]
        name = args.get("register")
        if name is not None:
            reg = _register(profile, device, str(name))
            table, address, count = reg.table, reg.address, reg.count
        elif "address" in args:
            # the router checked it against TABLES
            table, address = cast(Table, args.get("table", "holding")), int(args["address"])
            count = int(args.get("count", 1))
        else:
            raise CommandFailed("bad_request", "give register, or address (with table, count)",
                                "rejected")
        try:
            words = await worker_of[device].read_raw(device, table, address, count)
        except ModbusError as exc:
            raise CommandFailed(f"bus_{exc.kind}", f"{device}: {exc}") from exc
        shown = " ".join(f"{w}" if table in ("coil", "discrete") else f"0x{w:04x}"
                         for w in words[:MAX_SHOWN]) + (" ..." if len(words) > MAX_SHOWN else "")
        text = f"{device} {table} {address}+{count}: {shown}"
        if name is not None:
            try:
                value = decode(words, reg.type, reg.scale, profile.device.word_order, reg.invalid)
            except CodecError as exc:
                value = f"undecodable ({exc})"
            text += f" = {name} {value!r}{' ' + reg.unit if reg.unit else ''}"
        return text

    async def write(args: dict[str, Any]) -> str:
        device, name, value = str(args["device"]), str(args["register"]), args["value"]
        profile = profiles[device]
        reg = _register(profile, device, name)
        value = checked_value(profile, device, name, value)
        try:
            words = encode(value, reg.type, reg.scale, profile.device.word_order, reg.words)
        except CodecError as exc:
            raise CommandFailed("out_of_range", f"{device}: {exc}", "rejected") from exc
        wire = frame(kinds[device], units[device], write_pdu(reg.table, reg.address, words))
        if args.get("dry_run"):
            return f"dry run, not sent: {device}.{name} = {value!r}: {wire.hex(' ')}"
        back = await write_confirmed(worker_of[device].write, profile, device, name, value)
        return f"{device}.{name} = {value!r} sent ({wire.hex(' ')}), reads back {back!r}"

    van.router.register(ActionSpec(
        "diag/read", read, TECHNICIAN,
        {"device": ArgSpec("enum", enum=devices),
         "register": ArgSpec("string", required=False, description="a name in its profile"),
         "table": ArgSpec("enum", required=False, enum=TABLES),
         "address": ArgSpec("integer", required=False, min=0, max=0xFFFF),
         "count": ArgSpec("integer", required=False, min=1, max=125)},
        "Technician: read a register of a device, by name or by address (raw words)"))
    van.router.register(ActionSpec(
        "diag/write", write, TECHNICIAN,
        {"device": ArgSpec("enum", enum=devices),
         "register": ArgSpec("string", description="a writable register of its profile"),
         "value": ArgSpec("scalar"),
         "dry_run": ArgSpec("bool", required=False,
                            description="only show the frame that would be sent")},
        "Technician: write a register of a device within its profile's limits"))


def _register(profile: Profile, device: str, name: str) -> Register:
    try:
        return profile.get(name)
    except KeyError:
        raise CommandFailed("unknown_register", f"{device} ({profile.name}) has no register "
                                                f"{name!r}", "rejected") from None
