"""Climate subsystem: warm on a winter night, cool on a summer day, never a CO risk.

* Zones: a thermostat (``thermostat.py``) on its own sensor; a stale or implausible reading
  stops its heating or cooling at once and raises an alarm; nothing acts on a stale value.
* The diesel air heater (``drivers/autoterm.py``) serves one or more zones; it runs when one
  of them asks for heat, at a power level that a PI controller (``heater_level.py``) sets from
  the lead zone's shortfall (the first of its zones asking), so it modulates through the night
  instead of cycling; it rests between a stop and the next start (``rest_guard.py``). Its
  run-on is sacred: ``climate/heater/keep_power`` (true while it burns or runs on; unknown counts as
  set) is the lock of its power circuit; a shed power circuit stops the heater first.
* The roof A/C (a relay; the compressor is inside) needs AC power: on shore or generator
  always, on the inverter only above a SOC and within the inverter's headroom; its compressor
  rests between runs (``rest_guard.py``). A refusal says why.
* Heater and A/C never run in one zone at once: the one that runs keeps it.
* The CO alarm (a GPIO contact) stops the heater's combustion at once (its run-on is its own),
  runs the ventilation fan, raises a critical latched alarm, and locks the heater out until
  the alarm is acknowledged and the contact has been clear for ``co_alarm.clear_s``.
* Frost guard and pre-heat; the crew's choices persist across a restart and a power cut.

Times of the rules are monotonic; wall time only for timestamps and the pre-heat's start.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from drivers.autoterm import AutotermHeater, HeaterStatus, describe_error
from supervisor.climate.config import KEEP_POWER_LOCK, ClimateConfig, Zone
from supervisor.climate.heater_level import LevelController
from supervisor.climate.rest_guard import RestGuard
from supervisor.climate.thermostat import (
    Decision,
    Thermostat,
    ThermostatConfig,
    ZoneSettings,
)
from supervisor.core.alarms import AlarmDef
from supervisor.core.commands import ON_BOARD, ActionSpec, ArgSpec, CommandFailed
from supervisor.core.outputs import OutputDef
from supervisor.core.points import PointDef, PointValue, Scalar
from supervisor.core.subsystem import Context

LOOP_S = 1.0
# points the power subsystem reads (see supervisor/power/subsystem.py)
EXTRA_CURRENT = "climate/demand/extra_battery_current"
NEEDS_GENERATOR = "climate/ac/needs_generator"
SESSION = "room/session/active"  # the room subsystem's (supervisor/room)
CONFIRM_S = 10.0
# (sensor register, point suffix, deadband, precision)
SENSOR_POINTS = [("temperature", "temperature", 0.1, 1), ("humidity", "humidity", 0.5, 0)]
MODES = ("off", "heat", "cool", "auto", "fan_only")
PRESETS = ("comfort", "eco", "away", "session", "manual")  # manual: the crew's own set point
DEMANDS = ("heat", "cool", "fan", "idle")
HEATER_STATES = ("offline", "off", "standby", "starting", "running", "ventilation", "cooling",
                 "shutting_down", "unknown")
AC_STATES = ("off", "cooling", "resting", "refused", "blocked")
CO_STATES = ("clear", "alarm", "clearing", "fault", "unknown")
# inverter states in which its AC output is dead (no passthrough either)
DEAD_INVERTER = frozenset({"off", "fault"})
VENT_LEVEL = 4  # fan level of "fan only" through the heater
START_MINUTE_S = 60.0  # the glow plug's share of a start, for the pre-heat estimate
HEATER_SILENT_S = 10.0  # no status this long (with its power on): the offline alarm

CO_ALARM = AlarmDef("climate/co", "critical", "Alarm czadu (CO): grzałka wyłączona, "
                    "wentylacja włączona", "CO alarm: heater stopped, ventilation on",
                    latching=True)
HEATER_FAULT = AlarmDef("climate/heater/fault", "warning", "Błąd ogrzewania postojowego",
                        "Diesel heater fault")
HEATER_OFFLINE = AlarmDef("climate/heater/offline", "warning",
                          "Ogrzewanie postojowe nie odpowiada", "Diesel heater not answering")
CO_FAULT = AlarmDef("climate/co_fault", "warning", "Usterka czujnika czadu (CO)",
                    "CO detector fault")


def _sensor_alarm(zone: str) -> AlarmDef:
    return AlarmDef(f"climate/{zone}/sensor", "warning",
                    f"Czujnik temperatury ({zone}): brak odczytu, strefa nie jest sterowana",
                    f"Temperature sensor ({zone}): no reading, the zone is not controlled")


@dataclass
class PreHeatPlan:
    zone: str
    start: float  # wall clock, epoch s
    end: float
    setpoint_c: float

    def active(self, wall: float) -> bool:
        return self.start <= wall < self.end


class ClimateSubsystem:
    def __init__(self, ctx: Context, cfg: ClimateConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.store = ctx.points
        self._mono = ctx.clock.monotonic
        self._wall = ctx.clock.wall
        self.zones: dict[str, Zone] = {z.name: z for z in cfg.zone}
        self.thermostats = {z.name: _restore_thermostat(cfg, z, ctx.settings.get(
            f"zone/{z.name}", None)) for z in cfg.zone}
        self.decisions: dict[str, Decision] = {}
        self.preheat: dict[str, PreHeatPlan] = restore_preheat(
            ctx.settings.get("preheat", {}), self.zones, cfg.preheat.max_duration_s)
        self.actuator = ctx.actuator()
        self.heater: AutotermHeater | None = None
        self.heater_status: HeaterStatus | None = None
        self.heater_on = False  # what we asked of it (heat)
        self.heater_reason = ""
        self._heater_heard = False  # nothing is asked of it before its first status
        # it stopped by itself (a fault) or never reacted: not started again until the crew
        # asks anew (a climate action) or acknowledges its fault alarm
        self.heater_gave_up = ""
        self._heater_silent_since: float | None = None
        heater_cfg = cfg.heater
        # its power level (a PI controller on the lead zone) and its rest between runs; a
        # controller restart does not make a heater rest (it may be heating a cold room)
        self.level = LevelController(
            heater_cfg.min_level, heater_cfg.max_level, gain_per_k=heater_cfg.gain_per_k,
            integral_s=heater_cfg.integral_s, change_s=heater_cfg.level_change_s,
        ) if heater_cfg else None
        self.heater_guard = RestGuard(heater_cfg.min_off_s, 0.0,
                                      now=self._mono() - heater_cfg.min_off_s,
                                      machine="heater") if heater_cfg else None
        ac = cfg.air_conditioner
        # the controller (re)starting counts as a power loss: the compressor rests first
        self.compressor = RestGuard(ac.min_off_s, ac.min_run_s,
                                          now=self._mono()) if ac else None
        self.ac_on = False
        self._ac_seen_on = False  # its relay read on since it was switched on
        self.ac_state = "off"
        self.ac_reason = ""
        self.ac_waiting_for_power = False
        self.ac_needs_generator = False
        self._ac_supply_live = True
        # lifted only by an on-board person (climate/heater_reenable); kept across a restart
        self.co_lockout = bool(ctx.settings.get("co_lockout", False))
        self._co_clear_since: float | None = None
        self._co_pulse = False
        self.co_state = "clearing" if self.co_lockout else "clear"
        # one wake-up for the rules and the writer: a CO contact, a heater status, a command
        self.wake = self.actuator.wake
        self._define_points()
        self._declare_outputs()
        self._register_actions()
        if cfg.heater is not None:
            self.heater = AutotermHeater(str(cfg.heater.port), baudrate=cfg.heater.baudrate,
                                         poll_s=cfg.heater.poll_s,
                                         on_status=self._on_heater_status,
                                         monotonic=self._mono)
        if cfg.co_alarm is not None:
            contact = f"io/{cfg.co_alarm.input}"
            self.store.changed.add(lambda pdef, pv: self._co_edge(pdef, pv, contact))
        ctx.alarms.changed.add(self._alarm_changed)

    # ---- declarations ----------------------------------------------------------------------

    def _define_points(self) -> None:
        ctx, define = self.ctx, self.store.define
        for sensor in self.cfg.sensor:
            for register, suffix, deadband, precision in SENSOR_POINTS:
                ctx.devices.bind(sensor.device, register, f"climate/{sensor.name}/{suffix}",
                                 deadband=deadband, precision=precision)
        for zone in self.cfg.zone:
            label = zone.label or zone.name
            z = f"climate/{zone.name}"
            define(PointDef(f"{z}/mode", "enum", "", f"{label}: mode", enum=MODES,
                            enum_set="climate_mode"))
            define(PointDef(f"{z}/preset", "enum", "", f"{label}: preset", enum=PRESETS,
                            enum_set="climate_preset"))
            define(PointDef(f"{z}/setpoint", "number", "°C", f"{label}: set point in force",
                            precision=1))
            define(PointDef(f"{z}/demand", "enum", "", f"{label}: what the thermostat asks",
                            enum=DEMANDS, enum_set="climate_demand"))
            define(PointDef(f"{z}/reason", "string", "", f"{label}: why"))
            define(PointDef(f"{z}/preheat_start", "number", "s",
                            f"{label}: pre-heat start (epoch s, 0: none)"))
            ctx.alarms.define(_sensor_alarm(zone.name))
        if self.cfg.heater is not None:
            define(PointDef("climate/heater/state", "enum", "", "Diesel heater state",
                            enum=HEATER_STATES, enum_set="heater_state"))
            define(PointDef(KEEP_POWER_LOCK, "bool", "", "Diesel heater burns or runs on: its "
                            "power must not be cut"))
            define(PointDef("climate/heater/error", "integer", "", "Diesel heater error code"))
            define(PointDef("climate/heater/voltage", "number", "V", "Heater supply voltage",
                            deadband=0.1, precision=1))
            define(PointDef("climate/heater/level", "integer", "", "Heater power level asked"))
            define(PointDef("climate/heater/reason", "string", "", "Why the heater runs or not"))
            # what a pre-heat costs the battery, for the panel and HQ to show before asking
            define(PointDef("climate/preheat/start_ah", "number", "Ah",
                            "Battery charge of a heater start (glow plug)", precision=2))
            define(PointDef("climate/preheat/ah_per_h", "number", "Ah/h",
                            "Battery charge of an hour of heating", precision=1))
            ctx.alarms.define(HEATER_FAULT)
            ctx.alarms.define(HEATER_OFFLINE)
        ac = self.cfg.air_conditioner
        if ac is not None:
            ctx.devices.bind(ac.device, ac.output, "climate/ac/relay",
                             description="A/C relay (read back)")
            define(PointDef("climate/ac/state", "enum", "", "Air conditioning", enum=AC_STATES,
                            enum_set="ac_state"))
            define(PointDef("climate/ac/reason", "string", "", "Why the A/C runs or not"))
            define(PointDef("climate/ac/waiting_for_power", "bool", "",
                            "The A/C is asked for but refused for power"))
            define(PointDef(NEEDS_GENERATOR, "bool", "", "The A/C is asked for and needs the "
                            "generator (refused on battery, or running on it)"))
        vent = self.cfg.ventilation
        if vent is not None:
            ctx.devices.bind(vent.device, vent.output, "climate/ventilation",
                             description="Ventilation fan (read back)")
        if self.cfg.co_alarm is not None:
            define(PointDef("climate/co/state", "enum", "", "CO alarm", enum=CO_STATES,
                            enum_set="co_state"))
            define(PointDef("climate/co/heater_locked", "bool", "",
                            "No combustion allowed (CO, a lockout, an unknown or faulty "
                            "detector)"))
            define(PointDef("climate/co/reenable_in", "number", "s", "Seconds until the heater "
                            "may be re-enabled on board (0: now, if locked out)", precision=0))
            ctx.alarms.define(CO_ALARM)
            if self.cfg.co_alarm.fault_input is not None:
                ctx.alarms.define(CO_FAULT)
        define(PointDef(EXTRA_CURRENT, "number", "A", "Battery current the climate would add "
                        "if it ran what its modes ask for (power's 'runtime with climate')",
                        deadband=0.2, precision=1))

    def _declare_outputs(self) -> None:
        declare = self.ctx.outputs.declare
        ac = self.cfg.air_conditioner
        if ac is not None:
            # not in the self-test: the compressor's minimum off time is the rest guard's
            declare(OutputDef("climate/ac", False, device=ac.device, register=ac.output,
                              self_test=False))
        vent = self.cfg.ventilation
        if vent is not None:
            declare(OutputDef("climate/ventilation", False, device=vent.device,
                              register=vent.output))

    def _register_actions(self) -> None:
        if not self.zones:
            return
        reg = self.ctx.actions.register
        zone = ArgSpec("enum", enum=tuple(self.zones))
        reg(ActionSpec("climate/mode", self._mode_action, ON_BOARD,
                       {"zone": zone, "mode": ArgSpec("enum", enum=MODES)},
                       "Thermostat mode of a zone: off, heat, cool, auto, fan only"))
        reg(ActionSpec("climate/preset", self._preset_action, ON_BOARD,
                       {"zone": zone, "preset": ArgSpec("enum", enum=PRESETS)},
                       "Preset of a zone: comfort, eco, away (frost guard), session, manual"))
        reg(ActionSpec("climate/setpoint", self._setpoint_action, ON_BOARD,
                       {"zone": zone, "celsius": ArgSpec("number", min=7, max=35)},
                       "Set point of a zone (7-35 °C; the preset becomes manual)"))
        if self.cfg.heater is not None:
            reg(ActionSpec("climate/preheat", self._preheat_action,
                           frozenset({"crew", "technician", "hq"}),
                           {"zone": zone, "start": ArgSpec("number", min=0),
                            "minutes": ArgSpec("number", min=10,
                                               max=self.cfg.preheat.max_duration_s / 60),
                            "celsius": ArgSpec("number", min=7, max=35)},
                           "Pre-heat a zone from a start time (epoch s, 0: now) for some "
                           "minutes; the answer says what it will cost the battery"))
            reg(ActionSpec("climate/preheat_cancel", self._preheat_cancel_action,
                           frozenset({"crew", "technician", "hq"}), {"zone": zone},
                           "Cancel a zone's pre-heat"))
        if self.cfg.heater is not None and self.cfg.co_alarm is not None:
            # on board only: somebody who has checked the air and the exhaust
            reg(ActionSpec("climate/heater_reenable", self._reenable_action, ON_BOARD, {},
                           "Allow the heater again after a CO alarm (the contact must have "
                           "been clear for the configured time)"))

    # ---- inputs ---------------------------------------------------------------------------

    def _on_heater_status(self, status: HeaterStatus | None) -> None:
        self.heater_status = status
        if status is not None and not self._heater_heard:
            # its first answer since the controller started: a heater found heating (a
            # restart of ours, not of the van) is taken over by the zones it serves
            self._heater_heard = True
            if status.state in ("starting", "running") and self.cfg.heater is not None:
                for zone in self.cfg.heater.zones:
                    self.thermostats[zone].resume("heat")
        self.wake.set()

    def _alarm_changed(self, adef: AlarmDef, state: object, what: str) -> None:
        if adef.id == HEATER_FAULT.id and what == "acknowledged" and self.heater_gave_up:
            self.heater_gave_up = ""
            self.wake.set()

    def _temperature(self, sensor: str) -> float | None:
        """A fresh, plausible reading, or None (the zone is then not controlled)."""
        value = self.store.good(f"climate/{sensor}/temperature")
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if not self.cfg.sensor_min_c <= value <= self.cfg.sensor_max_c:
            return None
        return float(value)

    def _num(self, pid: str) -> float | None:
        value = self.store.good(pid)
        return float(value) if isinstance(value, int | float) and not isinstance(
            value, bool) else None

    # ---- the rules ------------------------------------------------------------------------

    def evaluate(self, now: float) -> None:
        """Thermostats, interlocks and equipment on the current points."""
        wall = self._wall()
        self._co(now)
        for name, zone in self.zones.items():
            temp = self._temperature(zone.sensor)
            thermostat = self.thermostats[name]
            thermostat.in_session = self._in_session(name)
            plan = self.preheat.get(name)
            if plan is not None and wall >= plan.end:
                del self.preheat[name]
                self.ctx.settings.put("preheat", _save_preheat(self.preheat))
                plan = None
            decision = thermostat.step(now, temp)
            if plan is not None and plan.active(wall) and temp is not None \
                    and decision.demand == "idle" and self._preheat_wants(name, temp, plan):
                decision = Decision("heat", "pre-heat", decision.assert_now)
            self.decisions[name] = decision
            self.ctx.alarms.set(f"climate/{name}/sensor", temp is None, wall,
                                "no fresh reading" if temp is None else "")
        self._air_conditioner(now)
        self._heater(now)
        if self.cfg.ventilation is not None:
            self.actuator.want("climate/ventilation", self.co_lockout
                               or self.co_state in ("alarm", "unknown"))
        self._publish()

    def _co(self, now: float) -> None:
        """The CO contact (a pulse between two turns counts too), the detector's fault
        contact, the alarm, and the lockout that only an on-board person lifts."""
        co = self.cfg.co_alarm
        if co is None:
            return
        wall = self._wall()
        contact = self.store.good(f"io/{co.input}")
        pulse, self._co_pulse = self._co_pulse, False
        fault = None if co.fault_input is None else self.store.good(f"io/{co.fault_input}")
        if co.fault_input is not None:
            self.ctx.alarms.set(CO_FAULT.id, fault is not False, wall,
                                "" if fault is False else "detector reports a fault")
        if contact is True or pulse:
            if self.co_state != "alarm":
                self.ctx.log.warning("co_alarm")
                self.ctx.event({"kind": "climate", "what": "co_alarm"})
            self.co_state, self._co_clear_since = "alarm", None
            if not self.co_lockout:
                self.co_lockout = True
                self.ctx.settings.put("co_lockout", True)  # a restart must not forget it
        elif contact is None:
            self.co_state, self._co_clear_since = "unknown", None  # no combustion on it
        else:
            if self._co_clear_since is None:
                self._co_clear_since = now
            if co.fault_input is not None and fault is not False:
                self.co_state = "fault"  # no supervision of the air: no combustion
            else:
                self.co_state = "clearing" if self.co_lockout else "clear"
        self.ctx.alarms.set(CO_ALARM.id, self.co_state == "alarm", wall,
                            "CO contact active" if self.co_state == "alarm" else "")

    def _co_blocks(self) -> bool:
        """No combustion: CO now, a lockout not lifted, or a CO state nobody can vouch for."""
        return self.co_lockout or self.co_state in ("alarm", "unknown", "fault")

    def _co_edge(self, pdef: PointDef, pv: PointValue, point_id: str) -> None:
        """Listener: a CO contact that closes is remembered until the next turn and wakes it
        at once (a short pulse must not be missed between two turns)."""
        if pdef.id == point_id:
            if pv.value is True:
                self._co_pulse = True
            self.wake.set()

    def _zones_asking(self, zones: tuple[str, ...], demand: str) -> list[str]:
        return [z for z in zones if self.decisions.get(z, _IDLE).demand == demand]

    def _air_conditioner(self, now: float) -> None:
        ac, guard = self.cfg.air_conditioner, self.compressor
        if ac is None or guard is None:
            return
        asking = self._zones_asking(ac.zones, "cool")
        heater_zones = self.cfg.heater.zones if self.cfg.heater is not None else ()
        blocked = self._heater_active() and any(z in heater_zones for z in ac.zones)
        refusal = self._ac_power_refusal(ac.current_ac_a) if asking else None
        self.ac_waiting_for_power = bool(asking) and refusal is not None and not blocked
        relay = self.store.good("climate/ac/relay")
        live = self.store.good("power/inverter/state") not in DEAD_INVERTER
        if self._ac_supply_live and not live:
            # its supply died (the inverter off or faulted): the compressor stopped with it,
            # whatever its relay says, and rests from now
            self.ac_on = self._ac_seen_on = False
            guard.power_lost(now)
        self._ac_supply_live = live
        if self.ac_on and relay is True:
            self._ac_seen_on = True
        elif self.ac_on and self._ac_seen_on and relay is False:
            # it was on and dropped (a brown-out, a hand on the relay): the compressor
            # stopped without us and rests before it may start again
            self.ac_on = self._ac_seen_on = False
            guard.power_lost(now)
        if self.ac_on:
            # no power, or a zone far too cold: stop now, whatever its (and the thermostat's)
            # minimum run
            safety = refusal is not None or bool(self._beyond_band(ac.zones, ac.overcool_k,
                                                                   "cold"))
            stop = not asking or blocked or safety
            if stop and (safety or guard.may_stop(now)):
                self.ac_on = self._ac_seen_on = False
                guard.stopped(now)
        elif asking and not blocked and refusal is None:
            rest = guard.may_start(now)
            if rest is None:
                self.ac_on = True
                guard.started(now)
            else:
                self.ac_state, self.ac_reason = "resting", rest
        self.ac_needs_generator = bool(asking) and not blocked and (
            refusal is not None or (self.ac_on and self.store.good("power/ac/source")
                                    == "generator"))
        if self.ac_on:
            self.ac_state, self.ac_reason = "cooling", f"cooling {', '.join(asking)}"
        elif blocked and asking:
            self.ac_state, self.ac_reason = "blocked", "the heater runs in the same zone"
        elif refusal is not None:
            self.ac_state, self.ac_reason = "refused", refusal
        elif not asking:
            self.ac_state, self.ac_reason = "off", ""
        self.actuator.want("climate/ac", self.ac_on)

    def _ac_power_refusal(self, ac_amps: float) -> str | None:
        """Why the A/C may not run on the power there is now (None: it may)."""
        ac = self.cfg.air_conditioner
        assert ac is not None
        state = self.store.good("power/inverter/state")
        if state in DEAD_INVERTER:
            return f"no AC power (the inverter is {state})"
        source = self.store.good("power/ac/source")
        if source in ("shore", "generator", "grid"):
            return None
        soc = self._num("power/battery/soc")
        if soc is None:
            return "no battery reading"
        if soc < ac.battery_min_soc:
            return f"on battery below {ac.battery_min_soc:.0f} % SOC ({soc:.0f} %)"
        load = self._num("power/inverter/ac_out_current")
        if load is None:
            return "no reading of the inverter's load"
        if self.ac_on:
            load = max(0.0, load - ac_amps)  # its own share of the inverter's load
        if load + ac_amps > ac.inverter_max_ac_a:
            return (f"the inverter has no headroom ({load:.1f} A + {ac_amps:.1f} A > "
                    f"{ac.inverter_max_ac_a:.1f} A)")
        return None

    def _heater(self, now: float) -> None:
        heater_cfg, heater = self.cfg.heater, self.heater
        level, guard = self.level, self.heater_guard
        if heater_cfg is None or heater is None or level is None or guard is None:
            return
        if not self._heater_heard:
            # the driver leaves an unheard heater alone: a restart does not stop it blindly
            self.heater_reason = "waiting for the heater's first answer"
            return
        asking = self._zones_asking(heater_cfg.zones, "heat")
        fan = self._zones_asking(heater_cfg.zones, "fan")
        if heater.start_blocked is not None and not self.heater_gave_up:
            code = self.heater_status.error if self.heater_status is not None else 0
            self.heater_gave_up = (f"the heater stopped by itself (E{code})"
                                   if heater.start_blocked == "stopped_itself"
                                   else "the heater did not react to its start")
            self.ctx.event({"kind": "climate", "what": "heater_gave_up", "error": code,
                            "why": heater.start_blocked})
        ac_zones = self.cfg.air_conditioner.zones if self.cfg.air_conditioner else ()
        ac_blocks = self.ac_on and any(z in ac_zones for z in heater_cfg.zones)
        shed = self._shed_reason(heater_cfg.power_circuit)
        if self._co_blocks():
            on, reason = False, {
                "alarm": "CO alarm: combustion stopped",
                "unknown": "the CO alarm cannot be read: no combustion",
                "fault": "the CO detector reports a fault: no combustion",
            }.get(self.co_state, "locked out after a CO alarm: re-enable it on board once "
                                 "the air is checked")
        elif blind := [z for z in heater_cfg.zones
                       if self._temperature(self.zones[z].sensor) is None]:
            # it blows into a zone nobody can see: a controlled stop
            on, reason, fan = False, f"no temperature reading in {', '.join(blind)}", []
        elif shed and (asking or fan):
            # its power is to be cut: a controlled stop first (the lock holds the power on
            # through the run-on, then the load manager cuts it)
            on, reason, fan = False, f"power shed: {shed}", []
        elif self.heater_gave_up and (asking or fan):
            on, reason, fan = False, (f"{self.heater_gave_up}: not started again until a "
                                      "climate setting changes or its alarm is acknowledged"), []
        elif ac_blocks and asking:
            on, reason = False, "the A/C runs in the same zone"
        elif asking and (hot := self._beyond_band(heater_cfg.zones, heater_cfg.overheat_k, "hot")):
            on, reason = False, f"{', '.join(hot)} too warm"
        elif asking and (rest := guard.may_start(now)):
            on, reason = False, rest
        elif asking:
            on, reason = True, f"heating {', '.join(asking)}"
        else:
            on, reason = False, ""
        self.heater_on, self.heater_reason = on, reason
        if on:
            guard.started(now)
            # the first zone asking leads (a fresh reading: a blind zone stopped it above);
            # a zone it blows into that is already warm enough holds it at its lowest level
            lead = asking[0]
            temp = self._temperature(self.zones[lead].sensor)
            shortfall = 0.0 if temp is None else self._target(lead) - temp
            cap = level.min_level if self._beyond_band(heater_cfg.zones, 0.0, "hot") else None
            if any(self._in_session(z) for z in heater_cfg.zones):
                cap = min(cap if cap is not None else heater_cfg.max_level,
                          max(self.cfg.session_level_cap, level.min_level))
            heater.want_heat(level=level.step(now, shortfall, cap))
            return
        guard.stopped(now)
        level.reset()
        if fan and not self._co_blocks():
            heater.want_ventilation(VENT_LEVEL)
            self.heater_reason = f"ventilation {', '.join(fan)}"
        else:
            heater.want_off()

    def _preheat_wants(self, zone: str, temp: float, plan: PreHeatPlan) -> bool:
        """The pre-heat's own band: on below its set point minus the cold tolerance, on
        until its set point plus the hot tolerance (no chatter at the set point)."""
        tolerances = self.zones[zone].thermostat
        was = self.decisions.get(zone, _IDLE).reason == "pre-heat"
        limit = plan.setpoint_c + (tolerances.hot_tolerance_k if was
                                   else -tolerances.cold_tolerance_k)
        return temp < limit

    def _in_session(self, zone: str) -> bool:
        """A session runs in the consultation room and this is its zone."""
        return zone == self.cfg.session_zone and self.store.good(SESSION) is True

    def _heater_active(self) -> bool:
        """Asked to heat, or burning or running on by its own report (unknown: assume so)."""
        if self.heater is None:
            return False
        status = self.heater_status
        return self.heater_on or status is None or status.state not in ("off", "standby")

    def _shed_reason(self, circuit: str | None) -> str:
        value = self.store.good(f"power/circuit/{circuit}/shed") if circuit else None
        return value if isinstance(value, str) else ""

    def _beyond_band(self, zones: tuple[str, ...], margin_k: float, side: str) -> list[str]:
        """Zones (not switched off) more than ``margin_k`` above their set point and hot
        tolerance (``side`` "hot") or below it and their cold tolerance ("cold")."""
        found = []
        for z in zones:
            temp = self._temperature(self.zones[z].sensor)
            if self.thermostats[z].settings.mode == "off" or temp is None:
                continue
            tolerances = self.zones[z].thermostat
            if side == "hot" and temp > self._target(z) + tolerances.hot_tolerance_k + margin_k:
                found.append(z)
            if side == "cold" and temp < (self._target(z) - tolerances.cold_tolerance_k
                                          - margin_k):
                found.append(z)
        return found

    def _target(self, zone: str) -> float:
        plan = self.preheat.get(zone)
        if plan is not None and plan.active(self._wall()):
            return max(plan.setpoint_c, self.thermostats[zone].target())
        return self.thermostats[zone].target()

    # ---- publishing -----------------------------------------------------------------------

    def _publish(self) -> None:
        ts = self._wall()

        def put(pid: str, value: Scalar | None, none_ok: bool = False) -> None:
            self.store.update(pid, value, ts, none_ok)

        for name, thermostat in self.thermostats.items():
            settings = thermostat.settings
            decision = self.decisions.get(name, _IDLE)
            put(f"climate/{name}/mode", settings.mode)
            put(f"climate/{name}/preset", "session" if self.thermostats[name].in_session
                else settings.preset or "manual")
            put(f"climate/{name}/setpoint", round(self._target(name), 1))
            put(f"climate/{name}/demand", decision.demand)
            put(f"climate/{name}/reason", decision.reason)
            plan = self.preheat.get(name)
            put(f"climate/{name}/preheat_start", round(plan.start) if plan else 0)
        if self.cfg.heater is not None:
            self._publish_heater(put)
        ac = self.cfg.air_conditioner
        if ac is not None:
            put("climate/ac/state", self.ac_state)
            put("climate/ac/reason", self.ac_reason)
            put("climate/ac/waiting_for_power", self.ac_waiting_for_power)
            put(NEEDS_GENERATOR, self.ac_needs_generator)
        if self.cfg.co_alarm is not None:
            put("climate/co/state", self.co_state)
            put("climate/co/heater_locked", self._co_blocks())
            put("climate/co/reenable_in", math.ceil(self._reenable_in()))  # 0: it may now
        put(EXTRA_CURRENT, round(self._extra_battery_amps(), 1))

    def _extra_battery_amps(self) -> float:
        """What the battery would give on top of now if the heater and the A/C ran as their
        zones' modes ask (nothing for what already runs, or for an A/C on shore power)."""
        amps = 0.0
        heater, ac = self.cfg.heater, self.cfg.air_conditioner
        if heater is not None and not self.heater_on and self._modes_want(heater.zones,
                                                                          "heat"):
            amps += heater.running_current_a
        on_battery = self.store.good("power/ac/source") not in ("shore", "generator", "grid")
        if ac is not None and not self.ac_on and on_battery and self._modes_want(ac.zones,
                                                                                 "cool"):
            amps += self._battery_amps_of_ac(ac.current_ac_a)
        return amps

    def _modes_want(self, zones: tuple[str, ...], kind: str) -> bool:
        return any(self.thermostats[z].settings.mode in (kind, "auto") for z in zones)

    def _publish_heater(self, put: Any) -> None:
        status, wall = self.heater_status, self._wall()
        if status is None:
            put("climate/heater/state", "offline")
            put(KEEP_POWER_LOCK, None, True)  # unknown: the lock counts as set
        else:
            put("climate/heater/state", status.state if status.state in HEATER_STATES
                else "unknown")
            put(KEEP_POWER_LOCK, status.state not in ("off", "standby"))
            put("climate/heater/error", status.error)
            put("climate/heater/voltage", round(status.voltage_v, 1))
        put("climate/heater/level", self.level.level if self.heater_on and self.level else 0)
        put("climate/heater/reason", self.heater_reason)
        put("climate/preheat/start_ah", round(self._preheat_ah(0.0), 2))
        put("climate/preheat/ah_per_h", round(self._preheat_ah(60.0) - self._preheat_ah(0.0), 1))
        # silent for a while, while its power is on: not at start-up, not when cut on purpose
        powered = self.cfg.heater is None or self.cfg.heater.power_circuit is None or \
            self.store.good(f"power/circuit/{self.cfg.heater.power_circuit}") is not False
        if status is not None or not powered:
            self._heater_silent_since = None
        elif self._heater_silent_since is None:
            self._heater_silent_since = self._mono()
        silent = self._heater_silent_since is not None and \
            self._mono() - self._heater_silent_since >= HEATER_SILENT_S
        self.ctx.alarms.set(HEATER_OFFLINE.id, silent, wall, "no answer on its line")
        code = status.error if status is not None else 0
        short, text_en, _text_pl = describe_error(code)
        detail = f"E{code} {short}: {text_en}" if code else ""
        self.ctx.alarms.set(HEATER_FAULT.id, code != 0 or bool(self.heater_gave_up), wall,
                            detail or self.heater_gave_up)

    def _battery_amps_of_ac(self, ac_amps: float) -> float:
        """Battery current of an AC load through the inverter (90 % efficient)."""
        volts = self._num("power/battery/voltage") or float(self.ctx.vehicle.
                                                             battery_nominal_voltage)
        return ac_amps * 230 / 0.9 / volts

    # ---- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate every second (at once when woken: a CO contact, a heater status)."""
        async with asyncio.TaskGroup() as tg:
            if self.heater is not None:
                tg.create_task(self.heater.run(), name="heater")
            await self.ctx.turns(self.wake, self._turn)

    async def _turn(self) -> float:
        await self.step()
        return LOOP_S

    async def step(self) -> None:
        """One turn: the rules, then the writer."""
        self.evaluate(self._mono())
        await self.actuator.step()

    def stop(self) -> None:
        """Shutdown: the heater is told to stop (its run-on is its own; its power circuit
        stays locked meanwhile), the A/C goes to its safe state with the others."""
        if self.heater is not None:
            self.heater.want_off()

    # ---- actions --------------------------------------------------------------------------

    def _changed(self, zone: str) -> None:
        self.heater_gave_up = ""  # the crew asks anew: the heater may try again
        self.ctx.settings.put(f"zone/{zone}", self.thermostats[zone].settings.to_dict())
        self.evaluate(self._mono())
        self.wake.set()

    async def _mode_action(self, args: dict[str, Any]) -> str:
        zone, mode = str(args["zone"]), str(args["mode"])
        self.thermostats[zone].set_mode(mode)  # type: ignore[arg-type]
        if mode == "off" and self.preheat.pop(zone, None) is not None:
            # the crew switched the zone off: a planned pre-heat must not light it anyway
            self.ctx.settings.put("preheat", _save_preheat(self.preheat))
        self._changed(zone)
        return f"{zone}: mode {mode}"

    async def _preset_action(self, args: dict[str, Any]) -> str:
        zone, preset = str(args["zone"]), str(args["preset"])
        thermostat = self.thermostats[zone]
        if preset == "manual":
            thermostat.set_setpoint(thermostat.target())
        else:
            thermostat.set_preset(preset)  # type: ignore[arg-type]
        self._changed(zone)
        return f"{zone}: preset {preset} ({thermostat.target():.1f} °C)"

    async def _setpoint_action(self, args: dict[str, Any]) -> str:
        zone, celsius = str(args["zone"]), round(float(args["celsius"]), 1)
        try:
            self.thermostats[zone].set_setpoint(celsius)
        except ValueError as exc:
            raise CommandFailed("out_of_range", str(exc), "rejected") from exc
        self._changed(zone)
        return f"{zone}: {celsius:.1f} °C"

    async def _preheat_action(self, args: dict[str, Any]) -> str:
        assert self.cfg.heater is not None
        zone = str(args["zone"])
        wall = self._wall()
        start = float(args["start"]) or wall
        if start < wall - 60 or start > wall + self.cfg.preheat.max_advance_s:
            raise CommandFailed("out_of_range", "the start must be from now to "
                                f"{self.cfg.preheat.max_advance_s / 3600:.0f} h ahead",
                                "rejected")
        if self._co_blocks():
            raise CommandFailed("interlock", "the heater is locked out (CO)", "rejected")
        minutes = float(args["minutes"])
        plan = PreHeatPlan(zone, max(start, wall), max(start, wall) + minutes * 60,
                           float(args["celsius"]))
        self.preheat[zone] = plan
        self.ctx.settings.put("preheat", _save_preheat(self.preheat))
        self.heater_gave_up = ""  # asked anew: the heater may try again
        self.ctx.event({"kind": "climate", "what": "preheat", "zone": zone,
                        "start": plan.start, "minutes": minutes, "celsius": plan.setpoint_c})
        self.wake.set()
        return (f"{zone}: pre-heat to {plan.setpoint_c:.0f} °C for {minutes:.0f} min; "
                f"it costs the battery up to {self._preheat_ah(minutes):.1f} Ah")

    def _preheat_ah(self, minutes: float) -> float:
        """The battery charge a pre-heat costs at most: the start, then running."""
        heater = self.cfg.heater
        assert heater is not None
        return (heater.start_current_a * START_MINUTE_S / 3600
                + heater.running_current_a * minutes / 60)

    def _clear_for(self) -> float:
        """Seconds the CO contact has read clear (0 while CO, unknown or a fault)."""
        if self._co_clear_since is None or self.co_state not in ("clearing", "clear"):
            return 0.0
        return self._mono() - self._co_clear_since

    def _reenable_in(self) -> float:
        co = self.cfg.co_alarm
        if co is None or not self.co_lockout:
            return 0.0
        return max(0.0, co.clear_s - self._clear_for())

    async def _reenable_action(self, args: dict[str, Any]) -> str:
        co = self.cfg.co_alarm
        assert co is not None
        if not self.co_lockout:
            raise CommandFailed("not_locked", "the heater is not locked out", "rejected")
        clear_for = self._clear_for()
        if clear_for < co.clear_s:
            raise CommandFailed("co_not_clear", f"the CO contact has been clear for "
                                f"{clear_for:.0f} s of the {co.clear_s:.0f} s needed", "rejected")
        self.co_lockout = False
        self.ctx.settings.put("co_lockout", False)
        self.ctx.event({"kind": "climate", "what": "co_lockout_released"})
        self.evaluate(self._mono())
        self.wake.set()
        return "heater allowed again"

    async def _preheat_cancel_action(self, args: dict[str, Any]) -> str:
        zone = str(args["zone"])
        if self.preheat.pop(zone, None) is None:
            raise CommandFailed("no_preheat", f"{zone} has no pre-heat planned", "rejected")
        self.ctx.settings.put("preheat", _save_preheat(self.preheat))
        self.wake.set()
        return f"{zone}: pre-heat cancelled"


_IDLE = Decision("idle", "", False)


def _restore_thermostat(cfg: ClimateConfig, zone: Zone, saved: Any) -> Thermostat:
    """A zone's thermostat with the crew's saved choices (a zone never saved starts off;
    anything unusable in what was saved falls back to the default, field by field)."""
    tcfg = _thermostat_config(cfg, zone)
    return Thermostat(tcfg, ZoneSettings.from_dict(saved, tcfg))


def _thermostat_config(cfg: ClimateConfig, zone: Zone) -> ThermostatConfig:
    t = zone.thermostat
    return ThermostatConfig(
        cold_tolerance_k=t.cold_tolerance_k, hot_tolerance_k=t.hot_tolerance_k,
        min_cycle_s=t.min_cycle_s, keep_alive_s=t.keep_alive_s,
        presets=t.presets.model_dump(), frost_below_c=cfg.frost_below_c,
        frost_setpoint_c=cfg.frost_setpoint_c, auto_deadband_k=t.auto_deadband_k)


def _save_preheat(plans: dict[str, PreHeatPlan]) -> dict[str, list[float]]:
    return {z: [p.start, p.end, p.setpoint_c] for z, p in plans.items()}


def restore_preheat(saved: Any, zones: dict[str, Zone],
                    max_duration_s: float) -> dict[str, PreHeatPlan]:
    """Plans saved before a restart; anything malformed or out of bounds (a zone not
    configured, not finite, longer than the longest pre-heat, a set point outside 7-35 °C) is
    dropped: a corrupted card never stops the van nor lights a heater for ever."""
    plans: dict[str, PreHeatPlan] = {}
    if not isinstance(saved, dict):
        return plans
    for zone, value in saved.items():
        if zone in zones and isinstance(value, list) and len(value) == 3 and all(
                isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)
                                         and abs(v) < 2**53) for v in value):
            start, end, celsius = (float(v) for v in value)
            if 0 < end - start <= max_duration_s and 7 <= celsius <= 35:
                plans[zone] = PreHeatPlan(zone, start, end, celsius)
    return plans


def build(ctx: Context, cfg: ClimateConfig) -> ClimateSubsystem:
    """The registry's entry point (see supervisor/registry.py)."""
    return ClimateSubsystem(ctx, cfg)

