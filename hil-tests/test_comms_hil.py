"""Where the van is: the GPS on its serial line to HQ, and into a panic, against the real
supervisor process.

The receiver is a simulated u-blox (``vansim/gps_sim.py``) sending RMC, GGA and GSV once a
second over a line that takes the wire time of 9600 Bd; the supervisor's NMEA driver and
comms subsystem read it. HQ is an MQTT monitor on the van's broker. The parser's limits are
tested on their own in tests/test_nmea.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conftest import Van, start_van
from harness import hq_echo, wait_until
from vansim.gps_sim import SimulatedGps

STALE_S = 3.0
KRAKOW = (50.061430, 19.936580)


@pytest.fixture
async def gps_van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    """The van with the GPS's position stale after STALE_S without a fix (not 10 s)."""
    async with start_van(monkeypatch, {"MCW_GPS_STALE_S": f"{STALE_S:g}"}) as whole:
        yield whole


def gps(van: Van) -> SimulatedGps:
    assert van.sim.gps is not None, "the demo van has a GPS"
    return van.sim.gps


def panic_alarm(van: Van) -> dict[str, Any]:
    value = van.monitor.latest.get("alarm/room/panic")
    return value if isinstance(value, dict) else {}


async def test_hq_sees_the_position_rounded_and_a_panic_carries_it_exact(gps_van: Van) -> None:
    van, mon, receiver = gps_van, gps_van.monitor, gps(gps_van)
    await wait_until(lambda: mon.value("comms/gps/state") == "fix", what="a fix at HQ")
    # config/demo.toml: 3 decimals for the routine position (about 100 m)
    await wait_until(lambda: (mon.value("comms/position/lat"), mon.value("comms/position/lon"))
                     == (round(receiver.lat, 3), round(receiver.lon, 3)), what="Warsaw, rounded")
    assert mon.value("comms/gps/satellites") == receiver.satellites
    receiver.lat, receiver.lon, receiver.speed_kmh = (*KRAKOW, 54.0)
    await wait_until(lambda: (mon.value("comms/position/lat"), mon.value("comms/position/lon"))
                     == (50.061, 19.937), what="the van in Kraków, rounded")
    await wait_until(lambda: mon.value("comms/gps/speed_kmh") == pytest.approx(54.0, abs=0.01),
                     what="its speed")
    receiver.speed_kmh = 0.0

    van.sim.room_node("room_node").press("desk")
    await wait_until(lambda: panic_alarm(van).get("active") is True, what="the panic at HQ")
    raised = panic_alarm(van)
    position = raised["position"]
    assert position["lat"] == pytest.approx(KRAKOW[0], abs=1e-6)
    assert position["lon"] == pytest.approx(KRAKOW[1], abs=1e-6)
    assert position["fix"] is True and 0 <= position["age_s"] <= 2
    assert raised["session"] is False and str(raised["panic"]).startswith("panic-")
    # the exact position never went to MQTT on its own (kept on board for the panic)
    assert not {t for t, _, _ in mon.messages} & {"state/comms/position/exact_lat",
                                                  "state/comms/position/exact_lon"}


async def test_a_lost_fix_a_silent_receiver_and_noise_are_told_apart(gps_van: Van) -> None:
    van, mon, receiver = gps_van, gps_van.monitor, gps(gps_van)
    await wait_until(lambda: mon.value("comms/gps/state") == "fix", what="a fix at HQ")
    # noise between the sentences costs nothing but the damaged sentence
    for _ in range(5):
        receiver.inject(b"$GNRMC,12\x00\xff garbage *ZZ\r\n" + bytes(range(1, 200)))
    await wait_until(lambda: receiver.bursts >= 3, what="three more bursts")
    assert mon.value("comms/gps/state") == "fix"
    assert mon.quality("comms/position/lat") == "good"

    # under a bridge: the receiver talks without a position, the router hears no satellite
    # either (alone, it would stand in: the next test)
    van.sim.plant.router.satellites = 0
    receiver.fix = False
    await wait_until(lambda: mon.value("comms/gps/state") == "no_fix", what="no fix")
    await wait_until(lambda: mon.value("comms/position/source") == "none", what="no source")
    await wait_until(lambda: mon.quality("comms/position/lat") == "stale",
                     what="the position stale, its last value kept")
    assert mon.value("comms/position/lat") == round(receiver.lat, 3)
    # a panic now carries where the van was last seen, marked as no fix
    van.sim.room_node("room_node").press("desk")
    await wait_until(lambda: panic_alarm(van).get("active") is True, what="the panic at HQ")
    position = panic_alarm(van)["position"]
    assert position["fix"] is False
    assert position["lat"] == pytest.approx(receiver.lat, abs=1e-6)

    receiver.silent = True  # unplugged or dead
    await wait_until(lambda: mon.value("comms/gps/state") == "offline", what="offline",
                     timeout=STALE_S + 15)
    receiver.silent, receiver.fix = False, True
    await wait_until(lambda: mon.value("comms/gps/state") == "fix"
                     and mon.quality("comms/position/lat") == "good", what="a fix again")


async def test_the_router_tells_the_link_and_stands_in_for_a_gps_without_fix(
        gps_van: Van) -> None:
    mon, receiver, router = gps_van.monitor, gps(gps_van), gps_van.sim.plant.router
    await wait_until(lambda: mon.value("comms/lte/network_type") == "LTE"
                     and mon.value("comms/lte/wan_up") is True, what="the router's LTE link")
    assert mon.value("comms/lte/signal_dbm") == router.signal_dbm
    assert mon.value("comms/lte/registration") == router.registration
    assert mon.value("comms/lte/wan_ip") == router.wan_ip
    await wait_until(lambda: mon.value("comms/lte/operator") == router.operator,
                     what="the operator (a slow register)")
    assert mon.value("comms/lte/data_today_mb") == pytest.approx(
        (router.rx_today_b + router.tx_today_b) / 1e6, abs=0.05)
    await wait_until(lambda: mon.value("comms/position/source") == "gps", what="the GPS leads")

    # the receiver loses its fix; the router's GPS stands in (its firmware's float byte order,
    # either, is tested in tests/test_comms_router.py)
    router.lat, router.lon = 54.35205, 18.64637
    receiver.fix = False
    await wait_until(lambda: mon.value("comms/position/source") == "router",
                     what="the router's position")
    await wait_until(lambda: (mon.value("comms/position/lat"), mon.value("comms/position/lon"))
                     == (54.352, 18.646), what="Gdańsk, from the router")
    assert mon.quality("comms/position/lat") == "good"

    router.lose_network()
    await wait_until(lambda: mon.value("comms/lte/wan_up") is False, what="the WAN down")
    assert mon.value("comms/lte/network_type") == ""
    assert mon.value("comms/lte/registration") == router.registration


# ---- the path to HQ and the router watchdog ------------------------------------------------

HEARTBEAT_S, DOWN_S, WATCHDOG_S, OFF_S = 0.5, 2.0, 3.0, 2.0


@pytest.fixture
async def link_van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    """The van with the HQ path's and the router watchdog's minutes shortened to seconds."""
    env = {"MCW_HQ_HEARTBEAT_S": f"{HEARTBEAT_S:g}", "MCW_HQ_DOWN_S": f"{DOWN_S:g}",
           "MCW_ROUTER_WATCHDOG_S": f"{WATCHDOG_S:g}", "MCW_ROUTER_OFF_S": f"{OFF_S:g}"}
    async with start_van(monkeypatch, env) as whole:
        yield whole


def events(van: Van, what: str) -> list[dict[str, Any]]:
    return [v for t, v, _ in van.monitor.messages
            if t == "event" and isinstance(v, dict) and v.get("what") == what]


async def test_the_path_to_hq_is_supervised_and_a_hung_router_power_cycled(
        link_van: Van) -> None:
    van, mon, sim = link_van, link_van.monitor, link_van.sim
    # no echo at HQ (its broker hung, the bridge stuck) while the router says its WAN is up
    await wait_until(lambda: mon.value("comms/hq/state") == "down", what="HQ down")
    assert (mon.latest.get("alarm/comms/hq_unreachable") or {}).get("active") is True
    await wait_until(lambda: sim.output_active("router_power") is False,
                     what="the router's power cut", timeout=WATCHDOG_S + 30)
    # the GPIO line is quicker than MQTT: the alarm follows
    await wait_until(lambda: (mon.latest.get("alarm/comms/router_power_cycled") or {})
                     .get("active") is True, what="the power cycle's alarm")
    cycled = mon.latest["alarm/comms/router_power_cycled"]
    assert "WAN is up" in cycled.get("detail", ""), cycled
    await wait_until(lambda: events(van, "router_power_cycle"), what="its event")
    assert not sim.devices["lte_router"].powered, "the router without its supply"
    await wait_until(lambda: sim.output_active("router_power") is True,
                     what="the power back after off_s")
    assert mon.value("comms/watchdog/cycles_last_hour") == 1

    # HQ answers again: the path is up, with its round trip
    async with hq_echo(van.broker.port, DOWN_S):
        await wait_until(lambda: mon.value("comms/hq/state") == "up", what="HQ up")
        await wait_until(lambda: isinstance(mon.value("comms/hq/rtt_ms"), int | float),
                         what="a round trip")
        await wait_until(lambda: not mon.latest.get("alarm/comms/hq_unreachable"),
                         what="the warning cleared")

    # the crew switches the watchdog off: HQ lost again, the router is left alone
    result = await mon.command("comms/watchdog", {"id": "dog-off", "args": {"enabled": False}})
    assert result["status"] == "done", result
    await wait_until(lambda: mon.value("comms/hq/state") == "down", what="HQ down again")
    lost_at = time.monotonic()
    await wait_until(lambda: time.monotonic() > lost_at + WATCHDOG_S + 2 * HEARTBEAT_S + 1,
                     what="past the watchdog's time", timeout=WATCHDOG_S + 30)
    assert sim.output_active("router_power") is True
    assert mon.value("comms/watchdog/cycles_last_hour") == 1
    assert mon.value("comms/watchdog/enabled") is False
    assert len(events(van, "router_power_cycle")) == 1
