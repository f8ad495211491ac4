"""Home Assistant MQTT discovery (supervisor/interfaces/ha_discovery.py).

1. The demo van (config/demo.toml, its subsystems built as the supervisor builds them): every
   config checked offline against HA's MQTT discovery rules (topic shape and object ids as HA
   matches them, required keys per component, unique ids, valid topic names, units against
   device classes, state classes, enum options), and every command HA would send rendered
   (the few template expressions the module writes) and run through a command router with the
   van's own action specs: done.
2. Against a real Mosquitto, in a session shaped like the MQTT bridge's (one client,
   discovery's task in its TaskGroup, every message given to ``route`` first): retained at
   start, published again at HA's birth, garbage on the status topic ignored with the task
   still working, an entity gone cleared (within a run and across a restart), a flood of
   births costing one publication.
3. Properties: any meta (ids within the project's patterns or not, any units, enum values,
   arguments, roles) gives valid configs or a reason to skip, never an exception; ``route``
   takes any message.

No test sleeps to wait: each waits for its condition with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from testsupport import DEADLINE_S, FUZZ, Broker, require_tool, wait_until

from supervisor.core.alarms import AlarmDef, AlarmManager
from supervisor.core.app import Supervisor
from supervisor.core.command_payload import MAX_INT, decode
from supervisor.core.commands import (
    EVERYONE,
    ON_BOARD,
    ROLE_NAMES,
    ActionSpec,
    ArgSpec,
    CommandRouter,
)
from supervisor.core.config import (
    VEHICLE_ID,
    HomeAssistantConfig,
    SupervisorConfig,
    VehicleConfig,
)
from supervisor.core.device_points import DevicePoints
from supervisor.core.points import PointDef, PointStore
from supervisor.core.storage import Storage
from supervisor.core.van_state import VanState
from supervisor.interfaces import ha_discovery as had
from supervisor.interfaces.ha_discovery import HaDiscovery, discovery_configs, node_id
from supervisor.registry import SUBSYSTEMS, load_config

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"
HOST = "127.0.0.1"
HA = "homeassistant"
NOW = 1_800_000_000.125

# ---- HA's discovery rules, as far as they can be checked offline ---------------------------

COMPONENTS = ("sensor", "binary_sensor", "switch", "button", "select", "number", "text",
              "light")
COMMON_KEYS = {"name", "unique_id", "device", "origin", "availability", "availability_mode",
               "qos"}
COMPONENT_KEYS: dict[str, set[str]] = {
    "sensor": {"state_topic", "value_template", "unit_of_measurement", "device_class",
               "state_class", "options", "suggested_display_precision"},
    "binary_sensor": {"state_topic", "value_template", "payload_on", "payload_off",
                      "device_class"},
    "switch": {"command_topic", "command_template", "retain", "state_topic", "value_template",
               "payload_on", "payload_off", "state_on", "state_off"},
    "button": {"command_topic", "command_template", "retain"},
    "select": {"command_topic", "command_template", "retain", "options", "state_topic",
               "value_template"},
    "number": {"command_topic", "command_template", "retain", "state_topic", "value_template",
               "min", "max", "step", "mode", "unit_of_measurement", "device_class"},
    "text": {"command_topic", "command_template", "retain", "state_topic", "value_template",
             "min", "max", "mode"},
    # the template schema: the only one whose commands (off included) are all templates
    "light": {"schema", "command_topic", "command_on_template", "command_off_template",
              "retain", "state_topic", "state_template", "brightness_template"},
}
REQUIRED: dict[str, set[str]] = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "switch": {"command_topic"},
    "button": {"command_topic"},
    "select": {"command_topic", "options"},
    "number": {"command_topic"},
    "text": {"command_topic"},
    "light": {"schema", "command_topic", "command_on_template", "command_off_template"},
}
# the units HA accepts with each sensor device class used here (None: no unit)
HA_UNITS: dict[str, set[str | None]] = {
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW"},
    "energy": {"Wh", "kWh", "MWh", "GWh", "TWh", "mWh", "J", "kJ", "MJ", "GJ"},
    "temperature": {"°C", "°F", "K"},
    "battery": {"%"},
    "humidity": {"%"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "duration": {"d", "h", "min", "s", "ms", "µs"},
    "signal_strength": {"dB", "dBm"},
    "speed": {"km/h", "m/s", "mph", "kn", "ft/s"},
    "data_size": {"bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "KiB", "MiB",
                  "GiB"},
    "timestamp": {None},
    "enum": {None},
}
ANY_STATE_CLASS = {"measurement", "total", "total_increasing"}
HA_STATE_CLASSES: dict[str, set[str]] = {
    **{dc: {"measurement"} for dc in ("voltage", "current", "power", "temperature", "battery",
                                      "humidity", "frequency", "signal_strength", "speed")},
    "energy": {"total", "total_increasing"},
    "duration": ANY_STATE_CLASS,
    "data_size": ANY_STATE_CLASS,
    "timestamp": set(),
    "enum": set(),
}
BINARY_CLASSES = {"problem", "safety"}
# a number's device classes (HA's NumberDeviceClass) among those used here, same units
NUMBER_CLASSES = HA_UNITS.keys() - {"timestamp", "enum"}
NUMBER_MODES = {"auto", "box", "slider"}
HA_MIN_STEP = 0.001
HA_MAX_TEXT = 255  # HA's longest state
VALUE_TEMPLATES = {had.VALUE, had.CHOICE, had.ON_OFF, had.ALARM_ON, had.EPOCH}
# the light's brightness from its level point, with the level argument's max (as JSON)
LIGHT_BRIGHTNESS = re.compile(re.escape(had.LIGHT_BRIGHTNESS).replace("TOP", r"(?P<top>\S+)"))
SECRETS = ("pin", "password", "secret", "token", "key")
# HA's own matcher of discovery topics (below the prefix)
HA_TOPIC = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)"
                      r"?(?P<object_id>[a-zA-Z0-9_-]+)/config")


def topic_name_ok(topic: object) -> bool:
    """A topic one may publish to (and subscribe to exactly): no wildcards, no empty level."""
    return (isinstance(topic, str) and 0 < len(topic.encode()) <= 65535
            and not set(topic) & {"+", "#", "\0"} and "" not in topic.split("/"))


@dataclass(frozen=True)
class Press:
    """One command HA sends: the template it renders with ``value`` (a button's press, a
    switch's ON/OFF, a select's option, a number, a text) and, for a light, ``brightness``
    (0-255; None: not given, as when a light is switched on from its toggle)."""

    template: str
    value: object = None
    brightness: int | None = None


# a light's level from HA's brightness (TOP: the level's max)
LIGHT_LEVEL = re.compile(re.escape(had.LIGHT_LEVEL.strip("{} ")).replace("TOP", r"(?P<top>\S+)"))


def render_command(press: Press, now: float = NOW) -> str:
    """What HA renders from a command template, for the expressions the module writes (any
    other fails the test: this is no Jinja)."""
    template = press.template
    assert "{%" not in template and "{#" not in template, template

    def expression(match: re.Match[str]) -> str:
        known = {
            "now().timestamp()": repr(now),
            f"now().timestamp() + {had.COMMAND_TTL_S}": repr(now + had.COMMAND_TTL_S),
            "'true' if value == 'ON' else 'false'": "true" if press.value == "ON" else "false",
            "value | to_json": json.dumps(press.value),
        }
        if isinstance(press.value, int | float):  # round then int: a whole number
            known["value | round | int"] = str(round(press.value))
        expr = match.group(1).strip()
        if level := LIGHT_LEVEL.fullmatch(expr):  # Jinja's / is Python's: a float
            brightness = 255 if press.brightness is None else press.brightness
            return str(brightness * json.loads(level["top"]) / 255)
        assert expr in known, f"an expression this test cannot render: {expr!r}"
        return known[expr]

    return re.sub(r"\{\{(.*?)\}\}", expression, template)


TEXTS = ["", 'a "quoted" \\ back\nslash', "zażółć", "x" * HA_MAX_TEXT]


def presses(component: str, config: Mapping[str, Any]) -> list[Press]:
    """Every kind of command HA sends from an entity: a press, on and off, each option, a
    number's ends and middle (an int when whole, as HA sends it), texts short and long, a
    light on from its toggle, at its lowest and highest brightness, and off."""
    if component == "light":
        on, off = config["command_on_template"], config["command_off_template"]
        return [Press(on), Press(on, brightness=1), Press(on, brightness=255), Press(off)]
    template = config["command_template"]
    if component == "button":
        values: list[object] = ["PRESS"]
    elif component == "switch":
        values = [config["payload_on"], config["payload_off"]]
    elif component == "number":
        ends: list[float] = [config["min"], config["max"], (config["min"] + config["max"]) / 2]
        values = [int(v) if float(v).is_integer() else v for v in ends]
    elif component == "text":
        values = list(TEXTS)
    else:
        values = list(config["options"])
    return [Press(template, value) for value in values]


def check_configs(configs: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any],
                  prefix: str = HA, role: str = "crew") -> None:
    """Every config follows HA's discovery rules and the supervisor's topics."""
    vehicle = meta["vehicle"]
    node = node_id(vehicle)
    base = f"mcw/v1/{vehicle}"
    actions = {a["id"]: a for a in meta["actions"]}
    points = {p["id"]: p for p in meta["points"]}
    alarms = {a["id"] for a in meta["alarms"]}
    unique_ids: set[str] = set()
    for topic, config in configs.items():
        assert topic_name_ok(topic), topic
        assert topic.startswith(f"{prefix}/"), topic
        match = HA_TOPIC.fullmatch(topic.removeprefix(f"{prefix}/"))
        assert match is not None and match["node_id"] == node, topic
        component = match["component"]
        assert component in COMPONENTS, topic
        payload = json.dumps(config, allow_nan=False, ensure_ascii=False).encode()
        assert len(payload) < 8192, topic
        assert set(config) <= COMMON_KEYS | COMPONENT_KEYS[component], (topic, set(config))
        assert REQUIRED[component] <= set(config), topic
        assert config["unique_id"] not in unique_ids, topic
        unique_ids.add(config["unique_id"])
        assert config["unique_id"] == f"{node}_{match['object_id']}"
        name = config["name"]
        assert isinstance(name, str) and name.strip() and name.isprintable(), topic
        device = config["device"]
        assert device["identifiers"] == [node] and device["model"] and device["name"]
        assert isinstance(device["sw_version"], str)
        assert config["qos"] == 1 and config["availability_mode"] == "all"
        availability = config["availability"]
        assert availability[0] == {"topic": f"{base}/status",
                                   "value_template": had.STATUS_AVAILABLE}, topic
        for entry in availability[1:]:
            if entry["value_template"] == had.ACK_AVAILABLE:  # an alarm to acknowledge
                assert component == "button", topic
                alarm = entry["topic"].removeprefix(f"{base}/alarm/")
                assert alarm in alarms and f"alarm/{alarm}" not in had.NEVER_IN_HA, topic
            else:
                assert entry["value_template"] == had.QUALITY_AVAILABLE
                assert entry["topic"] == config.get("state_topic"), topic
        for key, value in config.items():
            if key.endswith("_topic"):
                assert topic_name_ok(value), (topic, key, value)
        for entry in availability:
            assert topic_name_ok(entry["topic"]), topic
        if "state_topic" in config:
            if component != "light":
                assert config["value_template"] in VALUE_TEMPLATES, topic
            state = config["state_topic"]
            assert state.startswith((f"{base}/state/", f"{base}/alarm/")), topic
            pid = state.removeprefix(f"{base}/state/")
            if state.startswith(f"{base}/state/"):
                assert pid in points and points[pid].get("local") is not True, topic
                assert f"point/{pid}" not in had.NEVER_IN_HA, topic  # nothing of a duress
            else:
                alarm = state.removeprefix(f"{base}/alarm/")
                assert f"alarm/{alarm}" not in had.NEVER_IN_HA, topic
        if component in ("binary_sensor", "switch"):
            assert (config["payload_on"], config["payload_off"]) == ("ON", "OFF")
            assert config["value_template"] in (had.ON_OFF, had.ALARM_ON)
        if component == "switch":
            assert (config["state_on"], config["state_off"]) == ("ON", "OFF")
        if component == "binary_sensor":
            assert config.get("device_class", "problem") in BINARY_CLASSES, topic
            if config["state_topic"].startswith(f"{base}/alarm/"):
                assert config["device_class"] in BINARY_CLASSES, topic
        if component == "sensor":
            check_sensor(topic, config)
        if component == "select":
            check_options(topic, config["options"])
        if "command_topic" in config:
            action = check_command(topic, component, config, base, role, actions)
            if component in ("number", "text", "light"):  # never optimistic: a point shows it
                shown = config["state_topic"].removeprefix(f"{base}/state/")
                check_setting(topic, component, config, action, points[shown])


def check_sensor(topic: str, config: Mapping[str, Any]) -> None:
    device_class = config.get("device_class")
    unit = config.get("unit_of_measurement")
    state_class = config.get("state_class")
    if device_class is not None:
        assert device_class in HA_UNITS, topic
        assert unit in HA_UNITS[device_class], (topic, device_class, unit)
        assert state_class is None or state_class in HA_STATE_CLASSES[device_class], topic
    assert state_class is None or state_class in ANY_STATE_CLASS, topic
    assert unit is None or (isinstance(unit, str) and unit.strip() and unit.isprintable())
    if "options" in config or device_class == "enum":
        assert device_class == "enum" and unit is None and state_class is None, topic
        check_options(topic, config["options"])
    precision = config.get("suggested_display_precision")
    assert precision is None or (type(precision) is int and precision >= 0), topic


def check_options(topic: str, options: object) -> None:
    assert isinstance(options, list) and options, topic
    assert all(isinstance(o, str) and o and len(o) <= 255 for o in options), topic
    assert len(set(options)) == len(options), topic


def check_command(topic: str, component: str, config: Mapping[str, Any], base: str, role: str,
                  actions: Mapping[str, Any]) -> Mapping[str, Any]:
    """Commands go to the role's own subtree, for an action that role may run (never one of
    ``NEVER_IN_HA``), never retained, and what HA renders is a command the supervisor
    accepts: the action."""
    command_topic = config["command_topic"]
    assert command_topic.startswith(f"{base}/cmd/{role}/"), topic
    aid = command_topic.removeprefix(f"{base}/cmd/{role}/")
    action = actions[aid]
    assert role in action["roles"] and config["retain"] is False, topic
    assert f"action/{aid}" not in had.NEVER_IN_HA, topic
    assert isinstance(action, Mapping)
    for press in presses(component, config):
        cid, body = decode(render_command(press))
        assert cid.startswith("ha-") and set(body) == {"id", "expires", "args"}, topic
        assert body["expires"] == NOW + had.COMMAND_TTL_S
        args = body["args"]
        for name, spec in action["args"].items():
            assert name in args or spec.get("required", True) is False, (topic, name)
        for name, arg in args.items():
            check_arg(topic, name, action["args"][name], arg)
    return action


def check_arg(topic: str, name: str, spec: Mapping[str, Any], arg: object) -> None:
    """``arg`` is what the router takes for ``spec`` (as ``CommandRouter`` checks it)."""
    kind = spec["type"]
    if kind == "bool":
        assert isinstance(arg, bool), (topic, name)
    elif kind == "enum":
        assert arg in spec["enum"], (topic, name, arg)
    elif kind == "string":
        assert isinstance(arg, str), (topic, name)
    else:
        assert kind in ("number", "integer"), (topic, name, kind)
        assert isinstance(arg, int | float) and not isinstance(arg, bool), (topic, name, arg)
        assert kind == "number" or float(arg).is_integer(), (topic, name, arg)
        assert spec["min"] <= arg <= spec["max"], (topic, name, arg)


def check_setting(topic: str, component: str, config: Mapping[str, Any],
                  action: Mapping[str, Any], point: Mapping[str, Any]) -> None:
    """A number, text or light shows the van's value (a point of the argument's type) and
    offers only what the argument takes."""
    arg_name, spec = setting(action, component)
    if component == "number":
        assert point["type"] in ("number", "integer") and spec["type"] in ("number", "integer")
        low, high, step = config["min"], config["max"], config["step"]
        # the range a command may carry; an integer's, whole
        least, most = max(spec["min"], -MAX_INT), min(spec["max"], MAX_INT)
        if spec["type"] == "integer":
            assert (low, high, step) == (math.ceil(least), math.floor(most), 1), topic
        else:
            assert (low, high) == (least, most), topic
        assert low < high and step >= HA_MIN_STEP and config["mode"] in NUMBER_MODES, topic
        device_class = config.get("device_class")
        assert device_class is None or device_class in NUMBER_CLASSES, topic
        if device_class is not None:
            assert config.get("unit_of_measurement") in HA_UNITS[device_class], topic
    elif component == "text":
        assert point["type"] == "string" and spec["type"] == "string", topic
        assert 0 <= config["min"] <= config["max"] <= HA_MAX_TEXT, topic
        assert config["mode"] in ("text", "password"), topic
        words = re.split(r"[/_]", f"{action['id']}/{arg_name}")
        assert not set(words) & set(SECRETS), topic  # never a secret
    else:
        assert config["schema"] == "template" and action["id"].startswith("lighting/"), topic
        assert point["type"] in ("number", "integer") and spec["type"] == "number"
        assert spec["min"] == 0 < spec["max"], topic
        assert config["state_template"] == had.LIGHT_STATE, topic
        brightness = LIGHT_BRIGHTNESS.fullmatch(config["brightness_template"])
        assert brightness is not None, topic
        assert json.loads(brightness["top"]) == min(spec["max"], MAX_INT), topic
        assert "mode" not in config, topic


def setting(action: Mapping[str, Any], component: str) -> tuple[str, Mapping[str, Any]]:
    """The argument a number, text or light sets: the one that is not a choice (an enum)."""
    required = {name: spec for name, spec in action["args"].items()
                if spec.get("required", True) is not False}
    values = [(name, spec) for name, spec in required.items() if spec["type"] != "enum"]
    assert len(values) == 1 and len(required) <= 2, (action["id"], component)
    return values[0]


def account(result: had.Discovery, meta: Mapping[str, Any]) -> None:
    """Every point, alarm and action is shown by an entity or skipped with a reason."""
    shown = set()
    for topic in result.configs:
        kind, _, rest = topic.split("/")[3].partition("-")
        shown.add(f"{kind}/{rest.split('--')[0].replace('-', '/')}")
    skipped = {what for what, _ in result.skipped}
    assert all(isinstance(why, str) and why for _, why in result.skipped)
    for kind, key in (("point", "points"), ("alarm", "alarms"), ("action", "actions")):
        for item in meta[key]:
            what = f"{kind}/{item['id']}" if isinstance(item["id"], str) else f"{kind} (no id)"
            assert what in shown or what in skipped, what


# ---- 1. the demo van -----------------------------------------------------------------------


@dataclass
class Demo:
    meta: dict[str, Any]
    specs: dict[str, ActionSpec]
    grants: Mapping[Any, tuple[str, ...]]


async def build_demo(run_dir: Path) -> Demo:
    """The demo van's meta and action specs, from its subsystems built as the supervisor
    builds them (nothing runs: no bus, no GPIO)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MCW_RUN_DIR", str(run_dir))
        cfg = load_config(DEMO)
    sup = Supervisor(cfg, SUBSYSTEMS)
    try:
        return Demo(sup.van.meta(), dict(sup.van.router.actions), cfg.access.grant)
    finally:
        sup.storage.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return asyncio.run(build_demo(tmp_path_factory.mktemp("demo")))


def test_every_demo_config_follows_the_discovery_rules(demo: Demo) -> None:
    result = discovery_configs(demo.meta)
    check_configs(result.configs, demo.meta)
    account(result, demo.meta)
    assert len(result.configs) > 150  # nearly every point, every alarm, the crew's actions


Objects = dict[str, tuple[str, dict[str, Any]]]


def objects(configs: Mapping[str, dict[str, Any]]) -> Objects:
    """The configs by object id, each with its component."""
    return {topic.split("/")[3]: (topic.split("/")[1], c) for topic, c in configs.items()}


def demo_entity(by_object: Objects, object_id: str, component: str) -> Mapping[str, Any]:
    got_component, config = by_object[object_id]
    assert got_component == component, object_id
    return config


def demo_arg(demo: Demo, action: str, arg: str) -> Mapping[str, Any]:
    """An argument of one of the demo van's actions, as its meta describes it."""
    spec = next(a for a in demo.meta["actions"] if a["id"] == action)["args"][arg]
    assert isinstance(spec, Mapping)
    return spec


def test_the_demo_van_in_home_assistant(demo: Demo) -> None:
    by_object = objects(discovery_configs(demo.meta).configs)

    def entity(object_id: str, component: str) -> Mapping[str, Any]:
        return demo_entity(by_object, object_id, component)

    def classes(object_id: str) -> tuple[object, object, object]:
        c = entity(object_id, "sensor")
        return c.get("unit_of_measurement"), c.get("device_class"), c.get("state_class")

    assert classes("point-power-battery-voltage") == ("V", "voltage", "measurement")
    assert classes("point-power-battery-current") == ("A", "current", "measurement")
    assert classes("point-power-battery-power") == ("W", "power", "measurement")
    assert classes("point-power-battery-soc") == ("%", "battery", "measurement")
    assert classes("point-climate-room-humidity") == ("%", "humidity", "measurement")
    assert classes("point-power-battery-temperature") == ("°C", "temperature", "measurement")
    assert classes("point-power-ac-input_energy") == ("kWh", "energy", "total_increasing")
    assert classes("point-power-runtime") == ("s", "duration", "measurement")
    assert classes("point-comms-lte-signal_dbm") == ("dBm", "signal_strength", "measurement")
    assert classes("point-room-walk_test-last_at") == (None, "timestamp", None)  # epoch s
    assert classes("point-comms-position-lat") == ("°", None, None)
    assert classes("point-climate-preheat-start_ah") == ("Ah", None, "measurement")
    enum = entity("point-power-inverter-state", "sensor")
    assert enum["device_class"] == "enum" and "float" in enum["options"]
    assert entity("point-io-side_door", "binary_sensor")["value_template"] == had.ON_OFF
    assert entity("alarm-climate-co", "binary_sensor")["device_class"] == "safety"
    assert entity("alarm-power-low_soc", "binary_sensor")["device_class"] == "problem"
    # the crew's circuits: one switch each, shown by the circuit's read-back point
    for circuit in demo_arg(demo, "power/circuit", "circuit")["enum"]:
        switch = entity(f"action-power-circuit--{circuit}", "switch")
        assert switch["state_topic"] == f"mcw/v1/demo/state/power/circuit/{circuit}"
        assert switch["command_topic"] == "mcw/v1/demo/cmd/crew/power/circuit"
    assert entity("action-power-generator-auto", "switch")["state_topic"].endswith(
        "/state/power/generator/auto")
    mode = entity("action-power-inverter-mode", "select")
    assert mode["state_topic"].endswith("/state/power/inverter/mode")
    assert "state_topic" not in entity("action-power-generator", "select")  # start/stop
    entity("action-system-republish", "button")
    # nothing kept on board, nothing that would show a silent panic, no action HA must not run
    for absent in ("point-comms-position-exact_lat", "point-room-session-since",
                   "point-room-panic-active", "point-room-panic-source", "alarm-room-panic",
                   "action-room-duress", "action-room-panic_ack",
                   "action-climate-heater_reenable", "action-system-events_resend",
                   "action-comms-pong"):
        assert absent not in by_object, absent


def test_the_demo_vans_settings_are_numbers_and_lights(demo: Demo) -> None:
    """What the crew sets with a number is a HA number with the router's range and the unit
    of the point that shows it; each light is a HA light; each zone's mode and preset a
    select."""
    by_object = objects(discovery_configs(demo.meta).configs)

    def entity(object_id: str, component: str) -> Mapping[str, Any]:
        return demo_entity(by_object, object_id, component)

    limit = entity("action-power-shore-current_limit", "number")
    assert (limit["min"], limit["max"], limit["step"]) == (3, 32, 0.1)  # the config's range
    assert (limit["unit_of_measurement"], limit["device_class"]) == ("A", "current")
    assert limit["state_topic"] == "mcw/v1/demo/state/power/shore/current_limit"
    assert limit["mode"] == "box"  # 290 steps: too many for a slider
    for zone in demo_arg(demo, "climate/setpoint", "zone")["enum"]:
        setpoint = entity(f"action-climate-setpoint--{zone}", "number")
        assert (setpoint["min"], setpoint["max"], setpoint["step"]) == (7, 35, 0.1)
        assert (setpoint["unit_of_measurement"], setpoint["device_class"]) == (
            "°C", "temperature")
        assert setpoint["state_topic"] == f"mcw/v1/demo/state/climate/{zone}/setpoint"
        for what in ("mode", "preset"):
            select = entity(f"action-climate-{what}--{zone}", "select")
            assert select["options"] == demo_arg(demo, f"climate/{what}", what)["enum"]
            assert select["state_topic"] == f"mcw/v1/demo/state/climate/{zone}/{what}"
    lights = demo_arg(demo, "lighting/set", "light")["enum"]
    assert len(lights) == 4
    for light in lights:
        config = entity(f"action-lighting-set--{light}", "light")
        assert config["name"] == f"Lighting {light.replace('_', ' ')}"
        level = f"mcw/v1/demo/state/lighting/{light}/level"
        assert config["state_topic"] == level
        assert config["availability"][1]["topic"] == level  # a stale level: unavailable
        brightness = LIGHT_BRIGHTNESS.fullmatch(config["brightness_template"])
        assert brightness is not None and brightness["top"] == "100"  # the level's max
    # one button per alarm to acknowledge, usable only while it waits for that
    alarms = [a["id"] for a in demo.meta["alarms"]]
    for alarm in alarms:
        object_id = f"action-alarm-ack--{alarm.replace('/', '-')}"
        if alarm == "room/panic":
            assert object_id not in by_object  # acknowledged on the panel, with the PIN
            continue
        button = entity(object_id, "button")
        assert button["availability"][1] == {"topic": f"mcw/v1/demo/alarm/{alarm}",
                                             "value_template": had.ACK_AVAILABLE}
    assert not any(component == "text" for component, _ in by_object.values())


def test_skipped_actions_say_why(demo: Demo) -> None:
    skipped = dict(discovery_configs(demo.meta).skipped)
    assert "role" in skipped["action/system/events_resend"]
    assert "no point" in skipped["action/power/shed_override"]
    assert "4 arguments" in skipped["action/climate/preheat"]
    assert "panic" in skipped["action/room/duress"]
    assert "local" in skipped["point/comms/position/exact_lat"]
    for built in ("power/shore/current_limit", "climate/setpoint", "climate/mode",
                  "lighting/set", "alarm/ack", "comms/watchdog"):
        assert f"action/{built}" not in skipped, built
    hq = dict(discovery_configs(demo.meta, role="hq").skipped)
    assert "panic" in hq["action/room/panic_received"]  # a string, but never a dashboard's
    assert "no point" in hq["action/comms/pong"]  # an integer: HQ's echo, not a setting


def test_a_setting_never_shows_a_panic() -> None:
    """An action whose value a panic point would show gets no entity (the duress rule)."""
    for pid in ("room/panic/active", "room/panic/source"):
        arg = pid.rsplit("/", 1)[1]
        meta = one_setting("room/panic", {arg: {"type": "bool"}}, {"id": pid, "type": "bool"})
        result = discovery_configs(meta)
        assert not any("action" in topic for topic in result.configs), pid
        assert dict(result.skipped)["action/room/panic"] == (
            "its bool argument has no point to show its value")


def test_the_role_decides_which_actions_ha_offers(demo: Demo) -> None:
    for role in ROLE_NAMES:
        result = discovery_configs(demo.meta, role=role)
        check_configs(result.configs, demo.meta, role=role)
        commands = {c["command_topic"] for c in result.configs.values() if "command_topic" in c}
        assert commands and all(t.startswith(f"mcw/v1/demo/cmd/{role}/") for t in commands)
    hq = discovery_configs(demo.meta, role="hq").configs
    assert not any(c.get("command_topic", "").endswith("/power/circuit") for c in hq.values())
    assert discovery_configs(demo.meta, role="nobody").configs.keys() == {
        t for t, c in hq.items() if "command_topic" not in c}


def test_configs_are_the_same_at_every_start(demo: Demo, tmp_path: Path) -> None:
    again = asyncio.run(build_demo(tmp_path))
    assert discovery_configs(again.meta) == discovery_configs(demo.meta)
    other = discovery_configs(demo.meta, discovery_prefix="ha_test")
    assert [c["unique_id"] for c in other.configs.values()] == [
        c["unique_id"] for c in discovery_configs(demo.meta).configs.values()]


async def test_every_command_ha_sends_is_done_by_the_van(demo: Demo, tmp_path: Path) -> None:
    """Each command HA renders goes through a router with the van's own action specs
    (validation, roles, expiry, duplicates): every one is done, each with its own id."""
    storage = Storage(tmp_path / "router.sqlite")
    try:
        router = CommandRouter(storage, wall=lambda: NOW)
        done: list[tuple[str, dict[str, Any]]] = []
        for spec in demo.specs.values():
            async def handler(args: dict[str, Any], action: str = spec.id) -> str:
                done.append((action, args))
                return "ok"

            router.register(ActionSpec(spec.id, handler, spec.roles, spec.args))
        assert router.grant(demo.grants) is None
        sent = 0
        ids: set[str] = set()
        for topic, config in discovery_configs(demo.meta).configs.items():
            if "command_topic" not in config:
                continue
            action = config["command_topic"].removeprefix("mcw/v1/demo/cmd/crew/")
            for press in presses(topic.split("/")[1], config):
                payload = render_command(press, NOW + sent / 1000)
                result = await router.submit(action, payload, "crew", "mqtt")
                assert result.status == "done", (topic, press, result)
                ids.add(str(result.id))
                sent += 1
        assert len(done) == sent == len(ids) > 20
        assert ("power/circuit", {"circuit": "fridge", "on": True}) in done
        assert ("power/inverter/mode", {"mode": "charger_only"}) in done
        assert ("power/shore/current_limit", {"amps": 3.0}) in done
        assert ("power/shore/current_limit", {"amps": 32.0}) in done
        assert ("climate/setpoint", {"zone": "crew", "celsius": 35.0}) in done
        assert ("climate/mode", {"zone": "room", "mode": "heat"}) in done
        assert ("alarm/ack", {"alarm": "power/low_soc"}) in done
        # a light: on from its toggle is full, off is 0, the lowest brightness still lights it
        levels = [args["level"] for action, args in done
                  if action == "lighting/set" and args["light"] == "room_calm"]
        assert levels == [100, pytest.approx(100 / 255), 100, 0]  # toggle, 1, 255, off
        # at the same instant two entities still send different ids
        first = [decode(render_command(Press(c.get("command_template")
                                             or c["command_on_template"], "ON")))[0]
                 for c in discovery_configs(demo.meta).configs.values()
                 if "command_topic" in c]
        assert len(set(first)) == len(first)
    finally:
        storage.close()


# ---- 2. against a real Mosquitto ---------------------------------------------------------------


class SmallVan:
    """A van with a reading, a bool with its switch, an enum with its select, a button and an
    alarm; ``extra``: one more point (an entity that a later run no longer has)."""

    def __init__(self, tmp_path: Path, extra: bool = False) -> None:
        self.storage = Storage(tmp_path / f"van-{uuid.uuid4().hex[:8]}.sqlite")
        store = PointStore()
        store.define(PointDef("power/battery/voltage", "number", "V", "Battery", precision=2))
        store.define(PointDef("power/generator/auto", "bool", "", "Automatic start"))
        store.define(PointDef("power/inverter/mode", "enum", "", "Mode", enum=("on", "off")))
        if extra:
            store.define(PointDef("climate/old/temperature", "number", "degC", "Gone later"))
        alarms = AlarmManager()
        alarms.define(AlarmDef("power/low_soc", "warning", "Niski SOC", "Battery low"))
        router = CommandRouter(self.storage, wall=lambda: NOW)

        async def handler(args: dict[str, Any]) -> str:
            return "ok"

        router.register(ActionSpec("power/generator/auto", handler, ON_BOARD,
                                   {"enabled": ArgSpec("bool")}))
        router.register(ActionSpec("power/inverter/mode", handler, ON_BOARD,
                                   {"mode": ArgSpec("enum", enum=("on", "off"))}))
        router.register(ActionSpec("system/republish", handler, EVERYONE))
        cfg = SupervisorConfig(vehicle=VehicleConfig(id="demo", name="Demo van"))
        self.van = VanState(cfg, self.storage, store, alarms, DevicePoints(store), router,
                            lambda: NOW)

    def expected(self) -> dict[str, dict[str, Any]]:
        return discovery_configs(self.van.meta()).configs


Vans = Callable[..., "SmallVan"]


@pytest.fixture
def vans(tmp_path: Path) -> Iterator[Vans]:
    """Makes small vans (``extra=True``: with the point a later run no longer has)."""
    made: list[SmallVan] = []

    def make(extra: bool = False) -> SmallVan:
        made.append(SmallVan(tmp_path, extra))
        return made[-1]

    yield make
    for van in made:
        van.storage.close()


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    require_tool("mosquitto")
    workdir = tmp_path / "broker"
    workdir.mkdir()
    b = Broker(workdir)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


@dataclass
class Session:
    """One MQTT session shaped like the bridge's: discovery's task in the session's TaskGroup
    and every message given to ``route`` first; what it does not take lands in ``others``."""

    ha: HaDiscovery
    port: int
    others: list[str] = field(default_factory=list)

    async def run(self) -> None:
        async with aiomqtt.Client(HOST, self.port, identifier=f"sup-{uuid.uuid4().hex[:8]}",
                                  timeout=DEADLINE_S) as client:
            await client.subscribe("mcw/v1/demo/cmd/#", qos=1)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.ha.run(client), name="ha-discovery")
                async for message in client.messages:
                    if self.ha.route(message):
                        continue
                    self.others.append(message.topic.value)


@asynccontextmanager
async def session(port: int, ha: HaDiscovery) -> AsyncIterator[tuple[Session, asyncio.Task[None]]]:
    s = Session(ha, port)
    task = asyncio.create_task(s.run(), name="session")
    try:
        yield s, task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


@asynccontextmanager
async def observe(port: int, *filters: str) -> AsyncIterator[list[Received]]:
    """Everything a client subscribed to ``filters`` receives, in order."""
    received: list[Received] = []
    async with aiomqtt.Client(HOST, port, timeout=DEADLINE_S) as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                received.append(Received(message.topic.value, payload, message.retain))

        task = asyncio.create_task(collect(), name="observer")
        try:
            yield received
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


async def retained(port: int, topic_filter: str = f"{HA}/+/+/+/config") -> dict[str, bytes]:
    """What is retained on ``topic_filter`` now. A fence makes the answer definite: the broker
    sends a new subscription's retained messages before what is published afterwards."""
    fence = f"test/fence/{uuid.uuid4().hex}"
    async with observe(port, topic_filter, fence) as received:
        await publish(port, fence, b"fence")
        await wait_until(lambda: any(r.topic == fence for r in received), what="the fence")
    return {r.topic: r.payload for r in received if r.retain}


async def publish(port: int, topic: str, *payloads: bytes, retain: bool = False) -> None:
    async with aiomqtt.Client(HOST, port, timeout=DEADLINE_S) as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=1, retain=retain)


def decoded(configs: Mapping[str, bytes]) -> dict[str, Any]:
    return {topic: json.loads(payload) for topic, payload in configs.items()}


def discovery(van: SmallVan, min_interval_s: float = 0.0) -> HaDiscovery:
    return HaDiscovery(van.van, HomeAssistantConfig(enabled=True), min_interval_s=min_interval_s)


async def test_configs_are_retained_from_the_start(broker: Broker, vans: Vans) -> None:
    van = vans()
    ha = discovery(van)
    async with session(broker.port, ha) as (s, task):
        await wait_until(lambda: ha.rounds == 1, what="the first publication")
        on_broker = await retained(broker.port)
        assert decoded(on_broker) == van.expected()
        assert {t.split("/")[1] for t in on_broker} == {"sensor", "binary_sensor", "switch",
                                                      "select", "button"}
        # the session's other messages are not discovery's
        await publish(broker.port, "mcw/v1/demo/cmd/crew/system/republish", b"{}")
        await wait_until(lambda: s.others == ["mcw/v1/demo/cmd/crew/system/republish"],
                         what="the command to reach the session")
        assert not task.done()


async def test_published_again_when_home_assistant_comes_online(broker: Broker,
                                                                vans: Vans) -> None:
    van = vans()
    expected = van.expected()
    ha = discovery(van)
    async with session(broker.port, ha) as (_, task):
        await wait_until(lambda: ha.rounds == 1, what="the first publication")
        async with observe(broker.port, f"{HA}/+/mcw_demo/+/config") as received:
            await wait_until(lambda: len(received) == len(expected), what="the retained copies")
            assert all(r.retain for r in received)
            await publish(broker.port, f"{HA}/status", b"online")  # HA's birth
            await wait_until(lambda: ha.rounds == 2, what="the second publication")
            await wait_until(lambda: {r.topic for r in received if not r.retain} == set(expected),
                             what="every config again")
        assert ha.births == 1 and not task.done()


async def test_garbage_on_the_status_topic_is_ignored(broker: Broker, vans: Vans) -> None:
    garbage = [b"", b"offline", b"Online", b"online!", b"\xff\xfe\x00online",
               b"online" + b" " * 100, b'{"state": "online"}', b"x" * 100_000]
    await publish(broker.port, f"{HA}/status", b"\x00retained junk", retain=True)
    van = vans()
    ha = discovery(van)
    async with session(broker.port, ha) as (_, task):
        await wait_until(lambda: ha.rounds == 1 and ha.ignored == 1, what="the retained junk")
        await publish(broker.port, f"{HA}/status", *garbage)
        await wait_until(lambda: ha.ignored == 1 + len(garbage), what="the garbage")
        assert ha.births == 0 and ha.rounds == 1 and not task.done()
        await publish(broker.port, f"{HA}/status", b"online")  # still listening
        await wait_until(lambda: ha.rounds == 2, what="a publication at HA's birth")
        assert decoded(await retained(broker.port)) == van.expected()


async def test_an_entity_gone_gets_an_empty_retained_config(broker: Broker, vans: Vans) -> None:
    gone = f"{HA}/sensor/mcw_demo/point-climate-old-temperature/config"
    van = vans(extra=True)
    ha = discovery(van)
    async with session(broker.port, ha):
        await wait_until(lambda: ha.rounds == 1, what="the first publication")
        assert gone in await retained(broker.port)
        async with observe(broker.port, gone) as received:
            await wait_until(lambda: len(received) == 1, what="the retained copy")
            del van.van.points.defs["climate/old/temperature"]  # as a new meta would have it
            ha.request_publish()
            await wait_until(lambda: ha.rounds == 2, what="the second publication")
            await wait_until(lambda: received[-1] == Received(gone, b"", False),
                             what="the empty config")
        assert decoded(await retained(broker.port)) == van.expected()


async def test_leftovers_of_an_earlier_run_are_cleared_at_start(broker: Broker,
                                                                vans: Vans) -> None:
    earlier = vans(extra=True)
    ha = discovery(earlier)
    async with session(broker.port, ha):
        await wait_until(lambda: ha.rounds == 1, what="the earlier run's publication")
    junk = f"{HA}/switch/mcw_demo/junk/config"
    other_van = f"{HA}/sensor/mcw_other/point-x/config"
    await publish(broker.port, junk, b"\xff not json", retain=True)
    await publish(broker.port, other_van, b'{"name": "x"}', retain=True)
    now = vans()  # the config changed: no climate/old/temperature any more
    ha = discovery(now)
    async with session(broker.port, ha) as (_, task):
        await wait_until(lambda: ha.rounds == 1 and ha.cleared == 2 and ha.idle,
                         what="the leftovers cleared")
        on_broker = await retained(broker.port)
        assert on_broker.pop(other_van) == b'{"name": "x"}'  # another node: not ours
        assert decoded(on_broker) == now.expected()
        assert not task.done()


async def test_a_flood_of_births_costs_one_publication(broker: Broker, vans: Vans) -> None:
    van = vans()
    ha = discovery(van, min_interval_s=0.5)
    async with session(broker.port, ha) as (_, task):
        await wait_until(lambda: ha.rounds == 1, what="the first publication")
        await publish(broker.port, f"{HA}/status", *[b"online"] * 50)
        await wait_until(lambda: ha.births == 50 and ha.idle, what="the births handled")
        assert ha.rounds in (2, 3) and not task.done()


# ---- 3. properties --------------------------------------------------------------------------

# mostly within the project's patterns (so that every kind of entity comes up), sometimes not
IDS = st.from_regex(r"\A[a-z0-9_]{1,10}(/[a-z0-9_]{1,10}){0,3}\Z")
BAD_IDS = st.one_of(st.text(max_size=16), st.none(), st.integers())
NAMES = st.from_regex(r"\A[a-z0-9_]{1,8}\Z")
TEXT = st.text(max_size=12)
ANY_NAME = st.one_of(*[NAMES] * 4, TEXT)
UNITS = st.one_of(st.sampled_from(["", "V", "A", "W", "kWh", "Wh", "degC", "°C", "%", "s", "ms",
                                   "°", "dBm", "km/h", "MB", "Ah", "kV", " V "]),
                  st.text(max_size=6), st.none(), st.integers())
ENUM_VALUES = st.lists(ANY_NAME, max_size=5)
# the ids HA must keep away from, now and then
NEVER = sorted(had.NEVER_IN_HA)
POINT_IDS = st.one_of(*[IDS] * 6, st.sampled_from([i.split("/", 1)[1] for i in NEVER
                                                    if i.startswith("point/")]))
ACTION_IDS = st.one_of(*[IDS] * 4, IDS.map(lambda i: f"{had.LIGHTING}/{i}"),
                       st.sampled_from([i.split("/", 1)[1] for i in NEVER
                                        if i.startswith("action/")]))
ALARM_IDS = st.one_of(*[IDS] * 4, st.just("room/panic"))
# a min or a max: ordinary, huge, not finite, of no use
BOUNDS = st.one_of(st.sampled_from([0, 1, 3.0, 7, 32.0, 35, 100]), st.integers(),
                   st.floats(), st.integers(-2**70, 2**70), st.none(), st.booleans(), TEXT)


def points(ids: st.SearchStrategy[Any] = POINT_IDS) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": ids,
         "type": st.sampled_from(["number", "integer", "bool", "enum", "string", "blob"]),
         "unit": UNITS, "description": st.one_of(st.just("When (epoch s)"), TEXT),
         "enum": st.one_of(ENUM_VALUES, st.none(), TEXT)},
        optional={"precision": st.one_of(st.none(), st.integers(-2, 20), st.booleans()),
                  "local": st.booleans()})


ARG_TYPES = st.sampled_from(["bool", "bool", "enum", "enum", "number", "integer", "string",
                             "blob"])
# one argument HA may set, of each kind that makes an entity (a secret's name now and then)
VALUE_ARGS = st.one_of(
    st.just({"type": "bool", "required": True}),
    st.builds(lambda values: {"type": "enum", "required": True, "enum": values},
              st.one_of(st.lists(NAMES, min_size=1, max_size=4), ENUM_VALUES)),
    st.builds(lambda kind, low, high: {"type": kind, "required": True, "min": low, "max": high},
              st.sampled_from(["number", "integer"]), BOUNDS, BOUNDS),
    st.sampled_from([{"type": "number", "required": True, "min": 0, "max": 100},  # a level
                     {"type": "number", "required": True, "min": 7, "max": 35},
                     {"type": "integer", "required": True, "min": 1, "max": 10}]),
    st.just({"type": "string", "required": True}))
ARG_NAMES = st.one_of(*[NAMES] * 4, st.sampled_from(SECRETS))
# the shapes that make entities: one argument (a switch, a select, a number, a text), a choice
# and its value (power/circuit's enum + bool, lighting/set's enum + level, climate/mode's two
# enums)
SETTING_ARGS = st.one_of(
    st.dictionaries(ARG_NAMES, VALUE_ARGS, min_size=1, max_size=1),
    st.builds(lambda which, values, name, value: {
        which: {"type": "enum", "required": True, "enum": values}, name: value},
        NAMES, st.lists(NAMES, min_size=1, max_size=4), ARG_NAMES, VALUE_ARGS))
ARGS = st.one_of(
    st.dictionaries(ANY_NAME, st.fixed_dictionaries(
        {"type": ARG_TYPES, "required": st.booleans(), "enum": ENUM_VALUES},
        optional={"min": BOUNDS, "max": BOUNDS}), max_size=3),
    SETTING_ARGS)


def actions(ids: st.SearchStrategy[Any] = ACTION_IDS) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": ids,
         "roles": st.one_of(st.just(["crew", "technician"]),
                            st.lists(st.sampled_from([*ROLE_NAMES, "other"]), max_size=3)),
         "args": ARGS})


def alarms(ids: st.SearchStrategy[Any] = ALARM_IDS) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": ids, "severity": st.sampled_from(["info", "warning", "critical"]),
         "text": TEXT})


def items(kind: Any, good: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Up to ``good`` items with ids in the project's patterns, then one or two without."""
    return st.tuples(st.lists(kind(), max_size=good), st.lists(kind(BAD_IDS), max_size=2)
                     ).map(lambda both: both[0] + both[1])


POINT_TYPES = {"bool": "bool", "number": "number", "integer": "integer", "string": "string",
               "enum": "enum"}


@st.composite
def shown(draw: st.DrawFn, aid: str, args: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Points showing what an action sets, where the module looks for them (its id, its
    argument's, or each choice's under the action or its subsystem), of the argument's type
    (a number's in epoch seconds now and then: no setting) and sometimes kept on board."""
    parent, _, leaf = aid.rpartition("/")
    out = []
    for value, spec in args.items():
        choices = [c for other, s in args.items() if other != value and s["type"] == "enum"
                   for c in s.get("enum") or [] if isinstance(c, str)]
        pids = [draw(st.sampled_from([f"{aid}/{c}", f"{parent}/{c}/{leaf}",
                                      f"{parent}/{c}/{value}"])) for c in choices]
        for pid in pids or [draw(st.sampled_from([aid, f"{aid}/{value}"]))]:
            out.append({"id": pid, "type": POINT_TYPES.get(spec["type"], "bool"),
                        "unit": draw(UNITS), "enum": spec.get("enum"),
                        "description": draw(st.sampled_from(["", "When (epoch s)"])),
                        "precision": draw(st.one_of(st.none(), st.integers(-2, 6))),
                        "local": draw(st.integers(0, 9)) == 0})
    return out


@st.composite
def metas(draw: st.DrawFn) -> dict[str, Any]:
    """A van's meta as ``VanState.meta()`` shapes it, ids unique as the stores keep them."""
    point_list = unique(draw(items(points, 8)))
    action_list = unique(draw(items(actions, 6)))
    if draw(st.booleans()):  # the core's alarm/ack: one button per alarm
        action_list.append({"id": had.ACK_ACTION, "roles": list(ROLE_NAMES),
                            "args": {draw(ARG_NAMES): {"type": "string", "required": True}}})
        action_list = unique(action_list)
    ids = {repr(p["id"]) for p in point_list}
    for action in action_list:  # often points to show the settings
        aid = action["id"]
        if not isinstance(aid, str) or not draw(st.booleans()):
            continue
        for point in draw(shown(aid, action["args"])):
            if repr(point["id"]) not in ids:
                ids.add(repr(point["id"]))
                point_list.append(point)
    return {
        "vehicle": draw(st.from_regex(rf"\A{VEHICLE_ID}\Z")),
        "name": draw(TEXT), "version": draw(TEXT),
        "points": point_list, "actions": action_list,
        "alarms": unique(draw(items(alarms, 4))),
    }


def unique(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first entry of each id (the stores refuse a second definition)."""
    return list({repr(e["id"]): e for e in reversed(entries)}.values())[::-1]


@st.composite
def setting_metas(draw: st.DrawFn) -> dict[str, Any]:
    """A van with one crew action of a shape HA may set (``alarm/ack`` now and then), mostly
    with the points that show it, and a few alarms: every example reaches the numbers, texts,
    lights, selects and switches, or their reasons."""
    aid = draw(st.one_of(IDS, IDS.map(lambda i: f"{had.LIGHTING}/{i}"),
                         st.just(had.ACK_ACTION), ACTION_IDS))
    args = draw(SETTING_ARGS)
    point_list = draw(shown(aid, args)) if draw(st.integers(0, 4)) else []
    return {"vehicle": "demo", "name": "Van", "version": "1",
            "points": unique(point_list + draw(st.lists(points(), max_size=2))),
            "actions": [{"id": aid, "roles": ["crew"], "args": args}],
            "alarms": unique(draw(st.lists(alarms(), max_size=3)))}


@settings(FUZZ)
@given(meta=metas(), role=st.sampled_from([*ROLE_NAMES, "nobody"]),
       prefix=st.from_regex(r"\A[a-z0-9_]{1,32}\Z"))
def test_any_meta_gives_valid_configs_or_reasons(meta: dict[str, Any], role: str,
                                                 prefix: str) -> None:
    result = discovery_configs(meta, prefix, role)
    check_configs(result.configs, meta, prefix, role)
    account(result, meta)


def one_setting(aid: str, args: dict[str, Any], *shown_by: dict[str, Any]) -> dict[str, Any]:
    """A van with one crew action and the points given (``id`` and ``type`` at least)."""
    return {"vehicle": "demo", "name": "Van", "version": "1", "alarms": [],
            "actions": [{"id": aid, "roles": ["crew"], "args": args}],
            "points": [{"unit": "", "description": "", **point} for point in shown_by]}


@settings(FUZZ)
@given(meta=setting_metas())
# ranges beyond what a command carries, and a precision finer than HA's step
@example(meta=one_setting("x/limit", {"v": {"type": "number", "min": -2**70, "max": 2.0**70}},
                          {"id": "x/limit", "type": "number", "precision": 6}))
@example(meta=one_setting("x/count", {"n": {"type": "integer", "min": 0.5, "max": 2**60}},
                          {"id": "x/count/n", "type": "integer"}))
def test_any_setting_gives_valid_entities_or_a_reason(meta: dict[str, Any]) -> None:
    """Numbers, texts and lights keep HA's rules (range, step, length, template schema),
    show a point of the argument's type, never a secret, and every command they send is one
    the router takes (``check_configs``)."""
    result = discovery_configs(meta)
    check_configs(result.configs, meta)
    account(result, meta)


@settings(FUZZ)
@given(meta=st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), TEXT,
                                                           st.lists(st.integers(), max_size=3))))
def test_a_meta_of_any_shape_is_no_exception(meta: dict[str, Any]) -> None:
    result = discovery_configs(meta)
    assert result.configs == {} or isinstance(meta.get("vehicle"), str)


@pytest.fixture(scope="module")
def small_ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaDiscovery]:
    van = SmallVan(tmp_path_factory.mktemp("route"))
    yield HaDiscovery(van.van, HomeAssistantConfig(enabled=True))
    van.storage.close()


@settings(FUZZ)
@given(topic=st.one_of(st.sampled_from([f"{HA}/status", f"{HA}/sensor/mcw_demo/x/config",
                                        f"{HA}/sensor/mcw_other/x/config",
                                        "mcw/v1/demo/cmd/crew/x", f"{HA}/status/x"]),
                       st.text(max_size=40)),
       payload=st.one_of(st.binary(max_size=100), st.text(max_size=20), st.none(),
                         st.integers(), st.floats()))
def test_route_takes_any_message(small_ha: HaDiscovery, topic: str, payload: Any) -> None:
    try:
        message = aiomqtt.Message(topic, payload, 0, False, 0, None)
    except (ValueError, TypeError):  # no such message can arrive (a wildcard in its topic)
        assume(False)
        return
    # HA's birth, or any config under our node (an echo of ours, a leftover, a removal)
    mine = topic == f"{HA}/status" or aiomqtt.Topic(topic).matches(f"{HA}/+/mcw_demo/+/config")
    assert small_ha.route(message) is mine


def test_a_status_topic_that_would_take_other_messages_is_refused(vans: Vans) -> None:
    van = vans()
    for bad in ("homeassistant/#", "+/status", "mcw/v1/demo/cmd/crew/x", "mcw/v1/demo",
                "$SYS/broker/x"):
        ha = HaDiscovery(van.van, HomeAssistantConfig(enabled=True, status_topic=bad))
        assert ha.status_topic is None, bad
