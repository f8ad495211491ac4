"""What the power subsystem reads and raises: register-to-point bindings and alarms (data).

Types, units, enum meanings and maximum ages come from the device profiles and poll periods;
only what is the power subsystem's own choice is here: which point shows which register,
its deadband on MQTT and the decimals worth showing.
"""

from __future__ import annotations

from supervisor.core.alarms import AlarmDef

# fmt: off
# (device role in [power], register, point, deadband, precision)
BINDINGS: list[tuple[str, str, str, float, int]] = [
    ("battery_monitor", "voltage", "power/battery/voltage", 0.01, 2),
    ("battery_monitor", "current", "power/battery/current", 0.1, 1),
    ("battery_monitor", "power", "power/battery/power", 5, 0),
    ("battery_monitor", "soc", "power/battery/soc", 0.1, 0),
    ("battery_monitor", "time_to_go", "power/battery/time_to_go", 60, 0),
    ("battery_monitor", "temperature", "power/battery/temperature", 0.2, 1),
    ("system", "active_input_source", "power/ac/source", 0, 0),
    ("system", "ac_consumption_l1", "power/ac/consumption", 10, 0),
    ("inverter", "mode", "power/inverter/mode", 0, 0),
    ("inverter", "state", "power/inverter/state", 0, 0),
    ("inverter", "ac_in_current_limit", "power/inverter/ac_in_current_limit", 0.1, 1),
    ("inverter", "ac_in_current", "power/inverter/ac_in_current", 0.1, 1),
    ("inverter", "ac_out_current", "power/inverter/ac_out_current", 0.1, 1),
    ("inverter", "ac_out_power", "power/inverter/ac_out_power", 10, 0),
    ("inverter", "overload_alarm", "power/inverter/overload", 0, 0),
    ("inverter", "high_temperature_alarm", "power/inverter/high_temperature", 0, 0),
    ("solar", "pv_power", "power/solar/power", 5, 0),
    ("solar", "battery_current", "power/solar/current", 0.1, 1),
    ("solar", "state", "power/solar/state", 0, 0),
    ("solar", "yield_today", "power/solar/yield_today", 0.01, 2),
    ("ac_meter", "voltage", "power/ac/input_voltage", 1, 0),
    ("ac_meter", "current", "power/ac/input_current", 0.1, 1),
    ("ac_meter", "active_power", "power/ac/input_power", 10, 0),
    ("ac_meter", "import_active_energy", "power/ac/input_energy", 0.01, 2),
]

ALARMS = [
    AlarmDef("power/low_soc", "warning", "Niski poziom naładowania akumulatora",
             "Battery state of charge low"),
    AlarmDef("power/critical_soc", "critical", "Krytycznie niski poziom naładowania akumulatora",
             "Battery state of charge critically low", latching=True),
    AlarmDef("power/low_voltage", "critical", "Niskie napięcie akumulatora",
             "Battery voltage low", latching=True),
    AlarmDef("power/high_battery_temperature", "critical", "Wysoka temperatura akumulatora",
             "Battery temperature high", latching=True),
    AlarmDef("power/inverter_overload", "warning", "Przeciążenie falownika", "Inverter overload"),
    AlarmDef("power/inverter_high_temperature", "warning", "Wysoka temperatura falownika",
             "Inverter temperature high"),
    AlarmDef("power/generator_failed", "critical", "Agregat nie uruchomił się",
             "Generator failed to start", latching=True),
    AlarmDef("power/shore_lost", "warning", "Zanik zasilania z przyłącza zewnętrznego",
             "Shore power lost", latching=True),
    AlarmDef("power/load_shed", "warning", "Odłączono odbiorniki, aby oszczędzać akumulator",
             "Loads shed to save the battery"),
    AlarmDef("power/shed_override", "info", "Odłączanie odbiorników wstrzymane przez załogę",
             "Load shedding suspended by the crew"),
]
# fmt: on
