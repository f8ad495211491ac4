"""What the LTE router's Modbus registers mean beyond their types (Teltonika RUT class).

The router's GPS position is an f32 whose byte order differs between firmware versions
(shared/devices/README.md §4.4): read as ABCD, kept if plausible, else read as DCBA. A
position of exactly 0 is the router's "no fix". The WAN address is four bytes, 0 while down.
"""

from __future__ import annotations

import ipaddress
import math
import struct

from drivers.register_codec import Value

MIN_SATELLITES = 3  # fewer: no position worth sending


def router_degrees(raw: Value, limit: float) -> float | None:
    """The u32 served for a latitude (``limit`` 90) or longitude (180) as degrees, None
    when it is no position in either byte order."""
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 0xFFFFFFFF:
        return None
    data = raw.to_bytes(4, "big")
    for order in (data, data[::-1]):
        value: float = struct.unpack(">f", order)[0]
        # a byte-swapped float reads as a tiny or a huge number: plausible means a real
        # coordinate, not 1e-35 (and not 0, the router's "no fix")
        if math.isfinite(value) and 1e-4 <= abs(value) <= limit:
            return value
    return None


def dotted(raw: Value) -> str | None:
    """The WAN address register as dotted quad (None: not a u32)."""
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 0xFFFFFFFF:
        return None
    return str(ipaddress.IPv4Address(raw))
