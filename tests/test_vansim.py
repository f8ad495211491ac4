"""The simulated van: plant model (pure, virtual time) and the devices it serves over real
transports (Modbus TCP on 127.0.0.1, Modbus RTU on a socat pty pair, GPIO on a Unix socket),
checked with a real pymodbus client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from drivers.profile import load_profile
from drivers.register_codec import Value, decode
from supervisor.config import SupervisorConfig, load_config
from vansim.main import main
from vansim.plant import BatteryState, InverterMode, InverterState, Plant
from vansim.van import SimulatedVan

GX_SYSTEM, GX_BATTERY, GX_VEBUS = 100, 226, 227
CLIMATE_UNIT, RELAY_UNIT = 1, 2

CONFIG = """
[vehicle]
id = "test-van"

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
id = "room_climate"
profile = "xy_md02"
bus = "rs485"
unit = 1

[[device]]
id = "relays"
profile = "waveshare_relay_8ch"
bus = "rs485"
unit = 2

[power]
battery_monitor = "battery"
system = "gx_system"
inverter = "multiplus"

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
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(run: Path) -> Path:
    path = run / "van.toml"
    path.write_text(CONFIG.format(run=run, gx_port=free_port()))
    return path


async def wait_until(predicate: Callable[[], object], within_s: float = 5.0) -> None:
    """Poll ``predicate`` in small steps until it holds; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within_s} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def config(tmp_path: Path) -> SupervisorConfig:
    return load_config(write_config(tmp_path))


@pytest.fixture
async def van(config: SupervisorConfig) -> AsyncIterator[SimulatedVan]:
    async with SimulatedVan(config, tick_s=0.05) as sim:
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


# -- plant, pure and in virtual time --------------------------------------------------------


def test_soc_falls_under_the_base_load() -> None:
    plant = Plant.create(capacity_ah=200, start_soc=80)
    plant.step(3600)
    # 2.5 A for one hour out of 200 Ah
    assert plant.battery.soc == pytest.approx(80 - 2.5 / 200 * 100, abs=0.01)
    assert plant.battery.current == pytest.approx(-2.5)
    assert plant.battery.state is BatteryState.DISCHARGING
    assert plant.battery.time_to_go_s == pytest.approx(plant.battery.remaining_ah / 2.5 * 3600)


def test_switched_loads_drain_faster_and_sag_the_voltage() -> None:
    plant = Plant.create(start_soc=60, loads={"heater": 20.0})
    idle_v = plant.battery.voltage
    plant.switches["heater"] = True
    plant.settle()
    assert plant.battery.current == pytest.approx(-22.5)
    assert plant.battery.voltage == pytest.approx(idle_v - 20.0 * 0.01)
    plant.step(3600)
    assert plant.battery.soc == pytest.approx(60 - 22.5 / 200 * 100, abs=0.01)


def test_open_circuit_voltage_follows_soc() -> None:
    empty, full = Plant.create(start_soc=0), Plant.create(start_soc=100)
    assert empty.battery.open_circuit_voltage == pytest.approx(12.0)
    assert full.battery.open_circuit_voltage == pytest.approx(13.3)


def test_shore_power_charges_to_full_then_floats() -> None:
    plant = Plant.create(start_soc=50, shore=True)
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
    plant = Plant.create(start_soc=50, shore=True)
    plant.shore_connected = False
    plant.ac_load_w = 450.0
    plant.settle()
    assert plant.inverter.state is InverterState.INVERTING
    assert not plant.inverter.ac_input_active
    assert plant.battery.current < -2.5 - 450 / 14  # the inverter draws on top of the DC loads


def test_inverter_mode_off_stops_charging() -> None:
    plant = Plant.create(start_soc=50, shore=True)
    plant.inverter.mode = InverterMode.OFF
    plant.settle()
    assert plant.inverter.state is InverterState.OFF
    assert plant.battery.current == pytest.approx(-2.5)


def test_result_does_not_depend_on_the_tick_size() -> None:
    coarse, fine = Plant.create(start_soc=70), Plant.create(start_soc=70)
    coarse.step(600)
    for _ in range(600):
        fine.step(1.0)
    assert coarse.time_s == pytest.approx(fine.time_s)
    assert coarse.battery.soc == pytest.approx(fine.battery.soc)
    assert coarse.room.temperature_c == pytest.approx(fine.room.temperature_c)


async def test_speed_multiplies_plant_time(config: SupervisorConfig) -> None:
    async with SimulatedVan(config, speed=600, tick_s=0.02) as sim:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await wait_until(lambda: sim.plant.time_s >= 120, within_s=3)
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
    assert await read_value(gx, "victron_gx_system", "battery_state", GX_SYSTEM) == 2
    assert await read_value(gx, "victron_gx_system", "active_input_source", GX_SYSTEM) == 240
    assert await read_value(gx, "victron_gx_vebus", "state", GX_VEBUS) == 9  # inverting
    # a whole block through the holes of the system map, as the block planner reads it
    rr = await gx.read_holding_registers(806, count=861 - 806, device_id=GX_SYSTEM)
    assert not rr.isError()
    assert rr.registers[843 - 806] == 80


async def test_shore_power_shows_on_the_gx(van: SimulatedVan, gx: AsyncModbusTcpClient) -> None:
    van.plant.shore_connected = True
    await wait_until(lambda: van.served_value("gx_system", "active_input_source") == 3)
    assert await read_value(gx, "victron_gx_system", "active_input_source", GX_SYSTEM) == 3
    assert await read_value(gx, "victron_gx_system", "battery_state", GX_SYSTEM) == 1
    assert await read_value(gx, "victron_gx_vebus", "state", GX_VEBUS) == 3  # bulk
    ac_in = await read_value(gx, "victron_gx_vebus", "ac_in_voltage", GX_VEBUS)
    assert ac_in == pytest.approx(230.0)


async def test_inverter_settings_written_by_the_client_reach_the_plant(
    van: SimulatedVan, gx: AsyncModbusTcpClient
) -> None:
    vebus = load_profile("victron_gx_vebus")
    assert van.served_value("multiplus", "mode") == 3
    assert van.served_value("multiplus", "ac_in_current_limit") == pytest.approx(16.0)
    rr = await gx.write_register(vebus.get("mode").address, 4, device_id=GX_VEBUS)
    assert not rr.isError()
    limit = vebus.get("ac_in_current_limit")
    rr = await gx.write_register(limit.address, 105, device_id=GX_VEBUS)  # 10.5 A
    assert not rr.isError()
    assert van.plant.inverter.mode == InverterMode.OFF
    assert van.plant.inverter.ac_in_current_limit_a == pytest.approx(10.5)
    # the write sticks: the plant running on does not overwrite what the client set
    van.advance(600)
    assert await read_value(gx, "victron_gx_vebus", "mode", GX_VEBUS) == 4
    assert await read_value(gx, "victron_gx_vebus", "state", GX_VEBUS) == 0


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
    assert temperature == pytest.approx(van.plant.room.temperature_c, abs=0.1)
    assert humidity == pytest.approx(van.plant.room.humidity_pct, abs=0.1)
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
            await van.inject_garbage("rs485", 64)
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
    hello = {(await read_msg(reader))["pin"]: True for _ in range(2)}
    assert set(hello) == {17, 22}
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
    for _ in range(2):
        msg = await read_msg(reader)
        levels[msg["pin"]] = msg["level"]
    assert levels == {17: True, 22: False}
    writer.close()
    await writer.wait_closed()


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
