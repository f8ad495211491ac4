"""Home Assistant MQTT discovery: the van's points, alarms and actions as HA entities.

An optional adapter on the van's local broker (``[home_assistant] enabled = true``; off by
default), so that a workshop or HQ running Home Assistant sees the van with no configuration.
It adds nothing to the supervisor's own MQTT interface: every entity reads the retained topics
the supervisor publishes anyway (``state/…``, ``alarm/…``, ``status``) and sends the ordinary
commands (``cmd/{role}/{action}``), which the router validates, authorises, audits and answers
like any other.

What becomes what (``discovery_configs``, pure):

* a ``number``/``integer`` point: ``sensor`` with its unit, and a device class and state class
  where the unit says what it is (V, A, W, Wh/kWh, °C, %, s, Hz, dBm, km/h, MB; a ``%`` is a
  battery when the point is a state of charge, a humidity when its name says so); a time in
  epoch seconds (its description says "epoch") is a ``timestamp`` sensor, 0 shown as none;
* a ``bool`` point: ``binary_sensor``; an ``enum`` point: ``sensor`` of device class ``enum``
  with its values as options; a ``string`` point: a plain ``sensor``. A point kept on board
  (``local``: the exact position, a session's start) is never on MQTT, so never in HA;
* an alarm: ``binary_sensor``, device class ``safety`` for a critical one, ``problem``
  otherwise, on while the retained alarm is active (off once cleared, or when its retained
  topic is emptied);
* an action the role may run (optional arguments are left out of HA's commands):

  * no argument: ``button`` (``system/republish``);
  * ``alarm/ack``: one ``button`` per alarm, ``Acknowledge: {its text}``, available while the
    alarm is shown and not yet acknowledged;
  * one argument, shown by a point (``_candidates``: the action's own id, or its argument's
    under it): a bool is a ``switch`` (``power/generator/auto``, ``comms/watchdog`` by
    ``comms/watchdog/enabled``); a number or an integer a ``number`` with the argument's min
    and max, a step of 1 for an integer, else from the point's precision (0.1 without one),
    the point's unit and device class, a slider up to 256 steps, a box beyond
    (``power/shore/current_limit``: 3-32 A by 0.1); a string a ``text`` of up to 255
    characters, never when the action or argument names a secret (``pin``, ``password``…);
  * one enum argument: ``select`` (its state from a point with the same values, or a string
    point; without one HA keeps the last choice: ``power/generator`` start/stop);
  * an enum naming a thing and its value: one entity per choice, each shown by its own point,
    ``{action}/{choice}`` or ``{subsystem}/{choice}/{action's or argument's last name}``
    (every choice needs one): a bool is a ``switch`` per choice (``power/circuit``: a switch
    per circuit), a number a ``number`` per choice (``climate/setpoint``: per zone, by
    ``climate/{zone}/setpoint``), an enum a ``select`` per choice (``climate/mode``,
    ``climate/preset`` per zone; with two enums, the one whose choices have points names the
    thing), a string a ``text`` per choice, and a ``lighting/…`` level (a number from 0) a
    ``light`` per choice (``lighting/set``: per light, by ``lighting/{light}/level``).

  Anything else is skipped, each with its reason in ``Discovery.skipped``: an argument no
  point shows (``power/shed_override``, ``room/session``, ``room/walk_test``: their points
  are named ``…/active``, not after the argument), a number without a min and max, three
  arguments or more (``climate/preheat``: zone, start, minutes, set point: a form, no entity),
  two that are not a choice and its value, a secret, an action the role may not run, and the
  few in ``NEVER_IN_HA``.

Every entity belongs to one HA device (identifiers from the vehicle id, the van's name, model,
software version); it is available while the supervisor's ``status`` says ``ready`` or
``degraded`` (``lost``, the broker's will, and ``offline`` make it unavailable); an entity that
shows a point is also unavailable while the point's quality is not ``good`` (a stale reading is
never shown as fresh, as on the panel). ``unique_id`` and the discovery topic come from the
vehicle id and the point, alarm or action id only, so they are the same at every start.

Decisions:

* **Role.** HA sends its commands to ``cmd/{role}/…`` with one role, ``crew`` by default (a
  parameter). MQTT does not tell the supervisor who published a command: the broker ACL binds
  each login to its own ``cmd/{role}/`` subtree, so HA needs a login of its own (a shared one
  would disconnect the crew's tablet: the broker takes the login as the client id) granted
  ``write mcw/v1/+/cmd/crew/#``. Crew is what a person on board may do; ``technician`` would
  give a dashboard diagnostics and raw register writes, and ``hq`` would leave HA only
  acknowledgements. Only actions that role may run (the ``meta`` roles, grants included) are
  exposed: the supervisor would refuse the others anyway.
* **Never in HA** (``NEVER_IN_HA``). A dashboard button has no confirmation and any HA
  automation may press it: ``room/duress`` (a silent panic), ``room/panic_ack`` (cancels a
  panic) and ``climate/heater_reenable`` (combustion again after a CO alarm) stay with the
  panel and HQ. And a duress panic is silent on board (the panel hides it while it lasts; HQ
  sees it on MQTT): a dashboard may hang where the one who raised it is watched, so the panic
  alarm and the points that would show it (``room/panic/active``, ``source``, ``delivery``,
  ``since``) are left out, and so is ``room/panic_received`` (HQ's receipt of a panic) in
  any role; panics are HQ's desk's business, not a dashboard's.
* **Numbers and texts show the van's value, or are not built.** HA can run a ``number`` or a
  ``text`` without a state (optimistic: it shows what it last sent), but the results are not
  shown in HA, so a refused value, or one the panel changed since, would be shown as the
  van's. So each needs a point that shows the value; the ``select`` keeps its optimistic
  mode (a choice such as start/stop is a command more than a state). A ``number``'s range is
  the argument's, which the router enforces; an integer's is rounded inwards and stepped by 1,
  and its template rounds what HA sends (a service call is not held to the step), so that
  HA never sends a value the router refuses as not whole.
* **Acknowledging alarms.** ``alarm/ack`` takes an alarm's id as a string; a ``text`` to type
  ids into would be a trap (a typo is refused, and the refusal is not shown in HA). The ids
  are known from the meta, so each alarm gets its own button, available only while there is
  something to acknowledge. The panic alarm has none (it is never in HA; on the panel
  acknowledging it needs the PIN again).
* **Lights.** A ``light`` per light of ``lighting/set`` (level 0-100), of HA's ``template``
  schema: it is the only one whose "off" is rendered by a template (the default schema sends
  a fixed ``payload_off``, which cannot carry a fresh id and ``expires``; the JSON schema
  sends its own JSON). Its one state topic is the light's ``level`` (the level chosen: on
  above 0, the brightness scaled from HA's 0-255 to the level's range); switched on without a
  brightness it goes to the full level (the supervisor keeps no level for a light that is
  off). The read-back ``lighting/{light}/on`` stays a ``binary_sensor``: the two differ while
  the driving interlock holds an exterior light off or a session holds the room's lights, and
  a relay light set to any level is at 100.
* **Commands.** HA's ``command_template`` (a light's ``command_on_template`` and
  ``command_off_template``) renders the supervisor's command JSON: a fresh id
  (``ha-``, a short hash of the entity, HA's clock in microseconds; ids are remembered across
  restarts, so they must never repeat) and ``expires`` ``COMMAND_TTL_S`` later: the
  supervisor's session is persistent, and a switch pressed while it is down must not act when
  it comes back an hour later. QoS 1, never retained (a retained command is refused anyway).
  The results (``result/{role}/…``) are not shown in HA; a switch follows its read-back point,
  a number or a light the point of its setting.
* **Leftovers.** HA keeps every retained config on the broker as an entity. An entity gone
  from the van (a circuit removed from the config, another role, a point renamed by an update)
  would stay in HA for ever, showing the last retained reading as current. So the configs
  published are kept in memory (a removal within a run gets an empty retained config), and at
  start the adapter subscribes to its own node's configs, ``{prefix}/+/{node_id}/+/config``:
  the broker sends those retained from an earlier run, and any that is not wanted now is
  cleared. It stays subscribed (a few hundred small echoes at each publication, on the local
  broker) rather than guessing when the broker has sent all the retained ones.
* **Bounded.** Whatever arrives on the status topic or under the node is looked at in
  constant time and never raises: only ``online`` (HA's birth) counts, and full publications
  are at least ``min_interval_s`` apart, so a flood of births costs one publication each
  interval; at most ``MAX_STALE`` foreign configs wait to be cleared. Only a lost connection
  (``aiomqtt.MqttError``) ends ``run``, as it ends the session's other tasks, and the session
  reconnects.

Wiring (in the MQTT session; see ``HaDiscovery``): create it once, start ``run(client)`` in the
session's TaskGroup (it subscribes itself) and give every message to ``route`` first.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import structlog

from drivers.lost_cancel import reraise_lost_cancel
from supervisor.core.command_payload import MAX_INT
from supervisor.core.config import VEHICLE_ID, HomeAssistantConfig
from supervisor.core.van_state import VanState, dumps

log = structlog.get_logger("supervisor.ha_discovery")

MQTT_ROOT = "mcw/v1"  # the supervisor's topics: mcw/v1/{vehicle}/… (DESIGN.md §4)
DEFAULT_ROLE = "crew"
COMMAND_TTL_S = 120  # a command from HA not applied within this is answered "expired"
QOS = 1
MIN_ROUND_INTERVAL_S = 5.0  # between two full publications (a flood of births)
MAX_STALE = 1000  # foreign configs under our node waiting to be cleared
MAX_STATUS_PAYLOAD = 64  # HA's birth is "online": anything longer is not one
MODEL = "MCW vehicle controller"

# What a dashboard must neither offer nor show, whatever the role ("kind/id": why).
_DURESS = "would show a silent (duress) panic on a dashboard on board"
NEVER_IN_HA: dict[str, str] = {
    "action/room/duress": "a silent panic: raised by a person at the panel, never a dashboard",
    "action/room/panic_ack": "cancels a panic: not a button without confirmation",
    "action/climate/heater_reenable": "combustion again after a CO alarm: decided on board",
    "action/room/panic_received": "a panic's receipt: HQ's desk sends it, never a dashboard",
    "alarm/room/panic": _DURESS,
    "point/room/panic/active": _DURESS,
    "point/room/panic/source": _DURESS,
    "point/room/panic/delivery": _DURESS,
    "point/room/panic/since": _DURESS,
}

# Actions HA shows in their own way (see ``_action``).
ACK_ACTION = "alarm/ack"  # one button per alarm
LIGHTING = "lighting"  # its (light, level) actions are HA lights
# Words that make an argument a secret: never a HA text (HA keeps its value in its history).
SECRET_WORDS = frozenset({"pin", "password", "passphrase", "secret", "token", "key",
                          "credential", "credentials"})
TEXT_MAX = 255  # HA's longest state, and within the command decoder's 256 characters
SLIDER_STEPS = 256  # a number with at most this many steps is a slider (HA's own rule)
DEFAULT_STEP = 0.1  # a number argument whose point does not say its precision
MAX_STEP_PRECISION = 3  # HA's smallest step is 0.001

_ID = re.compile(r"[a-z0-9_]+(?:/[a-z0-9_]+)*")  # point, alarm and action ids
_NAME = re.compile(r"[a-z0-9_]{1,64}")  # an argument's name or a choice in an object id
MAX_ID = 120

# The unit as the supervisor writes it -> (unit for HA, device class, state class). Only
# units that say what is measured get a device class; "%" is refined by the point's id.
_UNITS: dict[str, tuple[str, str | None, str | None]] = {
    "V": ("V", "voltage", "measurement"),
    "mV": ("mV", "voltage", "measurement"),
    "A": ("A", "current", "measurement"),
    "mA": ("mA", "current", "measurement"),
    "W": ("W", "power", "measurement"),
    "kW": ("kW", "power", "measurement"),
    # a meter or a day's yield: totals that may reset (HA takes a drop as a new cycle)
    "Wh": ("Wh", "energy", "total_increasing"),
    "kWh": ("kWh", "energy", "total_increasing"),
    "degC": ("°C", "temperature", "measurement"),
    "°C": ("°C", "temperature", "measurement"),
    "degF": ("°F", "temperature", "measurement"),
    "°F": ("°F", "temperature", "measurement"),
    "%": ("%", None, "measurement"),
    "Hz": ("Hz", "frequency", "measurement"),
    "s": ("s", "duration", "measurement"),
    "ms": ("ms", "duration", "measurement"),
    "min": ("min", "duration", "measurement"),
    "h": ("h", "duration", "measurement"),
    "dB": ("dB", "signal_strength", "measurement"),
    "dBm": ("dBm", "signal_strength", "measurement"),
    "km/h": ("km/h", "speed", "measurement"),
    "m/s": ("m/s", "speed", "measurement"),
    "kB": ("kB", "data_size", "measurement"),
    "MB": ("MB", "data_size", "measurement"),
    "GB": ("GB", "data_size", "measurement"),
    # latitude/longitude: no statistics worth keeping
    "°": ("°", None, None),
}

# Templates (HA's Jinja). ``value_json`` is undefined when the payload is not JSON (an alarm
# cleared is an empty payload): tested before use, since an attribute of it would fail.
STATUS_AVAILABLE = ("{{ 'online' if value_json is defined and value_json.state in "
                    "['ready', 'degraded'] else 'offline' }}")
QUALITY_AVAILABLE = ("{{ 'online' if value_json is defined and value_json.q == 'good' "
                     "else 'offline' }}")
VALUE = "{{ value_json.v }}"  # null renders None: HA shows unknown
CHOICE = "{{ value_json.v if value_json.v else 'None' }}"  # '' is no option either
ON_OFF = "{{ 'None' if value_json.v is none else ('ON' if value_json.v else 'OFF') }}"
ALARM_ON = "{{ 'ON' if value_json is defined and value_json.active else 'OFF' }}"
EPOCH = ("{{ value_json.v | timestamp_custom('%Y-%m-%dT%H:%M:%S+00:00', false) "
         "if value_json.v else 'None' }}")
SWITCH_ARG = "{{ 'true' if value == 'ON' else 'false' }}"
VALUE_ARG = "{{ value | to_json }}"  # a select's option, a number or a text as JSON
# an integer argument: HA's service calls are not held to the step, the router wants it whole
INTEGER_ARG = "{{ value | round | int }}"
# The template light (TOP: the level argument's max, as JSON). Its state: on above 0; its
# brightness (0-255) from the level (0 is no brightness: HA keeps the last one); on without a
# brightness is the full level.
LIGHT_STATE = "{{ 'None' if value_json.v is none else ('on' if value_json.v > 0 else 'off') }}"
LIGHT_BRIGHTNESS = "{{ (value_json.v * 255 / TOP) | round | int if value_json.v else '' }}"
LIGHT_LEVEL = "{{ (brightness if brightness is defined else 255) * TOP / 255 }}"
# an acknowledge button: while its alarm is shown and not acknowledged yet
ACK_AVAILABLE = ("{{ 'online' if value_json is defined and not value_json.acked "
                 "else 'offline' }}")


Entity = tuple[str, str, dict[str, Any]]  # (component, object id, config)


@dataclass(frozen=True)
class Discovery:
    """What the van's meta gives: config payloads by discovery topic, and what was left out
    (``(kind/id, why)``, e.g. ``("action/climate/preheat", "…")``)."""

    configs: dict[str, dict[str, Any]]
    skipped: tuple[tuple[str, str], ...]


def node_id(vehicle: str) -> str:
    """The HA node (and device identifier) of a van: ``mcw_{vehicle id}``."""
    return f"mcw_{vehicle}"


def discovery_configs(meta: Mapping[str, Any], discovery_prefix: str = "homeassistant",
                      role: str = DEFAULT_ROLE) -> Discovery:
    """Every HA discovery config for the van described by ``meta`` (``VanState.meta()``), for
    commands in ``role``. Pure; an item it cannot represent is skipped with its reason, never
    raised about."""
    vehicle = meta.get("vehicle")
    if not isinstance(vehicle, str) or not re.fullmatch(VEHICLE_ID, vehicle):
        return Discovery({}, (("vehicle", "no valid vehicle id in the meta"),))
    points = {p["id"]: p for p in _entries(meta, "points") if isinstance(p.get("id"), str)}
    van = _Van(vehicle, discovery_prefix, role, meta, points)
    for point in _entries(meta, "points"):
        van.add("point", point.get("id"), _point(van, point))
    for alarm in _entries(meta, "alarms"):
        van.add("alarm", alarm.get("id"), _alarm(van, alarm))
    for action in _entries(meta, "actions"):
        van.add("action", action.get("id"), _action(van, action))
    return Discovery(van.configs, tuple(van.skipped))


# ---- building the configs -----------------------------------------------------------------


@dataclass
class _Van:
    """One van's discovery under construction: shared blocks, results so far."""

    vehicle: str
    prefix: str
    role: str
    meta: Mapping[str, Any]
    points: Mapping[str, Mapping[str, Any]]  # by id
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"{MQTT_ROOT}/{self.vehicle}"

    @property
    def node(self) -> str:
        return node_id(self.vehicle)

    def add(self, kind: str, item_id: object, built: list[Entity] | str) -> None:
        """Record one item's entities (component, object id, config) or why it has none."""
        what = f"{kind}/{item_id}" if isinstance(item_id, str) else f"{kind} (no id)"
        if isinstance(built, str):
            self.skipped.append((what, built))
            return
        for component, object_id, config in built:
            topic = f"{self.prefix}/{component}/{self.node}/{object_id}/config"
            if topic in self.configs:
                self.skipped.append((what, "the same entity twice (a duplicate id)"))
                continue
            self.configs[topic] = config

    def entity(self, object_id: str, name: str, point: str | None, alarm: str | None = None,
               **fields: Any) -> dict[str, Any]:
        """The keys every entity has; ``point``: the state topic whose quality also decides
        whether the entity is available; ``alarm``: one that must be waiting for an
        acknowledgement."""
        availability = [{"topic": f"{self.base}/status", "value_template": STATUS_AVAILABLE}]
        if point is not None:
            availability.append({"topic": f"{self.base}/state/{point}",
                                 "value_template": QUALITY_AVAILABLE})
        if alarm is not None:
            availability.append({"topic": f"{self.base}/alarm/{alarm}",
                                 "value_template": ACK_AVAILABLE})
        version = _text(self.meta.get("version"), 64) or ""
        van_name = _text(self.meta.get("name"), 100) or f"MCW {self.vehicle}"
        return {
            "name": name,
            "unique_id": f"{self.node}_{object_id}",
            "device": {
                "identifiers": [self.node],
                "name": van_name,
                "model": MODEL,
                "sw_version": version,
            },
            "origin": {"name": "mcw-supervisor", "sw_version": version},
            "availability": availability,
            "availability_mode": "all",
            "qos": QOS,
            **fields,
        }

    def command(self, action: str, object_id: str, args: str) -> dict[str, Any]:
        """The command topic and a template rendering the supervisor's command JSON (``args``:
        the JSON object's inside, possibly with HA template expressions)."""
        return {"command_topic": f"{self.base}/cmd/{self.role}/{action}",
                "command_template": self.command_template(object_id, args), "retain": False}

    def command_template(self, object_id: str, args: str) -> str:
        """The supervisor's command JSON with ``args``, as HA renders it for ``object_id``."""
        # a fresh id per press: this entity's short hash and HA's clock in microseconds
        tag = hashlib.blake2s(object_id.encode(), digest_size=4).hexdigest()
        return ('{"id": "ha-' + tag + '-{{ now().timestamp() }}", '
                '"expires": {{ now().timestamp() + ' + str(COMMAND_TTL_S) + ' }}, '
                '"args": {' + args + '}}')


def _entries(meta: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    raw = meta.get(key)
    if not isinstance(raw, list | tuple):
        return []
    return [entry for entry in raw if isinstance(entry, Mapping)]


def _fit_id(item_id: object) -> str | None:
    """Why an id cannot be in a topic or object id, or None when it can."""
    if not isinstance(item_id, str) or len(item_id) > MAX_ID or not _ID.fullmatch(item_id):
        return "its id does not fit an MQTT topic (a-z, 0-9, _ and /)"
    return None


def _object_id(kind: str, item_id: str, choice: str | None = None) -> str:
    # ids have no "-": "/" becomes "-" and "--" separates a choice (an enum's value, or an
    # alarm's id), without collisions
    out = f"{kind}-{item_id.replace('/', '-')}"
    return out if choice is None else f"{out}--{choice.replace('/', '-')}"


def _title(item_id: str) -> str:
    """A name from an id: ``power/battery/soc`` is "Power battery soc" (an id of only
    underscores stays itself: a name must not be blank)."""
    text = " ".join(item_id.replace("/", " ").replace("_", " ").split()) or item_id
    return text[:1].upper() + text[1:]


def _point(van: _Van, point: Mapping[str, Any]) -> list[Entity] | str:
    pid = point.get("id")
    if (why := _fit_id(pid)) is not None:
        return why
    assert isinstance(pid, str)
    if point.get("local") is True:
        return "kept on board (local): never on MQTT"
    if f"point/{pid}" in NEVER_IN_HA:
        return NEVER_IN_HA[f"point/{pid}"]
    kind = point.get("type")
    object_id = _object_id("point", pid)
    state = {"state_topic": f"{van.base}/state/{pid}"}
    if kind == "bool":
        return [("binary_sensor", object_id, van.entity(
            object_id, _title(pid), pid, **state, value_template=ON_OFF,
            payload_on="ON", payload_off="OFF"))]
    if kind in ("number", "integer"):
        unit = point.get("unit", "")
        if not isinstance(unit, str) or (unit.strip() and _text(unit, 32) is None):
            return "its unit is not short printable text"
        return [("sensor", object_id, van.entity(
            object_id, _title(pid), pid, **state, **_number(pid, unit.strip(), point)))]
    if kind == "enum" and point.get("enum"):
        options = _options(point.get("enum"))
        if options is None:
            return "its enum values are not a list of strings"
        return [("sensor", object_id, van.entity(
            object_id, _title(pid), pid, **state, value_template=CHOICE,
            device_class="enum", options=options))]
    if kind in ("enum", "string"):
        return [("sensor", object_id, van.entity(
            object_id, _title(pid), pid, **state, value_template=VALUE))]
    return f"a point of type {str(kind)[:20]!r}: no HA entity for it"


def _number(pid: str, unit: str, point: Mapping[str, Any]) -> dict[str, Any]:
    """A numeric sensor's template, unit, device class and state class."""
    if _is_epoch(point):  # a moment, not a duration (0: none)
        return {"value_template": EPOCH, "device_class": "timestamp"}
    out: dict[str, Any] = {"value_template": VALUE}
    ha_unit, device_class, state_class = _unit(pid, unit)
    if ha_unit:
        out["unit_of_measurement"] = ha_unit
    if device_class is not None:
        out["device_class"] = device_class
    if state_class is not None:
        out["state_class"] = state_class
    precision = point.get("precision")
    if isinstance(precision, int) and not isinstance(precision, bool) and 0 <= precision <= 10:
        out["suggested_display_precision"] = precision
    return out


def _is_epoch(point: Mapping[str, Any]) -> bool:
    """A time in epoch seconds (its description says "epoch")."""
    unit, description = point.get("unit"), point.get("description")
    return (isinstance(unit, str) and unit.strip() == "s" and isinstance(description, str)
            and "epoch" in description.lower())


def _unit(pid: str, unit: str) -> tuple[str, str | None, str | None]:
    """HA's unit, device class and state class for a reading in ``unit`` of point ``pid``
    (a ``%`` is a battery or a humidity only by its id)."""
    ha_unit, device_class, state_class = _UNITS.get(unit, (unit, None, "measurement"))
    if unit == "%":
        leaf = pid.rsplit("/", 1)[-1]
        device_class = ("battery" if leaf == "soc" else
                        "humidity" if "humidity" in leaf else None)
    return ha_unit, device_class, state_class


def _options(raw: object) -> list[str] | None:
    """An enum's values as HA options (each once, in order), or None when unusable: each must
    be printable text a HA state can hold (at most 255 characters)."""
    if not isinstance(raw, list | tuple) or not all(
            isinstance(v, str) and _text(v, 255) == v for v in raw):
        return None
    return list(dict.fromkeys(raw))


def _text(value: object, limit: int) -> str | None:
    """``value`` stripped when it is printable text of at most ``limit`` characters (no
    control characters, no lone surrogates: JSON in UTF-8 and shown by HA), else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text if text and len(text) <= limit and text.isprintable() else None


def _alarm(van: _Van, alarm: Mapping[str, Any]) -> list[Entity] | str:
    aid = alarm.get("id")
    if (why := _fit_id(aid)) is not None:
        return why
    assert isinstance(aid, str)
    if f"alarm/{aid}" in NEVER_IN_HA:
        return NEVER_IN_HA[f"alarm/{aid}"]
    object_id = _object_id("alarm", aid)
    name = _text(alarm.get("text"), 100) or _title(aid)
    return [("binary_sensor", object_id, van.entity(
        object_id, name, None, state_topic=f"{van.base}/alarm/{aid}", value_template=ALARM_ON,
        payload_on="ON", payload_off="OFF",
        device_class="safety" if alarm.get("severity") == "critical" else "problem"))]


def _action(van: _Van, action: Mapping[str, Any]) -> list[Entity] | str:
    aid = action.get("id")
    if (why := _fit_id(aid)) is not None:
        return why
    assert isinstance(aid, str)
    roles = action.get("roles")
    if not isinstance(roles, list | tuple) or van.role not in roles:
        return f"not an action of the {van.role!r} role"
    if f"action/{aid}" in NEVER_IN_HA:
        return NEVER_IN_HA[f"action/{aid}"]
    raw_args = action.get("args")
    if not isinstance(raw_args, Mapping) or not all(
            isinstance(name, str) and isinstance(arg, Mapping) for name, arg in raw_args.items()):
        return "its arguments are not described"
    # optional arguments are left out of HA's commands
    args = {name: arg for name, arg in raw_args.items() if arg.get("required", True) is not False}
    if not all(_NAME.fullmatch(name) for name in args):
        return "an argument's name does not fit a command template"
    if not args:
        return [_button(van, aid)]
    if len(args) == 1:
        name, arg = next(iter(args.items()))
        if aid == ACK_ACTION and arg.get("type") == "string":
            return _ack_buttons(van, aid, name)
        built = _control(van, _Control(aid, _object_id("action", aid), _title(aid), "", name, arg,
                                       _state_point(van, _candidates(aid, name), arg)))
        return built if isinstance(built, str) else [built]
    if len(args) == 2:
        return _per_choice(van, aid, args)
    return f"{len(args)} arguments: no HA entity takes them (a form would)"


@dataclass(frozen=True)
class _Control:
    """One entity that sets one argument of an action: ``fixed`` holds the JSON members a
    choice fixes (``"circuit": "fridge", ``, or nothing), ``pid`` the point showing the value
    (None: none does)."""

    aid: str
    object_id: str
    name: str
    fixed: str
    arg_name: str
    arg: Mapping[str, Any]
    pid: str | None

    def args(self, value: str) -> str:
        """The command's arguments with ``value`` (a template expression or JSON)."""
        return f"{self.fixed}{json.dumps(self.arg_name)}: {value}"


def _control(van: _Van, c: _Control) -> Entity | str:
    """The entity for the argument ``c`` sets, by its type, or why there is none."""
    kind = c.arg.get("type")
    if kind == "enum":
        return _select(van, c)
    if kind not in ("bool", "number", "integer", "string"):
        return f"a {str(kind)[:20]!r} argument: no HA entity for it"
    if kind == "string" and _secret(c):
        return "a secret (a PIN, a password): never typed into a dashboard, kept in its history"
    if c.pid is None:
        # HA would show the last value it sent as the van's, though the supervisor may refuse
        # it (results are not shown) and the panel may change it
        return f"its {kind} argument has no point to show its value"
    if kind == "bool":
        return _switch(van, c)
    if kind == "string":
        return _text_entity(van, c)
    if _is_light(c.aid, c.arg):
        return _light(van, c)
    return _number_entity(van, c)


def _candidates(aid: str, arg: str, choice: str | None = None) -> list[str]:
    """The points that may show what ``aid`` sets in ``arg``: the action's own id or its
    argument under it (``power/generator/auto``, ``comms/watchdog/enabled``); for one choice of
    an enum, the choice under the action (``power/circuit/fridge``) or under the action's
    subsystem, named like the action or the argument (``climate/room/setpoint``,
    ``lighting/crew_ceiling/level``)."""
    if choice is None:
        return [aid, f"{aid}/{arg}"]
    parent, _, leaf = aid.rpartition("/")
    under = [f"{parent}/{choice}/{leaf}", f"{parent}/{choice}/{arg}"] if parent else []
    return [f"{aid}/{choice}", *under]


def _state_point(van: _Van, candidates: list[str], arg: Mapping[str, Any]) -> str | None:
    """The first of ``candidates`` that HA may read (on MQTT, not kept from it) and that can
    show a value of ``arg``."""
    for pid in candidates:
        point = van.points.get(pid)
        if (point is not None and _fit_id(pid) is None and point.get("local") is not True
                and f"point/{pid}" not in NEVER_IN_HA and _shows_value(point, arg)):
            return pid
    return None


def _shows_value(point: Mapping[str, Any], arg: Mapping[str, Any]) -> bool:
    """Whether ``point`` holds values of ``arg``'s type: a bool, a number (not a moment in
    epoch seconds), a string, or a choice (a string, or an enum with the same values)."""
    kind, shown = arg.get("type"), point.get("type")
    if kind == "bool":
        return shown == "bool"
    if kind in ("number", "integer"):
        return shown in ("number", "integer") and not _is_epoch(point)
    if kind == "string":
        return shown == "string"
    options = _options(arg.get("enum")) if kind == "enum" else None
    if not options:
        return False
    values = _options(point.get("enum")) if shown == "enum" else None
    return shown == "string" or (values is not None and set(values) == set(options))


def _per_choice(van: _Van, aid: str,
                args: Mapping[str, Mapping[str, Any]]) -> list[Entity] | str:
    """Two arguments, an enum naming a thing (a circuit, a light, a zone) and its value: one
    entity per choice, each shown by its own point (``_candidates``). With two enums, the one
    whose every choice has a point showing the other names the thing (``climate/mode``: the
    zone)."""
    orders = [(which, value) for which, value in itertools.permutations(args)
              if args[which].get("type") == "enum"]
    if not orders:
        return "two arguments and no choice (an enum) among them: no HA entity takes them"
    reasons = []
    for which, value in orders:
        built = _each_choice(van, aid, which, value, args)
        if not isinstance(built, str):
            return built
        reasons.append(built)
    return reasons[0]


def _each_choice(van: _Van, aid: str, which: str, value: str,
                 args: Mapping[str, Mapping[str, Any]]) -> list[Entity] | str:
    """One entity per choice of ``which`` setting ``value``, or why not."""
    choices = _options(args[which].get("enum"))
    if not choices or not all(_NAME.fullmatch(choice) for choice in choices):
        return f"a choice of {which}, but its values do not fit object ids"
    light = _is_light(aid, args[value])
    out = []
    for choice in choices:
        pid = _state_point(van, _candidates(aid, value, choice), args[value])
        if pid is None:
            return f"a choice of {which}, but no point shows the {value} of {choice}"
        name = (_title(f"{aid.rpartition('/')[0]}/{choice}") if light
                else f"{_title(aid)} {choice.replace('_', ' ')}")
        built = _control(van, _Control(aid, _object_id("action", aid, choice), name,
                                       f"{json.dumps(which)}: {json.dumps(choice)}, ",
                                       value, args[value], pid))
        if isinstance(built, str):
            return f"a choice of {which}: {built}"
        out.append(built)
    return out


def _button(van: _Van, aid: str) -> Entity:
    object_id = _object_id("action", aid)
    return ("button", object_id, van.entity(object_id, _title(aid), None,
                                            **van.command(aid, object_id, "")))


def _ack_buttons(van: _Van, aid: str, arg: str) -> list[Entity] | str:
    """``alarm/ack {"alarm": id}``: one button per alarm, available while the alarm is shown
    and not yet acknowledged (nothing to type, nothing to get wrong)."""
    out = []
    for alarm in _entries(van.meta, "alarms"):
        alarm_id = alarm.get("id")
        if _fit_id(alarm_id) is not None or f"alarm/{alarm_id}" in NEVER_IN_HA:
            continue
        assert isinstance(alarm_id, str)
        object_id = _object_id("action", aid, alarm_id)
        label = _text(alarm.get("text"), 100) or _title(alarm_id)
        body = f"{json.dumps(arg)}: {json.dumps(alarm_id)}"
        out.append(("button", object_id, van.entity(
            object_id, f"Acknowledge: {label}", None, alarm=alarm_id,
            **van.command(aid, object_id, body))))
    return out or "no alarm to acknowledge"


def _switch(van: _Van, c: _Control) -> Entity:
    return ("switch", c.object_id, van.entity(
        c.object_id, c.name, c.pid, **van.command(c.aid, c.object_id, c.args(SWITCH_ARG)),
        state_topic=f"{van.base}/state/{c.pid}", value_template=ON_OFF,
        payload_on="ON", payload_off="OFF", state_on="ON", state_off="OFF"))


def _select(van: _Van, c: _Control) -> Entity | str:
    options = _options(c.arg.get("enum"))
    if not options:
        return "an enum argument without values"
    fields = van.command(c.aid, c.object_id, c.args(VALUE_ARG))
    if c.pid is not None:  # the state from the point; else HA shows the last choice made
        fields.update(state_topic=f"{van.base}/state/{c.pid}", value_template=CHOICE)
    return ("select", c.object_id, van.entity(c.object_id, c.name, c.pid, options=options,
                                              **fields))


def _number_entity(van: _Van, c: _Control) -> Entity | str:
    """A HA ``number``: the argument's range (within ±2^53), a step from the point's
    precision (1 for an integer), the point's unit, a slider when its steps are few enough to
    pick with a thumb."""
    assert c.pid is not None
    low, high = _finite(c.arg.get("min")), _finite(c.arg.get("max"))
    if low is None or high is None:
        return "a number argument without a min and a max (a HA number needs its range)"
    point = van.points[c.pid]
    step: float
    if c.arg.get("type") == "integer":  # HA sends what it shows: whole numbers only
        low, high, step = math.ceil(low), math.floor(high), 1
    else:
        step = _step(point)
    if not low < high:
        return "a number argument whose range holds no two values"
    fields: dict[str, Any] = {
        **van.command(c.aid, c.object_id,
                      c.args(INTEGER_ARG if c.arg.get("type") == "integer" else VALUE_ARG)),
        "state_topic": f"{van.base}/state/{c.pid}", "value_template": VALUE,
        "min": low, "max": high, "step": step,
        "mode": "slider" if (high - low) / step <= SLIDER_STEPS else "box"}
    unit = _text(point.get("unit"), 32)
    if unit is not None:
        ha_unit, device_class, _ = _unit(c.pid, unit)
        fields["unit_of_measurement"] = ha_unit
        if device_class is not None:
            fields["device_class"] = device_class
    return ("number", c.object_id, van.entity(c.object_id, c.name, c.pid, **fields))


def _finite(value: object) -> float | None:
    """A finite number from the meta (not a bool), within what a command may carry (beyond
    ±2^53 the command decoder refuses an integer, and HA sends a whole number as one), else
    None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return max(-MAX_INT, min(MAX_INT, value))  # compared as they are: no float overflow


def _step(point: Mapping[str, Any]) -> float:
    """A number's step: what the point shows (precision 1: 0.1), no finer than HA allows."""
    precision = point.get("precision")
    if isinstance(precision, int) and not isinstance(precision, bool) and precision >= 0:
        return 10.0 ** -min(precision, MAX_STEP_PRECISION)
    return DEFAULT_STEP


def _secret(c: _Control) -> bool:
    """Whether the action or the argument names a secret (``pin``, ``room/new_password``)."""
    return bool(set(re.split(r"[/_]", f"{c.aid}/{c.arg_name}")) & SECRET_WORDS)


def _text_entity(van: _Van, c: _Control) -> Entity:
    return ("text", c.object_id, van.entity(
        c.object_id, c.name, c.pid, **van.command(c.aid, c.object_id, c.args(VALUE_ARG)),
        state_topic=f"{van.base}/state/{c.pid}", value_template=VALUE, min=0, max=TEXT_MAX,
        mode="text"))


def _is_light(aid: str, arg: Mapping[str, Any]) -> bool:
    """A lighting action's level from 0 (off) to a max: a HA light."""
    return (aid.startswith(f"{LIGHTING}/") and arg.get("type") == "number"
            and _finite(arg.get("min")) == 0 and (_finite(arg.get("max")) or 0) > 0)


def _light(van: _Van, c: _Control) -> Entity:
    """A HA light of the template schema (the only one rendering a fresh command for off):
    on/off and brightness from the level point, HA's brightness 0-255 scaled to the level's
    range; on without a brightness is the full level."""
    top = json.dumps(_finite(c.arg["max"]))
    fields = van.command(c.aid, c.object_id, c.args(LIGHT_LEVEL.replace("TOP", top)))
    fields["command_on_template"] = fields.pop("command_template")
    fields["command_off_template"] = van.command_template(c.object_id, c.args("0"))
    return ("light", c.object_id, van.entity(
        c.object_id, c.name, c.pid, schema="template", **fields,
        state_topic=f"{van.base}/state/{c.pid}", state_template=LIGHT_STATE,
        brightness_template=LIGHT_BRIGHTNESS.replace("TOP", top)))


# ---- publishing ---------------------------------------------------------------------------


def _status_topic_problem(topic: str, base: str) -> str | None:
    """Why ``topic`` cannot be HA's status topic here, or None."""
    if not topic or len(topic.encode()) > 128 or any(c in topic for c in "+#\0"):
        return "not a topic name (no wildcards)"
    if topic.startswith("$") or topic.startswith(f"{base}/") or topic == base:
        return "a broker or supervisor topic"
    return None


class HaDiscovery:
    """Publishes the van's discovery configs (retained) at start, again at each birth of HA,
    and clears the entities that no longer exist.

    Created once (what it published is remembered across MQTT sessions); in each session::

        tg.create_task(ha.run(client))        # publishes, subscribes to what it needs
        ...
        if ha.route(message):                 # first, for every message of the session
            continue
    """

    def __init__(self, van: VanState, cfg: HomeAssistantConfig, role: str = DEFAULT_ROLE,
                 min_interval_s: float = MIN_ROUND_INTERVAL_S) -> None:
        self.van = van
        self.prefix = cfg.discovery_prefix
        self.role = role
        self.min_interval_s = min_interval_s
        self.node = node_id(van.cfg.vehicle.id)
        self.config_filter = f"{self.prefix}/+/{self.node}/+/config"
        base = f"{MQTT_ROOT}/{van.cfg.vehicle.id}"
        problem = _status_topic_problem(cfg.status_topic, base)
        if problem is not None:
            log.warning("ha_status_topic_refused", topic=cfg.status_topic[:128], why=problem)
        self.status_topic = cfg.status_topic if problem is None else None
        self.skipped: tuple[tuple[str, str], ...] = ()
        self.rounds = 0  # full publications done
        self.births = 0  # HA's "online" seen
        self.ignored = 0  # other payloads on the status topic
        self.cleared = 0  # foreign or leftover configs emptied
        self._wanted: dict[str, bytes] = {}  # topic -> payload of the current publication
        self._published: set[str] = set()  # on the broker, as far as we know
        self._stale: set[str] = set()  # configs under our node to clear
        self._round_due = False
        self._wake = asyncio.Event()

    # ---- the session's messages -----------------------------------------------------------

    def route(self, message: aiomqtt.Message) -> bool:
        """Take ``message`` if it is for discovery (True, whatever it holds); False: it is
        not, the session handles it. Never raises, whatever the message."""
        topic = message.topic.value
        if topic == self.status_topic:
            try:
                self._status(message.payload)
            except Exception:  # a bug must not end the session
                log.exception("ha_status_message_error")
            return True
        parts = topic.split("/")  # {prefix}/{component}/{node}/{object id}/config
        if (len(parts) == 5 and parts[0] == self.prefix and parts[2] == self.node
                and parts[4] == "config"):
            try:
                self._foreign(topic, message.payload)
            except Exception:
                log.exception("ha_config_message_error")
            return True
        return False

    @property
    def idle(self) -> bool:
        """Nothing waiting: no publication due, no config to clear."""
        return not self._round_due and not self._stale

    def request_publish(self) -> None:
        """Publish every config again (and clear what is gone) as soon as allowed."""
        self._round_due = True
        self._wake.set()

    def _status(self, payload: object) -> None:
        if (isinstance(payload, bytes | bytearray) and len(payload) <= MAX_STATUS_PAYLOAD
                and bytes(payload).strip() == b"online"):
            self.births += 1
            self.request_publish()
        else:
            self.ignored += 1

    def _foreign(self, topic: str, payload: object) -> None:
        """A config under our node: ours (an echo, or retained from before), a removal, or
        one that is not wanted now and is cleared."""
        if payload is None or payload == b"" or topic in self._wanted:
            return
        if len(self._stale) >= MAX_STALE:
            return
        self._stale.add(topic)
        self._wake.set()

    # ---- the task -------------------------------------------------------------------------

    async def run(self, client: aiomqtt.Client) -> None:
        """Publish every config, then again at each birth of HA, and clear leftovers; until
        cancelled. Raises only ``aiomqtt.MqttError`` (the connection is lost)."""
        loop = asyncio.get_running_loop()
        # wanted before subscribing: a retained config of ours arriving is not a leftover
        self._wanted = self._build()
        await client.subscribe(self.config_filter, qos=0)
        if self.status_topic is not None:
            await client.subscribe(self.status_topic, qos=0)
        reraise_lost_cancel()
        self._round_due = True
        last_round = -math.inf
        built: dict[str, bytes] | None = self._wanted  # the first round publishes these
        while True:
            try:
                if self._round_due:
                    wait = last_round + self.min_interval_s - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)  # births come no faster than this
                    self._round_due = False
                    await self._publish_all(client, built)
                    built = None
                    last_round = loop.time()
                while self._stale:
                    topic = self._stale.pop()
                    if topic not in self._wanted:
                        await self._publish(client, topic, b"")
                        self.cleared += 1
                if not self._round_due and not self._stale:
                    self._wake.clear()
                    await self._wake.wait()
            except aiomqtt.MqttError:
                raise
            except Exception:  # a bug: logged, and discovery goes on after a pause
                log.exception("ha_discovery_error")
                await asyncio.sleep(max(self.min_interval_s, 1.0))

    def _build(self) -> dict[str, bytes]:
        """The payloads wanted now (the previous ones if building fails)."""
        try:
            result = discovery_configs(self.van.meta(), self.prefix, self.role)
        except Exception:
            log.exception("ha_discovery_build_error")
            return self._wanted
        if result.skipped != self.skipped:
            self.skipped = result.skipped
            log.info("ha_discovery_skipped", count=len(result.skipped),
                     items=[what for what, _ in result.skipped])
        return {topic: dumps(config) for topic, config in result.configs.items()}

    async def _publish_all(self, client: aiomqtt.Client,
                           built: dict[str, bytes] | None = None) -> None:
        """Every config wanted now (``built``: just built, else built here), and an empty one
        for each published before that is gone."""
        wanted = self._build() if built is None else built
        self._wanted = wanted
        gone = sorted(self._published - wanted.keys())
        for topic, payload in wanted.items():
            await self._publish(client, topic, payload)
        for topic in gone:
            await self._publish(client, topic, b"")  # HA removes the entity
        self._published = set(wanted)
        self.rounds += 1
        log.info("ha_discovery_published", entities=len(wanted), removed=len(gone),
                 skipped=len(self.skipped))

    async def _publish(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        """One retained config; a message the client refuses is logged and left out (only a
        lost connection ends the task)."""
        try:
            await client.publish(topic, payload, qos=QOS, retain=True)
            reraise_lost_cancel()  # Python 3.11's wait_for inside aiomqtt may lose it
        except aiomqtt.MqttCodeError as exc:
            if exc.rc not in (paho.MQTT_ERR_PAYLOAD_SIZE, paho.MQTT_ERR_QUEUE_SIZE):
                raise
            log.error("ha_config_not_published", topic=topic, error=str(exc))
        except ValueError as exc:  # paho refuses a topic or payload before sending
            log.error("ha_config_not_published", topic=topic, error=str(exc))
