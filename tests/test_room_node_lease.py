"""The room node's output lease, uptime and counters on virtual milliseconds, across the
ticks' wrap; and whatever is written, the outputs stay within their ranges."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from room_node_rig import Rig, exception_code, write_multiple, write_single
from testsupport import FUZZ

from roomnode.node import DEFAULT_LEASE, ERR_LEASE_EXPIRED, SAFE_CALM_LIGHT
from roomnode.ticks import TICKS_MAX, TICKS_PERIOD, ticks_add, ticks_diff

SAFE = (0, 0, 0, SAFE_CALM_LIGHT)
LEASE_MS = DEFAULT_LEASE * 100


def test_ticks_arithmetic_wraps_as_micropythons() -> None:
    assert ticks_add(TICKS_MAX, 1) == 0
    assert ticks_diff(3, TICKS_MAX - 2) == 6
    assert ticks_diff(TICKS_MAX - 2, 3) == -6
    assert ticks_diff(ticks_add(123, TICKS_PERIOD // 2 - 1), 123) == TICKS_PERIOD // 2 - 1


def test_outputs_start_safe_and_nothing_expires_before_a_master_writes() -> None:
    rig = Rig()
    assert rig.node.outputs() == SAFE and not rig.node.lease_running()
    rig.run(120_000)
    assert rig.value("lease_expiries") == 0 and rig.value("errors") == 0


def test_without_a_write_for_the_lease_the_outputs_fall_to_safe_states() -> None:
    rig = Rig()
    rig.write(100, 1, 1, 1, 1000)
    rig.run(LEASE_MS - 5)  # the write took effect as its frame ended
    assert rig.node.outputs() == (1, 1, 1, 1000)
    rig.run(5)
    assert rig.node.outputs() == SAFE
    assert rig.value("lease_expiries") == 1 and rig.value("errors") & ERR_LEASE_EXPIRED
    assert rig.read(3, 100, 4) == list(SAFE)  # the read-back shows what the pins do
    rig.run(60_000)
    assert rig.value("lease_expiries") == 1  # expired once, not at every turn


def test_the_expiry_bit_stays_until_boot_and_a_new_master_takes_over() -> None:
    rig = Rig()
    rig.write(101, 1)
    rig.run(LEASE_MS)
    rig.write(101, 1)  # a master is back: its write is obeyed and holds a new lease
    assert rig.node.outputs() == (0, 1, 0, SAFE_CALM_LIGHT) and rig.node.lease_running()
    assert rig.value("errors") & ERR_LEASE_EXPIRED


def test_any_write_renews_the_lease_and_reads_do_not() -> None:
    rig = Rig()
    rig.write(100, 1)
    for address, value in ((105, 0), (104, DEFAULT_LEASE), (103, 400), (102, 0)) * 3:
        rig.run(LEASE_MS - 1_000)
        rig.write(address, value)
    assert rig.node.outputs() == (1, 0, 0, 400) and rig.value("lease_expiries") == 0
    for _ in range(12):
        rig.run(1_000)
        rig.read(3, 100, 5)
        rig.read(4, 0, 7)
    assert rig.node.outputs() == SAFE and rig.value("lease_expiries") == 1


def test_a_refused_write_renews_nothing() -> None:
    rig = Rig()
    rig.write(100, 1)
    rig.run(LEASE_MS - 1_000)
    assert exception_code(rig.send(write_single(100, 9))) == 3
    rig.run(1_000)
    assert rig.node.outputs() == SAFE


def test_the_lease_register_sets_its_length() -> None:
    rig = Rig()
    rig.write(100, 1, 0, 0, 500, 5)  # 0.5 s
    rig.run(495)
    assert rig.node.outputs() == (1, 0, 0, 500)
    rig.run(5)
    assert rig.node.outputs() == SAFE
    assert rig.read(3, 104, 1) == [5]  # the length is a setting: it stays


def test_the_lease_runs_across_the_ticks_wrap() -> None:
    rig = Rig(start_ms=TICKS_MAX - 3_000)
    rig.write(100, 1)
    rig.run(LEASE_MS - 5)  # the write took effect as its frame ended
    assert rig.node.outputs()[0] == 1
    rig.run(5)
    assert rig.node.outputs() == SAFE


def test_uptime_counts_seconds_across_the_wrap() -> None:
    rig = Rig(start_ms=TICKS_MAX - 2_000)
    rig.run(5_500)
    assert rig.value("uptime") == 5
    rig.run(600)
    assert rig.value("uptime") == 6
    rig.node.poll((rig.now - 500) & TICKS_MAX)  # a late caller's older time
    assert rig.value("uptime") == 6


def test_uptime_and_expiry_counter_wrap() -> None:
    rig = Rig()
    rig.node.uptime_s = 0xFFFF_FFFF
    rig.node.lease_expiries = 0xFFFF
    rig.write(100, 1)
    rig.run(LEASE_MS)
    assert rig.value("uptime") == LEASE_MS // 1000 - 1
    assert rig.value("lease_expiries") == 0


# any holding address near the map, any value; a write of one or several registers, then time
_WRITE = st.tuples(st.integers(95, 110),
                   st.lists(st.integers(0, 0xFFFF) | st.integers(0, 1001), min_size=1,
                            max_size=8),
                   st.integers(0, 15_000))


@FUZZ
@given(st.lists(_WRITE, max_size=25))
# the lease (2.4 s) running out during the read of the registers, found by hypothesis
@example([(95, [0], 0), (103, [0, 24], 556), (95, [0], 0), (95, [0], 92), (95, [0], 737),
          (95, [0], 961)])
def test_no_write_leaves_an_output_outside_its_range(writes: list[tuple[int, list[int],
                                                                         int]]) -> None:
    rig = Rig()
    for address, values, pause_ms in writes:
        request = write_single(address, values[0]) if len(values) == 1 else \
            write_multiple(address, values)
        rig.send(request)
        rig.run(pause_ms)
        door_sign, recording, buzzer, calm = rig.node.outputs()
        assert door_sign in (0, 1) and recording in (0, 1) and buzzer in (0, 1)
        assert 0 <= calm <= 1000
        assert 5 <= rig.node.lease <= 600
        # the read takes wire time, in which the lease may run out: the registers say what
        # the outputs were before it or are after it
        before = [door_sign, recording, buzzer, calm, rig.node.lease]
        read = rig.read(3, 100, 5)
        assert read in (before, [*rig.node.outputs(), rig.node.lease]), (read, before)
        if not rig.node.lease_running():
            assert rig.node.outputs() == SAFE
