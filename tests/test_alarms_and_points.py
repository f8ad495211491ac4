"""Point quality and change detection; alarm latching and acknowledgement."""

from supervisor.core.alarms import AlarmDef, AlarmManager, AlarmState
from supervisor.core.points import PointDef, PointStore, PointValue


def test_deadband_suppresses_noise_but_not_quality_changes() -> None:
    store = PointStore()
    store.define(PointDef("power/battery/voltage", "number", "V", deadband=0.05, max_age_s=3))
    seen: list[PointValue] = []
    store.changed.add(lambda d, v: seen.append(v))
    store.update("power/battery/voltage", 12.80, ts=100)
    store.update("power/battery/voltage", 12.82, ts=101)  # within deadband: not published
    store.update("power/battery/voltage", 12.90, ts=102)
    store.sweep(now=104)  # 2 s old: still good
    store.sweep(now=106)  # over 3 s: stale
    store.update("power/battery/voltage", None, ts=107)  # device says invalid
    assert [(v.value, v.quality) for v in seen] == [
        (12.80, "good"), (12.90, "good"), (12.90, "stale"), (None, "invalid")]
    assert store.get("power/battery/voltage") == PointValue(None, "invalid", 107)
    assert store.good("power/battery/voltage") is None


def test_a_value_read_again_only_moves_its_time_and_is_fresh_again_when_stale() -> None:
    store = PointStore()
    store.define(PointDef("device/tank/level", "integer", max_age_s=3))
    seen: list[PointValue] = []
    store.changed.add(lambda d, v: seen.append(v))
    store.reread("device/tank/level", ts=99)  # never read: nothing to read again
    assert store.get("device/tank/level") is None
    store.update("device/tank/level", 40, ts=100)
    store.reread("device/tank/level", ts=102)
    store.sweep(now=104)  # read again at 102: still fresh
    assert store.get("device/tank/level") == PointValue(40, "good", 102)
    store.sweep(now=106)
    store.reread("device/tank/level", ts=107)  # the device answers again, the same
    store.update("device/tank/level", None, ts=108)
    store.reread("device/tank/level", ts=109)
    assert [(v.value, v.quality) for v in seen] == [
        (40, "good"), (40, "stale"), (40, "good"), (None, "invalid")]
    assert store.get("device/tank/level") == PointValue(None, "invalid", 109)


def alarms() -> tuple[AlarmManager, list[tuple[str, AlarmState | None, str]]]:
    mgr = AlarmManager()
    mgr.define(AlarmDef("a/plain", "warning", "pl", "en"))
    mgr.define(AlarmDef("a/latch", "critical", "pl", "en", latching=True))
    log: list[tuple[str, AlarmState | None, str]] = []
    mgr.changed.add(lambda d, s, what: log.append((d.id, s, what)))
    return mgr, log


def test_non_latching_alarm_goes_away_when_cleared() -> None:
    mgr, log = alarms()
    mgr.set("a/plain", True, 1)
    mgr.set("a/plain", True, 2)  # no repeat
    mgr.set("a/plain", False, 3)
    assert [(i, w) for i, _, w in log] == [("a/plain", "raised"), ("a/plain", "cleared")]
    assert log[-1][1] is None
    assert mgr.states == {}


def test_latching_alarm_stays_until_acknowledged() -> None:
    mgr, log = alarms()
    mgr.set("a/latch", True, 1)
    mgr.set("a/latch", False, 2)
    assert mgr.states["a/latch"].active is False
    assert mgr.states["a/latch"].acked is False
    assert mgr.ack("a/latch")
    assert "a/latch" not in mgr.states
    assert log[-1] == ("a/latch", None, "acknowledged")
    assert not mgr.ack("a/latch")


def test_acknowledged_active_alarm_remains_shown_until_cleared() -> None:
    mgr, _ = alarms()
    mgr.set("a/latch", True, 1)
    mgr.ack("a/latch")
    assert mgr.active() == ["a/latch"]
    mgr.set("a/latch", False, 2)
    assert mgr.active() == []
    assert mgr.states == {}
