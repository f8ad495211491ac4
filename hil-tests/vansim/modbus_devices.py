"""Simulated Modbus devices: a register image per device, filled from the plant.

Each device serves its profile's register map. What the registers hold is data: the table
:data:`DEVICE_MODELS` maps a profile name to a function producing register values from the
plant, to a function applying what the client wrote back to the plant, and to the defaults
of the writable registers. The plant models states and modes by meaning: an enumerated
register serves the code its profile gives the plant's meaning, and a code the client writes
reaches the plant as its meaning (a code the profile does not know changes nothing). Nothing
here knows pymodbus: the server adapter (:mod:`vansim.modbus_server`) turns
:class:`ModbusError` and :class:`Silent` into wire behaviour.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from drivers.buses import DeviceConfig
from drivers.profile import Profile, Register, Table
from drivers.register_codec import CodecError, Value, decode, encode
from supervisor.power.config import Circuit
from vansim.plant import InverterMode, Plant, SolarMode

log = logging.getLogger(__name__)

TABLES: tuple[Table, ...] = ("coil", "discrete", "holding", "input")
WRITABLE_TABLES: frozenset[Table] = frozenset({"coil", "holding"})

# raw limits of the integer register types, to clamp values that do not fit
_RAW_LIMITS: dict[str, tuple[int, int]] = {
    "u16": (0, 0xFFFF),
    "s16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFF_FFFF),
    "s32": (-0x8000_0000, 0x7FFF_FFFF),
}


class ExceptionCode(IntEnum):
    """Modbus exception codes a simulated device may answer with."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SERVER_DEVICE_BUSY = 0x06
    NEGATIVE_ACKNOWLEDGE = 0x07
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_NO_RESPONSE = 0x0B


class ModbusError(Exception):
    """The device answers the request with a Modbus exception."""

    def __init__(self, code: ExceptionCode) -> None:
        super().__init__(f"Modbus exception {code.value} ({code.name})")
        self.code = code


class Silent(Exception):
    """The device does not answer at all (the client times out)."""


class ServedDevice:
    """One simulated device: its profile's registers as raw words, plus fault switches.

    Each table is served over the span from its lowest to its highest register (holes read
    as 0); outside it, and in tables the profile does not use, reads are refused with
    ILLEGAL DATA ADDRESS, as a real device does. Only writable registers can be written.
    A profile with ``align`` > 1 (Eastron meters: 2) refuses, with ILLEGAL DATA ADDRESS too,
    requests whose start address or count is not a multiple of it.
    """

    def __init__(
        self, config: DeviceConfig, profile: Profile, circuits: Sequence[Circuit] = ()
    ) -> None:
        self.config = config
        self.profile = profile
        # the load circuits wired to this device's outputs
        self.circuits: tuple[Circuit, ...] = tuple(circuits)
        self.model = DEVICE_MODELS.get(profile.name, _GENERIC)
        if profile.name not in DEVICE_MODELS:
            log.warning("no behaviour for profile %s: device %s serves zeros", profile.name,
                        config.id)
        self.silent = False
        self.powered = True  # its supply (a relay the supervisor drives): off, it is silent
        self.exception: ExceptionCode | None = None
        # called after every accepted write, so the van can apply it to the plant at once
        self.on_write: Callable[[ServedDevice], None] | None = None
        self.written: list[tuple[Table, int, tuple[int, ...]]] = []  # every accepted write
        self._words: dict[Table, dict[int, int]] = {t: {} for t in TABLES}
        self._spans: dict[Table, tuple[int, int]] = {}
        self._writable: dict[Table, set[int]] = {t: set() for t in TABLES}
        self._overrides: dict[str, Value] = {}
        self._registers: dict[str, Register] = {reg.name: reg for reg in profile.registers}
        for reg in profile.registers:
            lo, hi = self._spans.get(reg.table, (reg.address, reg.end))
            self._spans[reg.table] = (min(lo, reg.address), max(hi, reg.end))
            if reg.writable:
                self._writable[reg.table].update(range(reg.address, reg.end))
        ident = profile.device.identity
        if ident is not None:  # a unit of the right model says so
            answer = ident.equals[0] if ident.equals else ident.min
            self.set_value(ident.name, answer if answer is not None else ident.max or 0)
        for name, value in self.model.defaults.items():
            if self.has(name):
                self.set_value(name, value)

    @property
    def id(self) -> str:
        """Device id from the vehicle config."""
        return self.config.id

    @property
    def unit(self) -> int:
        """Modbus unit id on its bus."""
        return self.config.unit

    # -- values, in engineering units ------------------------------------------------------

    def has(self, name: str) -> bool:
        """Whether the profile has a register called ``name``."""
        return name in self._registers

    def register(self, name: str) -> Register:
        """The profile's register ``name``; KeyError if there is none."""
        try:
            return self._registers[name]
        except KeyError:
            raise KeyError(f"profile {self.profile.name} has no register {name!r}") from None

    def value(self, name: str) -> Value | None:
        """Decoded value now served for register ``name`` (None for the invalid sentinel)."""
        reg = self.register(name)
        table = self._words[reg.table]
        words = [table.get(a, 0) for a in range(reg.address, reg.end)]
        return decode(words, reg.type, reg.scale, self.profile.device.word_order, reg.invalid)

    def meaning(self, name: str) -> str | None:
        """What the code now served in enumerated register ``name`` means (None: none known)."""
        code = self.value(name)
        return self.profile.enum_of(name).get(code) if isinstance(code, int) else None

    def set_value(self, name: str, value: Value) -> None:
        """Serve ``value`` in register ``name``; numbers out of the type's range are clamped.

        For an enumerated register ``value`` may be a meaning: the profile's code for it is
        served (KeyError if the profile has no such meaning).
        """
        reg = self.register(name)
        if reg.enum is not None and isinstance(value, str):
            value = self.profile.code_of(name, value)
        words = _encode_clamped(value, reg, self.profile)
        table = self._words[reg.table]
        for offset, word in enumerate(words):
            table[reg.address + offset] = word

    def override(self, name: str, value: Value | None) -> None:
        """Pin register ``name`` to ``value`` whatever the plant does; None releases it."""
        self.register(name)  # KeyError for a name the profile lacks
        if value is None:
            self._overrides.pop(name, None)
            return
        self._overrides[name] = value
        self.set_value(name, value)

    def refresh(self, plant: Plant) -> None:
        """Copy the plant's present state into the read-only registers."""
        for name, value in self.model.produce(plant, self).items():
            reg = self._registers.get(name)
            if reg is None or name in self._overrides:
                continue  # a model may know registers this profile version lacks
            if reg.writable:
                continue  # the client owns what it wrote; defaults were set at start
            self.set_value(name, value)

    def apply(self, plant: Plant) -> None:
        """Hand what the client wrote (relay coils, inverter settings) to the plant."""
        self.model.apply(plant, self)

    # -- wire access, in raw words ----------------------------------------------------------

    def check_answering(self) -> None:
        """Raise :class:`Silent` or :class:`ModbusError` if the device is faulted on purpose."""
        if self.silent or not self.powered:
            raise Silent(self.id)
        if self.exception is not None:
            raise ModbusError(self.exception)

    def read(self, table: Table, address: int, count: int) -> list[int]:
        """Raw words (0/1 for bit tables) at ``address``..``address+count``."""
        self.check_answering()
        span = self._spans.get(table)
        if span is None or count < 1 or address < span[0] or address + count > span[1]:
            raise ModbusError(ExceptionCode.ILLEGAL_DATA_ADDRESS)
        self._check_aligned(address, count)
        words = self._words[table]
        return [words.get(a, 0) for a in range(address, address + count)]

    def write(self, table: Table, address: int, values: Sequence[int]) -> None:
        """Store raw words written by the client; only writable registers accept them."""
        self.check_answering()
        if table not in WRITABLE_TABLES:
            raise ModbusError(ExceptionCode.ILLEGAL_FUNCTION)
        addresses = range(address, address + len(values))
        if not values or any(a not in self._writable[table] for a in addresses):
            raise ModbusError(ExceptionCode.ILLEGAL_DATA_ADDRESS)
        self._check_aligned(address, len(values))
        words = self._words[table]
        for a, v in zip(addresses, values, strict=True):
            words[a] = int(v) & 0xFFFF
        self.written.append((table, address, tuple(int(v) & 0xFFFF for v in values)))
        if self.on_write is not None:
            self.on_write(self)

    def _check_aligned(self, address: int, count: int) -> None:
        """Refuse requests off the profile's alignment (Eastron meters: even address and count)."""
        align = self.profile.device.align
        if address % align or count % align:
            raise ModbusError(ExceptionCode.ILLEGAL_DATA_ADDRESS)


def _encode_clamped(value: Value, reg: Register, profile: Profile) -> list[int]:
    order = profile.device.word_order
    try:
        return encode(value, reg.type, reg.scale, order, reg.words)
    except CodecError:
        limits = _RAW_LIMITS.get(reg.type)
        if limits is None or isinstance(value, str):
            raise
        raw = min(limits[1], max(limits[0], round(float(value) * reg.scale)))
        return encode(raw / reg.scale, reg.type, reg.scale, order, reg.words)


# -- device behaviour as data ---------------------------------------------------------------

Produce = Callable[[Plant, ServedDevice], Mapping[str, Value]]
Apply = Callable[[Plant, ServedDevice], None]


def _nothing_to_apply(plant: Plant, device: ServedDevice) -> None:
    """For devices without writable state that matters to the plant."""


@dataclass(frozen=True)
class DeviceModel:
    """How one device model behaves: what it reports and what the client's writes do."""

    produce: Produce
    apply: Apply = _nothing_to_apply
    defaults: Mapping[str, Value] = field(default_factory=dict)


def _gx_system(p: Plant, _dev: ServedDevice) -> Mapping[str, Value]:
    b = p.battery
    return {
        "battery_voltage": b.voltage,
        "battery_current": b.current,
        "battery_power": b.power,
        "battery_soc": b.soc,
        "battery_state": b.state,
        "battery_time_to_go": b.time_to_go_s,
        "active_input_source": p.active_input_source,
        "ac_consumption_l1": p.inverter.ac_out_power_w,
        "pv_power": p.solar.pv_power_w,
        "dc_system_power": p.dc_load_a * b.voltage,
    }


def _gx_battery(p: Plant, _dev: ServedDevice) -> Mapping[str, Value]:
    b = p.battery
    return {
        "power": b.power,
        "voltage": b.voltage,
        "current": b.current,
        "temperature": b.temperature_c,
        # D-Bus convention: consumed amp-hours are negative (register scale -10)
        "consumed_ah": -b.consumed_ah,
        "soc": b.soc,
        "alarm": 0,
        "low_voltage_alarm": 0,
        "low_soc_alarm": 0,
        "high_temperature_alarm": 0,
        "time_to_go": b.time_to_go_s,
        "capacity": b.capacity_ah,
    }


def _gx_vebus(p: Plant, _dev: ServedDevice) -> Mapping[str, Value]:
    inv, b = p.inverter, p.battery
    ac_in_v = p.ac_in_voltage_v if inv.ac_input_active else 0.0
    # passing the input through, the output follows its voltage; inverting, it is nominal
    ac_out_v = (ac_in_v or inv.ac_voltage_v) if inv.ac_output_live else 0.0
    return {
        "ac_in_voltage": ac_in_v,
        "ac_in_current": inv.ac_in_power_w / ac_in_v if ac_in_v else 0.0,
        "ac_in_frequency": inv.ac_frequency_hz if inv.ac_input_active else 0.0,
        "ac_in_power": inv.ac_in_power_w,
        "ac_out_voltage": ac_out_v,
        "ac_out_current": inv.ac_out_power_w / ac_out_v if ac_out_v else 0.0,
        "ac_out_power": inv.ac_out_power_w,
        "dc_voltage": b.voltage,
        "dc_current": inv.dc_current_a,
        "active_input": "ac_in_1" if inv.ac_input_active else "disconnected",
        "state": inv.state,
        "error": 0,
        "high_temperature_alarm": int(inv.high_temperature_alarm),
        "low_battery_alarm": 0,
        "overload_alarm": int(inv.overload_alarm),
    }


def _gx_vebus_apply(p: Plant, dev: ServedDevice) -> None:
    mode = dev.meaning("mode") if dev.has("mode") else None
    limit = dev.value("ac_in_current_limit") if dev.has("ac_in_current_limit") else None
    if mode is not None:
        p.inverter.mode = InverterMode(mode)
    if isinstance(limit, int | float):
        p.inverter.ac_in_current_limit_a = float(limit)


def _gx_solarcharger(p: Plant, _dev: ServedDevice) -> Mapping[str, Value]:
    s = p.solar
    return {
        "battery_voltage": p.battery.voltage,
        "battery_current": s.current_a,
        "state": s.state,
        "pv_voltage": s.pv_voltage_v,
        "yield_today": s.yield_today_kwh,
        "pv_power": s.pv_power_w,
    }


def _gx_solarcharger_apply(p: Plant, dev: ServedDevice) -> None:
    mode = dev.meaning("mode") if dev.has("mode") else None
    if mode is not None:
        p.solar.mode = SolarMode(mode)


def _eastron_sdm120(p: Plant, _dev: ServedDevice) -> Mapping[str, Value]:
    # the meter sits on the AC input cable: it sees the source's voltage even when the
    # MultiPlus does not take it
    volts = p.ac_in_voltage_v
    live = volts > 0
    return {
        "voltage": volts,
        "current": p.ac_in_current_a,
        "active_power": p.inverter.ac_in_power_w,
        "frequency": p.inverter.ac_frequency_hz if live else 0.0,
        "import_active_energy": p.ac_in_energy_kwh,
    }


def _xy_md02(p: Plant, dev: ServedDevice) -> Mapping[str, Value]:
    temperature, humidity = p.air(dev.config.id)
    return {"temperature": temperature, "humidity": humidity}


def _relay_board(_p: Plant, _dev: ServedDevice) -> Mapping[str, Value]:
    return {"software_version": 2.0}


def _relay_board_apply(p: Plant, dev: ServedDevice) -> None:
    for circuit in dev.circuits:  # the config checked that every output exists
        p.switches[circuit.name] = bool(dev.value(circuit.output))


def _f32_word(value: float, order: str) -> int:
    """A float's four bytes as the u32 the router serves, in the firmware's byte order."""
    raw = struct.pack(">f", value)
    return int.from_bytes(raw if order == "ABCD" else raw[::-1], "big")


def _teltonika_rut(p: Plant, _dev: ServedDevice) -> Mapping[str, Value]:
    r = p.router
    return {
        "uptime": int(p.time_s) + 3600,
        "signal_dbm": r.signal_dbm,
        "temperature": 41.5,
        "operator": r.operator,
        "active_sim": "sim1",
        "registration": r.registration,
        "network_type": r.network_type,
        "wan_ip": int(ipaddress.IPv4Address(r.wan_ip)),
        "gps_lat_raw": _f32_word(r.lat, r.gps_byte_order),
        "gps_lon_raw": _f32_word(r.lon, r.gps_byte_order),
        "gps_satellites": r.satellites,
        "sim1_rx_today": r.rx_today_b,
        "sim1_tx_today": r.tx_today_b,
    }


_GENERIC = DeviceModel(produce=lambda _p, _d: {})

DEVICE_MODELS: dict[str, DeviceModel] = {
    "victron_gx_system": DeviceModel(produce=_gx_system, defaults={"relay_0": 0}),
    "victron_gx_battery": DeviceModel(produce=_gx_battery),
    "victron_gx_vebus": DeviceModel(
        produce=_gx_vebus,
        apply=_gx_vebus_apply,
        defaults={"mode": InverterMode.ON, "ac_in_current_limit": 16.0},
    ),
    "victron_gx_solarcharger": DeviceModel(
        produce=_gx_solarcharger, apply=_gx_solarcharger_apply,
        defaults={"mode": SolarMode.ON}
    ),
    "eastron_sdm120": DeviceModel(produce=_eastron_sdm120),
    "xy_md02": DeviceModel(produce=_xy_md02),
    "waveshare_relay_8ch": DeviceModel(produce=_relay_board, apply=_relay_board_apply),
    "teltonika_rut": DeviceModel(produce=_teltonika_rut),
}
