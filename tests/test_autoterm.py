"""Autoterm frame codec and status parsing: the captured frames of the device facts (§6) with
their CRCs, then properties over arbitrary input (hypothesis, with the budget of
testsupport.FUZZ)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testsupport import FUZZ

from drivers.autoterm import (
    ERROR_CODES,
    MAX_PAYLOAD,
    AutotermHeater,
    Frame,
    FrameReader,
    HeaterStatus,
    Wanted,
    describe_error,
    encode,
    encode_status,
    parse_settings,
    parse_status,
    state_of,
)
from drivers.modbus_frame import crc16

# (frame as captured, dev, cmd, payload) — every one from ../shared/devices/README.md §6
CAPTURED = [
    ("AA 03 00 00 0F 58 7C", 0x03, 0x0F, ""),  # status request
    ("AA 03 06 00 01 FF FF 04 0F 00 02 B8 5E", 0x03, 0x01, "FF FF 04 0F 00 02"),  # PU-27 start
    ("AA 03 06 00 01 FF FF 04 FF 02 01 EA 1F", 0x03, 0x01, "FF FF 04 FF 02 01"),  # Comfort
    ("AA 03 00 00 02 9D BD", 0x03, 0x02, ""),  # read settings
    ("AA 03 06 00 02 FF FF 04 0F 00 01 B9 2D", 0x03, 0x02, "FF FF 04 0F 00 01"),
    ("AA 03 00 00 03 5D 7C", 0x03, 0x03, ""),  # stop
    ("AA 04 00 00 03 29 7D", 0x04, 0x03, ""),  # ... and the heater's answer
    ("AA 03 04 00 23 FF FF 02 0F 05 0D", 0x03, 0x23, "FF FF 02 0F"),  # ventilation PU-27
    ("AA 03 03 00 23 00 1E 02 DA 7A", 0x03, 0x23, "00 1E 02"),  # ventilation Comfort
    ("AA 03 01 00 11 1A 76 D0", 0x03, 0x11, "1A"),  # panel temperature 26 °C
    ("AA 03 00 00 1C 95 3D", 0x03, 0x1C, ""),  # handshake
    ("AA 03 00 00 06 5E BC", 0x03, 0x06, ""),  # firmware version
    ("AA 04 05 00 06 03 01 0E 02 03 62 C1", 0x04, 0x06, "03 01 0E 02 03"),
    ("AA 04 0A 00 0F 00 01 00 1A 7F 00 7B 01 2B 00 50 AD", 0x04, 0x0F,
     "00 01 00 1A 7F 00 7B 01 2B 00"),  # status: standby
]
STATUS_EXAMPLE = bytes.fromhex("AA 04 0A 00 0F 00 01 00 1A 7F 00 7B 01 2B 00 50 AD")


@pytest.mark.parametrize(("wire", "dev", "cmd", "payload"), CAPTURED)
def test_captured_frames_encode_and_decode(wire: str, dev: int, cmd: int, payload: str) -> None:
    raw = bytes.fromhex(wire)
    assert crc16(raw[:-2]) == int.from_bytes(raw[-2:], "big")  # high byte first
    assert encode(dev, cmd, bytes.fromhex(payload)) == raw
    reader = FrameReader()
    assert reader.feed(raw) == [Frame(dev, cmd, bytes.fromhex(payload))]
    assert (reader.crc_errors, reader.garbage_bytes, reader.pending) == (0, 0, 0)


def test_crc_of_the_status_request() -> None:
    assert crc16(bytes.fromhex("AA 03 00 00 0F")) == 0x587C


def test_status_example_is_standby_26_c_no_sensor_12_3_v() -> None:
    (frame,) = FrameReader().feed(STATUS_EXAMPLE)
    status = parse_status(frame.payload)
    assert status == HeaterStatus(state="standby", state_code=(0, 1), error=0, intake_c=26,
                                  external_c=None, voltage_v=12.3, flame_c=25.85)
    assert not status.in_run_on and status.error_info is None
    assert encode_status(status) == frame.payload


def test_long_status_has_fan_and_pump() -> None:
    payload = bytes.fromhex("03 00 00 F6 14 00 7E 01 C2 00 00 28 27 00 0C 00 00 00 00")
    status = parse_status(payload)
    assert (status.state, status.intake_c, status.external_c) == ("running", -10, 20)
    assert (status.voltage_v, status.flame_c) == (12.6, 176.85)
    assert (status.fan_set_hz, status.fan_hz, status.pump_hz) == (40, 39, 1.2)
    assert parse_status(encode_status(status)) == status


@pytest.mark.parametrize(("code", "state", "run_on"), [
    ((0, 0), "off", False), ((0, 1), "standby", False), ((1, 0), "cooling", True),
    ((1, 1), "cooling", True), ((2, 1), "starting", False), ((2, 4), "starting", False),
    ((2, 9), "starting", False), ((3, 0), "running", False), ((3, 35), "ventilation", False),
    ((3, 4), "cooling", True), ((4, 0), "shutting_down", True), ((5, 7), "unknown", False),
    ((3, 9), "unknown", False),
])
def test_state_table(code: tuple[int, int], state: str, run_on: bool) -> None:
    payload = bytes((*code, 0, 20, 0x7F, 0, 126, 1, 37, 0))
    status = parse_status(payload)
    assert (status.state, status.state_code, status.in_run_on) == (state, code, run_on)
    assert state_of(code) == state
    if state == "unknown":
        assert f"{code[0]}.{code[1]}" in status.state_text


def test_error_codes_have_id_english_and_polish() -> None:
    expected = {1, 2, 5, 6, 9, 10, 11, 12, 13, 15, 16, 17, 20, 29, 30, 31, 33, 37}
    assert set(ERROR_CODES) == expected
    assert ERROR_CODES[13][0] == "no_start"
    for short, english, polish in ERROR_CODES.values():
        assert short.isidentifier() and english and polish
    assert describe_error(99) == ("error_99", "Unknown error 99", "Nieznany błąd 99")


@pytest.mark.parametrize("length", [0, 9, 11, 18, 20])
def test_status_of_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="status payload"):
        parse_status(bytes(length))


def test_settings_payload_round_trip() -> None:
    settings = parse_settings(bytes.fromhex("FF FF 04 0F 00 02"))
    assert (settings.run_time, settings.mode, settings.setpoint_c, settings.level) == (
        0xFFFF, 4, 15, 2)
    assert settings.payload() == bytes.fromhex("FF FF 04 0F 00 02")
    with pytest.raises(ValueError):
        parse_settings(b"\x01")


def test_reader_resynchronises_and_counts() -> None:
    good = bytes.fromhex("AA 03 00 00 0F 58 7C")
    damaged = bytearray(STATUS_EXAMPLE)
    damaged[8] ^= 0x10
    reader = FrameReader()
    frames = reader.feed(b"\x00\x13" + bytes(damaged) + good)
    assert frames == [Frame(3, 0x0F, b"")]
    assert reader.crc_errors == 1
    assert reader.garbage_bytes == 2 + len(damaged) - 1  # the damaged frame's 0xAA is its crc
    assert reader.pending == 0


def test_reader_refuses_an_over_long_frame_at_once() -> None:
    reader = FrameReader()
    good = bytes.fromhex("AA 03 00 00 0F 58 7C")
    assert reader.feed(bytes((0xAA, 0x04, MAX_PAYLOAD + 1, 0x00)) + good) == [
        Frame(3, 0x0F, b"")]
    assert reader.garbage_bytes == 4


def test_flush_finds_a_frame_behind_a_false_start() -> None:
    good = bytes.fromhex("AA 03 00 00 0F 58 7C")
    reader = FrameReader()
    assert reader.feed(b"\xaa\x04\x30\x00" + good) == []  # waits for 55 bytes: a false start
    assert reader.flush() == [Frame(3, 0x0F, b"")]
    assert reader.pending == 0


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        encode(0x100, 0x0F)
    with pytest.raises(ValueError):
        encode(3, 0x0F, bytes(256))


def test_wanted_heat_by_level_or_setpoint_and_ranges() -> None:
    heater = AutotermHeater("/nonexistent")
    assert heater.wanted is None  # nothing wanted yet: a running heater is left alone
    heater.want_heat(level=3)
    assert heater.wanted == Wanted("heat", None, 3)
    heater.want_heat(setpoint_c=21)
    assert heater.wanted == Wanted("heat", 21, None)
    heater.want_ventilation(5)
    heater.want_off()
    assert heater.wanted == Wanted("off")
    for bad in ({}, {"level": 10}, {"setpoint_c": 0}, {"setpoint_c": 31}, {"level": -1}):
        with pytest.raises(ValueError):
            heater.want_heat(**bad)
    with pytest.raises(ValueError):
        heater.want_ventilation(10)


# ---- properties ----------------------------------------------------------------------------

frames_st = st.builds(Frame, st.integers(0, 255), st.integers(0, 255),
                      st.binary(max_size=MAX_PAYLOAD))


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(1, 64), max_size=40))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    reader = FrameReader()
    position = 0
    for size in cuts:  # fed in arbitrary chunks, as a UART delivers them
        reader.feed(data[position:position + size])
        position += size
    reader.feed(data[position:])
    reader.flush()
    assert reader.pending == 0
    assert reader.garbage_bytes + reader.crc_errors <= len(data)


@FUZZ
@given(st.binary(max_size=300), frames_st)
def test_a_frame_after_garbage_is_found(garbage: bytes, frame: Frame) -> None:
    reader = FrameReader()
    found = reader.feed(garbage + frame.to_bytes()) + reader.flush()
    assert found[-1] == frame


@FUZZ
@given(st.lists(frames_st, max_size=8), st.lists(st.integers(1, 20), max_size=20))
def test_encode_decode_round_trip_in_any_chunks(frames: list[Frame], cuts: list[int]) -> None:
    wire = b"".join(f.to_bytes() for f in frames)
    reader = FrameReader()
    found: list[Frame] = []
    position = 0
    for size in cuts:
        found += reader.feed(wire[position:position + size])
        position += size
    found += reader.feed(wire[position:])
    assert found == frames
    assert (reader.crc_errors, reader.garbage_bytes, reader.pending) == (0, 0, 0)


@FUZZ
@given(st.binary(max_size=40))
def test_parse_status_raises_only_value_error(payload: bytes) -> None:
    try:
        status = parse_status(payload)
    except ValueError:
        assert len(payload) not in (10, 19)
        return
    assert parse_status(encode_status(status)) == status
