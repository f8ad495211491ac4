"""The simulated van: plant model, Modbus devices on real transports and the GPIO link.

Built from the same vehicle config file as the supervisor, it serves exactly the buses and
devices the config declares. HIL tests run it in-process (in the pytest event loop) and use
its inspection and fault-injection methods; ``mcw-sim`` runs it for the demo.

The config also wires the plant: DC and AC circuits (``kind``) become the plant's DC and AC
loads, a van without a solar charger device has no panels, and the GPIO lines the config names
as the ignition (``vehicle.ignition``) and the generator's start output and running input
(``power.generator``) connect the plant's ignition and generator to the supervisor. At every
tick (and at once when the supervisor changes an output, or a test an input) the van copies
the ignition input and the generator start output into the plant (``plant.ignition``,
``plant.generator.run_requested``) and drives the generator's running input from
``plant.generator.running_signal``: with a GPIO link those plant attributes belong to the
link, set the lines instead.

The climate section wires the zones: each sensor device reads the zone whose thermostat uses
it (or the outside), the diesel heater is a simulated Autoterm on its own serial line (its
output heats its zones, its draw loads the battery, while its power circuit is on), and the
A/C and ventilation relays are an AC and a DC load (the A/C cools its zones while the AC
output is live). A ``[comms.gps]`` receiver is a simulated u-blox on its own serial line
(:mod:`vansim.gps_sim`), parked in Warsaw until a test moves it.

A device with the profile ``room_node`` is no simulation: the node's real firmware core runs
on a drop of its RS-485 line (:mod:`vansim.room_node_host`), beside the Modbus server of the
other devices; ``room_node()`` gives the tests its hands and eyes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import datetime
from pathlib import Path
from types import TracebackType

from drivers.buses import DeviceConfig, RtuBus, TcpBus
from drivers.register_codec import Value
from supervisor.climate import climate_config
from supervisor.climate.config import ClimateConfig
from supervisor.comms import COMMS
from supervisor.core.config import SupervisorConfig
from supervisor.core.subsystem import section
from supervisor.power import power_config
from supervisor.power.config import Circuit
from vansim.autoterm_sim import SimulatedHeater
from vansim.gpio_link import GpioLink
from vansim.gps_sim import SimulatedGps
from vansim.modbus_devices import ExceptionCode, ServedDevice
from vansim.modbus_server import BusServer, start_rtu_server, start_tcp_server
from vansim.plant import OUTSIDE, ClimateGear, Plant
from vansim.room_node_host import PROFILE as ROOM_NODE_PROFILE
from vansim.room_node_host import RoomNodeHost
from vansim.rtu_line import RtuLine
from vansim.thermal import CREW, ROOM

log = logging.getLogger(__name__)

# Profile of the solar charger: a van without a device of it has no panels.
SOLAR_PROFILE = "victron_gx_solarcharger"


class SimulatedVan:
    """The whole simulated vehicle; ``async with SimulatedVan(config) as van: ...``."""

    def __init__(
        self,
        config: SupervisorConfig,
        *,
        speed: float = 1.0,
        tick_s: float = 0.1,
        start_soc: float = 80.0,
        shore: bool = False,
        capacity_ah: float = 200.0,
        start_time: datetime | None = None,
    ) -> None:
        """``start_time`` is the simulated local time at start (default: the time now)."""
        if speed <= 0 or tick_s <= 0:
            raise ValueError("speed and tick_s must be positive")
        self.config = config
        self.speed = speed
        self.tick_s = tick_s
        climate = climate_config(config)
        heater_power = climate.heater.power_circuit if climate.heater is not None else None
        circuits = [*power_config(config).circuit, *_climate_loads(climate)]
        has_solar = any(d.profile == SOLAR_PROFILE for d in config.device)
        self.plant = Plant.create(
            capacity_ah=capacity_ah,
            start_soc=start_soc,
            shore=shore,
            # the heater's draw is the heater's own (plant.climate), not its circuit's rating
            loads={c.name: 0.0 if c.name == heater_power else c.nominal_current_a
                   for c in circuits if c.kind == "dc"},
            ac_loads={c.name: c.nominal_current_a for c in circuits if c.kind == "ac"},
            start_time=start_time,
        )
        if not has_solar:
            self.plant.solar_peak_w = 0.0  # no charger: no panels
        self.plant.climate = _climate_gear(climate)
        self._heater_power = heater_power
        self.heater: SimulatedHeater | None = None
        self.heater_line: RtuLine | None = None
        if climate.heater is not None:
            self.heater_line = RtuLine(climate.heater.port, baudrate=climate.heater.baudrate)
            # an Air 4D: a 2 kW unit cannot hold a two-zone box at -15 °C
            self.heater = SimulatedHeater(self.heater_line.sim_side, time_scale=speed,
                                          model="4D", baudrate=climate.heater.baudrate)
        comms = section(config, COMMS)
        gps = comms.gps if comms is not None else None
        # the LTE router's supply relay, on a GPIO output of the supervisor's
        router = comms.router if comms is not None else None
        self._router_power = None if router is None or router.watchdog is None else (
            router.device, router.watchdog.power_line)
        # the GPS receiver on its own serial line, taking the wire time of its baud rate
        self.gps_line = None if gps is None else RtuLine(gps.port, baudrate=gps.baudrate)
        self.gps = None if self.gps_line is None or gps is None else SimulatedGps(
            self.gps_line.sim_side, baudrate=gps.baudrate)
        gen = power_config(config).generator
        # GPIO lines wired to the plant (line names; None where the van has none)
        self._ignition_lines = [config.vehicle.ignition] if config.vehicle.ignition else []
        self._gen_start_line = gen.start_output if gen is not None else None
        self._gen_running_line = gen.running_input if gen is not None else None
        self.devices: dict[str, ServedDevice] = {}
        # room nodes run their real firmware on a drop of their bus, not in a Modbus server
        self.room_nodes: dict[str, RoomNodeHost] = {}
        for dev in config.device:
            if dev.profile == ROOM_NODE_PROFILE:
                self.room_nodes[dev.id] = RoomNodeHost(dev, baudrate=_rtu_bus(config, dev).baudrate)
                continue
            wired = [c for c in circuits if c.device == dev.id]
            served = ServedDevice(dev, dev.load_profile(), wired)
            served.on_write = self._on_write
            self.devices[dev.id] = served
        self.lines: dict[str, RtuLine] = {
            bus.name: RtuLine(bus.port, baudrate=bus.baudrate,
                              bits_per_character=1 + 8 + (bus.parity != "N") + bus.stopbits,
                              drops=[n.id for n in self.room_nodes.values()
                                     if n.device.bus == bus.name])
            for bus in config.bus if isinstance(bus, RtuBus)
        }
        self.gpio: GpioLink | None = None
        if config.gpio.backend == "sim" and config.gpio.sim_socket is not None:
            self.gpio = GpioLink(config.gpio.sim_socket, config.gpio.line)
            self.gpio.on_output = self._on_gpio_output
        self._servers: dict[str, BusServer] = {}  # by bus name
        self._ticker: asyncio.Task[None] | None = None
        self._rng = random.Random(0)  # garbage is reproducible from run to run
        self._sync()

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring up every bus and the GPIO socket; return when the supervisor can poll."""
        try:
            for node in self.room_nodes.values():
                await node.start()  # powered before the bus comes: it answers the first poll
            for bus in self.config.bus:
                await self.replug(bus.name)
            if self.gpio is not None:
                await self.gpio.start()
            if self.heater is not None and self.heater_line is not None:
                await self.heater_line.start()
                await self.heater.start()
            if self.gps is not None and self.gps_line is not None:
                await self.gps_line.start()
                await self.gps.start()
        except BaseException:
            await self.stop()
            raise
        self._ticker = asyncio.create_task(self._run_plant(), name="vansim plant")

    async def replug(self, bus_name: str) -> None:
        """Serve one bus (again): the RS-485 adapter plugged in, the GX back on the LAN."""
        bus = next(b for b in self.config.bus if b.name == bus_name)
        devices = [d for d in self.devices.values() if d.config.bus == bus.name]
        if isinstance(bus, TcpBus):
            server = await start_tcp_server(bus.name, bus.host, bus.port, devices)
        else:
            line = self.lines[bus.name]
            await line.start()
            server = await start_rtu_server(bus.name, str(line.sim_side), devices,
                                            baudrate=bus.baudrate, parity=bus.parity,
                                            stopbits=bus.stopbits)
            for name in line.drops:
                self.room_nodes[name].attach(line.drop_path(name))
        self._servers[bus.name] = server

    async def unplug(self, bus_name: str) -> None:
        """Stop serving one bus: the USB RS-485 adapter pulled (the serial device disappears),
        or a Modbus TCP host gone (its connections dropped, no listener)."""
        server = self._servers.pop(bus_name)
        await server.stop()
        if bus_name in self.lines:
            for name in self.lines[bus_name].drops:
                self.room_nodes[name].detach()  # the node runs on, its cable unplugged
            await self.lines[bus_name].stop()

    async def stop(self) -> None:
        """Close every server and connection, stop the RS-485 lines, remove the socket.

        Idempotent."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        servers, self._servers = self._servers, {}
        for server in servers.values():
            await server.stop()
        for node in self.room_nodes.values():
            await node.stop()
        for line in self.lines.values():
            await line.stop()
        if self.heater is not None and self.heater_line is not None:
            await self.heater.stop()
            await self.heater_line.stop()
        if self.gps is not None and self.gps_line is not None:
            await self.gps.stop()
            await self.gps_line.stop()
        if self.gpio is not None:
            await self.gpio.stop()

    async def __aenter__(self) -> SimulatedVan:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- time -------------------------------------------------------------------------------

    def advance(self, sim_seconds: float) -> None:
        """Run the plant ``sim_seconds`` of simulated time at once and update the registers."""
        self._sync(sim_seconds)

    async def _run_plant(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick_s)
            now = loop.time()
            try:
                self._sync((now - last) * self.speed)
            except Exception:  # a model bug must not stop the buses answering
                log.exception("plant tick failed")
            last = now

    def _sync(self, dt_s: float = 0.0) -> None:
        """Client's registers and GPIO -> plant; advance the plant; plant -> registers, GPIO."""
        for dev in self.devices.values():
            dev.apply(self.plant)
        self._gpio_to_plant()
        self._heater_to_plant()
        if dt_s > 0:
            self.plant.step(dt_s)
        else:
            self.plant.settle()
        self._plant_to_gpio()
        for dev in self.devices.values():
            dev.refresh(self.plant)

    def _gpio_to_plant(self) -> None:
        """The supervisor's generator start output and the ignition input reach the plant;
        the router's supply relay powers the router (never reported: on, its safe state)."""
        if self.gpio is None:
            return
        if self._router_power is not None:
            device, line = self._router_power
            self.devices[device].powered = self.gpio.output_active(line) is not False
        if self._ignition_lines:
            self.plant.ignition = any(self.gpio.input_active(n) for n in self._ignition_lines)
        if self._gen_start_line is not None:
            # never reported (no supervisor yet) is "not running"
            self.plant.generator.run_requested = bool(self.gpio.output_active(self._gen_start_line))

    def _heater_to_plant(self) -> None:
        """The heater's output and draw reach the zones and the battery while its power
        circuit is on; it breathes the air of its first zone and sees the battery's volts."""
        heater, gear = self.heater, self.plant.climate
        if heater is None:
            return
        powered = self._heater_power is None or self.plant.switches.get(self._heater_power,
                                                                        False)
        heater.supply_v = self.plant.battery.voltage if powered else 0.0
        heater.intake_c = round(self.plant.thermal.temperature(gear.heater_zones[0]))
        gear.heater_heat_w = heater.heat_w if powered else 0.0
        gear.heater_current_a = heater.current_a if powered else 0.0

    def _plant_to_gpio(self) -> None:
        """The generator's running contact reaches the supervisor."""
        if self.gpio is not None and self._gen_running_line is not None:
            self.gpio.set_input(self._gen_running_line, self.plant.generator.running_signal)

    def _on_write(self, _device: ServedDevice) -> None:
        # A relay switched or a setting changed: the loads follow at once, not a tick later.
        self._sync()

    def _on_gpio_output(self, _line: str, _active: bool) -> None:
        # The generator start line changed: the generator reacts at once, not a tick later.
        try:
            self._sync()
        except Exception:  # a model bug must not drop the supervisor's GPIO connection
            log.exception("plant update after a GPIO output change failed")

    # -- inspection -------------------------------------------------------------------------

    def relay(self, device_id: str, register: str) -> bool:
        """State of a coil as the client left it."""
        return bool(self._device(device_id).value(register))

    def writes_to(self, device_id: str, register: str) -> list[tuple[int, ...]]:
        """The raw words of every write the client made to ``register``, oldest first."""
        dev = self._device(device_id)
        reg = dev.register(register)
        return [words for table, address, words in dev.written
                if table == reg.table and address == reg.address]

    def served_value(self, device_id: str, register: str) -> float | int | bool | str | None:
        """Decoded value the device serves now in ``register``."""
        return self._device(device_id).value(register)

    def override(self, device_id: str, register: str, value: Value | None) -> None:
        """Pin a served register to ``value`` whatever the plant does; None releases it."""
        self._device(device_id).override(register, value)

    def room_node(self, device_id: str) -> RoomNodeHost:
        """The room node ``device_id``, running its firmware: hands on its inputs, eyes on
        its outputs and registers."""
        try:
            return self.room_nodes[device_id]
        except KeyError:
            raise KeyError(f"no room node {device_id!r} in the vehicle config") from None

    def rtu_sim_side(self, bus: str) -> Path:
        """The simulator's end of the pty pair of RTU bus ``bus``."""
        return self._line(bus).sim_side

    # -- GPIO -------------------------------------------------------------------------------

    def set_input(self, line: str, active: bool) -> None:
        """Drive GPIO input ``line`` to the logical state ``active`` (the plant follows now).

        The generator's running input is the plant's to drive: a level set here lasts only
        until the next tick.
        """
        self._gpio().set_input(line, active)
        self._sync()

    def output_active(self, line: str) -> bool | None:
        """Logical state of GPIO output ``line`` as last reported by the supervisor."""
        return self._gpio().output_active(line)

    # -- faults -----------------------------------------------------------------------------

    def set_silent(self, device_id: str, silent: bool) -> None:
        """Make the device stop answering entirely (or answer again)."""
        self._device(device_id).silent = silent

    def set_exception(self, device_id: str, code: int | None) -> None:
        """Answer every request to the device with Modbus exception ``code`` (None: stop)."""
        self._device(device_id).exception = None if code is None else ExceptionCode(code)

    def inject_garbage(self, bus: str, nbytes: int = 64) -> None:
        """Write ``nbytes`` random bytes on RTU line ``bus`` towards the supervisor."""
        self._line(bus).inject(self._rng.randbytes(nbytes))

    def interfere(self, bus: str, nbytes: int = 64) -> None:
        """``nbytes`` random bytes on the whole of RTU line ``bus``: the supervisor and every
        slave that listens on its own drop (a room node) receive them."""
        self._line(bus).inject_all(self._rng.randbytes(nbytes))

    def corrupt_answers(self, bus: str, frames: int) -> None:
        """Noise on RTU line ``bus`` damages the next ``frames`` answers (their CRC fails)."""
        self._line(bus).corrupt(frames)

    # -- helpers ----------------------------------------------------------------------------

    def _device(self, device_id: str) -> ServedDevice:
        try:
            return self.devices[device_id]
        except KeyError:
            raise KeyError(f"no device {device_id!r} in the vehicle config") from None

    def _line(self, bus: str) -> RtuLine:
        try:
            return self.lines[bus]
        except KeyError:
            raise KeyError(f"no RTU bus {bus!r} in the vehicle config") from None

    def _gpio(self) -> GpioLink:
        if self.gpio is None:
            raise RuntimeError("the config's GPIO backend is not 'sim': no GPIO link")
        return self.gpio

    def describe(self) -> str:
        """One line saying what is served where."""
        text = f"serving {len(self.devices)} devices on {len(self.config.bus)} buses"
        if self.room_nodes:
            text += f", {len(self.room_nodes)} room node(s) running their firmware"
        for bus in self.config.bus:
            where = f"{bus.host}:{bus.port}" if isinstance(bus, TcpBus) else bus.port
            text += f"; {bus.name} {where}"
        if self.gpio is not None:
            text += f"; GPIO socket {self.gpio.socket_path}"
        return text + f"; simulated clock {self.plant.clock:%H:%M} at x{self.speed:g}"


def _rtu_bus(config: SupervisorConfig, dev: DeviceConfig) -> RtuBus:
    """The RS-485 bus a node hangs on (a node on a TCP bus is a config error)."""
    bus = config.bus_by_name(dev.bus)
    if not isinstance(bus, RtuBus):
        raise ValueError(f"device {dev.id}: a room node needs an RS-485 (rtu) bus")
    return bus


AC_SWITCH = "climate_ac"  # the plant's names of the climate relays' loads
VENTILATION_SWITCH = "climate_ventilation"
VENTILATION_A = 1.5


def _climate_loads(climate: ClimateConfig) -> list[Circuit]:
    """The A/C and ventilation relays as the plant's loads (they are no power circuits)."""
    loads = []
    if climate.air_conditioner is not None:
        ac = climate.air_conditioner
        loads.append(Circuit(name=AC_SWITCH, device=ac.device, output=ac.output, kind="ac",
                             nominal_current_a=ac.current_ac_a))
    if climate.ventilation is not None:
        vent = climate.ventilation
        loads.append(Circuit(name=VENTILATION_SWITCH, device=vent.device, output=vent.output,
                             nominal_current_a=VENTILATION_A))
    return loads


def _climate_gear(climate: ClimateConfig) -> ClimateGear:
    """Which zones the heater and the A/C serve and where each sensor hangs (a zone the
    thermal model does not have is its consultation room)."""

    def modelled(zone: str) -> str:
        return zone if zone in (CREW, ROOM) else ROOM

    zone_of_sensor = {zone.sensor: modelled(zone.name) for zone in climate.zone}
    sensors = {s.device: OUTSIDE if s.name == climate.outside_sensor
               else zone_of_sensor.get(s.name, ROOM) for s in climate.sensor}
    heater, ac = climate.heater, climate.air_conditioner
    return ClimateGear(
        heater_zones=tuple(modelled(z) for z in heater.zones) if heater is not None else (),
        ac_switch=AC_SWITCH if ac is not None else "",
        ac_zones=tuple(modelled(z) for z in ac.zones) if ac is not None else (),
        sensors=sensors)
