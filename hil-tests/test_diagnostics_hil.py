"""A technician's Modbus diagnostics on the demo van, over MQTT as from HQ or mcwctl:
``diag/read`` by register name and by address, ``diag/write`` within the profile's limits,
its dry run (the frame, nothing sent), and neither for the crew."""

from __future__ import annotations

from conftest import Van
from harness import wait_until


async def diag(van: Van, action: str, cid: str, args: dict[str, object],
               role: str = "technician") -> dict[str, object]:
    return await van.monitor.command(f"diag/{action}", {"id": cid, "args": args}, role=role)


async def test_a_technician_reads_and_writes_registers_and_sees_the_frame_first(
        van: Van) -> None:
    mon, sim = van.monitor, van.sim
    await wait_until(lambda: (mon.latest.get("device/relays/status") or {}).get("state")
                     == "online", what="relays online")
    read = await diag(van, "read", "r1", {"device": "relays", "register": "software_version"})
    assert read["status"] == "done", read
    assert str(read["message"]).endswith("= software_version 2.0"), read
    sim.override("room_climate", "temperature", 21.5)
    raw = await diag(van, "read", "r2", {"device": "room_climate", "table": "input",
                                          "address": 1, "count": 2})
    assert raw["status"] == "done" and "input 1+2: 0x00d7 " in str(raw["message"]), raw

    before = sim.relay("relays", "relay_8")  # the spare relay
    dry = await diag(van, "write", "w1", {"device": "relays", "register": "relay_8",
                                           "value": not before, "dry_run": True})
    assert dry["status"] == "done", dry
    expected = f"02 05 00 07 {'00' if before else 'ff'} 00"  # unit 2, FC05, coil 7
    assert expected in str(dry["message"]), (expected, dry)
    assert sim.relay("relays", "relay_8") is before, "a dry run sends nothing"
    done = await diag(van, "write", "w2", {"device": "relays", "register": "relay_8",
                                            "value": not before})
    assert done["status"] == "done" and sim.relay("relays", "relay_8") is not before, done

    cases: list[tuple[str, str, dict[str, object], str]] = [
            ("b1", "read", {"device": "relays", "register": "nope"}, "unknown_register"),
            ("b2", "read", {"device": "relays"}, "bad_request"),
            ("b3", "write", {"device": "relays", "register": "software_version", "value": 3},
             "out_of_range"),
            ("b4", "read", {"device": "toaster", "register": "x"}, "out_of_range")]
    for cid, action, args, code in cases:
        refused = await diag(van, action, cid, args)
        assert (refused["status"], refused["code"]) == ("rejected", code), refused
    crew = await diag(van, "read", "c1", {"device": "relays", "register": "relay_1"},
                      role="crew")
    assert crew["code"] == "forbidden", crew
    # every diagnostic is audited like any command
    audited = {v.get("command") for t, v, _ in mon.messages if t == "event"
               and isinstance(v, dict) and v.get("kind") == "command"}
    assert {"r1", "w1", "w2"} <= audited
