"""Load manager rules on virtual time: hours of battery life replayed in milliseconds."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

from supervisor.power.config import Circuit, SheddingConfig, ShedStep
from supervisor.power.load_manager import LoadEvent, LoadInputs, LoadManager

CIRCUITS = (
    Circuit(name="comms", device="r", output="relay_1", priority=0, nominal_current_a=1.5),
    Circuit(name="lights", device="r", output="relay_2", priority=4, nominal_current_a=3),
    Circuit(name="fridge", device="r", output="relay_3", priority=6, nominal_current_a=4),
    Circuit(name="sockets", device="r", output="relay_4", priority=8, nominal_current_a=5),
    Circuit(name="kettle", device="r", output="relay_5", priority=8, kind="ac",
            nominal_current_a=8),
    Circuit(name="heater", device="r", output="relay_6", priority=7, kind="ac",
            nominal_current_a=4, lock="heater/run_on"),
    Circuit(name="floodlight", device="r", output="relay_7", priority=6, allowed="parked"),
)
STEPS = (
    ShedStep(priority=8, shed_voltage_per_12v=12.3, restore_voltage_per_12v=12.9, shed_soc=50,
             restore_soc=60),
    ShedStep(priority=7, shed_voltage_per_12v=12.2, restore_voltage_per_12v=12.85),
    ShedStep(priority=6, shed_voltage_per_12v=12.1, restore_voltage_per_12v=12.8, shed_soc=35,
             restore_soc=45),
    ShedStep(priority=4, shed_voltage_per_12v=11.9, restore_voltage_per_12v=12.7, shed_soc=22,
             restore_soc=32),
)
ALL_ON = {c.name: True for c in CIRCUITS}


def manager(**timing: object) -> LoadManager:
    return LoadManager(CIRCUITS, SheddingConfig(step=STEPS, **timing))


def soc_at(t: float, soc: float | None, **kw: object) -> LoadInputs:
    fields: dict[str, object] = {"voltage": 12.6, "current": -10.0, "soc": soc,
                                 "ac_input_current": None, "ac_source_active": False,
                                 "ac_input_limit": 16.0}
    fields.update(kw)
    return LoadInputs(now=t, **fields)  # type: ignore[arg-type]


def run(lm: LoadManager, inputs: list[LoadInputs]) -> list[tuple[float, LoadEvent]]:
    out = []
    for inp in inputs:
        out += [(inp.now, ev) for ev in lm.evaluate(inp)]
    return out


def shed_now(lm: LoadManager, now: float = 0) -> set[str]:
    return {c.name for c in CIRCUITS if lm.shed_reason(c.name)}


def test_steps_shed_one_at_a_time_after_their_delay_in_priority_order() -> None:
    lm = manager()
    # SOC falls to 20 % and stays: every SOC step is below at once. Step 7 has no SOC
    # thresholds (its voltage is fine) but is pulled along by step 6: priority order holds.
    events = run(lm, [soc_at(t, 20) for t in range(0, 400)])
    assert [(t, ev.step) for t, ev in events if ev.kind == "shed"] == [
        (60, 8), (121, 7), (182, 6), (243, 4)]
    assert "SOC 20.0 % below 50 %" in events[0][1].reason
    assert "below 35 %" in events[1][1].reason  # step 7 went because of step 6's rule


def test_full_order_on_a_falling_battery_and_reverse_restore() -> None:
    lm = manager()
    timeline: list[LoadInputs] = []
    t = 0.0
    # voltage collapses slowly: 12.6 V -> 11.8 V over 20 min (SOC unknown: voltage rules)
    while t < 1200:
        timeline.append(soc_at(t, None, voltage=12.6 - 0.8 * t / 1200, current=0.0))
        t += 1
    events = run(lm, timeline)
    sheds = [ev.step for _, ev in events if ev.kind == "shed"]
    assert sheds == [8, 7, 6, 4]
    times = [t for t, ev in events if ev.kind == "shed"]
    assert all(b - a >= 60 for a, b in pairwise(times))
    # charging: voltage back to 13.0 V; restore one step at a time, most important first
    start = t
    events = run(lm, [soc_at(start + s, None, voltage=13.2, current=20.0) for s in range(0, 900)])
    restores = [(tt - start, ev.step) for tt, ev in events if ev.kind == "restore"]
    assert [step for _, step in restores] == [4, 6, 7, 8]
    # each waits for min-off (5 min after its own shed) and a 60 s hold after the previous
    gaps = [b[0] - a[0] for a, b in pairwise(restores)]
    assert all(g >= 60 for g in gaps)


def test_chattering_around_a_threshold_never_sheds() -> None:
    lm = manager()
    # SOC dances 49/51 around the 50 % threshold every 30 s, for an hour
    events = run(lm, [soc_at(t, 49 if (t // 30) % 2 else 51) for t in range(0, 3600)])
    assert events == []


def test_minimum_off_time_holds_even_if_the_battery_recovers_at_once() -> None:
    lm = manager()
    run(lm, [soc_at(t, 45) for t in range(0, 61)])
    assert "sockets" in shed_now(lm)
    events = run(lm, [soc_at(t, 80) for t in range(61, 300)])
    assert events == []  # recovered at 61 s but must stay off for 300 s
    events = run(lm, [soc_at(t, 80) for t in range(300, 400)])
    assert [(t, ev.kind) for t, ev in events] == [(360, "restore")]


def test_restore_waits_while_a_more_important_step_is_still_shed() -> None:
    lm = manager()
    run(lm, [soc_at(t, 30, voltage=12.0, current=0.0) for t in range(0, 200)])
    assert {8, 7, 6} <= {st.spec.priority for st in lm.steps if st.shed}
    # SOC 55: above step 6's restore (45) but below step 8's (60): only 7 and 6 may return,
    # and step 8 must stay shed
    events = run(lm, [soc_at(t, 55, voltage=12.9, current=0.0) for t in range(200, 2000)])
    restored = [ev.step for _, ev in events if ev.kind == "restore"]
    assert restored == [6, 7]
    assert "sockets" in shed_now(lm)


def test_voltage_is_compensated_for_the_discharge_current() -> None:
    lm = manager(use_soc=False)
    # 12.25 V under a 40 A load is 12.65 V at rest: no shedding of step 8 (12.3 V)
    assert run(lm, [soc_at(t, None, voltage=12.25, current=-40.0) for t in range(0, 300)]) == []
    events = run(lm, [soc_at(t, None, voltage=12.25, current=-1.0) for t in range(300, 400)])
    assert [ev.step for _, ev in events if ev.kind == "shed"] == [8]


def test_unknown_battery_neither_sheds_nor_restores() -> None:
    lm = manager()
    assert run(lm, [soc_at(t, None, voltage=None, current=None) for t in range(0, 600)]) == []


def test_low_voltage_disconnect_cuts_every_sheddable_step_but_not_a_locked_heater() -> None:
    lm = manager()
    events = run(lm, [soc_at(t, 70, voltage=11.3, locked=frozenset({"heater"}))
                      for t in range(0, 11)])
    assert [ev.kind for _, ev in events] == ["shed"] * 4
    assert "low-voltage disconnect" in events[0][1].reason
    actual = dict.fromkeys(ALL_ON, True)
    desired = lm.desired(ALL_ON, actual, soc_at(11, 70, locked=frozenset({"heater"})))
    assert desired == {"comms": True, "lights": False, "fridge": False, "sockets": False,
                       "kettle": False, "heater": True, "floodlight": False}
    # once the after-run ends, the heater is cut too
    assert lm.desired(ALL_ON, actual, soc_at(12, 70))["heater"] is False


def test_ac_input_limit_sheds_ac_loads_one_at_a_time_and_restores_with_room() -> None:
    lm = manager()
    over = [soc_at(t, 80, ac_source_active=True, ac_input_current=19.0) for t in range(0, 12)]
    events = run(lm, over)
    assert [(t, ev.circuits) for t, ev in events] == [(5, ("kettle",)), (10, ("heater",))]
    # 15 A now: 15 + 4 A heater > 0.9 x 16: the heater stays off
    assert run(lm, [soc_at(t, 80, ac_source_active=True, ac_input_current=15.0)
                    for t in range(12, 200)]) == []
    events = run(lm, [soc_at(t, 80, ac_source_active=True, ac_input_current=6.0)
                      for t in range(200, 400)])
    assert [(t, ev.circuits) for t, ev in events] == [(260, ("heater",)), (321, ("kettle",))]


def test_shore_unplugged_releases_ac_sheds() -> None:
    lm = manager()
    run(lm, [soc_at(t, 80, ac_source_active=True, ac_input_current=19.0) for t in range(0, 6)])
    assert lm.ac_shed == ["kettle"]
    events = run(lm, [soc_at(6, 80)])
    assert [(ev.kind, ev.circuits) for _, ev in events] == [("restore", ("kettle",))]
    assert lm.ac_shed == []


def test_crew_override_suspends_shedding_for_fifteen_minutes() -> None:
    lm = manager()
    run(lm, [soc_at(t, 40) for t in range(0, 61)])
    assert shed_now(lm) == {"sockets", "kettle"}
    started = lm.start_override(100)
    assert set(started[0].circuits) == {"sockets", "kettle"}
    assert shed_now(lm) == set()
    assert run(lm, [soc_at(t, 40) for t in range(100, 1000)]) == []  # suspended
    kinds = [(t, ev.kind) for t, ev in run(lm, [soc_at(t, 40) for t in range(1000, 1070)])]
    assert kinds == [(1000, "override_ended"), (1060, "shed")]


def test_override_does_not_suspend_the_low_voltage_disconnect() -> None:
    lm = manager()
    lm.start_override(0)
    events = run(lm, [soc_at(t, 60, voltage=11.0) for t in range(0, 11)])
    assert [ev.kind for _, ev in events] == ["shed"] * 4


def test_driving_rules() -> None:
    lm = manager()
    actual = dict.fromkeys(ALL_ON, True)
    parked = lm.desired(ALL_ON, actual, soc_at(0, 80))
    driving = lm.desired(ALL_ON, actual, replace(soc_at(0, 80), driving=True))
    assert parked["floodlight"] is True and driving["floodlight"] is False
    assert driving["fridge"] is True
