"""The LTE router's registers decoded (supervisor/comms/router.py): the GPS floats in either
firmware byte order, learnt on ``auto``, never a wrong position from an ambiguous reading;
any register words at all give a position in range or none."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from testsupport import FUZZ

from supervisor.comms.router import RouterGps, dotted

LATS = st.floats(min_value=-89.9, max_value=89.9).filter(lambda v: abs(v) > 0.001)
LONS = st.floats(min_value=-179.9, max_value=179.9).filter(lambda v: abs(v) > 0.001)
WORDS = st.integers(min_value=0, max_value=0xFFFFFFFF)


def served(value: float, order: str) -> int:
    """The u32 a router with this firmware byte order serves for ``value``."""
    raw = struct.pack(">f", value)
    return int.from_bytes(raw if order == "ABCD" else raw[::-1], "big")


def f32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


def test_warsaw_in_either_order() -> None:
    for order in ("ABCD", "DCBA"):
        gps = RouterGps()
        lat, lon = gps.position(served(52.22977, order), served(21.01178, order)) or (0, 0)
        assert (round(lat, 5), round(lon, 5)) == (52.22977, 21.01178)
        assert gps.order == order


def test_no_fix_and_garbage_are_no_position() -> None:
    gps = RouterGps()
    assert gps.position(0, 0) is None  # the router's "no fix"
    assert gps.position(None, served(21.0, "ABCD")) is None
    assert gps.position("52.2", 7) is None
    assert gps.position(True, 1) is None
    assert gps.position(-1, 2**32) is None
    assert gps.order is None


@settings(FUZZ)
@given(lat=LATS, lon=LONS, order=st.sampled_from(["ABCD", "DCBA"]),
       later=st.lists(st.tuples(LATS, LONS), min_size=1, max_size=20))
def test_a_learnt_order_gives_every_later_position_right(
        lat: float, lon: float, order: str, later: list[tuple[float, float]]) -> None:
    """Whatever the firmware's order, no reading ever gives a wrong position: an ambiguous
    one before the order is known gives none, and once known every position is exact."""
    gps = RouterGps()
    for a, b in [(lat, lon), *later]:
        got = gps.position(served(a, order), served(b, order))
        if got is not None:
            assert got == (f32(a), f32(b))
    if gps.order is not None:
        assert gps.order == order


@settings(FUZZ)
@given(lat=LATS, lon=LONS, order=st.sampled_from(["ABCD", "DCBA"]))
def test_a_configured_order_is_used_as_it_is(lat: float, lon: float, order: str) -> None:
    gps = RouterGps(order)  # type: ignore[arg-type]
    assert gps.position(served(lat, order), served(lon, order)) == (f32(lat), f32(lon))


@settings(FUZZ)
@given(a=WORDS, b=WORDS, c=WORDS, d=WORDS)
def test_any_words_give_a_position_in_range_or_none(a: int, b: int, c: int, d: int) -> None:
    gps = RouterGps()
    for lat_raw, lon_raw in ((a, b), (c, d)):
        got = gps.position(lat_raw, lon_raw)
        if got is not None:
            assert -90 <= got[0] <= 90 and -180 <= got[1] <= 180
    assert dotted(a) is not None and dotted(-1) is None and dotted("x") is None
