"""The ``[lighting]`` section of the vehicle config: lights, scenes and their rules.

A light is a relay (on/off) or a dimmable channel (a numeric register in %, such as the room
node's calm light PWM). A scene sets some lights to levels (0-100 %); lights it does not name
keep theirs. Exterior lights obey the driving interlock; a light may switch itself off after
``auto_off_s``. Times are seconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from supervisor.core.config import Checker, Name, Strict


class Light(Strict):
    name: Name
    label: str = ""
    zone: Literal["crew", "room", "exterior"] = "crew"
    device: Name
    output: str  # a writable bool register (relay) or a numeric one in % (dimmer)
    auto_off_s: float | None = Field(default=None, ge=10, le=24 * 3600)


class Scene(Strict):
    name: Name
    label: str = ""
    levels: dict[Name, float]  # light -> level in % (0 off, 100 full)


class LightingConfig(Strict):
    light: tuple[Light, ...] = ()
    scene: tuple[Scene, ...] = ()
    fade_s: float = Field(default=1.5, ge=0, le=30)  # dimmers move 0 -> 100 % in this time
    # exterior lights while driving: switched off, or left on with a warning
    exterior_when_driving: Literal["off", "warn"] = "off"
    session_scene: Name | None = None  # the room's lights during a session (room/session)


def check_lighting(cfg: LightingConfig, chk: Checker) -> None:
    """Lights are writable registers, named once; scenes name real lights and levels."""
    names = [light.name for light in cfg.light]
    for i, light in enumerate(cfg.light):
        if light.name in names[:i]:
            chk.fail(f"light[{i}].name", f"{light.name!r} is used twice")
        reg = chk.register(f"light[{i}].output", light.device, light.output)
        if not reg.writable:
            chk.fail(f"light[{i}].output", f"{light.output} is not writable")
        if reg.type != "bool" and (reg.min is None or reg.max is None
                                   or reg.min > 0 or reg.max < 100):
            chk.fail(f"light[{i}].output", f"{light.output} is neither a relay nor a "
                     "0-100 % dimmer")
    scenes = [scene.name for scene in cfg.scene]
    for i, scene in enumerate(cfg.scene):
        if scene.name in scenes[:i]:
            chk.fail(f"scene[{i}].name", f"{scene.name!r} is used twice")
        for named, level in scene.levels.items():
            if named not in names:
                chk.fail(f"scene[{i}].levels", f"no light named {named!r}")
            if not 0 <= level <= 100:
                chk.fail(f"scene[{i}].levels", f"{named} = {level}: a level is 0-100 %")
    if cfg.session_scene is not None and cfg.session_scene not in scenes:
        chk.fail("session_scene", f"no scene named {cfg.session_scene!r}")
