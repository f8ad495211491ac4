"""A technician's diagnostic actions, over MQTT (so a technician at HQ can use them too) and
from ``mcwctl``: ``diag/read`` reads a register by name or any registers by address;
``diag/write`` writes a register of the device's profile, within the profile's limits, or
with ``dry_run`` only shows the frame it would send. Both go through the bus worker, between
its polls (it stays the bus's only master). ``diag/bundle`` makes a support bundle on the
van's disk. All are technician only and audited like every command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from drivers.bus_worker import BusWorker
from drivers.buses import worker_of_device
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
MAX_BUNDLE_EVENTS = 100_000  # events a bundle may hold
BUNDLES_KEPT = 3  # on the van's card, the newest; older ones are removed


def register_diagnostics(van: VanState, workers: Mapping[str, BusWorker]) -> None:
    """Register ``diag/read`` and ``diag/write`` for the devices on the bus workers."""
    worker_of = worker_of_device(workers)
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


def register_bundle_action(van: VanState, config: Path) -> None:
    """``diag/bundle`` (technician): make a bundle on the van's disk, beside its database
    (``bundles/``, the newest BUNDLES_KEPT kept), and answer with its summary, for a
    technician at HQ who cannot run ``mcwctl`` in the van."""
    folder = van.cfg.storage.path.parent / "bundles"

    async def make(args: dict[str, Any]) -> str:
        # loaded when a bundle is asked for: the bundle's code (an archive writer, mcwctl's
        # history reader and its terminal tables) is not held in the daemon's memory
        from supervisor.interfaces.support_bundle import BundleError, make_bundle, summary

        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            path = await make_bundle(config, folder, events=int(args.get("events", 1000)),
                                     own_state=van.retained())
            found = await asyncio.to_thread(summary, path)
        except (OSError, BundleError) as exc:
            raise CommandFailed("bundle_failed", str(exc)[:300]) from exc
        for old in sorted(folder.glob("mcw-bundle-*.tar.gz"))[:-BUNDLES_KEPT]:
            old.unlink(missing_ok=True)
        devices = ", ".join(f"{n} {s}" for s, n in sorted((found["devices"] or {}).items()))
        return (f"{path.name}: {found['bytes']} bytes; devices: {devices or 'not read'}; "
                f"active alarms: {found['alarms_active']}; events: {found['events']}"
                + (f"; left out: {', '.join(found['left_out'])}" if found["left_out"] else ""))

    van.router.register(ActionSpec(
        "diag/bundle", make, TECHNICIAN,
        {"events": ArgSpec("integer", required=False, min=1, max=MAX_BUNDLE_EVENTS)},
        "Technician: make a support bundle on the van's disk and tell what is in it"))


def _register(profile: Profile, device: str, name: str) -> Register:
    try:
        return profile.get(name)
    except KeyError:
        raise CommandFailed("unknown_register", f"{device} ({profile.name}) has no register "
                                                f"{name!r}", "rejected") from None
