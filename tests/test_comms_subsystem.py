"""The comms subsystem on the real core in virtual time (no transport, no sleep): the mobile
link's points from the router or the modem, one model whichever tells them; and the router
watchdog's hourly limit, which a supervisor restarting while HQ is down must keep too.

The router's registers and health are fed as its bus worker would feed them; the modem is
the real driver with the simulated modem straight behind it (vansim.modem_sim.DirectLine);
GPIO lines are plain levels that outlive a restart of the subsystem (as a line the kernel
keeps where the last process left it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from virtual_core import Lines, VirtualCore, demo_config

from drivers.register_codec import Value
from supervisor.comms.config import CommsConfig
from supervisor.comms.subsystem import LTE_POINTS, CommsSubsystem
from supervisor.core.device_points import DevicePoints
from supervisor.core.points import PointStore
from supervisor.core.subsystem import Clock
from vansim.modem_sim import DirectLine, SimulatedModem

AWAY = 1_800_000_000.0  # wall clock at virtual time 0
ROUTER = "lte_router"
POWER_LINE = "router_power"
STALE_S = 5.0
MODEM = f"""
[comms.modem]
port = "/dev/null-modem"
poll_s = 1
timeout_s = 0.1
stale_s = {STALE_S:g}
"""
ROUTER_SAYS: dict[str, Value] = {"signal_dbm": -81, "operator": "Plus",
                                 "network_type": "LTE", "registration": "Registered, home",
                                 "wan_ip": 0x0A000001}


def with_modem(text: str) -> str:
    """The demo van with a modem beside its router."""
    return text.replace("\n[comms.position]\n", MODEM + "\n[comms.position]\n")


def modem_only(text: str) -> str:
    """The demo van with a modem instead of its router (and so no router watchdog)."""
    start, end = text.index("[comms.router]\n"), text.index("[comms.hq_link]")
    return text[:start] + MODEM.lstrip() + "\n" + text[end:]


@pytest.fixture(autouse=True)
def _demo_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo config's own timings, whatever the caller's environment says."""
    for name, value in {"MCW_ROUTER_WATCHDOG_S": "600", "MCW_ROUTER_OFF_S": "15",
                        "MCW_HQ_HEARTBEAT_S": "30", "MCW_HQ_DOWN_S": "90"}.items():
        monkeypatch.setenv(name, value)


class Rig:
    """The comms subsystem of the demo config, on a hand-driven clock from ``start``."""

    def __init__(self, tmp_path: Path, edit: Callable[[str], str] | None = None,
                 lines: Lines | None = None, start: float = 0.0) -> None:
        self.cfg = demo_config(tmp_path, edit)
        self.t = start
        self.lines = lines if lines is not None else Lines()
        clock = Clock(lambda: AWAY + self.t, lambda: self.t)
        self.core = VirtualCore(self.cfg, tmp_path / "db.sqlite", self.bus_write, clock,
                                self.lines)
        section = self.cfg.section("comms")
        assert isinstance(section, CommsConfig)
        self.sub = CommsSubsystem(self.core.context("comms"), section)
        self.points = self.core.van.points
        self.sim = SimulatedModem()
        modem = self.sub.modem
        self.line = None if modem is None else DirectLine(self.sim, modem.feed)

    async def bus_write(self, device: str, register: str, value: Value) -> Value | None:
        raise AssertionError(f"comms wrote {device}.{register} = {value!r}: it only reads")

    def router(self, state: str, registers: dict[str, Value] | None = None) -> None:
        """The router's health as its bus worker reports it, and what it read."""
        devices = self.core.devices
        devices.health(ROUTER, {"state": state})
        if state == "offline":
            devices.unavailable(ROUTER, list(ROUTER_SAYS), "stale")
        else:
            devices.values(ROUTER, dict(registers or ROUTER_SAYS), AWAY + self.t)

    async def modem_round(self) -> None:
        """One round of the modem's polling, then a turn of the subsystem."""
        assert self.sub.modem is not None and self.line is not None
        await self.sub.modem.poll(self.line)
        await self.sub.tick()

    def value(self, point: str) -> object:
        found = self.points.get(point)
        return None if found is None else found.value

    def quality(self, point: str) -> str | None:
        found = self.points.get(point)
        return None if found is None else found.quality

    def lte(self) -> dict[str, object]:
        return {key: self.value(f"comms/lte/{key}") for key in LTE_POINTS}

    async def until(self, end: float) -> list[float]:
        """Turns of the loop, a second apart, until ``end``; when the router's power was cut."""
        cuts = []
        while self.t < end:
            was = self.lines.output(POWER_LINE)
            self.t += 1.0
            await self.sub.tick()
            if was and not self.lines.output(POWER_LINE):
                cuts.append(self.t)
        return cuts


MODEM_SAYS = {"signal_dbm": -69, "operator": "Orange PL", "network_type": "LTE",
              "registration": "Registered, home"}


# ---- the mobile link: one model ----------------------------------------------------------


def test_the_lte_points_are_typed_as_the_routers_profile_types_them(tmp_path: Path) -> None:
    rig = Rig(tmp_path, with_modem)
    bound = DevicePoints(PointStore(), rig.cfg.device)
    for key, (kind, unit, deadband, _) in LTE_POINTS.items():
        by_profile = bound.bind(ROUTER, key, f"comms/lte/{key}")
        here = rig.points.defs[f"comms/lte/{key}"]
        assert (here.type, here.unit) == (by_profile.type, by_profile.unit) == (kind, unit)
        assert here.deadband == deadband and here.max_age_s == STALE_S


async def test_a_van_with_a_modem_alone_shows_its_link(tmp_path: Path) -> None:
    rig = Rig(tmp_path, modem_only)
    assert "comms/lte/wan_up" not in rig.points.defs  # only a router tells those
    assert "comms/watchdog/enabled" not in rig.points.defs  # no router to power-cycle
    await rig.sub.tick()
    assert rig.value("comms/modem/state") == "offline"  # no answer yet
    assert rig.value("comms/lte/source") == "none"
    await rig.modem_round()
    assert rig.lte() == MODEM_SAYS
    assert (rig.value("comms/modem/state"), rig.value("comms/lte/source")) == ("online", "modem")

    rig.sim.registration = 2  # out of coverage
    rig.t += 1
    await rig.modem_round()
    assert rig.lte() == {**MODEM_SAYS, "operator": "", "network_type": "",
                         "registration": "Not registered, searching"}
    rig.sim.registration, rig.sim.rssi = 1, 99  # back, the signal not measured yet
    rig.t += 1
    await rig.modem_round()
    assert rig.quality("comms/lte/signal_dbm") == "invalid"
    assert rig.value("comms/lte/operator") == "Orange PL"

    rig.sim.silent = True  # the modem hangs: three silent rounds, then offline
    for _ in range(3):
        rig.t += 1
        await rig.modem_round()
    assert (rig.value("comms/modem/state"), rig.value("comms/lte/source")) == ("offline", "none")
    assert {rig.quality(f"comms/lte/{key}") for key in LTE_POINTS} == {"stale"}
    assert rig.value("comms/lte/operator") == "Orange PL"  # the last word, kept
    rig.sim.silent = False
    await rig.modem_round()
    assert rig.value("comms/modem/state") == "online"
    assert rig.quality("comms/lte/operator") == "good"


async def test_the_modems_readings_go_stale_when_it_stops_answering_them(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path, modem_only)
    await rig.modem_round()
    rig.sim.refuse["AT+COPS?"] = "+CME ERROR: 30"  # no network service: it still answers
    rig.t += STALE_S / 2
    await rig.modem_round()
    assert rig.value("comms/modem/state") == "degraded"
    rig.t += STALE_S / 2 + 0.5
    rig.points.sweep(AWAY + rig.t)  # the ticker does this every second
    assert rig.quality("comms/lte/operator") == "stale"  # not read for stale_s
    assert rig.quality("comms/lte/signal_dbm") == "good"


async def test_with_a_router_the_modem_stands_in_only_while_the_router_is_offline(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path, with_modem)
    await rig.modem_round()
    assert rig.value("comms/lte/source") == "router"  # its first answer is on the way
    rig.router("online")
    await rig.modem_round()
    assert rig.value("comms/lte/source") == "router"
    assert rig.lte() == {key: ROUTER_SAYS[key] for key in LTE_POINTS}
    assert rig.value("comms/modem/state") == "online"

    rig.router("offline")  # hung, or its Ethernet pulled
    await rig.sub.tick()
    assert rig.value("comms/lte/source") == "modem"
    assert rig.lte() == MODEM_SAYS
    assert {rig.quality(f"comms/lte/{key}") for key in LTE_POINTS} == {"good"}

    rig.router("online", {**ROUTER_SAYS, "operator": "Play"})
    await rig.modem_round()
    assert rig.value("comms/lte/source") == "router"
    assert rig.value("comms/lte/operator") == "Play"

    rig.router("offline")
    rig.sim.silent = True
    for _ in range(3):
        await rig.modem_round()
    assert rig.value("comms/lte/source") == "none"
    assert rig.quality("comms/lte/registration") == "stale"


# ---- the router watchdog across restarts --------------------------------------------------


async def test_a_restarted_supervisor_keeps_the_hourly_limit_of_power_cycles(
        tmp_path: Path) -> None:
    """A supervisor that restarts while HQ is down (a crash loop) cycles the router no more
    than max_per_hour (2) times in any hour: the last hour's cycles come back from disk."""
    lines = Lines()
    first = Rig(tmp_path, lines=lines)
    first.router("online")  # its WAN up, HQ silent: hung
    cuts = await first.until(1400)
    assert len(cuts) == 2 and cuts[1] - cuts[0] < 3600
    assert first.value("comms/watchdog/cycles_last_hour") == 2

    again = Rig(tmp_path, lines=lines, start=1401)  # crashed, restarted by systemd
    again.router("online")
    assert await again.until(cuts[0] + 3599) == [], "a third cycle within the hour"
    assert again.value("comms/watchdog/cycles_last_hour") == 2
    assert "2 power cycles in the last hour" in again.sub.watchdog.reason  # type: ignore[union-attr]
    later = await again.until(cuts[0] + 3700)
    assert len(later) == 1 and later[0] >= cuts[0] + 3600  # the first one is an hour old


async def test_a_restart_during_a_power_cycle_powers_the_router_again(tmp_path: Path) -> None:
    lines = Lines()
    first = Rig(tmp_path, lines=lines)
    first.router("online")
    while not await first.until(first.t + 1):
        pass
    assert lines.output(POWER_LINE) is False  # killed while the router was off
    again = Rig(tmp_path, lines=lines, start=first.t + 2)
    again.router("online")
    await again.until(again.t + 1)
    assert lines.output(POWER_LINE) is True, "the router powered at once (its safe state)"
    assert again.value("comms/watchdog/cycles_last_hour") == 1


async def test_stored_cycles_from_a_clock_set_back_or_a_broken_record_err_on_the_safe_side(
        tmp_path: Path) -> None:
    first = Rig(tmp_path)
    first.sub.ctx.settings.put("watchdog_cycles", [AWAY + 5000, "x", None, AWAY - 4000, True])
    assert await first.sub.ctx.settings.durable()
    again = Rig(tmp_path, start=100)  # the wall clock is behind the stored cycle
    again.router("online")
    await again.until(101)
    # the cycle "in the future" counts as now; the one two hours old and the junk not at all
    assert again.value("comms/watchdog/cycles_last_hour") == 1
