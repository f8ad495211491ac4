"""A simulated 24 h deployment, in virtual time: the power subsystem's real rules closing the
loop over the plant model, without transports (seconds instead of a day).

The PowerSubsystem is the one the supervisor runs (load manager, generator controller,
forecast, alarms, actuator); only its inputs and outputs are wired straight to the plant
instead of through Modbus, GPIO and the bus workers: points are fed from the plant each step
and every write lands in the plant and is read back from it. The day: the crew arrives at
08:00 on battery, with the default circuits, laptops on the 12 V sockets by day, exterior
lights from dusk to 23:00, the water heater now and then, the A/C-sized AC load in the
afternoon; the sun does what it does in the plant model.

``PYTHONPATH=hil-tests:tests .venv/bin/python tests/deployment_day.py`` prints the report
(``make bench`` does too); ``test_deployment_day.py`` asserts on it.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from virtual_core import VirtualCore

from drivers.register_codec import Value
from supervisor.core.config import SupervisorConfig
from supervisor.core.logs import setup_logging
from supervisor.core.subsystem import Clock
from supervisor.power import power_config
from supervisor.power.subsystem import PowerSubsystem
from supervisor.registry import load_config
from vansim.plant import InverterMode, Plant

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "config" / "demo.toml"
START = datetime(2026, 6, 15, 8, 0)  # a June day: the sun helps by day, not at night


@dataclass
class Report:
    hours: float
    start_soc: float
    min_soc: float
    min_soc_at: datetime
    end_soc: float
    floor_soc: float
    switches: Counter[str] = field(default_factory=Counter)
    sheds: list[tuple[datetime, str, str]] = field(default_factory=list)
    generator_run_s: float = 0.0
    generator_starts: int = 0
    alarms: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = [
            f"simulated deployment: {self.hours:.0f} h from {START:%H:%M} on battery "
            "(demo van, power rules in virtual time)",
            f"  SOC: start {self.start_soc:.1f} %, lowest {self.min_soc:.1f} % at "
            f"{self.min_soc_at:%H:%M}, end {self.end_soc:.1f} % (floor {self.floor_soc:.0f} %)",
            f"  generator: {self.generator_starts} start(s), ran "
            f"{self.generator_run_s / 3600:.2f} h",
            "  switch events per circuit: " + ", ".join(
                f"{name} {count}" for name, count in sorted(self.switches.items())),
            f"  shed/restore events: {len(self.sheds)}",
        ]
        out += [f"    {ts:%H:%M} {what:<7} {detail}" for ts, what, detail in self.sheds]
        out.append("  alarms raised: " + (", ".join(
            f"{a} x{n}" for a, n in sorted(self.alarms.items())) or "none"))
        return out


# The crew's day: (from hour, to hour, circuit) - wanted on in that window (plus defaults).
SCHEDULE = [(9, 18, "sockets_12v"), (17, 23, "exterior_lights"), (10, 11, "water_heater"),
            (14, 15, "water_heater"), (19, 20, "water_heater")]
AC_LOAD_W = [(13, 17, 1100.0)]  # an A/C-sized AC load in the afternoon heat


class DayRig:
    """The power subsystem wired to the plant."""

    def __init__(self, cfg: SupervisorConfig, db: Path, start_soc: float) -> None:
        self.cfg = cfg
        self.power_cfg = power_config(cfg)
        circuits = self.power_cfg.circuit
        self.plant = Plant.create(
            capacity_ah=self.power_cfg.capacity_ah, start_soc=start_soc, start_time=START,
            loads={c.name: c.nominal_current_a for c in circuits if c.kind == "dc"},
            ac_loads={c.name: c.nominal_current_a for c in circuits if c.kind == "ac"},
        )
        self.by_output = {(c.device, c.output): c.name for c in circuits}
        self.t0 = START.timestamp()
        self.now = self.t0
        self.switches: Counter[str] = Counter()
        self.events: list[dict[str, Any]] = []
        clock = Clock(lambda: self.now, lambda: self.now)
        self.core = VirtualCore(cfg, db, self.write, clock, lines=self)
        self.devices, self.store = self.core.devices, self.core.van.points
        self.core.van.event_added.add(self._event)
        self.power = PowerSubsystem(self.core.context("power"), self.power_cfg)
        self.alarm_count: Counter[str] = Counter()
        self.core.van.alarms.changed.add(lambda d, s, what: self._count_alarm(d.id, what))

    def _event(self, event: dict[str, Any]) -> None:
        self.events.append({**event, "at": self.now - self.t0})

    def _count_alarm(self, alarm: str, what: str) -> None:
        if what == "raised":
            self.alarm_count[alarm] += 1

    async def write(self, device: str, register: str, value: Value) -> Value | None:
        name = self.by_output.get((device, register))
        if name is not None:
            if self.plant.switches.get(name, False) != bool(value):
                self.switches[name] += 1
            self.plant.switches[name] = bool(value)
            self.plant.settle()
            return self.plant.switches[name]
        if register == "mode":  # a code on the wire, a meaning in the plant
            profile = self.devices.profile(device)
            self.plant.inverter.mode = InverterMode(profile.enum_of(register)[int(value)])
            return profile.code_of(register, self.plant.inverter.mode)
        if register == "ac_in_current_limit":
            self.plant.inverter.ac_in_current_limit_a = float(value)
            return self.plant.inverter.ac_in_current_limit_a
        raise AssertionError(f"unexpected write {device}.{register}")

    def set_output(self, name: str, on: bool) -> None:
        """The GPIO outputs: the generator's run line goes to the plant."""
        gen = self.power_cfg.generator
        if gen is not None and name == gen.start_output:
            self.plant.generator.run_requested = on

    def output(self, name: str) -> bool:
        gen = self.power_cfg.generator
        return gen is not None and name == gen.start_output \
            and self.plant.generator.run_requested

    def feed(self) -> None:
        """The readings the bus workers would deliver, straight from the plant."""
        p, bat, inv, ts = self.plant, self.plant.battery, self.plant.inverter, self.now
        # enumerated registers carry the codes the devices' profiles give the plant's meanings
        system, vebus = self.devices.profile("gx_system"), self.devices.profile("multiplus")
        self.devices.values("battery", {
            "voltage": bat.voltage, "current": bat.current, "power": bat.power,
            "soc": bat.soc, "temperature": bat.temperature_c, "time_to_go": bat.time_to_go_s,
        }, ts)
        self.devices.values("gx_system", {
            "active_input_source": system.code_of("active_input_source", p.active_input_source),
            "ac_consumption_l1": inv.ac_out_power_w,
        }, ts)
        self.devices.values("multiplus", {
            "mode": vebus.code_of("mode", inv.mode), "state": vebus.code_of("state", inv.state),
            "ac_in_current": p.ac_in_current_a,
            "ac_out_current": inv.ac_out_power_w / 230, "ac_out_power": inv.ac_out_power_w,
            "ac_in_current_limit": inv.ac_in_current_limit_a,
            "overload_alarm": int(inv.overload_alarm), "high_temperature_alarm": 0,
        }, ts)
        self.devices.values("shore_meter", {"current": p.ac_in_current_a}, ts)
        relays: dict[str, Value | None] = {
            c.output: p.switches.get(c.name, False) for c in self.power_cfg.circuit}
        self.devices.values("relays", relays, ts)
        gen = self.power_cfg.generator
        if gen is not None:
            self.store.update(f"io/{gen.running_input}", p.generator.running_signal, ts)

    def crew(self, clock: datetime) -> None:
        """The crew's wishes for this hour (what they would press on the panel)."""
        hour = clock.hour + clock.minute / 60
        for name in {n for _, _, n in SCHEDULE}:
            self.power.wanted[name] = any(s <= hour < e for s, e, n in SCHEDULE if n == name)
        self.plant.ac_base_load_w = sum(w for s, e, w in AC_LOAD_W if s <= hour < e)

    async def run(self, hours: float, step_s: float) -> Report:
        floor = self.power_cfg.low_soc_critical
        report = Report(hours, self.plant.battery.soc, self.plant.battery.soc, START,
                        0.0, floor)
        end = self.t0 + hours * 3600
        while self.now < end:
            self.plant.step(step_s)
            self.now += step_s
            self.crew(self.plant.clock)
            self.feed()
            await self.power.step()
            if self.plant.battery.soc < report.min_soc:
                report.min_soc = self.plant.battery.soc
                report.min_soc_at = self.plant.clock
        report.end_soc = self.plant.battery.soc
        report.switches = self.switches
        report.generator_run_s = self.plant.generator.run_seconds
        report.generator_starts = self.plant.generator.starts
        report.alarms = self.alarm_count
        for ev in self.events:
            if ev.get("kind") == "power" and ev["what"] in ("shed", "restore"):
                when = START + timedelta(seconds=float(ev.get("at", 0)))
                report.sheds.append((when, ev["what"], f"{', '.join(ev['circuits'])}: "
                                     f"{ev['reason']}"))
        return report


def simulate_day(hours: float = 24, step_s: float = 5.0, start_soc: float = 70.0) -> Report:
    """Run the deployment and return its report."""
    cfg = load_config(DEMO_CONFIG)
    with tempfile.TemporaryDirectory() as tmp:
        rig = DayRig(cfg, Path(tmp) / "day.sqlite", start_soc)
        return asyncio.run(rig.run(hours, step_s))


def main() -> None:
    setup_logging("warning")  # the report, not the supervisor's info log
    print("\n".join(simulate_day().lines()))


if __name__ == "__main__":
    main()
