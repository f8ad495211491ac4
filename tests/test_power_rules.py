"""Power alarm rules on virtual time: what the crew would see as the battery runs down."""

from pathlib import Path

from virtual_core import VirtualCore

from drivers.register_codec import Value
from supervisor.core.alarms import AlarmManager
from supervisor.core.device_points import DevicePoints
from supervisor.core.subsystem import Clock
from supervisor.power import power_config
from supervisor.power.subsystem import PowerSubsystem
from supervisor.registry import load_config

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"


async def no_write(device: str, register: str, value: Value) -> Value | None:
    raise AssertionError("the rules must not write")


def power(tmp_path: Path) -> tuple[PowerSubsystem, DevicePoints, AlarmManager]:
    cfg = load_config(DEMO)
    core = VirtualCore(cfg, tmp_path / "db.sqlite", no_write, Clock(lambda: 0.0, lambda: 0.0))
    sub = PowerSubsystem(core.context("power"), power_config(cfg))
    return sub, core.devices, core.van.alarms


def feed(devices: DevicePoints, t: float, soc: float, volts: float = 12.6) -> None:
    devices.values("battery", {"soc": soc, "voltage": volts, "current": -5.0}, t)


def test_low_soc_warning_with_hysteresis_against_chatter(tmp_path: Path) -> None:
    sub, devices, alarms = power(tmp_path)
    for t, soc in enumerate([35, 29.9, 31, 29.5, 32.9, 33.1]):
        feed(devices, t, soc)
        sub.evaluate(t)
        if t == 1:
            assert alarms.active() == ["power/low_soc"]
    # raised once at 29.9; chattering 29.5..32.9 keeps it; cleared only at 33.1 (30 + 3)
    assert alarms.active() == []
    assert "power/low_soc" not in alarms.states


def test_critical_soc_latches_until_acknowledged(tmp_path: Path) -> None:
    sub, devices, alarms = power(tmp_path)
    feed(devices, 0, 14)
    sub.evaluate(0)
    assert set(alarms.active()) == {"power/low_soc", "power/critical_soc"}
    assert alarms.defs["power/critical_soc"].severity == "critical"
    feed(devices, 1, 40)
    sub.evaluate(1)
    assert alarms.active() == []
    assert "power/critical_soc" in alarms.states  # still shown: latched
    alarms.ack("power/critical_soc")
    assert alarms.states == {}


def test_low_voltage_needs_two_minutes_below_the_threshold(tmp_path: Path) -> None:
    sub, devices, alarms = power(tmp_path)
    feed(devices, 0, 60, volts=11.7)
    sub.evaluate(0)
    sub.evaluate(119)
    assert "power/low_voltage" not in alarms.active()
    feed(devices, 119.5, 60, volts=11.9)  # one reading above resets the timer
    sub.evaluate(119.5)
    feed(devices, 120, 60, volts=11.7)
    sub.evaluate(120)
    sub.evaluate(239)
    assert "power/low_voltage" not in alarms.active()
    sub.evaluate(240)
    assert "power/low_voltage" in alarms.active()


def test_stale_battery_data_raises_nothing(tmp_path: Path) -> None:
    sub, devices, alarms = power(tmp_path)
    feed(devices, 0, 5, volts=10.0)
    devices.unavailable("battery", ["soc", "voltage", "current"], "stale")
    sub.evaluate(1000)
    assert alarms.active() == []
