"""Lighting: relay circuits and dimmers, scenes with fades, auto-off, the driving interlock.

* Each light has a level the crew chose (0-100 %; a relay is on above 0), persisted, set by
  ``lighting/set`` or by a scene (``lighting/scene``), which sets the lights it names.
* **Fades**: a dimmer moves towards its level at 100 % per ``fade_s``, in steps written every
  turn while it moves; a relay switches at once.
* **Auto-off**: a light with ``auto_off_s`` goes off that long after it was switched on.
* **Driving interlock**: while the engine runs, exterior lights are off
  (``exterior_when_driving = "off"``), or stay on with the ``lighting/exterior_while_driving``
  warning ("warn"); the crew's level is kept and comes back when the van stops.
* **Session**: while ``room/session/active`` reads true, the room's lights follow
  ``session_scene`` (the calm scene); when the session ends they return to the crew's levels.
* Open-load or over-current feedback: none of the configured hardware reports it (the
  Waveshare relay boards do not; their profile says so), so a light's state is its read-back.
"""

from __future__ import annotations

from typing import Any

from supervisor.core.alarms import AlarmDef
from supervisor.core.commands import ON_BOARD, ActionSpec, ArgSpec, CommandFailed
from supervisor.core.outputs import OutputDef
from supervisor.core.points import PointDef
from supervisor.core.subsystem import Context
from supervisor.lighting.config import Light, LightingConfig

LOOP_S = 1.0
FADE_TURN_S = 0.25  # the turn while a dimmer fades
SESSION_POINT = "room/session/active"

EXTERIOR_WHILE_DRIVING = AlarmDef(
    "lighting/exterior_while_driving", "warning", "Światła zewnętrzne włączone podczas jazdy",
    "Exterior lights on while driving")


class LightingSubsystem:
    def __init__(self, ctx: Context, cfg: LightingConfig) -> None:
        self.ctx, self.cfg = ctx, cfg
        self.store = ctx.points
        self._mono, self._wall = ctx.clock.monotonic, ctx.clock.wall
        self.actuator = ctx.actuator()
        self.wake = self.actuator.wake
        self.lights = {light.name: light for light in cfg.light}
        self.scenes = {scene.name: scene for scene in cfg.scene}
        saved = ctx.settings.get("levels", {})
        self.levels: dict[str, float] = {
            name: _level(saved.get(name)) if isinstance(saved, dict) else 0.0
            for name in self.lights}
        self.scene = str(ctx.settings.get("scene", ""))
        self._dimmer = {name: self._is_dimmer(light) for name, light in self.lights.items()}
        self._shown: dict[str, float] = {}  # a fading dimmer's level now
        self._on_since: dict[str, float] = {}  # monotonic time a light went on (auto-off)
        self._last_turn: float | None = None  # the first turn fades nothing
        self._define()

    def _is_dimmer(self, light: Light) -> bool:
        return self.ctx.devices.profile(light.device).get(light.output).type != "bool"

    def _define(self) -> None:
        ctx, define = self.ctx, self.store.define
        for name, light in self.lights.items():
            label = light.label or name
            dimmer = self._dimmer[name]
            # a relay's safe state is off; a dimmer holds its level (a room never goes dark)
            ctx.outputs.declare(OutputDef(f"lighting/{name}", None if dimmer else False,
                                          device=light.device, register=light.output))
            define(PointDef(f"lighting/{name}/level", "number", "%",
                            f"{label}: level chosen", precision=0))
            define(PointDef(f"lighting/{name}/on", "bool", "", f"{label}: lit (read back)"))
            # what a panel or HQ needs to show it: a switch or a slider, and its interlock
            define(PointDef(f"lighting/{name}/kind", "enum", "", f"{label}: relay or dimmer",
                            enum=("relay", "dimmer"), enum_set="light_kind"))
            define(PointDef(f"lighting/{name}/interlock", "enum", "",
                            f"{label}: while driving", enum=("none", "off", "warn"),
                            enum_set="light_interlock"))
            if light.auto_off_s is not None:
                define(PointDef(f"lighting/{name}/auto_off_in", "number", "s",
                                f"{label}: switches itself off in", precision=0))
        define(PointDef("lighting/scene", "string", "", "The last scene chosen"))
        ctx.alarms.define(EXTERIOR_WHILE_DRIVING)
        if self.lights:
            reg = ctx.actions.register
            reg(ActionSpec("lighting/set", self._set_action, ON_BOARD,
                           {"light": ArgSpec("enum", enum=tuple(self.lights)),
                            "level": ArgSpec("number", min=0, max=100)},
                           "Set one light (0-100 %; a relay is on above 0)"))
            if self.scenes:
                reg(ActionSpec("lighting/scene", self._scene_action, ON_BOARD,
                               {"scene": ArgSpec("enum", enum=tuple(self.scenes))},
                               "Choose a scene"))

    # ---- the rules -----------------------------------------------------------------------

    def wanted(self, name: str) -> float | None:
        """The level a light should have now: the crew's, under the session and the
        driving interlock; None while it depends on a session nobody can say yet (held)."""
        light = self.lights[name]
        level = self.levels[name]
        session_scene = self.scenes.get(self.cfg.session_scene or "")
        if session_scene is not None and light.zone == "room" and name in session_scene.levels:
            session = self.store.good(SESSION_POINT)
            if session is None:
                return None
            if session is True:
                level = session_scene.levels[name]
        if (light.zone == "exterior" and self.cfg.exterior_when_driving == "off"
                and self.ctx.driving()):
            level = 0.0
        return level

    def evaluate(self, now: float) -> bool:
        """Set every light's target; True while a dimmer is still fading."""
        dt = 0.0 if self._last_turn is None else now - self._last_turn
        self._last_turn = now
        fading = False
        exterior_on = False
        for name, light in self.lights.items():
            level = self.wanted(name)
            if level is None:
                continue  # held as it is until the room's session is known
            if level > 0 and light.auto_off_s is not None:
                since = self._on_since.setdefault(name, now)
                if now - since >= light.auto_off_s:
                    self._store_level(name, 0.0)
                    self.ctx.event({"kind": "lighting", "what": "auto_off", "light": name})
                    level = 0.0
            if level <= 0:
                self._on_since.pop(name, None)
            if self._dimmer[name]:
                shown = self._fade(name, level, dt)
                fading = fading or shown != level
                self.actuator.want(f"lighting/{name}", round(shown, 1))
            else:
                self.actuator.want(f"lighting/{name}", level > 0)
            exterior_on = exterior_on or (light.zone == "exterior" and level > 0)
        self.ctx.alarms.set(EXTERIOR_WHILE_DRIVING.id, exterior_on and self.ctx.driving(),
                            self._wall(), "")
        self._publish(now)
        return fading

    def _fade(self, name: str, level: float, dt: float) -> float:
        """A dimmer's level now on its way to ``level`` (at once without a fade time)."""
        shown = self._shown.get(name)
        if shown is None:
            # first turn: start from what the dimmer reads (a restart does not flash it)
            actual = self.ctx.outputs.actual(f"lighting/{name}")
            shown = float(actual) if isinstance(actual, int | float) else level
        if self.cfg.fade_s <= 0:
            shown = level
        else:
            step = 100.0 * max(dt, 0.0) / self.cfg.fade_s
            shown = min(level, shown + step) if level > shown else max(level, shown - step)
        self._shown[name] = shown
        return shown

    def _publish(self, now: float) -> None:
        wall, put = self._wall(), self.store.update
        for name, light in self.lights.items():
            put(f"lighting/{name}/kind", "dimmer" if self._dimmer[name] else "relay", wall)
            put(f"lighting/{name}/interlock", self.cfg.exterior_when_driving
                if light.zone == "exterior" else "none", wall)
            put(f"lighting/{name}/level", round(self.levels[name]), wall)
            actual = self.ctx.outputs.actual(f"lighting/{name}")
            put(f"lighting/{name}/on", None if actual is None else bool(actual), wall)
            if light.auto_off_s is not None:
                since = self._on_since.get(name)
                put(f"lighting/{name}/auto_off_in", 0 if since is None
                    else round(max(0.0, light.auto_off_s - (now - since))), wall)
        put("lighting/scene", self.scene, wall)

    def _store_level(self, name: str, level: float) -> None:
        self.levels[name] = level
        self.ctx.settings.put("levels", self.levels)

    # ---- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """A turn every second, every quarter second while a dimmer fades."""
        self.store.changed.add(lambda pdef, pv: self.wake.set()
                               if pdef.id in (SESSION_POINT, "vehicle/driving") else None)
        await self.ctx.turns(self.wake, self._turn)

    async def _turn(self) -> float:
        fading = self.evaluate(self._mono())
        await self.actuator.step()
        return FADE_TURN_S if fading else LOOP_S

    def stop(self) -> None:
        """Shutdown: the relays go to their safe state (off) with the others."""

    # ---- actions -------------------------------------------------------------------------

    async def _set_action(self, args: dict[str, Any]) -> str:
        name, level = str(args["light"]), float(args["level"])
        light = self.lights[name]
        if not self._dimmer[name]:
            level = 100.0 if level > 0 else 0.0
        refused = self._refused(light, level)
        if refused:
            raise CommandFailed("interlock", refused, "rejected")
        self._store_level(name, level)
        self.scene = ""
        self.ctx.settings.put("scene", self.scene)
        self.wake.set()
        return f"{light.label or name}: {level:.0f} %"

    async def _scene_action(self, args: dict[str, Any]) -> str:
        scene = self.scenes[str(args["scene"])]
        skipped = []
        for name, level in scene.levels.items():
            if self._refused(self.lights[name], level):
                skipped.append(name)
                continue
            self.levels[name] = level
        self.ctx.settings.put("levels", self.levels)
        self.scene = scene.name
        self.ctx.settings.put("scene", self.scene)
        self.ctx.event({"kind": "lighting", "what": "scene", "scene": scene.name})
        self.wake.set()
        note = f" ({', '.join(skipped)} stay off while driving)" if skipped else ""
        return f"scene {scene.label or scene.name}{note}"

    def _refused(self, light: Light, level: float) -> str:
        """Why a light may not be switched on now ("" when it may)."""
        if (level > 0 and light.zone == "exterior" and self.cfg.exterior_when_driving == "off"
                and self.ctx.driving()):
            return f"{light.label or light.name}: exterior lights stay off while driving"
        return ""


def _level(value: object) -> float:
    """A saved level, or 0 when it is not a number within 0-100."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100:
        return float(value)
    return 0.0


def build(ctx: Context, cfg: LightingConfig) -> LightingSubsystem:
    """The lighting subsystem on its context."""
    return LightingSubsystem(ctx, cfg)
