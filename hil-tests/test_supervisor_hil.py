"""The real supervisor process against the simulated van, seen from a remote MQTT monitor."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from conftest import Van, settled
from harness import BIN, DEMO_CONFIG, run, wait_until


async def test_ready_and_battery_points_match_the_plant(van: Van) -> None:
    mon, plant = van.monitor, van.sim.plant
    status = mon.latest["status"]
    assert status["state"] == "ready"
    assert status["session"] >= 1
    assert mon.latest["meta"]["vehicle"] == "demo"
    await wait_until(lambda: mon.value("power/battery/soc") is not None, what="SOC")
    assert mon.value("power/battery/soc") == pytest.approx(plant.battery.soc, abs=0.5)
    assert mon.value("power/battery/voltage") == pytest.approx(plant.battery.voltage, abs=0.05)
    assert mon.quality("power/battery/voltage") == "good"
    assert mon.value("power/ac/source") == "none"
    for device in ("gx_system", "battery", "multiplus", "room_climate", "relays"):
        assert mon.latest[f"device/{device}/status"]["state"] == "online"

    # the runtime forecast and its "what if" the panel shows ("6 h 20 min; 1 h 40 min with A/C");
    # at night: by day the sun may charge the battery, and a charging battery has no runtime
    plant.solar_peak_w = 0.0
    # the crew area set to heat to a frost guard it is far above: the heater would run
    for action, args in (("climate/preset", {"zone": "crew", "preset": "away"}),
                         ("climate/mode", {"zone": "crew", "mode": "heat"})):
        result = await mon.command(action, {"id": action, "args": args})
        assert result["status"] == "done", result
    await wait_until(lambda: mon.value("power/runtime") is not None
                     and mon.value("power/runtime/with_climate") is not None
                     and mon.value("power/runtime/with_climate") < mon.value("power/runtime"),
                     what="forecast with the climate's extra draw")
    assert mon.value("power/runtime/with_climate") > 0
    assert mon.value("power/runtime/with/water_heater") < mon.value("power/runtime")

    plant.shore_connected = True  # the crew plugs in shore power
    await wait_until(lambda: mon.value("power/ac/source") == "shore", what="shore seen")
    await wait_until(lambda: (mon.value("power/battery/current") or 0) > 0, what="charging")


async def test_circuit_command_is_done_and_confirmed(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    await wait_until(lambda: mon.value("power/battery/current") is not None, what="current")
    before = sim.plant.battery.current
    result = await mon.command("power/circuit", {
        "id": "hil-1", "args": {"circuit": "exterior_lights", "on": True}})
    assert result == {"id": "hil-1", "status": "done", "code": "ok",
                      "message": "exterior_lights on"}
    assert sim.relay("relays", "relay_1") is True
    await wait_until(lambda: mon.value("power/circuit/exterior_lights") is True,
                     what="circuit state on")
    # the lights draw their 6 A from the battery
    assert sim.plant.battery.current == pytest.approx(before - 6.0, abs=0.5)
    event = next(v for t, v, _ in mon.messages if t == "event" and v.get("command") == "hil-1")
    assert event["kind"] == "command" and event["status"] == "done"
    assert isinstance(event["id"], int)  # numbered like every event: HQ logs it once
    # HQ's copy goes out on uplink/event once the van's broker says its HQ bridge is up (no
    # bridge here: the test says it, as the broker does)
    assert mon.client is not None
    await mon.client.publish("mcw/v1/demo/bridge/hq", b"1", qos=1, retain=True)
    uplinked = await wait_until(lambda: next((v for t, v, _ in mon.messages
                                              if t == "uplink/event"
                                              and v.get("id") == event["id"]), None),
                                what="HQ's copy of the event")
    assert uplinked == event
    # HQ, missing it, asks for it again: it comes from the van's log, marked resent
    seen = len(mon.messages)
    asked = await mon.command("system/events_resend", {
        "id": "hq-resend-1", "args": {"first": event["id"], "last": event["id"]}}, role="hq")
    assert asked["status"] == "done", asked
    again = await wait_until(lambda: next((v for t, v, _ in mon.messages[seen:]
                                           if t == "uplink/event"
                                           and v.get("id") == event["id"]), None),
                             what="the event sent again")
    assert again == {**event, "resent": True}
    for role, body, code in (("hq", {"first": 9, "last": 3}, "bad_range"),
                             ("crew", {"first": 1, "last": 3}, "forbidden")):
        refused = await mon.command("system/events_resend", {
            "id": f"resend-{role}", "args": body}, role=role)
        assert (refused["status"], refused["code"]) == ("rejected", code), refused


async def test_bad_commands_are_rejected_and_nothing_switches(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    relays_before = [sim.relay("relays", f"relay_{i}") for i in range(1, 9)]
    bad: list[tuple[str, dict[str, Any] | bytes, str | None, str]] = [
        ("power/circuit", b"{broken", None, "bad_json"),
        ("power/circuit", {"id": "b1", "args": {"circuit": "exterior_lights", "on": "yes"}},
         "b1", "wrong_type"),
        ("power/circuit", {"id": "b2", "args": {"circuit": "reactor", "on": True}},
         "b2", "out_of_range"),
        ("power/teleport", {"id": "b3", "args": {}}, "b3", "unknown_action"),
        ("power/circuit", {"id": "b4", "args": {"circuit": "fridge", "on": True},
                           "expires": "2020-01-01T00:00:00Z"}, "b4", "expired"),
    ]
    for action, body, cid, code in bad:
        result = await mon.command(action, body)
        assert result["id"] == cid
        assert result["code"] == code
        assert result["status"] == ("expired" if code == "expired" else "rejected")
    first = await mon.command("power/circuit", {"id": "d1", "args": {"circuit": "sockets_12v",
                                                                    "on": False}})
    again = await mon.command("power/circuit", {"id": "d1", "args": {"circuit": "sockets_12v",
                                                                    "on": True}})
    assert (first["status"], again["status"]) == ("done", "duplicate")
    assert [sim.relay("relays", f"relay_{i}") for i in range(1, 9)] == relays_before


async def test_silent_rtu_device_goes_offline_while_the_rest_keeps_updating(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    await wait_until(lambda: mon.quality("climate/room/temperature") == "good", what="temp")
    sim.set_silent("room_climate", True)
    await wait_until(lambda: mon.latest["device/room_climate/status"]["state"] == "offline",
                     what="sensor offline")
    await wait_until(lambda: mon.quality("climate/room/temperature") == "stale", what="stale")
    assert mon.latest["status"]["state"] == "degraded"
    assert mon.latest["device/room_climate/status"]["errors"]["timeout"] >= 3
    # the relay board on the same bus and the GX keep working: the interior lights (on by
    # default) switched off change the battery's current
    seen = len(mon.messages)
    result = await mon.command("power/circuit", {"id": "s1", "args": {
        "circuit": "interior_lights", "on": False}})
    assert result["status"] == "done"
    await wait_until(lambda: any(t.startswith("state/power/battery/") for t, _, _ in
                                 mon.messages[seen:]), what="battery still updating")
    assert mon.latest["device/relays/status"]["state"] == "online"

    sim.set_silent("room_climate", False)  # the cable is plugged back
    await wait_until(lambda: mon.quality("climate/room/temperature") == "good", timeout=60,
                     what="sensor back")
    await wait_until(lambda: mon.latest["status"]["state"] == "ready", what="ready again")


async def test_garbage_on_the_rtu_line_is_survived(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    rtu = tuple(d.id for d in sim.config.device if d.bus == "rs485")

    def framing_errors() -> int:
        return sum(int((mon.latest.get(f"device/{d}/status") or {}).get("errors", {})
                       .get("framing", 0)) for d in rtu)

    await wait_until(lambda: mon.value("power/battery/voltage") is not None, what="voltage")
    before = framing_errors()
    gx_ts = mon.latest["state/power/battery/voltage"]["ts"]
    # bursts of interference between frames, then noise that damages the next answers
    for _ in range(5):
        sim.inject_garbage("rs485", 40)
    sim.corrupt_answers("rs485", 3)
    await wait_until(lambda: framing_errors() >= before + 3, timeout=60,
                     what="three damaged answers counted as framing errors")
    # the GX on its own bus kept updating the whole time
    assert mon.latest["state/power/battery/voltage"]["ts"] > gx_ts
    result = await mon.command("power/circuit", {"id": "g1", "args": {
        "circuit": "fridge", "on": True}})
    if result["status"] != "done":  # a write may hit the garbage: the crew retries once
        result = await mon.command("power/circuit", {"id": "g2", "args": {
            "circuit": "fridge", "on": True}})
    assert result["status"] == "done"
    assert sim.relay("relays", "relay_4") is True
    await wait_until(lambda: all(mon.latest[f"device/{d}/status"]["state"] == "online"
                                 for d in rtu), what="RTU devices online")
    assert van.supervisor.proc is not None and van.supervisor.proc.poll() is None


async def test_broker_restart_republishes_everything(van: Van) -> None:
    mon = van.monitor
    await wait_until(lambda: mon.value("climate/room/humidity") is not None, what="humidity")
    session = mon.latest["status"]["session"]
    await van.broker.stop()  # no persistence: every retained message is gone
    mon.latest.clear()
    van.sim.plant.shore_connected = True  # changes while the broker is down
    await van.broker.start()
    await wait_until(lambda: (mon.latest.get("status") or {}).get("session") == session + 1,
                     timeout=60, what="new session")
    assert mon.latest["status"]["state"] == "ready"
    await wait_until(lambda: mon.value("power/ac/source") == "shore", what="shore state")
    republished = ("meta", "state/power/battery/soc", "state/climate/room/humidity",
                   "state/power/circuit/comms", "device/relays/status")
    await wait_until(lambda: all(mon.latest.get(topic) is not None for topic in republished),
                     what=f"republished {republished}")


async def test_sigterm_leaves_every_output_in_its_safe_state(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    for circuit, on in (("exterior_lights", True), ("comms", False)):
        result = await mon.command("power/circuit", {"id": f"t-{circuit}", "args": {
            "circuit": circuit, "on": on}})
        assert result["status"] == "done"
    await wait_until(lambda: sim.output_active("status_lamp") is True, what="lamp on")
    assert await van.supervisor.stop(signal.SIGTERM) == 0
    # declared safe states: lights off, comms ON (HQ must reach the van), lamp dark
    assert sim.relay("relays", "relay_1") is False
    assert sim.relay("relays", "relay_3") is True
    assert sim.output_active("status_lamp") is False
    await wait_until(lambda: mon.latest["status"]["state"] == "offline", what="offline")
    events = [line.get("event") for line in van.supervisor.log_lines()]
    assert "safe_states_applied" in events and "supervisor_stopped" in events


async def test_killed_supervisor_is_reported_lost_by_the_broker(van: Van) -> None:
    assert await van.supervisor.stop(signal.SIGKILL) == -signal.SIGKILL
    await wait_until(lambda: van.monitor.latest["status"]["state"] == "lost", timeout=90,
                     what="last will")


async def test_bad_config_refuses_to_start_and_touches_nothing(
    van: Van, tmp_path: Path
) -> None:
    sim = van.sim
    result = await van.monitor.command("power/circuit", {"id": "c1", "args": {
        "circuit": "exterior_lights", "on": True}})
    assert result["status"] == "done"
    # a power cut: the lights stay on, no safe state was applied
    assert await van.supervisor.stop(signal.SIGKILL) == -signal.SIGKILL
    assert sim.relay("relays", "relay_1") is True
    # the same van with one mistake far from the relay board (which stays reachable)
    bad = tmp_path / "bad.toml"
    bad.write_text(DEMO_CONFIG.read_text().replace("restore_soc = 60", "restore_soc = 40"))
    proc = await run([str(BIN / "mcw-supervisor"), "--config", str(bad)])
    assert proc.returncode == 2
    assert f"{bad}: power.shedding.step[0].restore_soc: must be above shed_soc" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sim.relay("relays", "relay_1") is True  # untouched: a started one would cut it


async def test_sigterm_with_a_silent_device_still_exits_cleanly(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    sim.set_silent("relays", True)  # the relay board stops answering
    await wait_until(lambda: mon.latest["device/relays/status"]["state"] == "offline",
                     what="relay board offline")
    assert await van.supervisor.stop(signal.SIGTERM) == 0
    await wait_until(lambda: mon.latest["status"]["state"] == "offline", what="offline")
    events = [line.get("event") for line in van.supervisor.log_lines()]
    assert "safe_state_not_confirmed" in events or "safe_states_timed_out" in events
    assert "supervisor_stopped" in events


async def test_each_role_runs_only_its_actions_over_mqtt(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    circuit = next(a for a in mon.latest["meta"]["actions"] if a["id"] == "power/circuit")
    assert circuit["roles"] == ["crew", "technician"]
    result = await mon.command("power/circuit", {"id": "r1", "args": {
        "circuit": "exterior_lights", "on": True}}, role="hq")
    assert (result["status"], result["code"]) == ("rejected", "forbidden")
    assert sim.relay("relays", "relay_1") is False
    done = await mon.command("system/republish", {"id": "r2", "args": {}}, role="hq")
    assert done["status"] == "done"
    unknown = await mon.command("power/circuit", {"id": "r3", "args": {
        "circuit": "exterior_lights", "on": True}}, role="admin")
    assert unknown["code"] == "unknown_role"
    assert sim.relay("relays", "relay_1") is False


async def test_a_command_sent_while_the_supervisor_restarts_is_answered(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    assert await van.supervisor.stop(signal.SIGKILL) == -signal.SIGKILL
    assert mon.client is not None
    for cid, on in (("away-1", True), ("away-2", False), ("away-3", True)):
        await mon.client.publish("mcw/v1/demo/cmd/crew/power/circuit", json.dumps(
            {"id": cid, "args": {"circuit": "exterior_lights", "on": on}}), qos=1)
    van.supervisor.start()
    answered = await wait_until(lambda: [v for t, v, _ in mon.messages
                                         if t == "result/crew/power/circuit"
                                         and v.get("id") == "away-3"], what="answers")
    assert answered[0]["status"] == "done"
    ids = [v["id"] for t, v, _ in mon.messages if t == "result/crew/power/circuit"]
    assert ids == ["away-1", "away-2", "away-3"]  # each once, in order
    await wait_until(lambda: sim.relay("relays", "relay_1") is True, what="the last one")


async def test_a_retained_command_is_never_applied(van: Van) -> None:
    mon, sim = van.monitor, van.sim
    assert mon.client is not None
    assert await van.supervisor.stop(signal.SIGTERM) == 0
    # published while the supervisor is down, kept by the broker for its next start
    await mon.client.publish("mcw/v1/demo/cmd/crew/power/circuit", json.dumps(
        {"id": "kept", "args": {"circuit": "exterior_lights", "on": True}}), qos=1, retain=True)
    van.supervisor.start()
    answers = await wait_until(lambda: [v for t, v, _ in mon.messages
                                        if t == "result/crew/power/circuit"],
                               what="retained command answered")
    assert [(a["id"], a["status"], a["code"]) for a in answers] == [
        ("kept", "rejected", "retained")]
    await settled(van)
    assert sim.relay("relays", "relay_1") is False
    assert len([t for t, _, _ in mon.messages if t == "result/crew/power/circuit"]) == 1
    # and the broker no longer offers it (the supervisor cleared it)
    await wait_until(lambda: mon.latest.get("cmd/crew/power/circuit") is None,
                     what="retained command cleared")


async def test_mcwctl_status_shows_devices_and_failures(van: Van) -> None:
    van.sim.set_silent("room_climate", True)
    await wait_until(lambda: van.monitor.latest["device/room_climate/status"]["state"]
                     == "offline", what="offline")
    proc = await run([str(BIN / "mcwctl"), "status", "--config", str(DEMO_CONFIG)])
    assert proc.returncode == 3, proc.stderr  # not ready
    out = proc.stdout
    assert "supervisor: degraded" in out
    line = next(ln for ln in out.splitlines() if "room_climate" in ln)
    assert "offline" in line and "timeout" in line
    assert "power/battery/soc" in out
    raw = await run([str(BIN / "mcwctl"), "status", "--json", "--config", str(DEMO_CONFIG)])
    assert json.loads(raw.stdout)["status"]["state"] == "degraded"


async def test_low_battery_alarm_is_raised_acknowledged_and_cleared(van: Van) -> None:
    mon, plant = van.monitor, van.sim.plant
    plant.battery.soc = 12.0  # a long day on battery
    await wait_until(lambda: (mon.latest.get("alarm/power/critical_soc") or {}).get("active"),
                     what="critical SOC alarm")
    alarm = mon.latest["alarm/power/critical_soc"]
    assert alarm["severity"] == "critical" and alarm["acked"] is False
    assert mon.latest["alarm/power/low_soc"]["active"] is True
    await wait_until(lambda: van.sim.output_active("status_lamp") is False,
                     what="status lamp dark on a critical alarm")
    plant.battery.soc = 60.0  # shore power charged it back
    await wait_until(lambda: mon.latest.get("alarm/power/low_soc", "x") is None,
                     what="warning cleared (not latching)")
    # latched: still shown, inactive (its update may come just after the warning's)
    await wait_until(lambda: mon.latest["alarm/power/critical_soc"]["active"] is False,
                     what="critical alarm inactive but still shown")
    result = await mon.command("alarm/ack", {"id": "ack-1", "args": {
        "alarm": "power/critical_soc"}})
    assert result["status"] == "done"
    await wait_until(lambda: mon.latest.get("alarm/power/critical_soc", "x") is None,
                     what="alarm gone once cleared and acknowledged")
    kinds = [(v["alarm"], v["what"]) for t, v, _ in mon.messages
             if t == "event" and v.get("kind") == "alarm"]
    assert ("power/critical_soc", "raised") in kinds
    assert ("power/critical_soc", "acknowledged") in kinds
