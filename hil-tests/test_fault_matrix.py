"""The fault matrix, against the real supervisor process: the USB RS-485 adapter pulled and
plugged again, the broker missing at start, and the supervisor killed again and again."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
from collections import Counter

import aiomqtt

from conftest import Van, settled
from harness import DEMO_CONFIG, wait_until
from supervisor.registry import load_config

# the RS-485 devices of the demo van
RTU = tuple(d.id for d in load_config(DEMO_CONFIG).device if d.bus == "rs485")
KILL_CYCLES = 10  # `make bench` does more


def device_state(van: Van, device: str) -> str | None:
    return (van.monitor.latest.get(f"device/{device}/status") or {}).get("state")


async def test_the_serial_adapter_pulled_and_plugged_again(van: Van) -> None:
    await van.sim.unplug("rs485")
    await wait_until(lambda: all(device_state(van, d) == "offline" for d in RTU),
                     what="the RS-485 devices offline")
    assert van.monitor.latest["status"]["state"] == "degraded"
    assert device_state(van, "battery") == "online"  # the GX on its own bus is untouched
    assert van.monitor.quality("climate/room/temperature") == "stale"
    await van.sim.replug("rs485")
    await wait_until(lambda: all(device_state(van, d) == "online" for d in RTU),
                     what="the RS-485 devices back")
    await wait_until(lambda: van.monitor.latest["status"]["state"] == "ready", what="ready")
    await wait_until(lambda: van.monitor.quality("climate/room/temperature") == "good",
                     what="fresh readings")
    assert van.supervisor.proc is not None and van.supervisor.proc.poll() is None


async def test_the_gx_dropping_off_the_lan_takes_its_units_offline_together(van: Van) -> None:
    gx = ("gx_system", "battery", "multiplus", "solar")
    await van.sim.unplug("gx")  # the GX's connections drop and nothing listens any more
    await wait_until(lambda: all(device_state(van, d) == "offline" for d in gx),
                     what="every GX unit offline")
    assert all(device_state(van, d) == "online" for d in RTU)  # the RS-485 bus is untouched
    assert van.monitor.quality("power/battery/soc") == "stale"
    await van.sim.replug("gx")
    await wait_until(lambda: all(device_state(van, d) == "online" for d in gx),
                     what="the GX back")
    await wait_until(lambda: van.monitor.quality("power/battery/soc") == "good",
                     what="fresh battery readings")


async def test_the_broker_missing_at_start_is_found_when_it_comes(van: Van) -> None:
    sim = van.sim
    assert await van.supervisor.stop(signal.SIGTERM) == 0
    await van.broker.stop()
    van.supervisor.start()  # no broker: it must control the van all the same
    await wait_until(lambda: any(line.get("event") == "supervisor_ready"
                                 for line in van.supervisor.log_lines()[-200:]),
                     what="ready without a broker")
    sim.override("relays", "relay_2", False)  # a relay drops: the crew wants it on
    sim.override("relays", "relay_2", None)
    await wait_until(lambda: sim.relay("relays", "relay_2") is True,
                     what="controlled without a broker")
    van.monitor.latest.clear()
    await van.broker.start()
    await wait_until(lambda: (van.monitor.latest.get("status") or {}).get("state") == "ready",
                     what="found the broker")


async def test_killed_again_and_again_nothing_acknowledged_is_lost(van: Van) -> None:
    """SIGKILL right after an answer, with a torn frame at the end of the WAL as a power cut
    mid-write leaves it: the database opens intact and keeps every acknowledged command."""
    mon, sim = van.monitor, van.sim
    torn = random.Random(8)  # reproducible
    for cycle in range(KILL_CYCLES):
        on = cycle % 2 == 0
        result = await mon.command("power/circuit", {"id": f"k{cycle}", "args": {
            "circuit": "sockets_12v", "on": on}})
        assert result["status"] == "done"
        # the power is cut right after the answer, while the card writes the next WAL frame:
        # what reached it is a torn frame (its checksum cannot match) after the committed ones
        assert await van.supervisor.stop(signal.SIGKILL) == -signal.SIGKILL
        wal = van.run_dir / "mcw.sqlite-wal"
        assert wal.exists()  # a killed writer leaves its WAL behind
        with wal.open("ab") as card:
            card.write(torn.randbytes(torn.randrange(1, 8192)))
        van.supervisor.start()
        await wait_until(lambda: (mon.latest.get("status") or {}).get("state") == "ready",
                         what="ready")
        await settled(van)
        await wait_until(lambda: sim.relay("relays", "relay_5") is on,  # noqa: B023
                         what=f"cycle {cycle}: the crew's choice kept")
        again = await mon.command("power/circuit", {"id": f"k{cycle}", "args": {
            "circuit": "sockets_12v", "on": not on}})
        assert again["status"] == "duplicate"  # its id was kept too
    assert await van.supervisor.stop(signal.SIGKILL) == -signal.SIGKILL
    with sqlite3.connect(van.run_dir / "mcw.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        kept = db.execute("SELECT COUNT(*) FROM command WHERE id LIKE 'k%'").fetchone()[0]
    assert kept == KILL_CYCLES


async def test_a_command_flood_is_answered_not_dropped(van: Van) -> None:
    """5 000 commands as fast as the crew app can send them: every one gets exactly one result
    (done, failed, or rejected busy beyond the intake), a command of another kind sent in the
    middle of the flood is served, not turned away busy, and the readings stay fresh."""
    mon = van.monitor
    assert mon.client is not None
    n = 5000
    got: dict[str, list[str]] = {}
    seen = len(mon.messages)
    # an app that listens to its own answers only (the monitor sees everything, and a broker
    # queue for one client is bounded)
    async with aiomqtt.Client("127.0.0.1", van.broker.port) as app:
        await app.subscribe("mcw/v1/demo/result/crew/power/circuit", qos=1)
        await app.subscribe("mcw/v1/demo/result/crew/alarm/ack", qos=1)

        async def collect() -> None:
            async for message in app.messages:
                value = json.loads(bytes(message.payload))
                got.setdefault(str(value["id"]), []).append(
                    f"{value['status']}/{value['code']}")

        collecting = asyncio.create_task(collect())
        try:
            for i in range(n):
                if i == n // 2:
                    await app.publish("mcw/v1/demo/cmd/crew/alarm/ack", json.dumps(
                        {"id": "single", "args": {"alarm": "power/low_soc"}}), qos=1)
                await app.publish("mcw/v1/demo/cmd/crew/power/circuit", json.dumps(
                    {"id": f"flood-{i}", "args": {"circuit": "sockets_12v", "on": i % 2 == 0}}),
                    qos=1)
            await wait_until(lambda: len(got) == n + 1, timeout=180, what=f"{n + 1} answers")
        finally:
            collecting.cancel()
    assert all(len(a) == 1 for a in got.values()), "a command answered twice"
    assert got.pop("single") == ["rejected/no_such_alarm"]  # served: there was nothing to ack
    kinds = Counter(a[0] for a in got.values())
    assert set(kinds) <= {"done/ok", "rejected/busy", "failed/overridden", "failed/timeout"}, kinds
    # the readings stayed fresh: no fast point went stale during the flood
    stale = [v for t, v, _ in mon.messages[seen:]
             if t in ("state/power/battery/voltage", "state/climate/room/temperature")
             and v.get("q") != "good"]
    assert stale == []
    assert van.supervisor.proc is not None and van.supervisor.proc.poll() is None
