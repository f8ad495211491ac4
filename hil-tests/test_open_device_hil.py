"""A van builder's own Modbus device, added with a profile file and a ``[[device]]`` entry,
no code: the real supervisor polls it on the demo van's RS-485 bus (the simulated van serves
the same profile), publishes its registers as points, and lets a technician write its
writable ones within the profile's limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conftest import Van, start_van
from harness import wait_until

PROFILE = Path(__file__).parent / "builder_profiles" / "tank_gauge.toml"
DEVICE = f"""
[[device]]
id = "tank"
profile_file = "{PROFILE}"
bus = "rs485"
unit = 9
label = "Fresh water tank"
poll_fast_s = 1.0
poll_slow_s = 2.0
"""


@pytest.fixture
async def van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    async with start_van(monkeypatch, {}, config_edit=lambda text: text + DEVICE) as v:
        yield v


async def write(van: Van, cid: str, args: dict[str, object],
                role: str = "technician") -> dict[str, object]:
    return await van.monitor.command("device/tank/write", {"id": cid, "args": args}, role=role)


async def test_a_builders_device_is_polled_published_and_written_without_code(
        van: Van) -> None:
    mon, sim = van.monitor, van.sim
    meta = await wait_until(lambda: mon.latest.get("meta"), what="meta")
    points = {p["id"]: p for p in meta["points"]}
    assert points["device/tank/level"]["unit"] == "%"
    assert points["device/tank/level"]["description"] == "Fresh water level"
    assert points["device/tank/mode"]["enum"] == ["off", "auto", "fill"]
    action = next(a for a in meta["actions"] if a["id"] == "device/tank/write")
    assert action["roles"] == ["technician"]
    assert action["args"]["register"]["enum"] == ["alarm_level", "mode", "pump"]

    sim.override("tank", "level", 37.5)
    await wait_until(lambda: mon.value("device/tank/level") == 37.5, what="the level read")
    assert mon.quality("device/tank/level") == "good"
    await wait_until(lambda: (mon.latest.get("device/tank/status") or {}).get("state")
                     == "online", what="the gauge online")

    done = await write(van, "w1", {"register": "alarm_level", "value": 20})
    assert done["status"] == "done", done
    assert sim.served_value("tank", "alarm_level") == 20
    await wait_until(lambda: mon.value("device/tank/alarm_level") == 20, what="its point")
    done = await write(van, "w2", {"register": "pump", "value": True})
    assert done["status"] == "done" and sim.served_value("tank", "pump") is True, done
    done = await write(van, "w3", {"register": "mode", "value": 2})
    assert done["status"] == "done", done
    await wait_until(lambda: mon.value("device/tank/mode") == "fill", what="mode by meaning")

    # the profile's limits, checked before the bus: nothing written
    cases: list[tuple[str, dict[str, object], str]] = [
        ("r1", {"register": "alarm_level", "value": 80}, "out_of_range"),
        ("r2", {"register": "mode", "value": 7}, "out_of_range"),
        ("r3", {"register": "pump", "value": 1}, "out_of_range"),
        ("r4", {"register": "level", "value": 10}, "out_of_range"),
        ("r5", {"register": "alarm_level", "value": "x"}, "wrong_type")]
    for cid, args, code in cases:
        refused = await write(van, cid, args)
        assert (refused["status"], refused["code"]) == ("rejected", code), (args, refused)
    assert sim.served_value("tank", "alarm_level") == 20
    assert sim.served_value("tank", "mode") == 2  # the code of "fill"
    crew = await write(van, "c1", {"register": "pump", "value": False}, role="crew")
    assert (crew["status"], crew["code"]) == ("rejected", "forbidden"), crew
    assert sim.served_value("tank", "pump") is True

    # the gauge goes silent: its points go stale, the rest of the bus keeps working
    sim.set_silent("tank", True)
    await wait_until(lambda: mon.quality("device/tank/level") == "stale",
                     what="the level stale", timeout=30)
    assert (mon.latest.get("device/room_climate/status") or {}).get("state") == "online"


async def test_a_board_of_another_model_on_a_units_address_is_reported_not_read(
        van: Van) -> None:
    """The relay board is swapped, while it is off the bus, for one of the old protocol
    (software version 0.50): back on the bus it is reported as the wrong device, its relays
    invalid, no command switches anything on it; the rest of the bus goes on."""
    mon, sim = van.monitor, van.sim

    def relays() -> dict[str, object]:
        return mon.latest.get("device/relays/status") or {}

    await wait_until(lambda: relays().get("state") == "online", what="relays online")
    sim.set_silent("relays", True)
    await wait_until(lambda: relays().get("state") == "offline", what="relays gone",
                     timeout=30)
    sim.override("relays", "software_version", 0.5)
    sim.set_silent("relays", False)
    await wait_until(lambda: "software_version reads 0.5" in str(relays().get("wrong_identity")),
                     what="the wrong board reported", timeout=30)
    assert relays()["state"] == "degraded"
    assert "identity" in str(relays()["last_error"])
    # its history is in the event log: gone, then back as another model
    told = [(v["state"], bool(v.get("wrong_identity"))) for t, v, _ in mon.messages
            if t == "event" and isinstance(v, dict) and v.get("kind") == "device"
            and v.get("device") == "relays"]
    assert told[-2:] == [("offline", False), ("degraded", True)], told
    await wait_until(lambda: mon.quality("power/circuit/exterior_lights") == "invalid",
                     what="its relay not trusted")
    result = await mon.command("power/circuit", {
        "id": "on-wrong-board", "args": {"circuit": "exterior_lights", "on": True}})
    assert result["status"] == "failed" and "wrong_device" in str(result["code"]), result
    assert sim.relay("relays", "relay_1") is False
    assert (mon.latest.get("device/room_climate/status") or {}).get("state") == "online"
