"""NMEA 0183 reading (drivers.nmea) and the GPS driver's bookkeeping (drivers.gps.NmeaGps, fed
bytes directly, no serial port): GGA and RMC examples with the facts of ../shared/devices/
README.md §7, fix lost and kept, lines refused with their reason and counter, then properties
over arbitrary input (hypothesis, with the budget of testsupport.FUZZ): no exception and no
impossible fix from any bytes in any chunking, bounded memory, a coordinate round trip and
every single-character corruption caught by the checksum."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testsupport import FUZZ

from drivers.gps import ERROR_KINDS, Fix, NmeaGps
from drivers.nmea import (
    KNOT_KMH,
    MAX_LINE,
    LineReader,
    NmeaError,
    Sentence,
    checksum,
    parse,
    parse_gga,
    parse_rmc,
    sentence,
)

# The textbook pair (gpsinformation.org), checksums as published: 48°07.038' N 11°31.000' E
CLASSIC_GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
CLASSIC_RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"

# A multi-GNSS u-blox (M8) over Warsaw: GN talker, NMEA 2.3 mode field on RMC
WARSAW_GGA = sentence("GNGGA,092725.00,5213.7860,N,02100.7320,E,1,08,1.01,110.6,M,33.9,M,,")
WARSAW_RMC = sentence("GNRMC,092725.00,A,5213.7860,N,02100.7320,E,12.5,77.52,150624,,,A")
WARSAW_LAT = 52 + 13.786 / 60  # 52.229766...
WARSAW_LON = 21 + 0.732 / 60  # 21.0122

# Buenos Aires: south and west, so both negative
SOUTH_WEST_GGA = sentence("GPGGA,140000.00,3436.2000,S,05822.8000,W,2,11,0.8,25.0,M,14.1,M,,")
SOUTH_WEST_RMC = sentence("GPRMC,140000.00,A,3436.2000,S,05822.8000,W,0.0,,150624,,,D")

# What a u-blox sends without a fix (and at start-up)
NO_FIX_GGA = sentence("GPGGA,092726.00,,,,,0,00,99.99,,,,,,")
NO_FIX_RMC = sentence("GPRMC,092726.00,V,,,,,,,150624,,,N")
GSV = sentence("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00")
TXT = sentence("GPTXT,01,01,02,u-blox ag - www.u-blox.com")
VTG = sentence("GPVTG,77.52,T,,M,12.5,N,23.2,K,A")

VALID = [CLASSIC_GGA, CLASSIC_RMC, WARSAW_GGA, WARSAW_RMC, SOUTH_WEST_GGA, SOUTH_WEST_RMC,
         NO_FIX_GGA, NO_FIX_RMC, GSV, TXT, VTG]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_gps() -> tuple[NmeaGps, Clock, list[None]]:
    """A driver on a hand clock and the list its change callback appends to."""
    clock = Clock()
    changes: list[None] = []
    gps = NmeaGps("/dev/null-gps", on_change=lambda: changes.append(None), monotonic=clock)
    return gps, clock, changes


def decode(line: bytes) -> object:
    """``line`` read as far as the driver reads it: GGA and RMC parsed, others only checked."""
    s = parse(line)
    readers: dict[str, Callable[[Sentence], object]] = {"GGA": parse_gga, "RMC": parse_rmc}
    return readers[s.kind](s) if s.kind in readers else s


def state(gps: NmeaGps) -> tuple[object, ...]:
    return (gps.fix, gps.has_fix, gps.satellites, gps.hdop, gps.speed_kmh, gps.sentences,
            gps.last_fix_at, gps.last_heard_at, dict(gps.errors))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, in any order)."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in pairwise(points)]


def stamped(line: bytes, stated: bytes) -> bytes:
    """``line`` (a sentence with CR LF) with ``stated`` written after its ``*``."""
    star = line.rindex(b"*")
    return line[:star + 1] + stated + b"\r\n"


# ---- examples --------------------------------------------------------------------------------


def test_sentence_builds_the_published_checksum() -> None:
    assert sentence("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,") \
        == CLASSIC_GGA
    assert sentence("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W") \
        == CLASSIC_RMC
    assert checksum(b"") == 0


def test_classic_gga_and_rmc() -> None:
    gga = parse_gga(parse(CLASSIC_GGA))
    assert gga.lat == pytest.approx(48 + 7.038 / 60, abs=1e-9)  # 48.1173
    assert gga.lon == pytest.approx(11 + 31 / 60, abs=1e-9)  # 11.516666...
    assert (gga.quality, gga.satellites, gga.hdop, gga.altitude_m) == (1, 8, 0.9, 545.4)
    rmc = parse_rmc(parse(CLASSIC_RMC))
    assert rmc.valid
    assert (rmc.lat, rmc.lon) == (gga.lat, gga.lon)
    assert rmc.speed_kmh == pytest.approx(22.4 * 1.852)
    assert rmc.course == 84.4


def test_gn_talker_pair_gives_the_fix() -> None:
    gps, clock, changes = make_gps()
    assert (gps.fix, gps.has_fix, gps.last_heard_at) == (None, False, None)
    gps.feed(WARSAW_GGA + WARSAW_RMC)
    assert parse(WARSAW_GGA).talker == "GN"
    assert gps.has_fix
    assert gps.fix is not None
    assert gps.fix.lat == pytest.approx(52.2297667, abs=1e-7)
    assert gps.fix.lat == pytest.approx(WARSAW_LAT, abs=1e-12)
    assert gps.fix.lon == pytest.approx(21.0122, abs=1e-12)
    assert (gps.fix.satellites, gps.fix.hdop) == (8, 1.01)
    assert gps.fix.speed_kmh == pytest.approx(12.5 * KNOT_KMH)
    assert gps.speed_kmh == pytest.approx(23.15)
    assert (gps.satellites, gps.hdop) == (8, 1.01)
    assert gps.sentences == 2
    assert gps.last_fix_at == gps.last_heard_at == clock.now
    assert gps.errors == dict.fromkeys(ERROR_KINDS, 0)
    assert len(changes) == 2


def test_south_and_west_are_negative() -> None:
    gga = parse_gga(parse(SOUTH_WEST_GGA))
    assert gga.lat == pytest.approx(-34.60333333, abs=1e-8)
    assert gga.lon == pytest.approx(-58.38, abs=1e-12)
    assert (gga.quality, gga.satellites, gga.hdop) == (2, 11, 0.8)
    rmc = parse_rmc(parse(SOUTH_WEST_RMC))
    assert (rmc.lat, rmc.lon, rmc.valid, rmc.speed_kmh, rmc.course) \
        == (gga.lat, gga.lon, True, 0.0, None)
    assert gga.lat is not None and gga.lon is not None
    gps, _, _ = make_gps()
    gps.feed(SOUTH_WEST_RMC)
    assert gps.fix == Fix(gga.lat, gga.lon, None, None, 0.0)


@pytest.mark.parametrize("line", [
    NO_FIX_GGA,
    NO_FIX_RMC,
    sentence("GPGGA,092726.00,5213.7860,N,02100.7320,E,0,03,4.2,110.6,M,33.9,M,,"),
    sentence("GPRMC,092726.00,V,5213.7860,N,02100.7320,E,0.1,,150624,,,A"),
    # NMEA 2.3 mode N (not valid) overrides a status A
    sentence("GNRMC,092726.00,A,5213.7860,N,02100.7320,E,0.1,,150624,,,N"),
    # a fix quality but no position: nothing to report
    sentence("GPGGA,092726.00,,,,,1,04,9.9,,,,,,"),
], ids=["gga-quality-0", "rmc-void", "gga-0-with-position", "rmc-void-with-position",
        "rmc-mode-n", "gga-empty-position"])
def test_lost_fix_keeps_the_last_position(line: bytes) -> None:
    gps, clock, changes = make_gps()
    gps.feed(WARSAW_GGA + WARSAW_RMC)
    fix, fixed_at = gps.fix, gps.last_fix_at
    clock.now += 1
    gps.feed(line)
    assert not gps.has_fix
    assert gps.fix == fix
    assert gps.last_fix_at == fixed_at
    assert gps.last_heard_at == clock.now
    assert gps.sentences == 3
    assert gps.errors == dict.fromkeys(ERROR_KINDS, 0)
    assert len(changes) == 3
    clock.now += 1
    gps.feed(SOUTH_WEST_GGA)  # and back
    assert gps.has_fix
    assert gps.fix is not None and gps.fix.lat < 0
    assert gps.last_fix_at == clock.now


def test_no_fix_from_the_start() -> None:
    gps, clock, changes = make_gps()
    gps.feed(TXT + NO_FIX_RMC + NO_FIX_GGA)
    assert (gps.fix, gps.has_fix, gps.last_fix_at) == (None, False, None)
    assert (gps.satellites, gps.hdop, gps.speed_kmh) == (0, 99.99, None)
    assert gps.last_heard_at == clock.now
    assert gps.sentences == 3
    assert len(changes) == 2


@pytest.mark.parametrize("line", [GSV, TXT, VTG,
                                  sentence("GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1"),
                                  sentence("GLGSV,1,1,00")])
def test_other_sentences_are_heard_but_change_no_fix(line: bytes) -> None:
    for before in (b"", WARSAW_GGA, NO_FIX_GGA):
        gps, clock, changes = make_gps()
        gps.feed(before)
        was = state(gps)
        clock.now += 5
        gps.feed(line)
        assert gps.sentences == int(before != b"") + 1
        assert gps.last_heard_at == clock.now
        assert state(gps)[:5] == was[:5]  # fix, has_fix, satellites, HDOP, speed
        assert gps.last_fix_at == was[6]
        assert gps.errors == dict.fromkeys(ERROR_KINDS, 0)
        assert len(changes) == int(before != b"")


def _good_gga(body_fields: str) -> bytes:
    return sentence("GPGGA,092725.00," + body_fields)


def _good_rmc(body_fields: str) -> bytes:
    return sentence("GPRMC,092725.00," + body_fields)


REJECTED = [
    # (line, reason in the error, counter)
    (stamped(WARSAW_GGA, b"%02X" % (checksum(WARSAW_GGA[1:-5]) ^ 1)), "checksum mismatch",
     "checksum"),
    (WARSAW_GGA.replace(b"5213.7860", b"5213.7861"), "checksum mismatch", "checksum"),
    (b"$GPGGA,092725.00,5213.7860,N,02100.7320,E,1,08,1.01,110.6,M,33.9,M,,\r\n",
     "no checksum", "checksum"),
    (stamped(WARSAW_GGA, b"4"), "no checksum", "checksum"),
    (stamped(WARSAW_GGA, b"470"), "no checksum", "checksum"),
    (stamped(WARSAW_GGA, b"G7"), "not hex", "checksum"),
    (sentence("GPTXT,01,01,02,cafe").replace(b"cafe", b"caf\xc3\xa9"), "not printable ASCII",
     "invalid"),
    (b"$GPTXT,01,01,02,\x00\x01*00\r\n", "not printable ASCII", "invalid"),
    (sentence("GPTXT,01,01,02," + "x" * 100), f"longer than {MAX_LINE}", "overlong"),
    (b"GPGGA,1*00\r\n", "does not start with \\$", "invalid"),
    (sentence("GPGG,1"), "bad address", "invalid"),
    (sentence("gpgga,1"), "bad address", "invalid"),
    (_good_gga("5213.7860,X,02100.7320,E,1,08,1.01,110.6,M,33.9,M,,"), "bad hemisphere",
     "invalid"),
    (_good_gga("5213.7860,N,02100.7320,N,1,08,1.01,110.6,M,33.9,M,,"), "bad hemisphere",
     "invalid"),
    (_good_gga("5213.7860,,02100.7320,E,1,08,1.01,110.6,M,33.9,M,,"), "bad hemisphere",
     "invalid"),
    (_good_gga("5260.0000,N,02100.7320,E,1,08,1.01,110.6,M,33.9,M,,"), "out of range",
     "invalid"),
    (_good_gga("5213.7860,N,02175.0000,E,1,08,1.01,110.6,M,33.9,M,,"), "out of range",
     "invalid"),
    (_good_gga("9100.0000,N,02100.7320,E,1,08,1.01,110.6,M,33.9,M,,"), "out of range",
     "invalid"),
    (_good_gga("9000.0001,S,02100.7320,E,1,08,1.01,110.6,M,33.9,M,,"), "out of range",
     "invalid"),
    (_good_gga("5213.7860,N,18000.0060,W,1,08,1.01,110.6,M,33.9,M,,"), "out of range",
     "invalid"),
    (_good_gga("213.7860,N,02100.7320,E,1,08,1.01,110.6,M,33.9,M,,"), "bad lat", "invalid"),
    (_good_gga("5213.7860,N,2100.7320,E,1,08,1.01,110.6,M,33.9,M,,"), "bad lon", "invalid"),
    (_good_gga("5213.78x0,N,02100.7320,E,1,08,1.01,110.6,M,33.9,M,,"), "bad minutes",
     "invalid"),
    (_good_gga(",N,02100.7320,E,1,08,1.01,110.6,M,33.9,M,,"), "bad lat", "invalid"),
    (_good_gga("5213.7860,N,02100.7320,E,,08,1.01,110.6,M,33.9,M,,"), "fix quality",
     "invalid"),
    (_good_gga("5213.7860,N,02100.7320,E,9,08,1.01,110.6,M,33.9,M,,"), "fix quality",
     "invalid"),
    (_good_gga("5213.7860,N,02100.7320,E,1,100,1.01,110.6,M,33.9,M,,"), "satellites",
     "invalid"),
    (_good_gga("5213.7860,N,02100.7320,E,1,08,-1.0,110.6,M,33.9,M,,"), "HDOP", "invalid"),
    (_good_gga("5213.7860,N,02100.7320,E,1,08,1.01,nan,M,33.9,M,,"), "altitude", "invalid"),
    (_good_gga("5213.7860,N,02100.7320,E,1,08"), "too few fields", "invalid"),
    (_good_rmc(",5213.7860,N,02100.7320,E,12.5,77.52,150624,,,A"), "RMC status", "invalid"),
    (_good_rmc("A,5213.7860,S,02100.7320,W,inf,77.52,150624,,,A"), "speed", "invalid"),
    (_good_rmc("A,5213.7860,N,02100.7320,E,12.5,360.0,150624,,,A"), "course", "invalid"),
    (_good_rmc("A,5213.7860,N,02100.7320,E"), "too few fields", "invalid"),
]


@pytest.mark.parametrize(("line", "reason", "kind"), REJECTED)
def test_refused_lines_raise_with_a_reason_and_are_counted(line: bytes, reason: str,
                                                           kind: str) -> None:
    with pytest.raises(NmeaError, match=reason):
        decode(line)
    gps, clock, changes = make_gps()
    gps.feed(WARSAW_GGA + WARSAW_RMC)
    was = state(gps)
    clock.now += 1
    gps.feed(line)
    assert state(gps)[:-1] == was[:-1]  # fix, has_fix, counters and times untouched
    assert gps.errors == {**dict.fromkeys(ERROR_KINDS, 0), kind: 1}
    assert len(changes) == 2
    gps.feed(SOUTH_WEST_GGA)  # and the next good line is read
    assert gps.fix is not None and gps.fix.lon == pytest.approx(-58.38)


def test_lower_case_checksum_digits_are_accepted() -> None:
    # the standard writes them upper case; a receiver writing them lower case is still right
    line = sentence("GPTXT,01,01,02,A")
    assert line.endswith(b"*0C\r\n")
    assert parse(stamped(line, b"0c")) == parse(line)


def test_a_line_one_over_the_limit_is_overlong_whatever_its_line_end() -> None:
    line = sentence("GPTXT,01,01,02," + "x" * (MAX_LINE - 18)).rstrip(b"\r\n")
    assert len(line) == MAX_LINE + 1
    with pytest.raises(NmeaError, match="longer than"):
        parse(line)
    for end in (b"\r\n", b"\n"):
        gps, _, _ = make_gps()
        gps.feed(line + end)
        assert gps.errors == {**dict.fromkeys(ERROR_KINDS, 0), "overlong": 1}, end


@pytest.mark.parametrize("bad", [b"+", b" ", b"-"])
def test_checksum_must_be_two_hex_digits(bad: bytes) -> None:
    # int("+C", 16) == int(" C", 16) == 0x0C and int("-0", 16) == 0
    line = sentence("GPTXT,01,01,02,A") if bad != b"-" else sentence("GPTXT,01,01,02,M")
    assert line.endswith(b"*0C\r\n" if bad != b"-" else b"*00\r\n")
    with pytest.raises(NmeaError, match="not hex"):
        parse(stamped(line, bad + line[-3:-2]))


def test_line_reader_cuts_lines() -> None:
    reader = LineReader()
    assert reader.feed(b"$GPTXT,1*00\r\n\r\n\n$GPV") == [b"$GPTXT,1*00"]  # blank lines dropped
    assert reader.feed(b"TG,2*00\n") == [b"$GPVTG,2*00"]  # LF alone ends a line too
    assert reader.feed(b"") == []
    assert reader.feed(b"x" * (MAX_LINE + 5)) == []
    assert reader.overlong == 1
    assert reader.feed(b"still the same line\r\nnext\r\n") == [b"next"]
    assert reader.overlong == 1
    exact = b"$" + b"y" * (MAX_LINE - 1)
    assert reader.feed(exact + b"\r\n") == [exact]  # MAX_LINE with its CR LF still fits


# ---- properties ------------------------------------------------------------------------------


def ddmm(value: float, axis: str) -> tuple[str, str]:
    """``value`` in signed degrees as NMEA (d)ddmm.mmmmmm and its hemisphere."""
    hemisphere = ("N" if value >= 0 else "S") if axis == "lat" else ("E" if value >= 0 else "W")
    micro_minutes = round(abs(value) * 60 * 1_000_000)
    degrees, rest = divmod(micro_minutes, 60 * 1_000_000)
    minutes, fraction = divmod(rest, 1_000_000)
    width = 2 if axis == "lat" else 3
    return f"{degrees:0{width}d}{minutes:02d}.{fraction:06d}", hemisphere


latitudes = st.floats(-90, 90, allow_nan=False)
longitudes = st.floats(-180, 180, allow_nan=False)


@st.composite
def fixes(draw: st.DrawFn) -> tuple[float, float, bytes, bytes]:
    lat, lon = draw(latitudes), draw(longitudes)
    la, ns = ddmm(lat, "lat")
    lo, ew = ddmm(lon, "lon")
    gga = sentence(f"GNGGA,235959.99,{la},{ns},{lo},{ew},1,12,0.7,-12.5,M,47.0,M,,")
    rmc = sentence(f"GNRMC,235959.99,A,{la},{ns},{lo},{ew},0.02,359.99,311299,,,A")
    return lat, lon, gga, rmc


# lines with a right checksum and fields that look nearly right: reach the field parsers
field_text = st.text(alphabet="0123456789.-+NSEWAVMn e", max_size=11)
checked_lines = st.builds(
    lambda kind, fields: sentence(kind + "," + ",".join(fields)),
    st.sampled_from(["GPGGA", "GNRMC", "GPRMC", "GNGGA", "GPGSV"]),
    st.lists(field_text, max_size=14),
)
pieces = st.one_of(st.binary(max_size=40), st.sampled_from(VALID), checked_lines,
                   fixes().map(lambda f: f[2] + f[3]),
                   st.sampled_from([b"\r\n", b"\n", b"\r", b"$", b"*", b",", b"\xff"]))
streams = st.lists(pieces, max_size=30).map(b"".join)


@FUZZ
@given(streams, st.lists(st.integers(0, 2000), max_size=20))
def test_any_bytes_in_any_chunking_never_raise_nor_give_an_impossible_fix(
        stream: bytes, cuts: list[int]) -> None:
    whole, _, _ = make_gps()
    whole.feed(stream)
    chunked, _, _ = make_gps()
    for chunk in split(stream, cuts):
        chunked.feed(chunk)
        assert len(chunked._lines._buf) <= MAX_LINE + 1
        if chunked.fix is not None:
            assert -90 <= chunked.fix.lat <= 90
            assert -180 <= chunked.fix.lon <= 180
        assert all(n >= 0 for n in chunked.errors.values())
    assert state(chunked) == state(whole)
    assert chunked.has_fix <= (chunked.fix is not None)


@FUZZ
@given(streams, st.lists(st.integers(0, 2000), max_size=20))
def test_line_reader_gives_the_same_lines_whatever_the_chunking(stream: bytes,
                                                               cuts: list[int]) -> None:
    whole = LineReader()
    expected = whole.feed(stream)
    reader = LineReader()
    got: list[bytes] = []
    for chunk in split(stream, cuts):
        got += reader.feed(chunk)
        assert len(reader._buf) <= MAX_LINE + 1
    assert got == expected
    assert reader.overlong == whole.overlong
    assert all(b"\n" not in line and 0 < len(line) <= MAX_LINE + 1 for line in got)


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=500).map(lambda b: b.replace(b"\n", b"x")),
                min_size=1, max_size=40))
def test_an_endless_line_costs_bounded_memory(chunks: list[bytes]) -> None:
    gps, _, _ = make_gps()
    for chunk in chunks:
        gps.feed(chunk)
        assert len(gps._lines._buf) <= MAX_LINE + 1
    total = sum(map(len, chunks))
    assert gps.errors["overlong"] == int(total > MAX_LINE + 1)
    gps.feed(b"\n" + WARSAW_GGA)  # the babble ends: the next sentence is read
    assert gps.has_fix
    assert gps.sentences == 1


@FUZZ
@given(fixes())
def test_round_trip_of_any_position(fix: tuple[float, float, bytes, bytes]) -> None:
    lat, lon, gga_line, rmc_line = fix
    assert len(gga_line) <= MAX_LINE + 2 and len(rmc_line) <= MAX_LINE + 2
    gga, rmc = parse_gga(parse(gga_line)), parse_rmc(parse(rmc_line))
    for got in (gga, rmc):
        assert got.lat == pytest.approx(lat, abs=1e-6)
        assert got.lon == pytest.approx(lon, abs=1e-6)
    for line in (gga_line, rmc_line):
        gps, _, _ = make_gps()
        gps.feed(line)
        assert gps.has_fix
        assert gps.fix is not None
        assert gps.fix.lat == pytest.approx(lat, abs=1e-6)
        assert gps.fix.lon == pytest.approx(lon, abs=1e-6)


printable = st.integers(0x20, 0x7E)


@FUZZ
@given(st.one_of(st.sampled_from(VALID), fixes().map(lambda f: f[2]), checked_lines),
       st.integers(0, 200), printable)
def test_any_single_character_corruption_fails_the_checksum(line: bytes, where: int,
                                                            char: int) -> None:
    star = line.rindex(b"*")
    index = 1 + where % (star - 1)  # a character between $ and *
    if line[index] == char:
        char = 0x20 if char != 0x20 else 0x21
    damaged = line[:index] + bytes([char]) + line[index + 1:]
    if len(damaged.rstrip(b"\r\n")) <= MAX_LINE:
        with pytest.raises(NmeaError, match="checksum"):
            parse(damaged)
    gps, _, _ = make_gps()
    gps.feed(damaged)
    assert (gps.fix, gps.sentences, gps.last_heard_at) == (None, 0, None)
    assert sum(gps.errors.values()) == 1
