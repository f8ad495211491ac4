"""Real pymodbus servers (TCP and RTU) in front of the simulated devices of one bus.

The only module of the simulator that touches pymodbus's server API, which was reworked in
3.16: ``ModbusServerContext`` / ``ModbusDeviceContext`` are deprecated, their ``async_getValues``
answers DEVICE_BUSY for plain device contexts, and the new ``SimDevice`` datastore reports
bit requests to its ``action`` hook as a count of 16-bit words, so it cannot refuse a coil
read one bit past the map. Instead the server gets a small datastore of our own that reads
and writes the :class:`~vansim.modbus_devices.ServedDevice` images directly:

* pymodbus 3.16's ``ModbusBaseServer`` uses a ``ModbusServerContext`` instance as-is when
  its ``old_simulator`` flag is set (that branch exists for the old simulator context), and
  request PDUs only ever call ``async_getValues`` / ``async_setValues`` / ``device_ids``;
* a silent unit raises ``NoSuchIdException``, which the request handler drops without an
  answer when the server runs with ``ignore_missing_devices=True``: the client times out
  while the other units on the bus keep answering;
* a Modbus exception is returned as an ``ExcCodes`` member, which the PDU turns into an
  exception response.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, TypeVar

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.base import ModbusBaseServer

from drivers.profile import Table
from vansim.modbus_devices import ModbusError, ServedDevice, Silent

# function code -> table (as in pymodbus's own datastore)
_FC_TABLE: dict[int, Table] = {
    1: "coil", 5: "coil", 15: "coil",
    2: "discrete",
    3: "holding", 6: "holding", 16: "holding", 22: "holding", 23: "holding",
    4: "input",
}

# What a request to a unit id nobody serves gets: silence on RS-485 (nobody is there to
# answer), "gateway target failed to respond" (11) from a Victron GX ("unit id not mapped").
UnknownUnit = Literal["silent", "gateway"]
T = TypeVar("T")


class _UnitsDatastore(ModbusServerContext):
    """pymodbus datastore that forwards every request to the device at its unit id."""

    def __init__(self, units: Mapping[int, ServedDevice], unknown_unit: UnknownUnit) -> None:
        # Deliberately not calling super().__init__(): it logs a deprecation warning and
        # would hand the server a SimCore built from device contexts we do not use.
        self.old_simulator = True
        self.simdevices = []
        self._units = dict(units)
        self._unknown_unit = unknown_unit

    def _device(self, device_id: int) -> ServedDevice:
        dev = self._units.get(device_id)
        if dev is None:
            if self._unknown_unit == "silent":
                raise NoSuchIdException(f"unit {device_id}")
            raise _Refused(ExcCodes.GATEWAY_NO_RESPONSE)
        return dev

    def _serve(
        self, device_id: int, func_code: int, op: Callable[[ServedDevice, Table], T]
    ) -> T | ExcCodes:
        """Run ``op`` on the addressed device; Modbus exceptions become codes, silence stays."""
        table = _FC_TABLE.get(func_code)
        try:
            dev = self._device(device_id)
            if table is None:
                dev.check_answering()
                return ExcCodes.ILLEGAL_FUNCTION
            return op(dev, table)
        except _Refused as exc:
            return exc.code
        except ModbusError as exc:
            return ExcCodes(exc.code.value)
        except Silent as exc:
            raise NoSuchIdException(f"unit {device_id} is silent") from exc

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        """Read for a request PDU: words, bits, or an exception code."""

        def read(dev: ServedDevice, table: Table) -> list[int] | list[bool]:
            words = dev.read(table, address, count)
            return [bool(w) for w in words] if table in ("coil", "discrete") else words

        return self._serve(device_id, func_code, read)

    async def async_setValues(
        self,
        device_id: int,
        func_code: int,
        address: int,
        values: Sequence[int] | Sequence[bool],
    ) -> ExcCodes | None:
        """Write for a request PDU: None when accepted, else an exception code."""

        def write(dev: ServedDevice, table: Table) -> None:
            dev.write(table, address, [int(v) for v in values])

        return self._serve(device_id, func_code, write)

    def device_ids(self) -> list[int]:
        """Unit ids served (pymodbus asks for them on broadcasts)."""
        return list(self._units)


class _Refused(Exception):
    def __init__(self, code: ExcCodes) -> None:
        super().__init__(code.name)
        self.code = code


class BusServer:
    """A running Modbus server for one bus."""

    def __init__(self, name: str, server: ModbusBaseServer) -> None:
        self.name = name
        self._server = server

    async def stop(self) -> None:
        """Close the listener and every connection."""
        await self._server.shutdown()  # type: ignore[no-untyped-call]


def _units_by_id(devices: Sequence[ServedDevice]) -> dict[int, ServedDevice]:
    return {dev.unit: dev for dev in devices}


async def start_tcp_server(
    name: str, host: str, port: int, devices: Sequence[ServedDevice]
) -> BusServer:
    """Serve ``devices`` as Modbus TCP on ``host:port``; return once listening."""
    store = _UnitsDatastore(_units_by_id(devices), unknown_unit="gateway")
    server = ModbusTcpServer(store, address=(host, port), ignore_missing_devices=True)
    await _listen(server, f"bus {name}: cannot listen on {host}:{port}")
    return BusServer(name, server)


async def start_rtu_server(
    name: str,
    port: str,
    devices: Sequence[ServedDevice],
    *,
    baudrate: int = 9600,
    parity: str = "N",
    stopbits: int = 1,
) -> BusServer:
    """Serve ``devices`` as Modbus RTU on serial ``port``; return once the port is open."""
    store = _UnitsDatastore(_units_by_id(devices), unknown_unit="silent")
    server = ModbusSerialServer(
        store,
        port=port,
        baudrate=baudrate,
        parity=parity,
        stopbits=stopbits,
        ignore_missing_devices=True,
    )
    await _listen(server, f"bus {name}: cannot open {port}")
    return BusServer(name, server)


async def _listen(server: ModbusBaseServer, failure: str) -> None:
    try:
        await server.serve_forever(background=True)
    except RuntimeError as exc:  # pymodbus reports a failed bind/open only this way
        await server.shutdown()  # type: ignore[no-untyped-call]
        raise OSError(failure) from exc

