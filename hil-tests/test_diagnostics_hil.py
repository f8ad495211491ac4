"""A technician's Modbus diagnostics on the demo van, over MQTT as from HQ or mcwctl:
``diag/read`` by register name and by address, ``diag/write`` within the profile's limits,
its dry run (the frame, nothing sent), and neither for the crew."""

from __future__ import annotations

import re

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

    # the night light's relay: the lighting subsystem may switch it back after the technician
    # (it keeps its lights as wanted), so what is checked is what went on the bus
    before, writes = sim.relay("relays", "relay_8"), len(sim.writes_to("relays", "relay_8"))
    dry = await diag(van, "write", "w1", {"device": "relays", "register": "relay_8",
                                           "value": not before, "dry_run": True})
    assert dry["status"] == "done", dry
    expected = f"02 05 00 07 {'00' if before else 'ff'} 00"  # unit 2, FC05, coil 7
    assert expected in str(dry["message"]), (expected, dry)
    assert len(sim.writes_to("relays", "relay_8")) == writes, "a dry run sends nothing"
    done = await diag(van, "write", "w2", {"device": "relays", "register": "relay_8",
                                            "value": not before})
    assert done["status"] == "done", done
    assert sim.writes_to("relays", "relay_8")[writes] == (0 if before else 1,), "sent"

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


async def test_the_self_test_switches_each_output_and_back_and_reports_a_failing_board(
        van: Van) -> None:
    mon, sim = van.monitor, van.sim
    await wait_until(lambda: (mon.latest.get("device/relays/status") or {}).get("state")
                     == "online", what="relays online")
    before = {n: sim.relay("relays", f"relay_{n}") for n in range(1, 9)}
    seen = len(mon.messages)
    done = await diag(van, "self_test", "st1", {"only": "power/circuit/*"})
    steps = [v for t, v, _ in mon.messages[seen:] if t == "event" and isinstance(v, dict)
             and v.get("kind") == "self_test" and "output" in v]  # outcomes, not the start
    assert done["status"] == "done", [s for s in steps if s["result"] == "failed"]
    assert steps and {s["output"] for s in steps} >= {"power/circuit/exterior_lights"}
    assert all(s["result"] in ("ok", "skipped") for s in steps), steps
    assert any(s["result"] == "ok" for s in steps)
    assert {n: sim.relay("relays", f"relay_{n}") for n in range(1, 9)} == before, "restored"
    # every write to the board now refused: the self-test says which outputs failed
    sim.set_exception("relays", 4)
    failed = await diag(van, "self_test", "st2", {"only": "power/circuit/exterior_lights"})
    assert (failed["status"], failed["code"]) == ("failed", "self_test_failed"), failed
    assert "power/circuit/exterior_lights" in str(failed["message"])
    sim.set_exception("relays", None)
    crew = await diag(van, "self_test", "st3", {}, role="crew")
    assert crew["code"] == "forbidden", crew
    # never while a victim is in the consultation room
    started = await mon.command("room/session", {"id": "s1", "args": {"on": True}})
    assert started["status"] == "done", started
    await wait_until(lambda: mon.value("room/session/active") is True, what="session on")
    refused = await diag(van, "self_test", "st4", {})
    assert (refused["status"], refused["code"]) == ("rejected", "session"), refused


async def test_the_self_test_of_every_output_announces_them_before_the_first(van: Van) -> None:
    """``*``: not only the circuits (the room node's, the lights', GPIO lines): the first
    event says how many outputs the run goes through and which, then one outcome each."""
    mon = van.monitor
    await wait_until(lambda: (mon.latest.get("device/relays/status") or {}).get("state")
                     == "online", what="relays online")
    seen = len(mon.messages)
    answer = await diag(van, "self_test", "st-all", {})  # no glob: every output
    events = [v for t, v, _ in mon.messages[seen:] if t == "event"
              and isinstance(v, dict) and v.get("kind") == "self_test"]
    start, outcomes = events[0], events[1:]
    assert start["what"] == "started", events
    assert start["total"] == len(outcomes) == len(start["outputs"]), start
    assert start["outputs"] == [o["output"] for o in outcomes]
    assert {o.split("/")[0] for o in start["outputs"]} > {"power"}, start["outputs"]
    summary = re.match(r"(\d+) ok, (\d+) failed, (\d+) skipped", str(answer["message"]))
    assert summary and sum(map(int, summary.groups())) == start["total"], answer


async def test_a_technician_at_hq_has_a_bundle_made_on_the_van(van: Van) -> None:
    """``diag/bundle``: the support bundle made on the van's disk (the supervisor's own state,
    no second login on its broker), answered with what is in it."""
    mon = van.monitor
    await wait_until(lambda: (mon.latest.get("device/relays/status") or {}).get("state")
                     == "online", what="relays online")
    made = await mon.command("diag/bundle", {"id": "b1", "args": {"events": 50}},
                             role="technician", timeout=60)
    assert made["status"] == "done", made
    message = str(made["message"])
    assert message.startswith("mcw-bundle-demo-") and "online" in message, message
    bundles = list((van.run_dir / "bundles").glob("mcw-bundle-*.tar.gz"))
    assert len(bundles) == 1 and message.startswith(bundles[0].name), (bundles, message)
    assert (mon.latest.get("status") or {}).get("state") == "ready", "the session kept"
    crew = await mon.command("diag/bundle", {"id": "b2"}, role="crew")
    assert crew["code"] == "forbidden", crew
