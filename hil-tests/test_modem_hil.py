"""The LTE modem on AT commands against the real supervisor process.

The modem is the simulated EC25 (``vansim/modem_sim.py``) on a serial line of its own that
takes the wire time of 115 200 Bd (a pty pair joined by ``vansim/wire.py``); the supervisor's
driver (drivers/quectel_at.py) polls it every 1.5 s. The demo van is started from its own
config with ``[comms.modem]`` added: once instead of the LTE router (a van with a modem
alone), once beside it (the modem stands in while the router is offline). HQ is an MQTT
monitor on the van's broker. The parser's limits are tested on their own in
tests/test_quectel_at.py, the choice of source in virtual time in tests/test_comms_subsystem.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import Van, start_van
from harness import Monitor, wait_until
from vansim.modem_sim import NOISE, SimulatedModem
from vansim.rtu_line import RtuLine

BAUD = 115200
POLL_S, TIMEOUT_S, STALE_S = 1.5, 1.2, 3.0  # generous: a loaded machine answers late
MODEM = f"""
[comms.modem]
port = "${{MCW_RUN_DIR:-/tmp/mcw-demo}}/ttyModem"
baudrate = {BAUD}
poll_s = {POLL_S}
timeout_s = {TIMEOUT_S}
stale_s = {STALE_S}
"""
LTE = ("signal_dbm", "operator", "network_type", "registration")


def modem_only(demo: str) -> str:
    """The demo van with a modem instead of its LTE router (so without the router watchdog)."""
    start, end = demo.index("[comms.router]\n"), demo.index("[comms.hq_link]")
    return demo[:start] + MODEM.lstrip() + "\n" + demo[end:]


def beside_the_router(demo: str) -> str:
    """The demo van with a modem beside its router."""
    assert demo.count("\n[comms.position]\n") == 1
    return demo.replace("\n[comms.position]\n", MODEM + "\n[comms.position]\n")


@asynccontextmanager
async def van_with_modem(monkeypatch: pytest.MonkeyPatch,
                         edit: Callable[[str], str]) -> AsyncIterator[tuple[Van, SimulatedModem]]:
    """The van from the demo config changed by ``edit``, the modem on its own line."""
    modems: list[SimulatedModem] = []

    async def modem_on_its_line(run_dir: Path, stack: AsyncExitStack) -> None:
        line = RtuLine(run_dir / "ttyModem", baudrate=BAUD)
        stack.push_async_callback(line.stop)
        await line.start()
        modem = SimulatedModem(line.sim_side, baudrate=BAUD)
        stack.push_async_callback(modem.stop)
        await modem.start()
        modems.append(modem)

    async with start_van(monkeypatch, {"MCW_GPS_STALE_S": "3"}, config_edit=edit,
                         more_devices=modem_on_its_line) as van:
        yield van, modems[0]


def lte(mon: Monitor) -> dict[str, Any]:
    return {key: mon.value(f"comms/lte/{key}") for key in LTE}


def qualities(mon: Monitor) -> set[str | None]:
    return {mon.quality(f"comms/lte/{key}") for key in LTE}


def said(modem: SimulatedModem) -> dict[str, Any]:
    """What HQ should see of the modem's link while it is registered."""
    return {"signal_dbm": modem.signal_dbm, "operator": modem.operator, "network_type": "LTE",
            "registration": "Registered, home" if modem.registration == 1
            else "Registered, roaming"}


def ever(mon: Monitor, point: str, value: object) -> bool:
    """HQ was told ``point`` = ``value`` at some time (it may have changed since)."""
    return any(topic == f"state/{point}" and isinstance(v, dict) and v.get("v") == value
               for topic, v, _ in mon.messages)


async def test_a_van_with_a_modem_alone_tells_hq_its_link_and_its_troubles(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with van_with_modem(monkeypatch, modem_only) as (van, modem):
        mon = van.monitor
        modem.report_mode = 2  # as ModemManager leaves it: changes are also sent unasked
        await wait_until(lambda: lte(mon) == said(modem), what="the modem's link at HQ")
        assert mon.value("comms/lte/source") == "modem"
        assert mon.value("comms/modem/state") == "online"
        assert mon.value("comms/lte/wan_up") is None  # only a router tells it
        await wait_until(lambda: mon.value("comms/gps/state") == "fix", what="a GPS fix")

        modem.registration = 2  # out of coverage
        await wait_until(lambda: lte(mon) == {
            "signal_dbm": modem.signal_dbm, "operator": "", "network_type": "",
            "registration": "Not registered, searching"}, what="registration lost")
        modem.registration = 3
        await wait_until(lambda: mon.value("comms/lte/registration") == "Registration denied",
                         what="registration denied")
        modem.registration, modem.operator, modem.signal_dbm = 5, "Vodafone DE", -97
        await wait_until(lambda: lte(mon) == said(modem), what="roaming abroad")
        assert not ever(mon, "comms/modem/state", "degraded"), "the reports cost nothing"

        # noise on the line: the round it hit is not trusted, the next one is
        modem.inject(NOISE * 3)
        await wait_until(lambda: ever(mon, "comms/modem/state", "degraded"), what="degraded")
        await wait_until(lambda: mon.value("comms/modem/state") == "online", what="online again")
        # a modem that answers nothing but garbage: offline, its link stale; the GPS unharmed
        modem.garbage = True
        await wait_until(lambda: mon.value("comms/modem/state") == "offline",
                         what="offline after garbage")
        await wait_until(lambda: qualities(mon) == {"stale"}, what="the link stale")
        assert mon.value("comms/lte/source") == "none"
        assert mon.value("comms/gps/state") == "fix"
        assert mon.quality("comms/position/lat") == "good"
        modem.garbage = False
        await wait_until(lambda: qualities(mon) == {"good"}
                         and mon.value("comms/modem/state") == "online", what="back")

        # silent (hung, or its USB gone quiet): offline and stale, then back
        modem.silent = True
        await wait_until(lambda: mon.value("comms/modem/state") == "offline"
                         and qualities(mon) == {"stale"}, what="silent: offline and stale")
        assert lte(mon) == said(modem), "the last word kept, marked stale"
        assert mon.value("comms/gps/state") == "fix"
        modem.silent = False
        await wait_until(lambda: qualities(mon) == {"good"}
                         and mon.value("comms/modem/state") == "online", what="back again")
        assert (van.monitor.latest.get("status") or {}).get("state") == "ready"


async def test_the_modem_stands_in_for_the_router_while_the_router_is_offline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with van_with_modem(monkeypatch, beside_the_router) as (van, modem):
        mon, router = van.monitor, van.sim.plant.router
        await wait_until(lambda: mon.value("comms/lte/source") == "router"
                         and mon.value("comms/lte/operator") == router.operator,
                         what="the router's link")
        await wait_until(lambda: mon.value("comms/modem/state") == "online", what="the modem")
        modem.operator = "Orange PL (modem)"
        assert mon.value("comms/lte/operator") == router.operator

        van.sim.set_silent("lte_router", True)  # hung, or its Ethernet pulled
        await wait_until(lambda: mon.value("comms/lte/source") == "modem"
                         and lte(mon) == said(modem), what="the modem standing in")
        assert qualities(mon) == {"good"}
        van.sim.set_silent("lte_router", False)
        await wait_until(lambda: mon.value("comms/lte/source") == "router"
                         and mon.value("comms/lte/operator") == router.operator,
                         what="the router back")
