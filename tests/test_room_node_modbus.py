"""The room node's Modbus RTU slave: frames, CRC, every function code, exceptions, other
units' traffic, broadcasts and damaged frames (the firmware core under CPython)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from room_node_rig import (
    UNIT,
    Rig,
    crc_ok,
    exception_code,
    frame,
    read_request,
    write_multiple,
    write_single,
)
from testsupport import FUZZ, modbus_crc

from roomnode.modbus import crc16, frame_gap_ms
from roomnode.node import FW_VERSION, IDENTITY, SAFE_CALM_LIGHT


@FUZZ
@given(st.binary(max_size=300))
def test_crc_is_the_specifications(data: bytes) -> None:
    assert crc16(data) == modbus_crc(data)


def test_crc_of_known_frames() -> None:
    # read one holding register of unit 1 at 0, as every Modbus primer shows it: 84 0A
    assert frame(1, 3, 0, 0, 0, 1) == bytes.fromhex("010300000001840a")
    assert crc16(b"") == 0xFFFF


def test_frame_gap_is_three_and_a_half_characters_rounded_up() -> None:
    assert frame_gap_ms(9600) == 6  # 4.01 ms of 11-bit characters, and one tick of doubt
    assert frame_gap_ms(19200) == 4
    assert frame_gap_ms(115200) == 3  # never under the specification's 1.75 ms


def test_reads_of_the_input_table() -> None:
    rig = Rig()
    words = rig.read(4, 0, 24)
    assert words[16:18] == [IDENTITY, FW_VERSION]
    assert words[7:16] == [0] * 9  # the hole between the fast and the slow block
    assert rig.read(4, 16, 1) == [0x524E]


def test_uptime_is_a_u32_in_big_word_order() -> None:
    rig = Rig()
    rig.node.uptime_s = 0x0001_0002
    assert rig.read(4, 18, 2) == [1, 2]


def test_reads_of_the_holding_table_are_the_outputs() -> None:
    rig = Rig()
    # door sign, recording, buzzer, calm light 30.0 %, lease 10.0 s, panic_ack reads 0
    assert rig.read(3, 100, 6) == [0, 0, 0, SAFE_CALM_LIGHT, 100, 0]


def test_write_single_sets_the_output_and_echoes() -> None:
    rig = Rig()
    rig.write(101, 1)
    assert rig.node.outputs() == (0, 1, 0, SAFE_CALM_LIGHT)


def test_write_multiple_sets_them_all_and_answers_address_and_count() -> None:
    rig = Rig()
    rig.write(100, 1, 1, 1, 555, 20)
    assert rig.node.outputs() == (1, 1, 1, 555)
    assert rig.read(3, 104, 1) == [20]


@pytest.mark.parametrize(("request_frame", "code"), [
    (read_request(1, 0, 8), 1),  # read coils: the node has none
    (read_request(2, 0, 8), 1),
    (frame(UNIT, 5, 0, 100, 0xFF, 0), 1),  # write coil
    (frame(UNIT, 43, 14, 1, 0), 1),  # device identification
    (frame(UNIT, 0x41), 1),
    (read_request(4, 0, 0), 3),  # no registers
    (read_request(4, 0, 126), 3),  # more than a frame carries
    (read_request(4, 1000, 0), 3),  # the count is checked before the address
    (frame(UNIT, 4, 0, 0, 0, 1, 0), 3),  # a byte too many
    (frame(UNIT, 3, 0, 100, 0), 3),  # a byte short
    (read_request(4, 24, 1), 2),  # past the input table
    (read_request(4, 20, 5), 2),  # running past it
    (read_request(3, 99, 1), 2),  # below the holding table
    (read_request(3, 100, 7), 2),  # past it
    (read_request(4, 100, 1), 2),  # holding addresses are not inputs
    (write_single(16, 1), 2),  # an input is not writable
    (write_single(106, 1), 2),
    (write_single(100, 2), 3),  # door sign is 0 or 1
    (write_single(102, 0xFFFF), 3),
    (write_single(103, 1001), 3),  # calm light at most 100.0 %
    (write_single(104, 4), 3),  # lease at least 0.5 s
    (write_single(104, 601), 3),  # and at most 60 s
    (write_single(105, 4), 3),  # two buttons: bits 0 and 1
    (frame(UNIT, 6, 0, 100, 0), 3),  # FC06 a byte short
    (write_multiple(105, [0, 0]), 2),  # the second register is past the table
    (write_multiple(99, [0, 0]), 2),
    (write_multiple(100, [1, 2]), 3),
    (frame(UNIT, 16, 0, 100, 0, 1, 4, 0, 1, 0, 1), 3),  # byte count is not 2 * count
    (frame(UNIT, 16, 0, 100, 0, 2, 4, 0, 1), 3),  # fewer bytes than it says
    (frame(UNIT, 16, 0, 100, 0, 0, 0), 3),  # no registers
    (frame(UNIT, 16, 0, 100), 3),
])
def test_exceptions(request_frame: bytes, code: int) -> None:
    rig = Rig()
    before = rig.node.values()
    answer = rig.send(request_frame)
    assert answer is not None and crc_ok(answer)
    assert answer[:2] == bytes((UNIT, request_frame[1] | 0x80))
    assert exception_code(answer) == code
    assert rig.node.values() == before  # a refused write changed nothing
    assert not rig.node.lease_running()  # and renewed nothing


def test_a_multiple_write_with_one_bad_value_changes_nothing() -> None:
    rig = Rig()
    assert exception_code(rig.send(write_multiple(100, [1, 1, 1, 1001]))) == 3
    assert rig.node.outputs() == (0, 0, 0, SAFE_CALM_LIGHT)


def test_other_units_traffic_is_ignored_and_not_counted() -> None:
    rig = Rig()
    assert rig.send(read_request(4, 0, 7, unit=UNIT + 1)) is None
    assert rig.send(write_single(100, 1, unit=2)) is None
    # another slave's answer to the master, heard on the shared bus
    assert rig.send(frame(2, 3, 4, 0, 7, 0, 0x64)) is None
    assert rig.send(frame(3, 0x84, 2)) is None  # and its exception answer
    assert rig.send(frame(UNIT, 0x84, 2)) is None  # an exception answer is never a request
    assert rig.node.outputs() == (0, 0, 0, SAFE_CALM_LIGHT)
    assert rig.value("frame_errors") == 0
    assert rig.read(4, 16, 1) == [IDENTITY]


def test_damaged_frames_get_no_answer_and_are_counted() -> None:
    rig = Rig()
    good = read_request(4, 0, 7)
    flipped = good[:3] + bytes((good[3] ^ 0x10,)) + good[4:]
    assert rig.send(flipped) is None
    assert rig.send(good[:3]) is None  # too short for a frame
    assert rig.send(good[:-1]) is None  # the CRC cut
    assert rig.send(bytes(300)) is None  # longer than any frame: counted once
    assert rig.value("frame_errors") == 4
    assert len(rig.read(4, 0, 7)) == 7  # and the node answers the next one


def test_a_damaged_exception_is_not_answered_either() -> None:
    rig = Rig()
    bad = write_single(16, 1)  # would be refused with 02 ...
    assert rig.send(bad[:-2] + bytes((bad[-2] ^ 1, bad[-1]))) is None  # ... but fails its CRC
    assert rig.value("frame_errors") == 1


def test_frame_errors_wrap() -> None:
    rig = Rig()
    for _ in range(65536):
        assert rig.node.slave.handle(b"\x07\x04\x00") is None
    assert rig.value("frame_errors") == 0
    rig.send(b"\x07")
    assert rig.value("frame_errors") == 1


def test_broadcast_writes_are_applied_and_never_answered() -> None:
    rig = Rig()
    assert rig.send(write_single(100, 1, unit=0)) is None
    assert rig.send(write_multiple(101, [1, 0, 800], unit=0)) is None
    assert rig.node.outputs() == (1, 1, 0, 800)
    assert rig.node.lease_running()  # a broadcast write is a write: it renews the lease
    assert rig.send(write_single(100, 7, unit=0)) is None  # refused: still no answer
    assert rig.send(read_request(4, 0, 7, unit=0)) is None  # a broadcast read: nothing
    assert rig.send(frame(0, 5, 0, 100, 0xFF, 0)) is None
    assert rig.node.outputs() == (1, 1, 0, 800)


def test_a_frame_ends_only_after_its_silence() -> None:
    rig = Rig()
    request = read_request(4, 16, 2)
    rig.node.receive(request[:3], rig.now)
    assert rig.run(2) == []  # a pause within the frame (shorter than 3.5 characters)
    rig.node.receive(request[3:], rig.now)
    assert rig.run(rig.node.slave.gap_ms - 1) == []  # not yet: the line may go on
    answers = rig.run(1)
    assert answers == [frame(UNIT, 4, 4, 0x52, 0x4E, FW_VERSION >> 8, FW_VERSION & 0xFF)]


def test_two_frames_without_a_silence_between_them_are_one_damaged_frame() -> None:
    rig = Rig()
    assert rig.send(read_request(4, 0, 1) + read_request(4, 16, 1)) is None
    assert rig.value("frame_errors") == 1


def frames_and_noise() -> st.SearchStrategy[bytes]:
    """What a line may carry: noise, whole frames for any unit, frames with a flipped bit."""
    whole = st.builds(lambda unit, pdu: frame(unit, *pdu),
                      st.sampled_from([0, UNIT, UNIT, 1, 255]),
                      st.binary(min_size=1, max_size=260))
    flipped = st.builds(lambda data, at, bit: bytes(b ^ (1 << bit) if i == at % len(data) else b
                                                    for i, b in enumerate(data)),
                        whole, st.integers(0, 300), st.integers(0, 7))
    return st.one_of(st.binary(max_size=300), whole, flipped)


@FUZZ
@given(st.lists(st.tuples(frames_and_noise(), st.integers(0, 20)), max_size=20))
def test_anything_on_the_line_never_raises_and_gets_only_well_formed_answers(
        chunks: list[tuple[bytes, int]]) -> None:
    rig = Rig()
    for chunk, pause_ms in chunks:
        rig.node.receive(chunk, rig.now)
        answers = rig.run(pause_ms)
        if pause_ms < rig.node.slave.gap_ms:
            continue  # the next chunk joins this frame: judged with it
        assert len(answers) <= 1
        for answer in answers:
            assert crc_ok(answer) and answer[0] == UNIT
            assert len(answer) <= 256


@FUZZ
@given(frames_and_noise())
def test_only_whole_frames_for_this_unit_are_answered(chunk: bytes) -> None:
    rig = Rig()
    answer = rig.send(chunk)
    if answer is not None:
        assert crc_ok(chunk) and chunk[0] == UNIT
        assert crc_ok(answer) and answer[0] == UNIT and answer[1] & 0x7F == chunk[1]
