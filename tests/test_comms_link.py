"""The HQ path's supervision and the router watchdog (supervisor/comms/link.py) in virtual
time: minutes and hours of pings, pongs, outages and power cycles in milliseconds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from testsupport import FUZZ

from supervisor.comms.link import HqLink, RouterWatchdog


def test_the_path_is_up_only_while_pongs_come_back() -> None:
    link = HqLink(heartbeat_s=30, down_after_s=90, now=0)
    assert link.state(0) == "unknown"
    seq = link.ping_due(0)
    assert seq == 1 and link.ping_due(10) is None  # one every 30 s
    assert link.pong(1, 0.4) and link.rtt_s == 0.4
    assert link.state(60) == "up"
    assert not link.pong(1, 1.0), "one pong per ping"
    assert not link.pong(99, 1.0), "a number never sent"
    assert link.state(90.3) == "up" and link.state(90.5) == "down"


def test_no_pong_ever_is_down_after_the_limit() -> None:
    link = HqLink(heartbeat_s=30, down_after_s=90, now=100)
    assert link.state(189) == "unknown" and link.state(191) == "down"


def test_a_late_pong_still_counts_but_a_forgotten_ping_does_not() -> None:
    link = HqLink(heartbeat_s=1, down_after_s=10, now=0)
    for t in range(100):
        link.ping_due(float(t))
    assert link.pong(90, 99.5)  # recent: still remembered
    assert not link.pong(1, 99.6)  # 99 pings ago: forgotten (bounded memory)


def test_a_hung_router_is_power_cycled_once_then_given_time() -> None:
    dog = RouterWatchdog(after_s=600, off_s=10, max_per_hour=2)
    assert dog.step(0, "down", True) is None
    assert dog.step(599, "down", True) is None
    assert dog.step(600, "down", True) == "cut" and dog.cutting
    assert dog.step(605, "down", True) is None
    assert dog.step(610, "down", None) == "restore" and not dog.cutting
    assert dog.step(1200, "down", True) is None, "10 min again after the cycle"
    assert dog.step(1210, "down", True) == "cut"
    assert dog.step(1220, "down", True) == "restore"
    # two in the hour: the third waits for the first to be an hour old
    assert dog.step(1830, "down", True) is None and "2 power cycles" in dog.reason
    assert dog.step(4199, "down", True) is None
    assert dog.step(4200, "down", True) == "cut"  # the first (at 600) is an hour old


def test_no_cycle_when_the_router_itself_says_it_is_offline_or_hq_answers() -> None:
    dog = RouterWatchdog(after_s=60, off_s=10, max_per_hour=3)
    for t in range(0, 600, 10):
        assert dog.step(t, "down", False) is None  # no coverage: a reboot cures nothing
    for t in range(600, 1200, 10):
        assert dog.step(t, "up", True) is None
    assert dog.step(1200, "unknown", True) is None


def test_the_crew_can_disable_it() -> None:
    dog = RouterWatchdog(after_s=60, off_s=10, max_per_hour=3, enabled=False)
    assert dog.step(0, "down", True) is None
    assert dog.step(100, "down", True) is None and dog.reason == "disabled by the crew"
    dog.enabled = True
    assert dog.step(101, "down", True) == "cut"


@settings(FUZZ)
@given(steps=st.lists(st.tuples(st.floats(0, 120), st.sampled_from(["up", "down", "unknown"]),
                                st.sampled_from([True, False, None])), max_size=300),
       max_per_hour=st.integers(1, 5))
def test_never_more_cycles_in_an_hour_than_allowed_and_always_restored(
        steps: list[tuple[float, str, bool | None]], max_per_hour: int) -> None:
    dog = RouterWatchdog(after_s=60, off_s=10, max_per_hour=max_per_hour)
    now, cuts, cut_at = 0.0, [], None
    for dt, hq, wan in steps:
        now += dt
        action = dog.step(now, hq, wan)  # type: ignore[arg-type]
        if action == "cut":
            assert cut_at is None, "cut twice without a restore"
            cuts.append(now)
            cut_at = now
        elif action == "restore":
            assert cut_at is not None and now - cut_at >= 10
            cut_at = None
        assert len([c for c in cuts if now - c < 3600]) <= max_per_hour
    if cut_at is not None:  # (+ a hair: cut_at + 10 - cut_at can be 9.999999999999998)
        assert dog.step(cut_at + 10.001, "down", True) == "restore"


def test_the_bridge_saying_it_dropped_is_down_at_once() -> None:
    link = HqLink(heartbeat_s=30, down_after_s=90, now=0)
    link.ping_due(0)
    assert link.pong(1, 0.2)
    assert link.state(1, bridge_up=True) == "up"
    assert link.state(1, bridge_up=False) == "down", "no need to wait 90 s for the pongs"
    assert link.state(1, bridge_up=None) == "up"
