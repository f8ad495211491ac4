"""NMEA 0183 from a serial GPS: sentences cut from the byte stream, checked, GGA and RMC read.

Facts (../shared/devices/README.md §7): a sentence is ``$`` + talker (GP, GL, GN, ...) +
type, comma-separated fields, ``*hh`` (XOR of every character between ``$`` and ``*``) and
CR LF, at most 82 characters. Latitude and longitude are degrees and decimal minutes.
GGA carries the fix quality (0 invalid), the satellites used, HDOP and altitude; RMC the
status (A valid, V void), speed in knots and course.

Limits, for a receiver that babbles or a line that picks up noise: a line longer than
``MAX_LINE`` is dropped whole (counted), so is one that is not printable ASCII or fails its
checksum; a sentence without a checksum is refused (every receiver we know sends one, and an
unchecked position must never reach HQ in a panic). Nothing here raises anything but
:class:`NmeaError` on any input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivers import serial_link

MAX_LINE = 96  # 82 by the standard; some receivers go a little over with long fields
KNOT_KMH = 1.852
HEX = b"0123456789ABCDEFabcdef"


class NmeaError(ValueError):
    """A line that is not a sentence we may use, with the reason."""


def checksum(body: bytes) -> int:
    """XOR of the characters between ``$`` and ``*``."""
    value = 0
    for byte in body:
        value ^= byte
    return value


def sentence(body: str) -> bytes:
    """``body`` (without ``$``) as a whole sentence with its checksum and CR LF."""
    raw = body.encode("ascii")
    return b"$" + raw + b"*" + f"{checksum(raw):02X}".encode() + b"\r\n"


@dataclass(frozen=True)
class Sentence:
    talker: str  # "GP", "GN", ...
    kind: str  # "GGA", "RMC", ...
    fields: tuple[str, ...]


def parse(line: bytes) -> Sentence:
    """One line (with or without its CR LF) as a checked sentence."""
    line = line.rstrip(b"\r\n")
    if len(line) > MAX_LINE:
        raise NmeaError(f"longer than {MAX_LINE} characters")
    if not line.startswith(b"$"):
        raise NmeaError("does not start with $")
    if any(b < 0x20 or b > 0x7E for b in line):
        raise NmeaError("not printable ASCII")
    star = line.rfind(b"*")
    if star < 0 or len(line) - star != 3:
        raise NmeaError("no checksum")
    body = line[1:star]
    digits = line[star + 1:]
    if any(d not in HEX for d in digits):  # int(..., 16) would take a sign or a space
        raise NmeaError("checksum is not hex")
    if int(digits, 16) != checksum(body):
        raise NmeaError("checksum mismatch")
    parts = body.decode("ascii").split(",")
    address = parts[0]
    if len(address) != 5 or not address.isalnum() or not address.isupper():
        raise NmeaError(f"bad address {address!r}")
    return Sentence(address[:2], address[2:], tuple(parts[1:]))


def coordinate(value: str, hemisphere: str, axis: str) -> float | None:
    """``ddmm.mmmm`` (latitude) or ``dddmm.mmmm`` (longitude) and N/S/E/W as signed degrees;
    None when the receiver left the field empty (no fix)."""
    if value == "" and hemisphere == "":
        return None
    signs = {"lat": {"N": 1, "S": -1}, "lon": {"E": 1, "W": -1}}[axis]
    if hemisphere not in signs:
        raise NmeaError(f"bad hemisphere {hemisphere!r}")
    head = 2 if axis == "lat" else 3
    dot = value.find(".")
    whole = value if dot < 0 else value[:dot]
    if len(whole) != head + 2 or not whole.isdigit():
        raise NmeaError(f"bad {axis} {value!r}")
    degrees = int(value[:head])
    minutes = _number(value[head:], "minutes")
    limit = 90 if axis == "lat" else 180
    if minutes >= 60 or degrees + minutes / 60 > limit:
        raise NmeaError(f"{axis} {value!r} out of range")
    return signs[hemisphere] * (degrees + minutes / 60)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise NmeaError(f"bad {what} {text!r}") from None
    if not math.isfinite(value) or value < 0 or not text.replace(".", "", 1).isdigit():
        raise NmeaError(f"bad {what} {text!r}")
    return value


def _optional(text: str, what: str) -> float | None:
    return None if text == "" else _number(text, what)


@dataclass(frozen=True)
class Gga:
    """Fix data: where, how good."""

    lat: float | None
    lon: float | None
    quality: int  # 0 no fix, 1 GPS, 2 DGPS, 4/5 RTK, 6 dead reckoning, 7 manual, 8 simulation
    satellites: int
    hdop: float | None
    altitude_m: float | None


@dataclass(frozen=True)
class Rmc:
    """Recommended minimum: where, whether valid, how fast."""

    lat: float | None
    lon: float | None
    valid: bool
    speed_kmh: float | None
    course: float | None


def parse_gga(s: Sentence) -> Gga:
    f = s.fields
    if len(f) < 9:
        raise NmeaError("GGA has too few fields")
    if f[5] == "" or not f[5].isdigit() or int(f[5]) > 8:
        raise NmeaError(f"bad GGA fix quality {f[5]!r}")
    sats = f[6]
    if sats != "" and (not sats.isdigit() or int(sats) > 99):
        raise NmeaError(f"bad GGA satellites {sats!r}")
    altitude = None
    if f[8] != "":
        try:
            altitude = float(f[8])
        except ValueError:
            raise NmeaError(f"bad GGA altitude {f[8]!r}") from None
        if not -1000 <= altitude <= 20000:
            raise NmeaError(f"GGA altitude {f[8]!r} out of range")
    return Gga(coordinate(f[1], f[2], "lat"), coordinate(f[3], f[4], "lon"), int(f[5]),
               int(sats) if sats else 0, _optional(f[7], "HDOP"), altitude)


def parse_rmc(s: Sentence) -> Rmc:
    f = s.fields
    if len(f) < 8:
        raise NmeaError("RMC has too few fields")
    if f[1] not in ("A", "V"):
        raise NmeaError(f"bad RMC status {f[1]!r}")
    knots = _optional(f[6], "speed")
    course = _optional(f[7], "course")
    if course is not None and course >= 360:
        raise NmeaError(f"RMC course {f[7]!r} out of range")
    # NMEA 2.3 mode N (not valid) overrides an A status some receivers still send
    valid = f[1] == "A" and not (len(f) > 11 and f[11].startswith("N"))
    return Rmc(coordinate(f[2], f[3], "lat"), coordinate(f[4], f[5], "lon"), valid,
               None if knots is None else knots * KNOT_KMH, course)


class LineReader(serial_link.LineReader):
    """NMEA lines: one longer than ``MAX_LINE`` is dropped and counted in ``overlong``."""

    def __init__(self) -> None:
        super().__init__(MAX_LINE)
