"""What the LTE router's Modbus registers mean beyond their types (Teltonika RUT class).

The router's GPS position is a pair of f32 whose byte order differs between firmware
versions (shared/devices/README.md §4.4): ABCD on some, DCBA on others. A byte-swapped
float mostly reads as a tiny or a huge number, but not always: about one coordinate in ten
is plausible both ways. So the order is the config's (``router.gps_byte_order``) or, on
``auto``, learnt from a reading that only one order makes a plausible position (both
coordinates in range) and kept for the router from then on; until it is known, a reading
plausible both ways is no position. A position of exactly 0 is the router's "no fix".
"""

from __future__ import annotations

import ipaddress
import math
import struct
from typing import Literal

from drivers.register_codec import Value

MIN_SATELLITES = 3  # fewer: no position worth sending
ByteOrder = Literal["ABCD", "DCBA"]


def _u32(raw: Value | None) -> int | None:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 0xFFFFFFFF:
        return None
    return raw


def degrees(raw: int, order: ByteOrder) -> float:
    """The u32 served for a coordinate as the float it is in byte order ``order``."""
    data = raw.to_bytes(4, "big")
    value: float = struct.unpack(">f", data if order == "ABCD" else data[::-1])[0]
    return value


def _plausible(value: float, limit: float) -> bool:
    # not 0 (no fix) and not the 1e-35 or 1e+30 that a swapped float mostly reads as
    return math.isfinite(value) and 1e-4 <= abs(value) <= limit


class RouterGps:
    """Decodes the router's position registers; learns the byte order on ``auto``."""

    def __init__(self, order: ByteOrder | Literal["auto"] = "auto") -> None:
        self.order: ByteOrder | None = None if order == "auto" else order

    def position(self, lat_raw: Value | None,
                 lon_raw: Value | None) -> tuple[float, float] | None:
        """(lat, lon) in degrees, or None: no fix, garbage, or an order not yet known."""
        lat_word, lon_word = _u32(lat_raw), _u32(lon_raw)
        if lat_word is None or lon_word is None:
            return None
        fits: list[ByteOrder] = [
            order for order in ("ABCD", "DCBA")
            if _plausible(degrees(lat_word, order), 90.0)
            and _plausible(degrees(lon_word, order), 180.0)]
        if self.order is None and len(fits) == 1:
            self.order = fits[0]  # unambiguous: this router's firmware, from now on
        if self.order is None or self.order not in fits:
            return None
        return degrees(lat_word, self.order), degrees(lon_word, self.order)


def dotted(raw: Value) -> str | None:
    """The WAN address register as dotted quad (None: not a u32)."""
    word = _u32(raw)
    return None if word is None else str(ipaddress.IPv4Address(word))
