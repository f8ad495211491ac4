"""Decode and encode Modbus register values as the device profiles describe them.

Pure functions with no I/O, shared by the bus workers and the device simulators so that
both sides read the same map the same way. Convention (as in the vendor tables):
``value = raw / scale``; multi-register values are big-endian bytes, with the word order
given by the profile ("big" = high word first, ABCD; "little" = low word first, CDAB).
"""

from __future__ import annotations

import math
import struct
from typing import Literal

RegisterType = Literal["u16", "s16", "u32", "s32", "f32", "bool", "string"]
WordOrder = Literal["big", "little"]

# struct format and register count of the fixed-size numeric types
_NUMERIC: dict[str, tuple[str, int]] = {
    "u16": (">H", 1),
    "s16": (">h", 1),
    "u32": (">I", 2),
    "s32": (">i", 2),
    "f32": (">f", 2),
}

Value = float | int | bool | str


class CodecError(ValueError):
    """A value cannot be encoded into, or decoded from, the registers given."""


def word_count(type_: RegisterType, words: int | None = None) -> int:
    """Number of 16-bit registers (or coil bits) a value of ``type_`` occupies."""
    if type_ == "string":
        if not words:
            raise CodecError("a string register needs its length in words")
        return words
    if type_ == "bool":
        return 1
    return _NUMERIC[type_][1]


def _ordered(words: list[int], order: WordOrder) -> list[int]:
    return words if order == "big" else list(reversed(words))


def decode_raw(
    words: list[int], type_: RegisterType, order: WordOrder = "big"
) -> int | float | str:
    """Decode the raw (unscaled) number or text held in ``words``."""
    if type_ == "bool":
        return int(bool(words[0]))
    if type_ == "string":
        data = b"".join(w.to_bytes(2, "big") for w in words)
        return data.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
    fmt, n = _NUMERIC[type_]
    if len(words) != n:
        raise CodecError(f"{type_} needs {n} registers, got {len(words)}")
    data = b"".join(w.to_bytes(2, "big") for w in _ordered(list(words), order))
    value: int | float = struct.unpack(fmt, data)[0]
    return value


def decode(
    words: list[int],
    type_: RegisterType,
    scale: float = 1,
    order: WordOrder = "big",
    invalid: int | None = None,
) -> Value | None:
    """Decode registers to an engineering value; ``None`` when the raw value is the sentinel."""
    raw = decode_raw(words, type_, order)
    if type_ == "bool":
        return bool(raw)
    if isinstance(raw, str):
        return raw
    if invalid is not None and raw == invalid:
        return None
    if isinstance(raw, float) and not math.isfinite(raw):
        return None
    if scale == 1:
        return raw
    return raw / scale


def encode(
    value: Value,
    type_: RegisterType,
    scale: float = 1,
    order: WordOrder = "big",
    words: int | None = None,
) -> list[int]:
    """Encode an engineering value into registers (the inverse of :func:`decode`)."""
    if type_ == "bool":
        return [1 if value else 0]
    if type_ == "string":
        n = word_count(type_, words)
        data = str(value).encode("ascii")[: n * 2].ljust(n * 2, b"\x00")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, n * 2, 2)]
    if isinstance(value, str):
        raise CodecError(f"cannot encode text {value!r} as {type_}")
    fmt, _ = _NUMERIC[type_]
    raw: int | float = float(value) * scale
    if type_ != "f32":
        raw = round(raw)
    try:
        data = struct.pack(fmt, raw)
    except struct.error as exc:
        raise CodecError(f"{value} (raw {raw}) does not fit {type_}") from exc
    regs = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return _ordered(regs, order)
