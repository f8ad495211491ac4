"""Consultation room rules on the real core in virtual time: sessions, panics and their
delivery, walk tests, tamper, duress, the node's lease (no transport, no sleep).

The room node's registers are fed as the bus worker would feed them; writes go to a recorder
that answers with the value written (the read-back of a node that obeys)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testsupport import FUZZ
from virtual_core import VirtualCore, demo_config

from drivers.register_codec import Value
from supervisor.core.subsystem import Clock
from supervisor.room.subsystem import RoomSubsystem

AWAY = 1_800_000_000.0  # wall clock at virtual time 0
NODE = "room_node"


class Rig:
    """The room subsystem on the demo config, a hand-driven clock and a node that obeys."""

    def __init__(self, tmp_path: Path, db: str = "db.sqlite",
                 edit: Callable[[str], str] | None = None) -> None:
        self.cfg = demo_config(tmp_path, edit)
        self.t = 0.0
        self.writes: list[tuple[str, str, Value]] = []
        self.sent = 0
        clock = Clock(lambda: AWAY + self.t, lambda: self.t)
        self.core = VirtualCore(self.cfg, tmp_path / db, self.write, clock)
        section = self.cfg.section("room")
        assert section is not None, "the demo config has a [room] section"
        self.sub = RoomSubsystem(self.core.context("room"), section)  # type: ignore[arg-type]
        self.points = self.core.van.points
        self.alarms = self.core.van.alarms
        self.node(panic_latched=0, panic_presses=0, panic_desk=0, panic_door=0,
                  session_presses=0, door=0, occupancy=0, door_sign=0, recording_light=0,
                  buzzer=0, calm_light=30.0, lease=10.0)
        # the relay board answers (its relays off): the writer acts on known read-backs
        self.core.devices.values("climate_relays", {f"relay_{i}": False for i in range(1, 9)},
                                 AWAY)

    async def write(self, device: str, register: str, value: Value) -> Value | None:
        self.writes.append((device, register, value))
        self.core.devices.values(device, {register: value}, AWAY + self.t)
        return value

    def node(self, **registers: Value) -> None:
        self.core.devices.values(NODE, dict(registers), AWAY + self.t)

    async def at(self, t: float) -> None:
        self.t = t
        await self.sub.step()

    async def act(self, action: str, args: dict[str, Any], role: str = "crew") -> str:
        self.sent += 1
        body = {"id": f"c{self.sent}", "args": args}
        answer = asyncio.create_task(
            self.core.van.router.submit(action, json.dumps(body), role, "test"))
        while not answer.done():  # the loop's turns go on while the command waits for them
            await self.sub.step()
            await asyncio.sleep(0)
        result = answer.result()
        return f"{result.status}/{result.code}: {result.message}"

    def value(self, point: str) -> object:
        return self.points.good(point)

    def wrote(self, register: str) -> list[Value]:
        return [v for d, r, v in self.writes if r == register]

    def relay(self, output_id: str) -> Value | None:
        return self.sub.ctx.outputs.actual(output_id)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


async def test_a_session_lights_the_door_sign_masks_the_sound_and_ends_as_it_was(
        rig: Rig) -> None:
    await rig.at(1)
    assert "done" in await rig.act("room/session", {"on": True})
    await rig.at(2)
    assert rig.value("room/session/active") is True
    assert rig.sub.ctx.outputs.actual("room/door_sign") == 1
    assert rig.sub.ctx.outputs.actual("room/recording_light") == 0  # not recorded
    assert rig.relay("room/sound_masking") is True
    assert rig.relay("room/doorbell_visual") is True
    assert rig.relay("room/recording_power") is False
    assert "done" in await rig.act("room/session", {"on": False})
    await rig.at(3)
    assert rig.value("room/session/active") is False
    assert rig.sub.ctx.outputs.actual("room/door_sign") == 0
    assert rig.relay("room/sound_masking") is False


async def test_the_recording_light_is_lit_only_with_the_recording(rig: Rig) -> None:
    await rig.act("room/session", {"on": True, "recording": True})
    await rig.at(1)
    assert rig.sub.ctx.outputs.actual("room/recording_light") == 1
    assert rig.relay("room/recording_power") is True
    await rig.act("room/session", {"on": True, "recording": False})  # recording stopped
    await rig.at(2)
    assert rig.sub.ctx.outputs.actual("room/recording_light") == 0
    assert rig.relay("room/recording_power") is False
    assert rig.value("room/session/active") is True


async def test_hq_sees_that_a_session_runs_but_not_since_when_or_what_it_records(
        rig: Rig) -> None:
    await rig.act("room/session", {"on": True, "recording": True})
    await rig.at(1)
    retained = rig.core.van.retained()
    assert "state/room/session/active" in retained
    assert "state/room/session/since" not in retained
    assert "state/room/session/recording" not in retained
    assert rig.value("room/session/since") == round(AWAY)  # the crew's panel has it


async def test_the_rooms_own_button_toggles_the_session(rig: Rig) -> None:
    await rig.at(1)
    rig.node(session_presses=1)
    await rig.at(2)
    assert rig.value("room/session/active") is True
    rig.node(session_presses=2)
    await rig.at(3)
    assert rig.value("room/session/active") is False


async def test_a_panic_press_is_persisted_raised_and_acknowledged_to_the_node(rig: Rig) -> None:
    await rig.act("room/session", {"on": True})
    await rig.at(1)
    rig.node(panic_latched=1, panic_presses=1, panic_desk=1)  # the desk button
    await rig.at(1.2)
    state = rig.alarms.states["room/panic"]
    assert state.active and rig.alarms.defs["room/panic"].severity == "critical"
    assert "a session was running" in state.detail
    assert rig.value("room/panic/delivery") == "stored"
    assert rig.sub.ctx.settings.get("panic", None)["source"] == "desk"
    assert rig.wrote("panic_ack") == [1]  # the node may clear its latch once released
    assert rig.wrote("buzzer") == [] or rig.wrote("buzzer")[-1] == 0  # silent in the room
    assert rig.relay("room/beacon") is True


async def test_delivery_is_sent_only_once_the_broker_has_it_and_received_only_from_hq(
        rig: Rig) -> None:
    await rig.at(1)
    rig.node(panic_latched=2, panic_presses=1)
    await rig.at(2)
    assert rig.value("room/panic/delivery") == "stored"
    rig.alarms.published("room/panic")  # the MQTT bridge got the broker's acknowledgement
    await rig.at(3)
    assert rig.value("room/panic/delivery") == "sent"
    panic_id = rig.sub.panic.id if rig.sub.panic else ""
    assert (await rig.act("room/panic_received", {"panic": "someone-else"}, "hq")) \
        .startswith("rejected/")
    assert "done" in await rig.act("room/panic_received", {"panic": panic_id}, "hq")
    await rig.at(4)
    assert rig.value("room/panic/delivery") == "received"


async def test_no_receipt_from_hq_in_time_reads_not_delivered(rig: Rig) -> None:
    await rig.at(1)
    rig.node(panic_latched=1, panic_presses=1)
    await rig.at(2)
    rig.alarms.published("room/panic")
    await rig.at(2 + rig.sub.cfg.delivery_timeout_s)
    assert rig.value("room/panic/delivery") == "not_delivered"


async def test_a_press_between_two_polls_is_a_panic_too(rig: Rig) -> None:
    await rig.at(1)
    rig.node(panic_presses=1)  # latched and cleared again between two polls
    await rig.at(2)
    assert rig.alarms.states["room/panic"].active


async def test_a_panic_survives_a_restart_and_a_crew_ack_ends_it(tmp_path: Path) -> None:
    first = Rig(tmp_path)
    await first.at(1)
    first.node(panic_latched=1, panic_presses=1)
    await first.at(2)
    again = Rig(tmp_path)  # power cut, supervisor back: raised again from the disk
    assert again.sub.panic is not None and again.alarms.states["room/panic"].active
    assert "done" in await again.act("room/panic_ack", {})
    await again.at(3)
    assert "room/panic" not in again.alarms.states
    assert again.value("room/panic/active") is False
    assert again.sub.ctx.settings.get("panic", "gone") is None
    assert (await again.act("room/panic_ack", {})).startswith("rejected/no_panic")


async def test_a_walk_test_press_reaches_hq_as_a_test_not_a_panic(rig: Rig) -> None:
    assert "done" in await rig.act("room/walk_test", {"on": True})
    await rig.at(1)
    rig.node(panic_latched=1, panic_presses=1)
    await rig.at(2)
    assert "room/panic" not in rig.alarms.states
    assert rig.alarms.states["room/panic_test"].active
    assert rig.value("room/walk_test/active") is True
    rig.node(panic_latched=0)  # released (the node cleared it after our acknowledgement)
    await rig.at(2.5)
    assert "room/panic_test" not in rig.alarms.states
    rig.node(panic_latched=2, panic_presses=2)  # the next button: HQ sees it too
    await rig.at(3)
    assert rig.alarms.states["room/panic_test"].active
    await rig.at(2 + rig.sub.cfg.walk_test_s)  # it ends by itself
    assert rig.value("room/walk_test/active") is False


@pytest.mark.parametrize("code", [2, 3])
async def test_a_cut_or_shorted_panic_wire_is_a_tamper_alarm(rig: Rig, code: int) -> None:
    await rig.at(1)
    rig.node(panic_door=code)
    await rig.at(2)
    assert rig.alarms.states["room/panic_tamper_door"].active
    assert "room/panic" not in rig.alarms.states


async def test_the_duress_pin_raises_a_silent_panic_and_says_nothing(rig: Rig) -> None:
    answer = await rig.act("room/duress", {})
    assert answer == "done/ok: ok"
    await rig.at(1)
    assert rig.alarms.states["room/panic"].active
    assert rig.value("room/panic/source") == "duress"
    assert rig.relay("room/beacon") is False  # silent: no beacon for whoever watches
    events: list[dict[str, Any]] = []
    rig.core.van.event_added.add(events.append)
    assert await rig.act("room/duress", {}) == "done/ok: ok"  # again, on top of it
    assert [e["what"] for e in events if e.get("kind") == "room"] == ["duress"]


async def test_the_node_lease_is_renewed_every_third_of_it(rig: Rig) -> None:
    for t in range(0, 31):
        await rig.at(float(t))
    renewals = rig.wrote("lease")
    lease = rig.sub.cfg.lease_s
    assert len(renewals) == pytest.approx(30 / (lease / 3), abs=1)
    assert set(renewals) == {lease}


# each example builds a whole core on its own database: a tenth of the usual budget
@settings(FUZZ, max_examples=max(20, FUZZ.max_examples // 10))
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
                          st.integers(0, 0xFFFF)), min_size=1, max_size=20))
async def test_any_node_readings_raise_a_panic_exactly_when_a_button_was_pressed(
        tmp_path_factory: pytest.TempPathFactory,
        readings: list[tuple[int, int, int]]) -> None:
    rig = Rig(tmp_path_factory.mktemp("room"))
    await rig.at(0)
    expected = False
    previous = 0
    for i, (latched, presses, zone) in enumerate(readings, start=1):
        rig.node(panic_latched=latched, panic_presses=presses, panic_desk=zone)
        await rig.at(float(i))
        expected = expected or bool(latched & 3) or presses != previous
        previous = presses
        assert ("room/panic" in rig.alarms.states) is expected


async def test_a_button_held_down_counts_once(rig: Rig) -> None:
    await rig.act("room/walk_test", {"on": True})
    await rig.at(1)
    events: list[dict[str, Any]] = []
    rig.core.van.event_added.add(events.append)
    rig.node(panic_latched=1, panic_presses=1)
    for t in (2, 3, 4, 5):  # held: the node keeps the bit latched until it is released
        await rig.at(t)
    assert [e["what"] for e in events if e.get("kind") == "room"] == ["panic_test"]
    assert rig.wrote("panic_ack") == [1, 1, 1, 1]  # acknowledged until the node clears it


async def test_a_gpio_button_held_for_its_hold_time_raises_the_panic(tmp_path: Path) -> None:
    rig = Rig(tmp_path, edit=lambda text: text.replace('line = "panic_crew"\n',
                                                       'line = "panic_crew"\nhold_s = 2\n'))
    button = next(b for b in rig.sub.cfg.panic if b.source == "gpio")
    assert button.hold_s == 2.0
    rig.points.update(f"io/{button.line}", False, AWAY)  # seen released: a press is an edge
    await rig.at(0)
    rig.points.update(f"io/{button.line}", True, AWAY + 1)
    await rig.at(1)
    assert "room/panic" not in rig.alarms.states  # a brush against it is not a panic
    await rig.at(3)
    assert rig.alarms.states["room/panic"].active
    assert rig.value("room/panic/source") == button.name
