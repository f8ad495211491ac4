"""Register codec: the values a technician reads must match the vendor's examples."""

import pytest

from drivers.register_codec import CodecError, decode, encode


def test_xy_md02_manual_examples() -> None:
    # the manual's reply 0x0131 = 30.5 degC and 0xFF33 = -20.5 degC (signed, /10)
    assert decode([0x0131], "s16", 10) == pytest.approx(30.5)
    assert decode([0xFF33], "s16", 10) == pytest.approx(-20.5)


def test_victron_scales_including_fractional_and_negative() -> None:
    assert decode([1284], "u16", 100) == pytest.approx(12.84)  # battery V, scale 100
    assert decode([0xFF9C], "s16", 10) == pytest.approx(-10.0)  # discharge current
    assert decode([72], "u16", 0.01) == pytest.approx(7200)  # time to go: 1 count = 100 s
    assert decode([150], "u16", -10) == pytest.approx(-15.0)  # consumed Ah is negative


@pytest.mark.parametrize(
    ("type_", "value", "order"),
    [("u32", 123456789, "big"), ("s32", -42, "little"), ("f32", 229.5, "big"),
     ("f32", -0.25, "little"), ("u16", 65535, "big")],
)
def test_round_trip(type_: str, value: float, order: str) -> None:
    regs = encode(value, type_, 1, order)  # type: ignore[arg-type]
    assert decode(regs, type_, 1, order) == pytest.approx(value)  # type: ignore[arg-type]


def test_word_order_matters() -> None:
    # 1.5 is 0x3FC00000: high word first (ABCD) or low word first (CDAB)
    big = encode(1.5, "f32", 1, "big")
    little = encode(1.5, "f32", 1, "little")
    assert big == list(reversed(little))
    assert big == [0x3FC0, 0x0000]


def test_invalid_sentinel_and_nan_give_none() -> None:
    assert decode([0xFFFF], "u16", 1, invalid=0xFFFF) is None
    assert decode([0x7FC0, 0x0000], "f32") is None


def test_strings_are_nul_padded_ascii() -> None:
    regs = encode("HQ-01", "string", words=4)
    assert len(regs) == 4
    assert decode(regs, "string") == "HQ-01"


def test_out_of_range_refused() -> None:
    with pytest.raises(CodecError):
        encode(70000, "u16")
    with pytest.raises(CodecError):
        encode(-1, "u16")
