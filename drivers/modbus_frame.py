"""The bytes of a Modbus write request, as they would go on the wire: what ``mcwctl modbus
write --dry-run`` shows a technician before anything is sent (to compare with a device's
manual or a bus sniffer)."""

from __future__ import annotations

import struct
from typing import Literal

from drivers.profile import Table


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (reflected polynomial 0xA001, initial value 0xFFFF) of ``data``; the
    Autoterm heater's frames use it too."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def write_pdu(table: Table, address: int, words: list[int]) -> bytes:
    """The PDU the link sends for a write: FC05/FC15 for coils, FC06/FC16 for registers."""
    if table == "coil" and len(words) == 1:
        return struct.pack(">BHH", 5, address, 0xFF00 if words[0] else 0)
    if table == "coil":
        bits = sum(1 << i for i, w in enumerate(words) if w)
        data = bits.to_bytes((len(words) + 7) // 8, "little")
        return struct.pack(">BHHB", 15, address, len(words), len(data)) + data
    if table == "holding" and len(words) == 1:
        return struct.pack(">BHH", 6, address, words[0])
    if table == "holding":
        return struct.pack(f">BHHB{len(words)}H", 16, address, len(words), 2 * len(words),
                           *words)
    raise ValueError(f"table {table} cannot be written")


def frame(kind: Literal["tcp", "rtu"], unit: int, pdu: bytes) -> bytes:
    """The whole frame: RTU (unit, PDU, CRC low byte first) or TCP (MBAP header with
    transaction 0, protocol 0, then unit and PDU)."""
    if kind == "rtu":
        body = bytes([unit]) + pdu
        return body + struct.pack("<H", crc16(body))
    return struct.pack(">HHHB", 0, 0, len(pdu) + 1, unit) + pdu
