"""The simulated van: plant model (pure, virtual time) and the devices it serves over real
transports (Modbus TCP on 127.0.0.1, Modbus RTU on a pty pair in wire time, GPIO on a Unix socket),
checked with a real pymodbus client."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from testsupport import free_port, wait_until

from drivers.profile import load_profile
from drivers.register_codec import Value, decode
from supervisor.core.config import SupervisorConfig
from supervisor.registry import load_config
from vansim.main import main
from vansim.plant import (
    AC_NOMINAL_V,
    AcSource,
    AlarmLevel,
    BatteryState,
    GeneratorPhase,
    InverterMode,
    InverterState,
    Plant,
    SolarMode,
    SolarState,
    open_circuit_voltage,
)
from vansim.van import SimulatedVan

GX_SYSTEM, GX_BATTERY, GX_VEBUS, GX_SOLAR = 100, 226, 227, 224
CLIMATE_UNIT, RELAY_UNIT, METER_UNIT = 1, 2, 3
NIGHT = datetime(2024, 6, 1, 2, 0)
NOON = datetime(2024, 6, 1, 12, 0)

CONFIG = """
[vehicle]
id = "test-van"
ignition = "ignition"

[gpio]
backend = "sim"
sim_socket = "{run}/gpio.sock"

[[gpio.line]]
name = "ignition"
pin = 17
direction = "input"
active = "high"

[[gpio.line]]
name = "side_door"
pin = 22
direction = "input"
active = "low"

[[gpio.line]]
name = "status_lamp"
pin = 27
direction = "output"

[[gpio.line]]
name = "alarm_lamp"
pin = 5
direction = "output"
active = "low"

[[gpio.line]]
name = "gen_run"
pin = 23
direction = "output"

[[gpio.line]]
name = "gen_running"
pin = 24
direction = "input"

[[bus]]
name = "gx"
type = "tcp"
host = "127.0.0.1"
port = {gx_port}

[[bus]]
name = "rs485"
type = "rtu"
port = "{run}/ttyRS485"
baudrate = 9600

[[device]]
id = "gx_system"
profile = "victron_gx_system"
bus = "gx"
unit = 100

[[device]]
id = "battery"
profile = "victron_gx_battery"
bus = "gx"
unit = 226

[[device]]
id = "multiplus"
profile = "victron_gx_vebus"
bus = "gx"
unit = 227

[[device]]
id = "solar"
profile = "victron_gx_solarcharger"
bus = "gx"
unit = 224

[[device]]
id = "room_climate"
profile = "xy_md02"
bus = "rs485"
unit = 1

[[device]]
id = "meter"
profile = "eastron_sdm120"
bus = "rs485"
unit = 3

[[device]]
id = "relays"
profile = "waveshare_relay_8ch"
bus = "rs485"
unit = 2

[power]
battery_monitor = "battery"
system = "gx_system"
inverter = "multiplus"
solar = "solar"
ac_meter = "meter"

[power.generator]
start_output = "gen_run"
running_input = "gen_running"

[[power.circuit]]
name = "exterior_lights"
device = "relays"
output = "relay_1"
nominal_current_a = 6.0

[[power.circuit]]
name = "fridge"
device = "relays"
output = "relay_4"
nominal_current_a = 4.0

[[power.circuit]]
name = "water_heater"
device = "relays"
output = "relay_6"
kind = "ac"
nominal_current_a = 5.0
"""


def write_config(run: Path) -> Path:
    path = run / "van.toml"
    path.write_text(CONFIG.format(run=run, gx_port=free_port()))
    return path


@pytest.fixture
def config(tmp_path: Path) -> SupervisorConfig:
    """The van's config (a test that takes it starts the van and its RS-485 line)."""
    return load_config(write_config(tmp_path))


@pytest.fixture
async def van(config: SupervisorConfig) -> AsyncIterator[SimulatedVan]:
    # at night, so that the sun does not move the currents the tests compare
    async with SimulatedVan(config, tick_s=0.05, start_time=NIGHT) as sim:
        yield sim


@pytest.fixture
async def gx(config: SupervisorConfig, van: SimulatedVan) -> AsyncIterator[AsyncModbusTcpClient]:
    bus = config.bus_by_name("gx")
    assert bus.type == "tcp"
    client = AsyncModbusTcpClient(bus.host, port=bus.port, timeout=0.5, retries=0)
    assert await client.connect()
    yield client
    client.close()


@pytest.fixture
async def rs485(
    config: SupervisorConfig, van: SimulatedVan
) -> AsyncIterator[AsyncModbusSerialClient]:
    bus = config.bus_by_name("rs485")
    assert bus.type == "rtu"
    client = AsyncModbusSerialClient(bus.port, baudrate=9600, timeout=0.3, retries=0)
    assert await client.connect()
    yield client
    client.close()


def process_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


async def read_value(client: AsyncModbusTcpClient, profile_name: str, name: str,
                     unit: int) -> Value | None:
    profile = load_profile(profile_name)
    reg = profile.get(name)
    rr = await client.read_holding_registers(reg.address, count=reg.count, device_id=unit)
    assert not rr.isError(), rr
    return decode(list(rr.registers), reg.type, reg.scale, profile.device.word_order, reg.invalid)


def code(profile_name: str, register: str, meaning: str) -> int:
    """The code a real device serves for ``meaning``: its profile's, not the simulator's."""
    return load_profile(profile_name).code_of(register, meaning)


def number(value: object) -> float:
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    return float(value)


def make_plant(**kwargs: Any) -> Plant:
    """A plant at night unless the test says otherwise: no sun unless asked for."""
    kwargs.setdefault("start_time", NIGHT)
    return Plant.create(**kwargs)


# -- plant, pure and in virtual time --------------------------------------------------------


@pytest.mark.parametrize(("meanings", "profile_name", "register"), [
    (BatteryState, "victron_gx_system", "battery_state"),
    (AcSource, "victron_gx_system", "active_input_source"),
    (InverterMode, "victron_gx_vebus", "mode"),
    (InverterState, "victron_gx_vebus", "state"),
    (SolarMode, "victron_gx_solarcharger", "mode"),
    (SolarState, "victron_gx_solarcharger", "state"),
])
def test_plant_meanings_are_the_profiles(
    meanings: type[StrEnum], profile_name: str, register: str
) -> None:
    profile = load_profile(profile_name)
    known = set(profile.enum_of(register).values())
    if profile.get(register).writable:  # the plant takes every mode a client may write
        assert set(meanings) == known
    else:  # and serves only states the profile has a code for
        assert set(meanings) <= known


def test_soc_falls_under_the_base_load() -> None:
    plant = make_plant(capacity_ah=200, start_soc=80)
    plant.step(3600)
    # 2.5 A for one hour out of 200 Ah
    assert plant.battery.soc == pytest.approx(80 - 2.5 / 200 * 100, abs=0.01)
    assert plant.battery.current == pytest.approx(-2.5)
    assert plant.battery.state is BatteryState.DISCHARGING
    assert plant.battery.time_to_go_s == pytest.approx(plant.battery.remaining_ah / 2.5 * 3600)


def test_switched_loads_drain_faster_and_sag_the_voltage() -> None:
    plant = make_plant(start_soc=60, loads={"heater": 20.0})
    idle_v = plant.battery.voltage
    plant.switches["heater"] = True
    plant.settle()
    assert plant.battery.current == pytest.approx(-22.5)
    assert plant.battery.voltage == pytest.approx(idle_v - 20.0 * 0.01)
    plant.step(3600)
    assert plant.battery.soc == pytest.approx(60 - 22.5 / 200 * 100, abs=0.01)


def test_open_circuit_voltage_follows_soc() -> None:
    empty, full = make_plant(start_soc=0), make_plant(start_soc=100)
    assert empty.battery.open_circuit_voltage == pytest.approx(12.0)
    assert full.battery.open_circuit_voltage == pytest.approx(13.3)


def test_shore_power_charges_to_full_then_floats() -> None:
    plant = make_plant(start_soc=50, shore=True)
    stages = [plant.inverter.state]
    assert plant.battery.current == pytest.approx(30.0 - 2.5)  # charger output less the loads
    assert plant.battery.state is BatteryState.CHARGING
    assert plant.battery.time_to_go_s == 0
    plant.step(3600)
    assert plant.battery.soc == pytest.approx(50 + 27.5 / 200 * 100, abs=0.01)
    plant.step(6 * 3600)
    stages.append(plant.inverter.state)
    assert stages == [InverterState.BULK, InverterState.FLOAT]
    assert plant.battery.soc == 100
    assert plant.battery.current == pytest.approx(0.0)


def test_shore_disconnected_means_inverting_on_battery() -> None:
    plant = make_plant(start_soc=50, shore=True)
    plant.shore_connected = False
    plant.ac_base_load_w = 450.0
    plant.settle()
    assert plant.inverter.state is InverterState.INVERTING
    assert not plant.inverter.ac_input_active
    assert plant.battery.current < -2.5 - 450 / 14  # the inverter draws on top of the DC loads


def test_inverter_mode_off_stops_charging() -> None:
    plant = make_plant(start_soc=50, shore=True)
    plant.inverter.mode = InverterMode.OFF
    plant.settle()
    assert plant.inverter.state is InverterState.OFF
    assert plant.battery.current == pytest.approx(-2.5)


def test_result_does_not_depend_on_the_tick_size() -> None:
    coarse, fine = make_plant(start_soc=70), make_plant(start_soc=70)
    coarse.step(600)
    for _ in range(600):
        fine.step(1.0)
    assert coarse.time_s == pytest.approx(fine.time_s)
    assert coarse.battery.soc == pytest.approx(fine.battery.soc)
    coarse.thermal.outside_c = fine.thermal.outside_c = 0.0  # for the air to have a change
    coarse.step(600)
    for _ in range(600):
        fine.step(1.0)
    assert coarse.thermal.temperatures() == pytest.approx(fine.thermal.temperatures(), abs=0.01)


def test_clock_follows_plant_time() -> None:
    plant = make_plant(start_time=datetime(2024, 6, 1, 23, 59))
    plant.step(120)
    assert plant.clock == datetime(2024, 6, 2, 0, 1)
    plant.clock = NOON  # a test may jump to another time of day
    plant.step(60)
    assert plant.clock == NOON + timedelta(minutes=1)


# -- solar ----------------------------------------------------------------------------------


def sunny_plant(at: datetime, **kwargs: Any) -> Plant:
    """A clear-sky plant (no clouds) at local time ``at``."""
    plant = make_plant(start_time=at, **kwargs)
    plant.solar.cloud_depth = 0.0
    plant.settle()
    return plant


@pytest.mark.parametrize("hour", [0, 3, 5, 18, 21])
def test_no_solar_at_night(hour: int) -> None:
    plant = sunny_plant(NOON.replace(hour=hour), start_soc=50)
    assert plant.solar.pv_power_w == 0
    assert plant.solar.current_a == 0
    assert plant.solar.pv_voltage_v == 0
    assert plant.solar.state is SolarState.OFF
    assert plant.battery.current == pytest.approx(-2.5)


def test_solar_peaks_at_noon_and_follows_the_sun() -> None:
    soc = 50
    volts = open_circuit_voltage(soc)
    noon = sunny_plant(NOON, start_soc=soc)
    assert noon.solar.pv_power_w == pytest.approx(300.0)
    assert noon.solar.current_a == pytest.approx(300 * 0.97 / volts)
    assert noon.battery.current == pytest.approx(300 * 0.97 / volts - 2.5)
    assert noon.solar.pv_voltage_v == pytest.approx(18.0)
    assert noon.solar.state is SolarState.BULK
    morning = sunny_plant(NOON.replace(hour=9), start_soc=soc)
    assert morning.solar.pv_power_w == pytest.approx(300 * math.sin(math.pi / 4))
    powers = [sunny_plant(NOON.replace(hour=h), start_soc=soc).solar.pv_power_w
              for h in range(6, 19)]
    assert max(powers) == powers[6]  # noon
    assert powers == sorted(powers[:7]) + sorted(powers[7:], reverse=True)


def test_clouds_dim_the_sun_within_limits() -> None:
    plant = make_plant(start_time=NOON, start_soc=50)
    factors = []
    for _ in range(720):
        plant.step(10)
        factors.append(plant.solar.cloud_factor(plant.time_s))
    assert 0.6 <= min(factors) < 0.7
    assert 0.95 < max(factors) <= 1.0


def test_solar_tapers_in_absorption_and_stops_at_full() -> None:
    absorbing = sunny_plant(NOON, start_soc=95)
    assert absorbing.solar.state is SolarState.ABSORPTION
    assert absorbing.battery.current == pytest.approx(15.0)  # taper: 30 A x 5 / 10
    full = sunny_plant(NOON, start_soc=100)
    assert full.solar.state is SolarState.FLOAT
    assert full.battery.current == pytest.approx(0.0)
    assert full.solar.current_a == pytest.approx(2.5)  # it carries the loads, no more
    full.base_load_a = 0.0
    full.settle()
    assert full.solar.current_a == 0
    assert full.solar.pv_power_w == 0


def test_solar_mode_off_stops_charging() -> None:
    plant = sunny_plant(NOON, start_soc=50)
    plant.solar.mode = SolarMode.OFF
    plant.settle()
    assert plant.solar.current_a == 0 and plant.solar.pv_power_w == 0
    assert plant.solar.state is SolarState.OFF
    assert plant.solar.pv_voltage_v == pytest.approx(18.0)  # the panels still see the sun


def test_solar_yield_over_a_day_resets_at_midnight() -> None:
    plant = sunny_plant(NIGHT, capacity_ah=2000, start_soc=20)  # never full
    plant.step(18 * 3600)  # to 20:00
    # 300 W x 12 h x 2/pi, less the charger's 3 %
    assert plant.solar.yield_today_kwh == pytest.approx(0.3 * 12 * 2 / math.pi * 0.97, rel=1e-3)
    plant.step(6 * 3600)  # past midnight
    assert plant.solar.yield_today_kwh == 0


def test_overcast_means_no_solar() -> None:
    plant = sunny_plant(NOON, start_soc=50)
    plant.solar_peak_w = 0
    plant.settle()
    assert plant.solar.current_a == 0
    assert plant.battery.current == pytest.approx(-2.5)


# -- AC side, inverter limits -----------------------------------------------------------------


def heater_plant(**kwargs: Any) -> Plant:
    """A plant with a 5 A (1150 W) AC water heater switched on."""
    plant = make_plant(start_soc=50, ac_loads={"water_heater": 5.0}, **kwargs)
    plant.switches["water_heater"] = True
    plant.settle()
    return plant


def test_ac_loads_come_from_the_inverter_without_an_ac_source() -> None:
    plant = heater_plant()
    volts = open_circuit_voltage(50)
    assert plant.ac_load_w == pytest.approx(5 * AC_NOMINAL_V)
    assert plant.inverter.state is InverterState.INVERTING
    assert plant.inverter.ac_out_power_w == pytest.approx(1150.0)
    assert plant.inverter.ac_in_power_w == 0
    assert plant.ac_source is AcSource.NONE and plant.ac_in_voltage_v == 0
    assert plant.battery.current == pytest.approx(-2.5 - 1150 / 0.9 / volts)
    plant.switches["water_heater"] = False
    plant.settle()
    assert plant.battery.current == pytest.approx(-2.5)


def test_ac_loads_come_from_shore_and_the_charger_gets_the_rest() -> None:
    plant = heater_plant(shore=True)
    volts = open_circuit_voltage(50)
    assert plant.inverter.state is InverterState.BULK
    assert plant.active_input_source is AcSource.SHORE
    assert plant.battery.current == pytest.approx(30.0 - 2.5)  # charger at its maximum
    assert plant.inverter.ac_in_power_w == pytest.approx(1150 + 30 * volts / 0.9)
    plant.inverter.ac_in_current_limit_a = 6.0  # 1380 W: 230 W left for the charger
    plant.settle()
    charger = 230 * 0.9 / volts
    assert plant.inverter.charger_current_a == pytest.approx(charger)
    assert plant.battery.current == pytest.approx(charger - 2.5)
    assert plant.inverter.ac_in_power_w == pytest.approx(6.0 * AC_NOMINAL_V)
    assert plant.ac_in_current_a == pytest.approx(1380 / plant.ac_in_voltage_v)
    assert plant.ac_in_voltage_v == pytest.approx(230, abs=2)


def test_power_assist_above_the_input_limit() -> None:
    plant = heater_plant(shore=True)
    volts = open_circuit_voltage(50)
    plant.inverter.ac_in_current_limit_a = 4.0  # 920 W for an 1150 W load
    plant.settle()
    states = [plant.inverter.state]
    assert plant.inverter.ac_in_power_w == pytest.approx(920.0)  # held at the limit
    assert plant.inverter.ac_out_power_w == pytest.approx(1150.0)
    assert plant.inverter.inverter_power_w == pytest.approx(230.0)
    assert plant.inverter.charger_current_a == 0
    assert plant.battery.current == pytest.approx(-2.5 - 230 / 0.9 / volts)
    # charger-only mode cannot assist: the input carries it all
    plant.inverter.mode = InverterMode.CHARGER_ONLY
    plant.settle()
    states.append(plant.inverter.state)
    assert states == [InverterState.POWER_ASSIST, InverterState.BULK]
    assert plant.inverter.ac_in_power_w == pytest.approx(1150.0)


@pytest.mark.parametrize(("load_w", "level"), [
    (0, AlarmLevel.OK), (2100, AlarmLevel.OK), (2200, AlarmLevel.WARNING),
    (2400, AlarmLevel.WARNING), (2500, AlarmLevel.ALARM),
])
def test_overload_alarm_levels(load_w: float, level: AlarmLevel) -> None:
    plant = make_plant()
    plant.ac_base_load_w = load_w
    plant.settle()
    assert plant.inverter.overload_alarm is level
    # the same load from shore power does not load the inverter
    plant.shore_connected = True
    plant.inverter.ac_in_current_limit_a = 16.0
    plant.settle()
    assert plant.inverter.overload_alarm is AlarmLevel.OK


def test_high_temperature_alarm() -> None:
    plant = make_plant()
    levels = [plant.inverter.high_temperature_alarm]
    plant.inverter.high_temperature = True
    levels.append(plant.inverter.high_temperature_alarm)
    assert levels == [AlarmLevel.OK, AlarmLevel.ALARM]


# -- generator, alternator --------------------------------------------------------------------


def test_generator_cranks_runs_and_stops() -> None:
    plant = heater_plant()
    gen = plant.generator
    plant.inverter.ac_in_current_limit_a = 30.0
    gen.run_requested = True
    plant.settle()
    assert gen.phase is GeneratorPhase.CRANKING and gen.starts == 1
    plant.step(4.9)
    assert not gen.running and not gen.running_signal
    assert plant.active_input_source is AcSource.NONE
    plant.step(0.2)
    assert gen.running and gen.running_signal
    assert plant.active_input_source is AcSource.GENERATOR
    assert plant.ac_in_limit_a == pytest.approx(16.0)  # the generator's size, not the 30 A
    assert plant.inverter.state is InverterState.BULK
    assert plant.battery.current == pytest.approx(30.0 - 2.5)
    plant.step(100)
    assert gen.run_seconds == pytest.approx(100.1)
    gen.run_requested = False
    plant.settle()
    assert not gen.running and gen.running_signal  # spinning down
    assert plant.inverter.state is InverterState.INVERTING
    plant.step(1.9)
    assert gen.running_signal
    plant.step(0.2)
    assert gen.phase is GeneratorPhase.STOPPED and not gen.running_signal
    assert gen.run_seconds == pytest.approx(100.1)
    assert gen.starts == 1


def test_generator_overload_is_power_assisted() -> None:
    plant = make_plant(start_soc=50)
    plant.ac_base_load_w = 16 * AC_NOMINAL_V + 500
    plant.inverter.ac_in_current_limit_a = 32.0
    plant.generator.run_requested = True
    plant.step(10)
    assert plant.inverter.state is InverterState.POWER_ASSIST
    assert plant.inverter.ac_in_power_w == pytest.approx(16 * AC_NOMINAL_V)
    assert plant.inverter.inverter_power_w == pytest.approx(500)


def test_generator_timing_does_not_depend_on_the_tick() -> None:
    coarse, fine = make_plant(), make_plant()
    for plant in (coarse, fine):
        plant.generator.run_requested = True
    coarse.step(60)
    for _ in range(600):
        fine.step(0.1)
    assert coarse.generator.run_seconds == pytest.approx(55.0)
    assert fine.generator.run_seconds == pytest.approx(55.0)


def test_generator_that_fails_to_start_cranks_and_never_runs() -> None:
    plant = make_plant()
    gen = plant.generator
    gen.fails_to_start = True
    gen.run_requested = True
    plant.step(60)
    phases = [gen.phase]
    assert not gen.running and not gen.running_signal
    assert plant.ac_source is AcSource.NONE
    gen.run_requested = False  # the supervisor gives up, then retries
    plant.step(10)
    phases.append(gen.phase)
    assert phases == [GeneratorPhase.CRANKING, GeneratorPhase.STOPPED]
    gen.run_requested = True
    plant.step(10)
    assert gen.starts == 2 and gen.run_seconds == 0
    gen.fails_to_start = False  # it catches on this attempt
    plant.step(1)
    assert gen.running


def test_shore_wins_over_the_generator() -> None:
    plant = make_plant(start_soc=50)
    plant.inverter.ac_in_current_limit_a = 25.0
    plant.generator.run_requested = True
    plant.step(10)
    sources = [plant.active_input_source]
    plant.shore_connected = True
    plant.settle()
    assert plant.generator.running  # still running until the supervisor stops it
    sources.append(plant.active_input_source)
    assert sources == [AcSource.GENERATOR, AcSource.SHORE]
    assert plant.ac_in_limit_a == pytest.approx(25.0)


def test_inverter_off_ignores_the_ac_input() -> None:
    plant = heater_plant(shore=True)
    plant.inverter.mode = InverterMode.OFF
    plant.settle()
    assert plant.ac_source is AcSource.SHORE  # live on the cable (the meter sees it)
    assert plant.active_input_source is AcSource.NONE
    assert plant.inverter.ac_out_power_w == 0 and plant.inverter.ac_in_power_w == 0


def test_alternator_charges_while_driving() -> None:
    plant = make_plant(start_soc=50)
    plant.ignition = True
    plant.settle()
    assert plant.alternator_current_a == pytest.approx(20.0)
    assert plant.battery.current == pytest.approx(20.0 - 2.5)
    plant.step(3600)
    assert plant.battery.soc == pytest.approx(50 + 17.5 / 200 * 100, abs=0.01)
    plant.battery.soc = 100.0
    plant.settle()
    assert plant.battery.current == pytest.approx(0.0)  # full: it only carries the loads
    plant.ignition = False
    plant.settle()
    assert plant.battery.current == pytest.approx(-2.5)


def test_ac_input_energy_is_metered() -> None:
    plant = heater_plant(shore=True, capacity_ah=5000)
    power = plant.inverter.ac_in_power_w
    plant.step(3600)
    assert plant.ac_in_energy_kwh == pytest.approx(power / 1000, rel=1e-3)


async def test_speed_multiplies_plant_time(config: SupervisorConfig) -> None:
    async with SimulatedVan(config, speed=600, tick_s=0.02, start_time=NIGHT) as sim:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await wait_until(lambda: sim.plant.time_s >= 120, timeout=3)
        real = loop.time() - start
        # 120 simulated seconds took about 0.2 real ones (allowing for a slow machine)
        assert real < 1.5
        assert sim.plant.battery.soc < 80


# -- Modbus TCP (Victron GX) ----------------------------------------------------------------


async def test_gx_serves_the_plant_battery(van: SimulatedVan, gx: AsyncModbusTcpClient) -> None:
    bat = van.plant.battery
    voltage = await read_value(gx, "victron_gx_battery", "voltage", GX_BATTERY)
    soc = await read_value(gx, "victron_gx_battery", "soc", GX_BATTERY)
    current = await read_value(gx, "victron_gx_battery", "current", GX_BATTERY)
    assert voltage == pytest.approx(bat.voltage, abs=0.01)
    assert soc == pytest.approx(bat.soc, abs=0.1)
    assert current == pytest.approx(-2.5)
    assert await read_value(gx, "victron_gx_battery", "capacity", GX_BATTERY) == 200
    assert await read_value(gx, "victron_gx_system", "battery_soc", GX_SYSTEM) == 80
    sys_v = await read_value(gx, "victron_gx_system", "battery_voltage", GX_SYSTEM)
    assert sys_v == pytest.approx(bat.voltage, abs=0.1)
    assert await read_value(gx, "victron_gx_system", "battery_state", GX_SYSTEM) == code(
        "victron_gx_system", "battery_state", "discharging")
    assert await read_value(gx, "victron_gx_system", "active_input_source", GX_SYSTEM) == code(
        "victron_gx_system", "active_input_source", "none")
    assert await read_value(gx, "victron_gx_vebus", "state", GX_VEBUS) == code(
        "victron_gx_vebus", "state", "inverting")
    assert await read_value(gx, "victron_gx_vebus", "active_input", GX_VEBUS) == code(
        "victron_gx_vebus", "active_input", "disconnected")
    # a whole block through the holes of the system map, as the block planner reads it
    rr = await gx.read_holding_registers(806, count=861 - 806, device_id=GX_SYSTEM)
    assert not rr.isError()
    assert rr.registers[843 - 806] == 80


async def test_shore_power_shows_on_the_gx(van: SimulatedVan, gx: AsyncModbusTcpClient) -> None:
    shore = code("victron_gx_system", "active_input_source", "shore")
    van.plant.shore_connected = True
    await wait_until(lambda: van.served_value("gx_system", "active_input_source") == shore)
    assert await read_value(gx, "victron_gx_system", "active_input_source", GX_SYSTEM) == shore
    assert await read_value(gx, "victron_gx_system", "battery_state", GX_SYSTEM) == code(
        "victron_gx_system", "battery_state", "charging")
    assert await read_value(gx, "victron_gx_vebus", "state", GX_VEBUS) == code(
        "victron_gx_vebus", "state", "bulk")
    assert await read_value(gx, "victron_gx_vebus", "active_input", GX_VEBUS) == code(
        "victron_gx_vebus", "active_input", "ac_in_1")
    ac_in = await read_value(gx, "victron_gx_vebus", "ac_in_voltage", GX_VEBUS)
    assert ac_in == pytest.approx(230.0, abs=3)


async def test_override_pins_an_enumerated_register_by_meaning(
    van: SimulatedVan, gx: AsyncModbusTcpClient
) -> None:
    async def source() -> Value | None:
        return await read_value(gx, "victron_gx_system", "active_input_source", GX_SYSTEM)

    van.override("gx_system", "active_input_source", "grid")
    van.advance(60)  # the plant running on does not overwrite it
    assert await source() == code("victron_gx_system", "active_input_source", "grid")
    van.override("gx_system", "active_input_source", None)
    van.advance(0)
    assert await source() == code("victron_gx_system", "active_input_source", "none")


async def test_inverter_settings_written_by_the_client_reach_the_plant(
    van: SimulatedVan, gx: AsyncModbusTcpClient
) -> None:
    vebus = load_profile("victron_gx_vebus")
    off = vebus.code_of("mode", "off")
    assert van.served_value("multiplus", "mode") == vebus.code_of("mode", "on")
    assert van.served_value("multiplus", "ac_in_current_limit") == pytest.approx(16.0)
    rr = await gx.write_register(vebus.get("mode").address, off, device_id=GX_VEBUS)
    assert not rr.isError()
    limit = vebus.get("ac_in_current_limit")
    rr = await gx.write_register(limit.address, 105, device_id=GX_VEBUS)  # 10.5 A
    assert not rr.isError()
    assert van.plant.inverter.mode == InverterMode.OFF
    assert van.plant.inverter.ac_in_current_limit_a == pytest.approx(10.5)
    # the write sticks: the plant running on does not overwrite what the client set
    van.advance(600)
    assert await read_value(gx, "victron_gx_vebus", "mode", GX_VEBUS) == off
    assert await read_value(gx, "victron_gx_vebus", "state", GX_VEBUS) == vebus.code_of(
        "state", "off")
    # a code the profile does not know means nothing to the plant: it keeps its mode
    unknown = max(vebus.enum_of("mode")) + 1
    rr = await gx.write_register(vebus.get("mode").address, unknown, device_id=GX_VEBUS)
    assert not rr.isError()
    assert van.plant.inverter.mode == InverterMode.OFF


async def test_tcp_reads_outside_the_map_are_refused(gx: AsyncModbusTcpClient) -> None:
    for address, count in ((805, 1), (860, 2), (0, 1)):
        rr = await gx.read_holding_registers(address, count=count, device_id=GX_SYSTEM)
        assert rr.isError() and rr.exception_code == 2, (address, count)
    rr = await gx.read_input_registers(840, count=1, device_id=GX_SYSTEM)  # no input table
    assert rr.isError() and rr.exception_code == 2
    # writing a read-only register is refused too
    rr = await gx.write_register(840, 1, device_id=GX_SYSTEM)
    assert rr.isError() and rr.exception_code == 2
    # a unit id the GX does not map
    rr = await gx.read_holding_registers(840, count=1, device_id=42)
    assert rr.isError() and rr.exception_code == 11


async def test_exception_injection(van: SimulatedVan, gx: AsyncModbusTcpClient) -> None:
    van.set_exception("battery", 6)
    rr = await gx.read_holding_registers(259, count=1, device_id=GX_BATTERY)
    assert rr.isError() and rr.exception_code == 6
    rr = await gx.read_holding_registers(840, count=1, device_id=GX_SYSTEM)
    assert not rr.isError()
    van.set_exception("battery", None)
    rr = await gx.read_holding_registers(259, count=1, device_id=GX_BATTERY)
    assert not rr.isError()
    with pytest.raises(ValueError):
        van.set_exception("battery", 99)


async def test_silent_tcp_unit_times_out(van: SimulatedVan, gx: AsyncModbusTcpClient) -> None:
    van.set_silent("multiplus", True)
    with pytest.raises(ModbusException):
        await gx.read_holding_registers(31, count=1, device_id=GX_VEBUS)
    rr = await gx.read_holding_registers(259, count=1, device_id=GX_BATTERY)
    assert not rr.isError()


# -- Modbus RTU on the pty pair -------------------------------------------------------------


async def test_relay_write_switches_the_load(
    van: SimulatedVan, rs485: AsyncModbusSerialClient
) -> None:
    before = van.plant.battery.current
    assert not van.relay("relays", "relay_1")
    rr = await rs485.write_coil(0, True, device_id=RELAY_UNIT)
    assert not rr.isError()
    assert van.relay("relays", "relay_1")
    assert van.plant.switches["exterior_lights"]
    assert van.plant.battery.current == pytest.approx(before - 6.0, abs=0.01)
    served = van.served_value("battery", "current")
    assert isinstance(served, float)
    assert served == pytest.approx(before - 6.0, abs=0.1)
    rr = await rs485.read_coils(0, count=8, device_id=RELAY_UNIT)
    assert not rr.isError()
    assert rr.bits[:8] == [True] + [False] * 7
    rr = await rs485.write_coil(0, False, device_id=RELAY_UNIT)
    assert not rr.isError()
    assert van.plant.battery.current == pytest.approx(before, abs=0.01)


async def test_rtu_line_survives_a_supervisor_restart(
    van: SimulatedVan, config: SupervisorConfig
) -> None:
    bus = config.bus_by_name("rs485")
    assert bus.type == "rtu"
    for _ in range(3):  # open, use and close the port as a restarting supervisor does
        client = AsyncModbusSerialClient(bus.port, baudrate=9600, timeout=0.3, retries=0)
        assert await client.connect()
        try:
            rr = await client.read_coils(0, count=8, device_id=RELAY_UNIT)
            assert not rr.isError()
        finally:
            client.close()
    assert van.lines["rs485"].running


async def test_rtu_devices_serve_their_maps(
    van: SimulatedVan, rs485: AsyncModbusSerialClient
) -> None:
    rr = await rs485.read_input_registers(1, count=2, device_id=CLIMATE_UNIT)
    assert not rr.isError()
    temperature = decode(list(rr.registers[:1]), "s16", 10)
    humidity = decode(list(rr.registers[1:]), "u16", 10)
    # the sensor hangs in the consultation room (the config's zone "room")
    assert temperature == pytest.approx(van.plant.thermal.temperature("room"), abs=0.1)
    assert humidity == pytest.approx(van.plant.thermal.humidity("room"), abs=0.1)
    rr = await rs485.read_holding_registers(0x8000, count=1, device_id=RELAY_UNIT)
    assert not rr.isError() and rr.registers == [200]  # software version 2.00


async def test_rtu_reads_outside_the_map_are_refused(rs485: AsyncModbusSerialClient) -> None:
    rr = await rs485.read_coils(0, count=9, device_id=RELAY_UNIT)  # 8 relays only
    assert rr.isError() and rr.exception_code == 2
    rr = await rs485.read_input_registers(0, count=2, device_id=CLIMATE_UNIT)
    assert rr.isError() and rr.exception_code == 2
    rr = await rs485.read_holding_registers(1, count=1, device_id=CLIMATE_UNIT)
    assert rr.isError() and rr.exception_code == 2


async def test_silent_unit_times_out_while_the_other_answers(
    van: SimulatedVan, rs485: AsyncModbusSerialClient
) -> None:
    van.set_silent("room_climate", True)
    with pytest.raises(ModbusException):
        await rs485.read_input_registers(1, count=2, device_id=CLIMATE_UNIT)
    rr = await rs485.read_coils(0, count=8, device_id=RELAY_UNIT)
    assert not rr.isError()
    van.set_silent("room_climate", False)
    rr = await rs485.read_input_registers(1, count=2, device_id=CLIMATE_UNIT)
    assert not rr.isError()


async def test_unknown_rtu_unit_is_silent(rs485: AsyncModbusSerialClient) -> None:
    with pytest.raises(ModbusException):
        await rs485.read_coils(0, count=8, device_id=9)
    rr = await rs485.read_coils(0, count=8, device_id=RELAY_UNIT)
    assert not rr.isError()


async def test_the_rs485_line_takes_wire_time_and_noise_damages_answers(
    van: SimulatedVan, rs485: AsyncModbusSerialClient
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    rr = await rs485.read_coils(0, count=8, device_id=RELAY_UNIT)
    took = loop.time() - start
    assert not rr.isError()
    # an 8-byte request and a 6-byte answer went over a 9600-baud wire: about 15 ms
    assert took >= 14 * van.lines["rs485"].character_s
    van.corrupt_answers("rs485", 1)
    with pytest.raises(ModbusException):  # the damaged answer fails its CRC
        await rs485.read_coils(0, count=8, device_id=RELAY_UNIT)
    rr = await rs485.read_coils(0, count=8, device_id=RELAY_UNIT)
    assert not rr.isError()  # the next one is whole


async def test_garbage_reaches_the_supervisor_and_the_line_recovers(
    van: SimulatedVan, config: SupervisorConfig
) -> None:
    received: list[bytes] = []

    def trace(sending: bool, data: bytes) -> bytes:
        if not sending:
            received.append(data)
        return data

    bus = config.bus_by_name("rs485")
    assert bus.type == "rtu"
    client = AsyncModbusSerialClient(bus.port, baudrate=9600, timeout=0.3, retries=0,
                                     trace_packet=trace)
    assert await client.connect()
    try:
        failures = 0
        for _ in range(3):
            received.clear()
            van.inject_garbage("rs485", 64)
            await wait_until(lambda: received)  # nothing was asked: this is the garbage
            for _attempt in range(5):
                try:
                    rr = await client.read_coils(0, count=8, device_id=RELAY_UNIT)
                except ModbusException:
                    failures += 1
                    continue
                if not rr.isError():
                    break
                failures += 1
            else:
                pytest.fail("the line did not recover from garbage")
        assert failures <= 3
    finally:
        client.close()


# -- GPIO link ------------------------------------------------------------------------------


async def read_msg(reader: asyncio.StreamReader) -> dict[str, object]:
    line = await asyncio.wait_for(reader.readline(), timeout=2)
    msg = json.loads(line)
    assert isinstance(msg, dict)
    return msg


async def test_gpio_link(van: SimulatedVan, config: SupervisorConfig) -> None:
    assert config.gpio.sim_socket is not None
    reader, writer = await asyncio.open_unix_connection(config.gpio.sim_socket)
    # every input on connect, inactive: ignition (active high) low, side door (active low) high
    hello = {(await read_msg(reader))["pin"]: True for _ in range(3)}
    assert set(hello) == {17, 22, 24}
    van.set_input("ignition", True)
    assert await read_msg(reader) == {"pin": 17, "level": True}
    van.set_input("side_door", True)
    assert await read_msg(reader) == {"pin": 22, "level": False}

    assert van.output_active("status_lamp") is None
    writer.write(b'{"pin": 27, "level": true}\n{"pin": 5, "level": true}\n')
    await writer.drain()
    await wait_until(lambda: van.output_active("alarm_lamp") is not None)
    assert van.output_active("status_lamp") is True
    assert van.output_active("alarm_lamp") is False  # active low: high means off
    writer.write(b"not json\n")  # ignored, the link stays up
    writer.close()
    await writer.wait_closed()

    # the supervisor restarts: a new connection hears the present levels
    reader, writer = await asyncio.open_unix_connection(config.gpio.sim_socket)
    levels = {}
    for _ in range(3):
        msg = await read_msg(reader)
        levels[msg["pin"]] = msg["level"]
    assert levels == {17: True, 22: False, 24: False}
    writer.close()
    await writer.wait_closed()


# -- power devices over Modbus ----------------------------------------------------------------


async def read_meter(client: AsyncModbusSerialClient, address: int, count: int) -> list[float]:
    """f32 values from the SDM120's input registers (high word first)."""
    rr = await client.read_input_registers(address, count=count, device_id=METER_UNIT)
    assert not rr.isError(), rr
    words = list(rr.registers)
    return [number(decode(words[i:i + 2], "f32")) for i in range(0, count, 2)]


async def test_sdm120_serves_aligned_reads_of_the_ac_input(
    van: SimulatedVan, rs485: AsyncModbusSerialClient
) -> None:
    assert await read_meter(rs485, 0, 2) == [0.0]  # no AC source: no voltage
    van.plant.shore_connected = True
    rr = await rs485.write_coil(5, True, device_id=RELAY_UNIT)  # relay_6: the water heater
    assert not rr.isError()
    volts, _, _, amps, _, _, watts = await read_meter(rs485, 0, 14)  # through the holes
    plant = van.plant
    assert volts == pytest.approx(230, abs=3)
    assert watts == pytest.approx(plant.inverter.ac_in_power_w, rel=0.01)
    assert watts > 1150  # the heater and the charger
    assert amps == pytest.approx(watts / volts, rel=0.01)
    frequency, energy = await read_meter(rs485, 70, 4)
    assert frequency == pytest.approx(50.0)
    power = plant.inverter.ac_in_power_w
    van.advance(600)  # still in bulk: the power stays
    (energy_after,) = await read_meter(rs485, 72, 2)
    assert energy_after - energy == pytest.approx(power / 1000 / 6, rel=0.02)


async def test_sdm120_refuses_odd_addresses_and_counts(rs485: AsyncModbusSerialClient) -> None:
    for address, count in ((1, 2), (0, 1), (0, 3), (13, 2), (71, 2)):
        rr = await rs485.read_input_registers(address, count=count, device_id=METER_UNIT)
        assert rr.isError() and rr.exception_code == 2, (address, count)
    rr = await rs485.read_input_registers(12, count=2, device_id=METER_UNIT)
    assert not rr.isError()


async def test_solar_charger_registers(van: SimulatedVan, gx: AsyncModbusTcpClient) -> None:
    async def solar(name: str) -> float:
        return number(await read_value(gx, "victron_gx_solarcharger", name, GX_SOLAR))

    def solar_code(register: str, meaning: str) -> int:
        return code("victron_gx_solarcharger", register, meaning)

    assert await solar("pv_power") == 0 and await solar("state") == solar_code("state", "off")
    assert await solar("pv_voltage") == 0
    plant = van.plant
    plant.clock = NOON
    plant.solar.cloud_depth = 0.0
    van.advance(600)
    assert await solar("pv_power") == pytest.approx(300, abs=1)
    assert await solar("pv_voltage") == pytest.approx(18.0)
    assert await solar("state") == solar_code("state", "bulk")
    assert await solar("battery_current") == pytest.approx(plant.solar.current_a, abs=0.1)
    assert await solar("battery_voltage") == pytest.approx(plant.battery.voltage, abs=0.01)
    assert await solar("yield_today") == pytest.approx(0.3 * 0.97 / 6, abs=0.1)
    assert await read_value(gx, "victron_gx_system", "pv_power", GX_SYSTEM) == pytest.approx(
        300, abs=1)
    battery = await read_value(gx, "victron_gx_battery", "current", GX_BATTERY)
    assert number(battery) == pytest.approx(plant.solar.current_a - 2.5, abs=0.1)
    # the client switches the charger off
    mode = load_profile("victron_gx_solarcharger").get("mode")
    rr = await gx.write_register(mode.address, solar_code("mode", "off"), device_id=GX_SOLAR)
    assert not rr.isError()
    assert plant.solar.mode == SolarMode.OFF
    assert await solar("pv_power") == 0 and await solar("state") == solar_code("state", "off")
    assert await solar("mode") == solar_code("mode", "off")
    assert plant.battery.current == pytest.approx(-2.5)


async def test_vebus_alarms_and_ac_figures(van: SimulatedVan, gx: AsyncModbusTcpClient) -> None:
    async def vebus(name: str) -> float:
        return number(await read_value(gx, "victron_gx_vebus", name, GX_VEBUS))

    assert await vebus("overload_alarm") == 0
    van.plant.ac_base_load_w = 2300
    van.advance(0)
    assert await vebus("overload_alarm") == 1
    assert await vebus("ac_out_power") == pytest.approx(2300, abs=10)
    assert await vebus("ac_out_current") == pytest.approx(10.0, abs=0.1)
    assert await read_value(gx, "victron_gx_system", "ac_consumption_l1",
                            GX_SYSTEM) == pytest.approx(2300, abs=1)
    van.plant.ac_base_load_w = 2600
    van.advance(0)
    assert await vebus("overload_alarm") == 2
    assert await vebus("state") == code("victron_gx_vebus", "state", "inverting")
    van.plant.inverter.high_temperature = True
    van.advance(0)
    assert await vebus("high_temperature_alarm") == 2
    # on shore power with a low input limit, the inverter assists
    van.plant.shore_connected = True
    van.plant.ac_base_load_w = 2000
    limit = load_profile("victron_gx_vebus").get("ac_in_current_limit")
    rr = await gx.write_register(limit.address, 60, device_id=GX_VEBUS)  # 6 A
    assert not rr.isError()
    assert await vebus("state") == code("victron_gx_vebus", "state", "power_assist")
    assert await vebus("ac_in_current") == pytest.approx(6.0, abs=0.1)
    assert await vebus("overload_alarm") == 0


async def test_generator_follows_the_gpio_run_line(
    van: SimulatedVan, config: SupervisorConfig, gx: AsyncModbusTcpClient
) -> None:
    assert config.gpio.sim_socket is not None
    reader, writer = await asyncio.open_unix_connection(config.gpio.sim_socket)
    try:
        for _ in range(3):  # the inputs' levels at connect
            await read_msg(reader)
        gen = van.plant.generator
        writer.write(b'{"pin": 23, "level": true}\n')  # the supervisor asks it to run
        await writer.drain()
        await wait_until(lambda: gen.phase is GeneratorPhase.CRANKING)
        assert van.output_active("gen_run") is True and gen.starts == 1
        van.advance(gen.crank_s)
        assert gen.running
        assert await read_msg(reader) == {"pin": 24, "level": True}
        source = await read_value(gx, "victron_gx_system", "active_input_source", GX_SYSTEM)
        assert source == code("victron_gx_system", "active_input_source", "generator")
        van.plant.shore_connected = True
        van.advance(0)
        source = await read_value(gx, "victron_gx_system", "active_input_source", GX_SYSTEM)
        assert source == code("victron_gx_system", "active_input_source", "shore")
        writer.write(b'{"pin": 23, "level": false}\n')  # and to stop
        await writer.drain()
        await wait_until(lambda: not gen.running)
        van.advance(gen.spin_down_s)
        assert await read_msg(reader) == {"pin": 24, "level": False}
    finally:
        writer.close()
        await writer.wait_closed()


async def test_ignition_line_runs_the_alternator(van: SimulatedVan) -> None:
    van.set_input("ignition", True)
    assert van.plant.ignition
    assert van.plant.battery.current == pytest.approx(20.0 - 2.5)
    assert van.served_value("battery", "current") == pytest.approx(17.5, abs=0.1)
    van.set_input("ignition", False)
    assert van.plant.battery.current == pytest.approx(-2.5)


def test_a_van_without_a_solar_charger_has_no_panels(tmp_path: Path) -> None:
    text = write_config(tmp_path).read_text()
    text = text.replace('solar = "solar"\n', "").replace(
        '[[device]]\nid = "solar"\nprofile = "victron_gx_solarcharger"\nbus = "gx"\n'
        "unit = 224\n", "")
    (tmp_path / "nosolar.toml").write_text(text)
    sim = SimulatedVan(load_config(tmp_path / "nosolar.toml"), start_time=NOON)
    assert "solar" not in sim.devices
    assert sim.plant.solar_peak_w == 0
    assert sim.plant.battery.current == pytest.approx(-2.5)


# -- life cycle -----------------------------------------------------------------------------


async def test_stop_leaves_nothing_behind(config: SupervisorConfig, tmp_path: Path) -> None:
    stale = tmp_path / "gpio.sock"
    with socket.socket(socket.AF_UNIX) as s:  # a socket file left by a crashed run
        s.bind(str(stale))
    sim = SimulatedVan(config)
    await sim.start()
    line = sim.lines["rs485"]
    pid = line.pid
    assert pid is not None and line.supervisor_side.exists() and line.sim_side.exists()
    await sim.stop()
    assert not process_exists(pid)
    assert not line.supervisor_side.is_symlink() and not line.sim_side.is_symlink()
    assert not stale.exists()
    await sim.stop()  # idempotent


def test_main_rejects_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[vehicle]\nid = "x"\nwheels = 4\n')
    assert main(["--config", str(bad)]) == 2
    assert "vehicle.wheels" in capsys.readouterr().err


def test_main_rejects_a_bad_start_time(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--config", "x.toml", "--start-time", "25:00"])
    assert exc.value.code == 2
    assert "HH:MM" in capsys.readouterr().err
