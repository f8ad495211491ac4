"""Power subsystem, first slice: battery and AC source monitoring, low-battery alarms and
switchable load circuits on the relay board.

The register-to-point tables are data; the rules are plain functions of points and time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from drivers.errors import WriteError
from drivers.register_codec import Value
from supervisor.alarms import AlarmDef, AlarmManager
from supervisor.commands import ActionSpec, ArgSpec, CommandFailed, CommandRouter
from supervisor.config import PowerConfig, VehicleConfig
from supervisor.device_points import DevicePoints, Transform
from supervisor.points import PointDef, PointStore, PointType

Writer = Callable[[str, str, Value], Awaitable[Value | None]]

AC_SOURCES = {0: "unknown", 1: "grid", 2: "generator", 3: "shore", 240: "none"}
INVERTER_MODES = {1: "charger_only", 2: "inverter_only", 3: "on", 4: "off"}
INVERTER_STATES = {
    0: "off",
    1: "low_power",
    2: "fault",
    3: "bulk",
    4: "absorption",
    5: "float",
    6: "storage",
    7: "equalize",
    8: "passthru",
    9: "inverting",
    10: "power_assist",
    11: "power_supply",
    252: "external_control",
}
CREW_ROLES = frozenset({"crew", "technician", "hq"})


def _enum(table: dict[int, str]) -> Transform:
    return lambda v: table.get(int(v), f"code_{int(v)}")


FAST, SLOW = 3.5, 15.0  # max ages (s) after which a point is stale without fresh readings

# (role in power config, register, point, type, unit, deadband, max age, enum table)
BINDINGS: list[tuple[str, str, str, PointType, str, float, float, dict[int, str] | None]] = [
    ("battery_monitor", "voltage", "power/battery/voltage", "number", "V", 0.01, FAST, None),
    ("battery_monitor", "current", "power/battery/current", "number", "A", 0.1, FAST, None),
    ("battery_monitor", "power", "power/battery/power", "number", "W", 5, FAST, None),
    ("battery_monitor", "soc", "power/battery/soc", "number", "%", 0.1, FAST, None),
    ("battery_monitor", "time_to_go", "power/battery/time_to_go", "number", "s", 60, SLOW, None),
    (
        "battery_monitor",
        "temperature",
        "power/battery/temperature",
        "number",
        "degC",
        0.2,
        SLOW,
        None,
    ),
    ("system", "active_input_source", "power/ac/source", "enum", "", 0, FAST, AC_SOURCES),
    ("system", "ac_consumption_l1", "power/ac/consumption", "number", "W", 10, FAST, None),
    ("inverter", "mode", "power/inverter/mode", "enum", "", 0, SLOW, INVERTER_MODES),
    ("inverter", "state", "power/inverter/state", "enum", "", 0, FAST, INVERTER_STATES),
    (
        "inverter",
        "ac_in_current_limit",
        "power/inverter/ac_in_current_limit",
        "number",
        "A",
        0.1,
        SLOW,
        None,
    ),
]

ALARMS = [
    AlarmDef(
        "power/low_soc",
        "warning",
        "Niski poziom naładowania akumulatora",
        "Battery state of charge low",
    ),
    AlarmDef(
        "power/critical_soc",
        "critical",
        "Krytycznie niski poziom naładowania akumulatora",
        "Battery state of charge critically low",
        latching=True,
    ),
    AlarmDef(
        "power/low_voltage",
        "critical",
        "Niskie napięcie akumulatora",
        "Battery voltage low",
        latching=True,
    ),
]


class PowerSubsystem:
    def __init__(
        self,
        cfg: PowerConfig,
        vehicle: VehicleConfig,
        store: PointStore,
        devices: DevicePoints,
        alarms: AlarmManager,
        write: Writer,
        wall: Callable[[], float],
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.alarms = alarms
        self._write = write
        self._wall = wall
        self.low_voltage = cfg.low_voltage_per_12v * vehicle.battery_nominal_voltage / 12
        self._low_voltage_since: float | None = None
        for role, reg, pid, ptype, unit, deadband, max_age, table in BINDINGS:
            device = getattr(cfg, role)
            if device is None:
                continue
            enum = tuple(table.values()) if table else ()
            store.define(
                PointDef(
                    pid,
                    ptype,
                    unit,
                    deadband=deadband,
                    max_age_s=max_age,
                    enum=enum,
                )
            )
            devices.bind(device, reg, pid, _enum(table) if table else None)
        self.circuits = {c.name: c for c in cfg.circuit}
        for c in cfg.circuit:
            store.define(
                PointDef(
                    f"power/circuit/{c.name}", "bool", description=c.label or c.name, max_age_s=FAST
                )
            )
            devices.bind(c.device, c.output, f"power/circuit/{c.name}")
        for adef in ALARMS:
            alarms.define(adef)

    def actions(self, router: CommandRouter) -> None:
        if not self.circuits:
            return
        router.register(
            ActionSpec(
                "power/circuit",
                self._circuit_action,
                CREW_ROLES,
                {"circuit": ArgSpec("enum", enum=tuple(self.circuits)), "on": ArgSpec("bool")},
                "Switch a load circuit on or off (confirmed by reading the relay back)",
            )
        )

    async def _circuit_action(self, args: dict[str, Any]) -> str:
        circuit = self.circuits[args["circuit"]]
        wanted: bool = args["on"]
        back = await self._write_checked(circuit.device, circuit.output, wanted)
        if back is not wanted:
            raise CommandFailed(
                "not_confirmed", f"{circuit.name}: relay reads {back} after writing {wanted}"
            )
        return f"{circuit.name} {'on' if wanted else 'off'}"

    async def _write_checked(self, device: str, register: str, value: Value) -> Value | None:
        try:
            return await self._write(device, register, value)
        except WriteError as exc:
            raise CommandFailed(exc.code, str(exc)) from exc

    def safe_outputs(self) -> list[tuple[str, str, bool]]:
        """(device, register, safe value) of every output this subsystem owns."""
        return [(c.device, c.output, c.safe_state) for c in self.cfg.circuit]

    def evaluate(self, now: float) -> None:
        """Apply the alarm rules to the current points; called on changes and every second."""
        soc = self.store.good("power/battery/soc")
        if isinstance(soc, int | float):
            hyst = self.cfg.soc_hysteresis
            for aid, limit in (
                ("power/low_soc", self.cfg.low_soc_warning),
                ("power/critical_soc", self.cfg.low_soc_critical),
            ):
                state = self.alarms.states.get(aid)
                active = state is not None and state.active
                self.alarms.set(
                    aid, soc < limit or (active and soc < limit + hyst), now, f"SOC {soc:.0f} %"
                )
        volts = self.store.good("power/battery/voltage")
        if isinstance(volts, int | float):
            if volts < self.low_voltage:
                if self._low_voltage_since is None:
                    self._low_voltage_since = now
                held = now - self._low_voltage_since >= self.cfg.low_voltage_delay_s
                if held:
                    self.alarms.set("power/low_voltage", True, now, f"{volts:.2f} V")
            else:
                self._low_voltage_since = None
                self.alarms.set("power/low_voltage", False, now)
