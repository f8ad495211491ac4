"""The one module that talks to pymodbus: a thin link to one physical Modbus bus.

pymodbus changes its API between minor releases, so everything it needs is kept here and the
rest of the drivers see only :class:`ModbusLink` and :class:`ModbusError`. Two pymodbus habits
are handled here: it answers with exception *responses* (checked with ``isError()``), and it
turns a cancelled request into ``ModbusIOException`` (we re-raise the cancellation).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from drivers.lost_cancel import reraise_lost_cancel
from drivers.profile import Table

ErrorKind = Literal["timeout", "framing", "exception", "connection"]
ILLEGAL_DATA_ADDRESS = 2

# pymodbus logs every timeout at ERROR level; our bus worker logs health transitions once.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class ModbusError(Exception):
    """A request failed: no answer, a damaged answer, a Modbus exception or no connection."""

    def __init__(self, kind: ErrorKind, message: str, exception_code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.exception_code = exception_code


@dataclass(frozen=True)
class LinkSettings:
    """What the link needs to know about its bus."""

    kind: Literal["tcp", "rtu"]
    timeout_s: float
    host: str = ""
    port: int | str = 0
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1


class ModbusLink:
    """One client on one bus. Not safe for concurrent use: the bus worker serialises calls."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        self._rx_since_request = 0
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient
        common: dict[str, Any] = {
            "timeout": settings.timeout_s,
            "retries": 0,  # the bus worker decides about retries and health
            "reconnect_delay": 0,  # and about reconnecting, with its own backoff
            "trace_packet": self._trace_packet,
        }
        if settings.kind == "tcp":
            self._client = AsyncModbusTcpClient(settings.host, port=int(settings.port), **common)
        else:
            self._client = AsyncModbusSerialClient(
                str(settings.port),
                baudrate=settings.baudrate,
                parity=settings.parity,
                stopbits=settings.stopbits,
                bytesize=8,
                **common,
            )
        # A silent unit must not make pymodbus drop a TCP connection other units share.
        self._client.set_max_no_responses(1_000_000)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._rx_since_request = 0
        else:
            self._rx_since_request += len(data)
        return data

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> None:
        """Open the connection or serial port; ModbusError('connection') if it cannot."""
        try:
            ok = await self._client.connect()
        except (OSError, ModbusException) as exc:
            reraise_lost_cancel()
            raise ModbusError("connection", f"cannot connect: {exc}") from exc
        if not ok:
            reraise_lost_cancel()  # pymodbus's connect can turn a cancellation into False
            raise ModbusError("connection", "cannot connect")

    def close(self) -> None:
        self._client.close()

    def set_timeout(self, timeout_s: float) -> None:
        """How long the next requests wait for their answer (the bus worker sets it per
        device; the link is used by one request at a time). pymodbus 3.16 reads it from its
        transaction manager's parameters at every request."""
        self._client.ctx.comm_params.timeout_connect = timeout_s

    async def read(self, table: Table, address: int, count: int, unit: int) -> list[int]:
        """Read ``count`` registers (or bits, as 0/1) of ``table`` starting at ``address``."""
        calls = {
            "holding": self._client.read_holding_registers,
            "input": self._client.read_input_registers,
            "coil": self._client.read_coils,
            "discrete": self._client.read_discrete_inputs,
        }
        response = await self._execute(lambda: calls[table](address, count=count, device_id=unit))
        if table in ("coil", "discrete"):
            return [int(bool(b)) for b in response.bits[:count]]
        regs = list(response.registers)
        if len(regs) != count:
            raise ModbusError("framing", f"asked for {count} registers, got {len(regs)}")
        return regs

    async def write(self, table: Table, address: int, values: list[int], unit: int) -> None:
        """Write registers (FC06/FC16) or coils (FC05/FC15)."""
        c = self._client
        if table == "coil" and len(values) == 1:
            await self._execute(lambda: c.write_coil(address, bool(values[0]), device_id=unit))
        elif table == "coil":
            bits = [bool(v) for v in values]
            await self._execute(lambda: c.write_coils(address, bits, device_id=unit))
        elif table == "holding" and len(values) == 1:
            await self._execute(lambda: c.write_register(address, values[0], device_id=unit))
        elif table == "holding":
            await self._execute(lambda: c.write_registers(address, values, device_id=unit))
        else:
            raise ModbusError("exception", f"table {table} is read-only", 1)

    async def _execute(self, call: Callable[[], Awaitable[Any]]) -> Any:
        if not self.connected:
            await self.connect()
        try:
            response = await call()
        except ModbusException as exc:
            reraise_lost_cancel()  # pymodbus turns a cancellation into ModbusIOException
            # Bytes arrived but no valid frame: CRC or framing damage rather than silence.
            kind: ErrorKind = "framing" if self._rx_since_request else "timeout"
            if not self.connected:
                kind = "connection"
            raise ModbusError(kind, str(exc)) from exc
        except OSError as exc:
            reraise_lost_cancel()
            raise ModbusError("connection", str(exc)) from exc
        # Python 3.11's wait_for inside pymodbus can swallow a cancellation that arrives with
        # the answer: the worker would then poll on and never stop
        reraise_lost_cancel()
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise ModbusError("exception", f"exception response code {code}", code)
        return response
