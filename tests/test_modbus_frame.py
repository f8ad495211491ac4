"""What ``diag/write`` shows in a dry run is what the link really sends: the frame built by
drivers/modbus_frame.py, compared with the bytes pymodbus puts on a pty (RTU) and on a TCP
socket, for every kind of write; and the CRC against the specification's bit-by-bit oracle."""

from __future__ import annotations

import asyncio
import os
import tty
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testsupport import modbus_crc

from drivers.modbus_frame import crc16, frame, write_pdu
from drivers.modbus_link import LinkSettings, ModbusError, ModbusLink
from drivers.profile import Table

WRITES: list[tuple[Table, int, list[int]]] = [
    ("coil", 0, [1]), ("coil", 7, [0]), ("coil", 3, [1, 0, 1, 1, 0, 0, 0, 0, 1]),
    ("holding", 1, [3]), ("holding", 0x8000, [0xFFFF]), ("holding", 40, [1, 2, 0xABCD]),
]


class Recording(ModbusLink):
    """The real link, keeping the bytes it sends."""

    def __init__(self, settings: LinkSettings) -> None:
        self.sent: list[bytes] = []
        super().__init__(settings)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self.sent.append(bytes(data))
        return super()._trace_packet(sending, data)


def test_the_specifications_examples() -> None:
    assert frame("rtu", 1, write_pdu("coil", 0, [1])).hex(" ") == "01 05 00 00 ff 00 8c 3a"
    assert frame("rtu", 1, write_pdu("holding", 1, [3])).hex(" ") == "01 06 00 01 00 03 98 0b"


@given(st.binary(max_size=300))
def test_the_crc_is_the_specifications(data: bytes) -> None:
    assert crc16(data) == modbus_crc(data)


@asynccontextmanager
async def silent_tcp_device() -> AsyncIterator[int]:
    """A TCP peer that takes requests and never answers; its port."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("table", "address", "words"), WRITES)
async def test_a_dry_run_frame_is_what_the_link_sends(
        table: Table, address: int, words: list[int]) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        rtu = Recording(LinkSettings("rtu", 0.05, port=os.ttyname(slave)))
        with pytest.raises(ModbusError):
            await rtu.write(table, address, words, 9)  # nobody answers: a timeout
        rtu.close()
        assert rtu.sent[-1] == frame("rtu", 9, write_pdu(table, address, words))
    finally:
        os.close(master)
        os.close(slave)
    async with silent_tcp_device() as port:
        tcp = Recording(LinkSettings("tcp", 0.05, host="127.0.0.1", port=port))
        with pytest.raises(ModbusError):
            await tcp.write(table, address, words, 9)
        tcp.close()
    sent = tcp.sent[-1]
    expected = frame("tcp", 9, write_pdu(table, address, words))
    assert sent[2:] == expected[2:], "all but pymodbus's transaction id"


async def test_the_answer_timeout_set_for_a_request_is_the_one_the_link_waits() -> None:
    """The bus worker sets each device's answer timeout on the link before its request: the
    link waits that long, not its bus's longest (30 s here, which the deadline would catch)."""
    async with silent_tcp_device() as port:
        link = ModbusLink(LinkSettings("tcp", 30.0, host="127.0.0.1", port=port))
        link.set_timeout(0.05)
        try:
            async with asyncio.timeout(10):
                with pytest.raises(ModbusError) as error:
                    await link.read("holding", 0, 1, 1)
        finally:
            link.close()
    assert error.value.kind == "timeout"
