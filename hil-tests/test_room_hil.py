"""The consultation room and the lighting against the real supervisor process.

The room node is no model: its real firmware core runs on its own drop of the simulated
RS-485 line (``vansim/room_node_host.py``), so the door sign, the recording light and the
calm light asserted here are the node's output pins, and the panic buttons are its supervised
loops. What HQ sees is asserted on an MQTT monitor on the van's broker (``van.monitor``, the
"HQ subscriber"); HQ's answers are commands in the ``hq`` role. The rules themselves are
tested in virtual time in tests/test_room_rules.py and tests/test_lighting_rules.py.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conftest import Van, settled, start_van
from harness import wait_until
from vansim.room_node_host import SAFE_STATES, Exchange, RoomNodeHost

NODE = "room_node"
LEASE_ADDRESS = 104  # the node's lease register (holding)
FC_WRITE_SINGLE, FC_WRITE_MULTIPLE = 6, 16
# the relays a session switches (config/demo.toml [room.session])
SOUND_MASKING = ("climate_relays", "relay_5")
DOORBELL_VISUAL = ("climate_relays", "relay_6")
RECORDING_POWER = ("climate_relays", "relay_7")
# the lights (config/demo.toml [[lighting.light]])
CREW_CEILING = ("relays", "relay_7")
NIGHT_RED = ("relays", "relay_8")
WORK_LIGHTS = ("climate_relays", "relay_4")
SESSION_CALM = 350  # the calm scene's 35 %, in the node's 0.1 % of PWM duty

_ids = itertools.count(1)


# ---- helpers ---------------------------------------------------------------------------------


def node(van: Van) -> RoomNodeHost:
    return van.sim.room_node(NODE)


def relay(van: Van, where: tuple[str, str]) -> bool:
    return van.sim.relay(*where)


def alarm(van: Van, alarm_id: str) -> dict[str, Any]:
    """The retained alarm as the HQ subscriber has it ({} when none or cleared)."""
    value = van.monitor.latest.get(f"alarm/{alarm_id}")
    return value if isinstance(value, dict) else {}


def panic_id(van: Van) -> str:
    """The panic's id, as HQ reads it from the alarm's detail ("panic-... (desk)...")."""
    detail = str(alarm(van, "room/panic").get("detail", ""))
    assert detail.startswith("panic-"), detail
    return detail.split()[0]


async def command(van: Van, action: str, role: str = "crew", **args: Any) -> dict[str, Any]:
    """Send a command (a fresh id) and return its result, asserting it is done."""
    result = await van.monitor.command(action, {"id": f"room-{next(_ids)}", "args": args},
                                       role=role)
    assert result["status"] == "done", result
    return result


def delivery_seen(van: Van) -> list[str]:
    """Every value of room/panic/delivery the HQ subscriber received, in order."""
    return [str(v.get("v")) for t, v, _ in van.monitor.messages
            if t == "state/room/panic/delivery" and isinstance(v, dict)]


def writes_to_node(host: RoomNodeHost, address: int | None, since: float) -> list[Exchange]:
    """The node's answers to the writes (FC06/FC16) it accepted after ``since`` (node clock),
    those covering ``address`` (None: all; any write renews the node's lease)."""
    out = []
    for x in host.exchanges:
        req = x.request
        if x.at < since or len(req) < 6 or req[1] not in (FC_WRITE_SINGLE,
                                                           FC_WRITE_MULTIPLE):
            continue
        start = req[2] << 8 | req[3]
        count = 1 if req[1] == FC_WRITE_SINGLE else req[4] << 8 | req[5]
        if x.answer[1] == req[1] and (address is None or start <= address < start + count):
            out.append(x)
    return out


async def panic_raised(van: Van, source: str) -> str:
    """Wait for the critical panic at HQ and for its delivery "sent"; its id."""
    await wait_until(lambda: alarm(van, "room/panic").get("active") is True,
                     what="alarm/room/panic active at HQ")
    raised = alarm(van, "room/panic")
    assert raised["severity"] == "critical"
    assert f"({source})" in raised["detail"], raised
    await wait_until(lambda: van.monitor.value("room/panic/delivery") == "sent",
                     what="delivery sent")
    # the alarm goes ahead of the readings queued with it: the points follow it
    await wait_until(lambda: van.monitor.value("room/panic/active") is True
                     and van.monitor.value("room/panic/source") == source,
                     what="the panic's points")
    return panic_id(van)


def assert_delivery_in_order(van: Van) -> None:
    """room/panic/delivery never went back, and was never "sent" before the alarm was on
    the broker (the HQ subscriber had it first)."""
    order = ["none", "stored", "sent", "received"]
    seen = [d for d in delivery_seen(van) if d in order]
    ranks = [order.index(d) for d in seen]
    assert ranks == sorted(ranks), seen
    topics = [t for t, v, _ in van.monitor.messages
              if (t == "alarm/room/panic" and isinstance(v, dict) and v.get("active"))
              or (t == "state/room/panic/delivery" and isinstance(v, dict)
                  and v.get("v") == "sent")]
    assert topics[:1] == ["alarm/room/panic"], topics


async def ack_panic(van: Van, role: str = "crew") -> None:
    await command(van, "room/panic_ack", role=role)
    await wait_until(lambda: van.monitor.value("room/panic/active") is False
                     and not alarm(van, "room/panic"), what="panic acknowledged and cleared")


def mqtt_session(van: Van) -> int:
    return int((van.monitor.latest.get("status") or {}).get("session", 0))


async def back_again(van: Van, session: int) -> None:
    """The restarted supervisor is ready on MQTT (a new session: not the retained status of
    the one killed) and its start-up switching is done."""
    await wait_until(lambda: mqtt_session(van) > session
                     and van.monitor.latest["status"].get("state") == "ready",
                     what="the new supervisor ready")
    await settled(van)


async def restart(van: Van, sig: int) -> None:
    """Stop the supervisor with ``sig`` and start it again: ready, start-up done."""
    session = mqtt_session(van)
    expected = 0 if sig == signal.SIGTERM else -sig
    assert await van.supervisor.stop(sig) == expected
    van.supervisor.start()
    await back_again(van, session)


@pytest.fixture
async def quick_delivery_van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    """The van with a panic "not delivered" after 5 s without HQ's receipt (not 30 s)."""
    async with start_van(monkeypatch, {"MCW_PANIC_DELIVERY_S": "5"}) as whole:
        yield whole


LEASE_S = 3.0


@pytest.fixture
async def short_lease_van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    """The van with the room node's output lease at LEASE_S (not 10 s)."""
    async with start_van(monkeypatch, {"MCW_ROOM_LEASE_S": f"{LEASE_S:g}"}) as whole:
        yield whole


# ---- a. sessions -------------------------------------------------------------------------------


async def test_a_session_by_command_lights_the_sign_and_tells_hq_only_that_it_runs(
    van: Van,
) -> None:
    mon, host = van.monitor, node(van)
    await wait_until(lambda: mon.value("room/session/active") is False, what="no session")
    assert host.outputs()["door_sign"] == 0
    await command(van, "room/session", on=True)  # answered once the sign is confirmed
    assert host.outputs()["door_sign"] == 1
    assert host.outputs()["recording_light"] == 0
    await wait_until(lambda: relay(van, SOUND_MASKING) and relay(van, DOORBELL_VISUAL),
                     what="sound masking on, doorbell visual")
    assert relay(van, RECORDING_POWER) is False  # no recording asked for
    await wait_until(lambda: mon.value("room/session/active") is True, what="active on MQTT")
    await wait_until(lambda: host.outputs()["calm_light"] == SESSION_CALM,
                     what="the room's lights in their calm scene")
    # with a recording: its power and the light inside the room
    await command(van, "room/session", on=True, recording=True)
    assert host.outputs()["recording_light"] == 1
    await wait_until(lambda: relay(van, RECORDING_POWER), what="recording equipment on")
    await command(van, "room/session", on=False)
    assert host.outputs()["door_sign"] == 0 and host.outputs()["recording_light"] == 0
    await wait_until(lambda: not relay(van, SOUND_MASKING) and not relay(van, DOORBELL_VISUAL)
                     and not relay(van, RECORDING_POWER), what="the session's relays off")
    await wait_until(lambda: mon.value("room/session/active") is False,
                     what="ended on MQTT")
    await wait_until(lambda: host.outputs()["calm_light"] == 0,
                     what="the room's light back at the crew's level (off)")
    # HQ learns that a session runs, never since when or whether it is recorded
    topics = {t for t, _, _ in mon.messages}
    assert "state/room/session/active" in topics
    assert not [t for t in topics if "session/since" in t or "session/recording" in t], topics
    events = [v for t, v, _ in mon.messages if t == "event" and isinstance(v, dict)
              and v.get("kind") == "room" and v.get("what") == "session"]
    # started, recording added, ended: that a session runs, nothing about it
    assert [e["on"] for e in events] == [True, True, False], events
    assert all(set(e) == {"kind", "what", "on", "id", "prev", "ts"} for e in events), events


async def test_the_rooms_own_button_starts_and_ends_a_session(van: Van) -> None:
    mon, host = van.monitor, node(van)
    await wait_until(lambda: mon.value("room/session/active") is False, what="no session")
    presses = host.register("session_presses")
    host.set_session_button(True)
    await wait_until(lambda: host.register("session_presses") == presses + 1,
                     what="the node counted the press")
    host.set_session_button(False)
    await wait_until(lambda: host.outputs()["door_sign"] == 1, what="door sign lit")
    await wait_until(lambda: relay(van, SOUND_MASKING) and relay(van, DOORBELL_VISUAL),
                     what="sound masking on, doorbell visual")
    await wait_until(lambda: mon.value("room/session/active") is True, what="active on MQTT")
    assert host.outputs()["recording_light"] == 0  # the button never records
    host.set_session_button(True)
    await wait_until(lambda: host.register("session_presses") == presses + 2,
                     what="the second press counted")
    host.set_session_button(False)
    await wait_until(lambda: host.outputs()["door_sign"] == 0, what="door sign out")
    await wait_until(lambda: not relay(van, SOUND_MASKING) and not relay(van, DOORBELL_VISUAL),
                     what="the session's relays off")
    await wait_until(lambda: mon.value("room/session/active") is False, what="ended on MQTT")
    assert not [t for t, _, _ in mon.messages if "session/since" in t]


# ---- b. panic and its delivery -------------------------------------------------------------------


async def test_a_desk_panic_reaches_hq_and_hqs_receipt_reaches_the_crew(van: Van) -> None:
    mon, host = van.monitor, node(van)
    await wait_until(lambda: mon.value("room/panic/delivery") == "none", what="no panic")
    host.press("desk")
    pid = await panic_raised(van, "desk")
    assert mon.value("room/panic/since") > 0
    # the press is on record: the node's latch is acknowledged, and clears on release
    host.release("desk")
    await wait_until(lambda: host.register("panic_latched") == 0, what="the node's latch cleared")
    # silent in the room (room.silent defaults to true); the beacon outside is on
    assert host.outputs()["buzzer"] == 0
    await wait_until(lambda: relay(van, ("climate_relays", "relay_8")), what="beacon on")
    # HQ answers with the id it read: the crew sees "received"
    wrong = await mon.command("room/panic_received", {"id": f"room-{next(_ids)}",
                                                      "args": {"panic": "panic-0-0"}},
                              role="hq")
    assert (wrong["status"], wrong["code"]) == ("rejected", "unknown_panic")
    await command(van, "room/panic_received", role="hq", panic=pid)
    await wait_until(lambda: mon.value("room/panic/delivery") == "received", what="received")
    assert_delivery_in_order(van)
    assert alarm(van, "room/panic")["active"] is True  # still raised until acknowledged
    await ack_panic(van, role="hq")
    await wait_until(lambda: not relay(van, ("climate_relays", "relay_8")), what="beacon off")
    # the relay is switched before the turn's points go out: they follow
    await wait_until(lambda: mon.value("room/panic/delivery") == "none", what="delivery none")
    cancelled = [v for t, v, _ in mon.messages if t == "event" and isinstance(v, dict)
                 and v.get("what") == "panic_cancelled"]
    assert [e["panic"] for e in cancelled] == [pid]
    # the next press is a new panic
    host.press("door")
    second = await panic_raised(van, "door")
    assert second != pid
    host.release("door")
    await ack_panic(van)


async def test_a_panic_hq_does_not_answer_is_not_delivered(quick_delivery_van: Van) -> None:
    van = quick_delivery_van
    mon, host = van.monitor, node(van)
    host.press("desk")
    await wait_until(lambda: host.register("panic_latched") == 1, what="the node latched it")
    host.release("desk")  # a short press
    pid = await panic_raised(van, "desk")
    started = time.monotonic()
    await wait_until(lambda: mon.value("room/panic/delivery") == "not_delivered",
                     what="not delivered")
    assert time.monotonic() - started < 5.0 + 3.0  # its 5 s, a turn and MQTT
    assert "received" not in delivery_seen(van)
    assert alarm(van, "room/panic")["active"] is True  # still raised: the crew must act
    # HQ's late receipt still counts: the crew learns it got through after all
    await command(van, "room/panic_received", role="hq", panic=pid)
    await wait_until(lambda: mon.value("room/panic/delivery") == "received", what="received")
    await ack_panic(van)


# ---- c. a panic while the supervisor restarts --------------------------------------------------


async def _press_while_down(van: Van, sig: int) -> None:
    mon, host = van.monitor, node(van)
    session = mqtt_session(van)
    expected = 0 if sig == signal.SIGTERM else -sig
    assert await van.supervisor.stop(sig) == expected
    host.press("desk")
    await wait_until(lambda: host.register("panic_latched") == 1, what="the node latched it")
    host.release("desk")  # a short press, long gone when the supervisor is back
    assert host.register("panic_latched") == 1  # held until the master has it on record
    assert not alarm(van, "room/panic")
    van.supervisor.start()
    pid = await panic_raised(van, "desk")
    await back_again(van, session)
    assert_delivery_in_order(van)
    await wait_until(lambda: host.register("panic_latched") == 0,
                     what="the node's latch acknowledged")
    await command(van, "room/panic_received", role="hq", panic=pid)
    await wait_until(lambda: mon.value("room/panic/delivery") == "received", what="received")
    await ack_panic(van)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["crash", "stop"])
async def test_a_panic_pressed_while_the_supervisor_is_down_still_reaches_hq(
    van: Van, sig: int,
) -> None:
    await _press_while_down(van, sig)


async def test_a_button_still_held_after_its_ack_is_no_new_panic_after_a_restart(
    van: Van,
) -> None:
    mon, host = van.monitor, node(van)
    host.press("desk")  # a latching button: it stays pressed until reset with its key
    pid = await panic_raised(van, "desk")
    await ack_panic(van)
    assert host.register("panic_latched") == 1  # acknowledged, still pressed: still latched
    since = time.monotonic()
    await restart(van, signal.SIGKILL)
    await _renewed_twice(van, since)
    assert mon.value("room/panic/active") is False
    raised = [v.get("detail") for t, v, _ in mon.messages if t == "alarm/room/panic"
              and isinstance(v, dict) and v.get("active")]
    assert len(raised) == 1 and str(raised[0]).startswith(pid), raised  # the first only
    host.release("desk")


async def test_a_restart_raises_no_panic_by_itself(van: Van) -> None:
    since = time.monotonic()
    await restart(van, signal.SIGKILL)
    await _renewed_twice(van, since)
    raised = [v for t, v, _ in van.monitor.messages if t == "alarm/room/panic" and v]
    assert raised == []


# ---- d. a restart changes nothing in the room ----------------------------------------------------


async def _room_in_use(van: Van) -> dict[str, int]:
    """The crew's work scene (the calm light at 80 %), then a recorded session (its calm
    scene, 35 %): every room output away from its safe state. The outputs then."""
    host = node(van)
    await command(van, "lighting/scene", scene="work")
    await wait_until(lambda: host.outputs()["calm_light"] == 800, what="calm light at 80 %")
    await command(van, "room/session", on=True, recording=True)
    await wait_until(lambda: host.outputs() == {"door_sign": 1, "recording_light": 1,
                                                "buzzer": 0, "calm_light": SESSION_CALM},
                     what="the session's outputs")
    await wait_until(lambda: relay(van, SOUND_MASKING) and relay(van, RECORDING_POWER),
                     what="the session's relays")
    return host.outputs()


async def _renewed_twice(van: Van, since: float) -> None:
    """The restarted supervisor has renewed the node's lease twice (every third of 10 s):
    its room and lighting loops have turned many times."""
    host = node(van)
    await wait_until(lambda: len(writes_to_node(host, LEASE_ADDRESS, since)) >= 2,
                     timeout=60, what="the lease renewed twice by the new supervisor")


def _changed(host: RoomNodeHost, since: int, outputs: tuple[str, ...]) -> list[dict[str, int]]:
    """The node's output pins (those named) at each change after change ``since``."""
    before = {k: host.output_changes[since - 1][1][k] for k in outputs}
    out = []
    for _, pins in host.output_changes[since:]:
        now = {k: pins[k] for k in outputs}
        if now != before:
            out.append(now)
            before = now
    return out


SESSION_PINS = ("door_sign", "recording_light", "buzzer")


async def test_a_crash_and_restart_leaves_the_door_sign_and_the_session_alone(van: Van) -> None:
    host = node(van)
    before = await _room_in_use(van)
    changes = len(host.output_changes)
    relay_writes = [len(van.sim.writes_to(*r)) for r in (SOUND_MASKING, DOORBELL_VISUAL,
                                                         RECORDING_POWER)]
    since = time.monotonic()
    await restart(van, signal.SIGKILL)
    await _renewed_twice(van, since)
    # the node's pins were watched every 5 ms throughout: not one change, not even a blink
    assert _changed(host, changes, SESSION_PINS) == []
    assert {k: host.outputs()[k] for k in SESSION_PINS} == {k: before[k] for k in SESSION_PINS}
    assert [len(van.sim.writes_to(*r)) for r in (SOUND_MASKING, DOORBELL_VISUAL,
                                                 RECORDING_POWER)] == relay_writes
    assert host.register("lease_expiries") == 0
    assert van.monitor.value("room/session/active") is True


async def test_a_crash_and_restart_leaves_the_calm_light_alone(van: Van) -> None:
    host = node(van)
    before = await _room_in_use(van)
    changes = len(host.output_changes)
    since = time.monotonic()
    await restart(van, signal.SIGKILL)
    await _renewed_twice(van, since)
    assert _changed(host, changes, ("calm_light",)) == []
    assert host.outputs()["calm_light"] == before["calm_light"]


async def test_a_stop_and_start_keeps_the_session_and_stops_the_recording_with_its_light(
        van: Van) -> None:
    host = node(van)
    before = await _room_in_use(van)
    changes = len(host.output_changes)
    masking_writes = len(van.sim.writes_to(*SOUND_MASKING))
    recording_writes = len(van.sim.writes_to(*RECORDING_POWER))
    since = time.monotonic()
    await restart(van, signal.SIGTERM)
    await _renewed_twice(van, since)
    # the door sign, the buzzer and the calm light never change; sound masking is not touched
    assert _changed(host, changes, ("door_sign", "buzzer", "calm_light")) == []
    assert van.sim.writes_to(*SOUND_MASKING)[masking_writes:] == []
    # a deliberate stop ends the recording, and its light with it, until we are back
    assert [pins["recording_light"] for pins in _changed(host, changes,
                                                         ("recording_light",))] == [0, 1]
    assert [bool(words[0]) for words in van.sim.writes_to(*RECORDING_POWER)[recording_writes:]] \
        == [False, True]
    assert host.outputs() == before


# ---- e. the lease ------------------------------------------------------------------------------


async def test_a_killed_supervisor_leaves_the_room_safe_within_the_lease(
    short_lease_van: Van,
) -> None:
    van = short_lease_van
    host = node(van)
    await _room_in_use(van)
    await wait_until(lambda: host.register("lease") == LEASE_S * 10, what="the short lease")
    assert await van.supervisor.stop(signal.SIGKILL) == -signal.SIGKILL
    killed = time.monotonic()  # the node's clock (the host's time.monotonic)
    await wait_until(host.at_safe_states, timeout=LEASE_S + 10, what="safe states")
    fell = next(at for at, outputs in host.output_changes if at >= killed
                and outputs == SAFE_STATES)
    assert fell - killed <= LEASE_S + 1.0, fell - killed  # make bench measures it closely
    # on the node's own clock: the lease after the last write it accepted (a frame still on
    # the wire at the kill may be accepted after it), not later than its 5 ms loop allows
    last = writes_to_node(host, None, 0.0)
    renewed = max(x.at for x in last if x.at <= fell)
    assert LEASE_S - 0.05 <= fell - renewed <= LEASE_S + 0.5, fell - renewed
    assert host.outputs()["calm_light"] == 300  # the room never goes dark
    assert host.register("lease_expiries") == 1
    # back: the supervisor puts the session's outputs back (the session was persisted)
    van.supervisor.start()
    await settled(van)
    await wait_until(lambda: host.outputs() == {"door_sign": 1, "recording_light": 1,
                                                "buzzer": 0, "calm_light": SESSION_CALM},
                     what="the session's outputs back")


# ---- f. tamper -----------------------------------------------------------------------------------


async def test_a_cut_or_shorted_panic_wire_raises_tamper_not_panic(van: Van) -> None:
    mon, host = van.monitor, node(van)
    host.cut("desk")
    await wait_until(lambda: alarm(van, "room/panic_tamper_desk").get("active") is True,
                     what="desk tamper at HQ")
    assert alarm(van, "room/panic_tamper_desk")["severity"] == "warning"
    assert alarm(van, "room/panic_tamper_desk")["detail"] == "tamper_open"
    assert mon.value("room/panic/desk/zone") == "tamper_open"
    host.short("door")
    await wait_until(lambda: alarm(van, "room/panic_tamper_door").get("active") is True,
                     what="door tamper at HQ")
    assert alarm(van, "room/panic_tamper_door")["detail"] == "tamper_short"
    assert not alarm(van, "room/panic")  # a cut wire is no press
    assert mon.value("room/panic/active") is False
    # repaired: the alarm clears but stays shown until acknowledged (latching)
    host.release("desk")
    await wait_until(lambda: mon.value("room/panic/desk/zone") == "normal", what="repaired")
    await wait_until(lambda: alarm(van, "room/panic_tamper_desk").get("active") is False,
                     what="tamper cleared")
    await command(van, "alarm/ack", alarm="room/panic_tamper_desk")
    await wait_until(lambda: not alarm(van, "room/panic_tamper_desk"),
                     what="tamper gone once acknowledged")
    host.release("door")
    assert not alarm(van, "room/panic")


# ---- g. lighting --------------------------------------------------------------------------------


async def test_scenes_switch_the_lights_and_driving_puts_the_exterior_lights_out(
    van: Van,
) -> None:
    mon, host, sim = van.monitor, node(van), van.sim
    await command(van, "lighting/scene", scene="work")
    assert mon.latest["result/crew/lighting/scene"]["message"].startswith("scene")
    await wait_until(lambda: relay(van, CREW_CEILING) and not relay(van, NIGHT_RED),
                     what="work: ceiling on, red off")
    await wait_until(lambda: host.outputs()["calm_light"] == 800, what="work: calm light 80 %")
    await wait_until(lambda: mon.value("lighting/crew_ceiling/on") is True
                     and mon.value("lighting/scene") == "work", what="work on MQTT")
    await command(van, "lighting/scene", scene="night")
    await wait_until(lambda: not relay(van, CREW_CEILING) and relay(van, NIGHT_RED),
                     what="night: ceiling off, red on")
    await wait_until(lambda: host.outputs()["calm_light"] == 100, what="night: calm 10 %")
    # the exterior work lights, then the engine starts
    await command(van, "lighting/scene", scene="exterior")
    await wait_until(lambda: relay(van, WORK_LIGHTS), what="work lights on")
    sim.set_input("ignition", True)
    await wait_until(lambda: mon.value("vehicle/driving") is True, what="driving")
    await wait_until(lambda: not relay(van, WORK_LIGHTS), what="work lights out while driving")
    assert mon.value("lighting/work_lights/level") == 100  # the crew's choice is kept
    await wait_until(lambda: mon.value("lighting/work_lights/on") is False, what="off on MQTT")
    assert not alarm(van, "lighting/exterior_while_driving")  # "off", not "warn"
    refused = await mon.command("lighting/set", {"id": f"room-{next(_ids)}", "args": {
        "light": "work_lights", "level": 100}})
    assert (refused["status"], refused["code"]) == ("rejected", "interlock")
    assert relay(van, NIGHT_RED)  # the inside lights are not the interlock's business
    sim.set_input("ignition", False)
    await wait_until(lambda: mon.value("vehicle/driving") is False, what="parked")
    await wait_until(lambda: relay(van, WORK_LIGHTS), what="work lights back once parked")
    await command(van, "lighting/scene", scene="off")
    await wait_until(lambda: not any(relay(van, r) for r in (CREW_CEILING, NIGHT_RED,
                                                            WORK_LIGHTS))
                     and host.outputs()["calm_light"] == 0, what="all off")


# ---- h. the GPIO panic button -------------------------------------------------------------------


async def test_the_crew_areas_gpio_panic_button_raises_the_panic(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    await wait_until(lambda: mon.value("room/panic/crew/zone") == "normal", what="at rest")
    sim.set_input("panic_crew", True)  # active low: the line pulled to ground
    pid = await panic_raised(van, "crew")
    await wait_until(lambda: mon.value("room/panic/crew/zone") == "alarm", what="zone alarm")
    assert_delivery_in_order(van)
    await command(van, "room/panic_received", role="hq", panic=pid)
    # acknowledged while still held down: a held button counts once, no second panic
    await ack_panic(van)
    acked_at = len(mon.messages)
    sim.set_input("panic_crew", False)
    await wait_until(lambda: mon.value("room/panic/crew/zone") == "normal", what="released")
    assert not [v for t, v, _ in mon.messages[acked_at:]
                if t == "alarm/room/panic" and isinstance(v, dict) and v.get("active")]
    # pressed again: a new panic
    sim.set_input("panic_crew", True)
    second = await panic_raised(van, "crew")
    assert second != pid
    sim.set_input("panic_crew", False)
    await ack_panic(van)
