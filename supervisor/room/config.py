"""The ``[room]`` section of the vehicle config: the consultation room's session and panic.

The room node (``firmware/room_node/``, profile ``room_node``) carries the room's supervised
panic buttons, door contact, session button and its door sign, recording light and buzzer. A
panic button may also be a plain GPIO input of the controller. Switched equipment of a
session (sound masking outside the room, the doorbell's visual-only mode, the recording
equipment's power) are relays. Times are seconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from supervisor.core.config import Checker, Name, Strict


class Relay(Strict):
    """A switchable register of a relay board."""

    device: Name
    output: str


class PanicButton(Strict):
    """One hold-up button: on the room node (a supervised zone of its own) or a GPIO input."""

    name: Name  # "desk", "door"
    label: str = ""
    source: Literal["node", "gpio"] = "node"
    line: Name | None = None  # gpio: the input line, active while pressed
    hold_s: float = Field(default=0.0, ge=0, le=5)  # gpio: held this long to count

    @model_validator(mode="after")
    def _source(self) -> PanicButton:
        if (self.source == "gpio") != (self.line is not None):
            raise ValueError("a gpio panic button needs its line; a node button has none")
        return self


class Session(Strict):
    """What a session switches besides the room node's door sign and recording light."""

    sound_masking: Relay | None = None  # masking noise outside the room
    doorbell_visual: Relay | None = None  # doorbell and intercom to visual only
    recording_power: Relay | None = None  # the recording equipment, only with a recording


class RoomConfig(Strict):
    node: Name | None = None  # the room node's device id
    lease_s: float = Field(default=10.0, ge=1, le=60)  # the node's output lease
    panic: tuple[PanicButton, ...] = ()
    # the buzzer sounds at a panic only when not silent (silent in the room by default)
    silent: bool = True
    beacon: Relay | None = None  # an exterior beacon switched on at a panic
    # no receipt from HQ this long after a panic: the crew is told it was NOT DELIVERED
    delivery_timeout_s: float = Field(default=30.0, ge=5, le=600)
    walk_test_s: float = Field(default=600.0, ge=60, le=3600)  # a walk test ends by itself
    session: Session = Session()


def check_room(cfg: RoomConfig, chk: Checker) -> None:
    """The node serves the room-node role; relays, lines and names are real and unique."""
    if cfg.node is not None:
        chk.role("node", cfg.node, "room_node")
    names = [p.name for p in cfg.panic]
    for i, button in enumerate(cfg.panic):
        if button.name in names[:i]:
            chk.fail(f"panic[{i}].name", f"{button.name!r} is used twice")
        if button.source == "node":
            if cfg.node is None:
                chk.fail(f"panic[{i}].source", "a node button needs room.node")
            if button.name not in NODE_BUTTONS:
                chk.fail(f"panic[{i}].name", f"the room node has the buttons "
                         f"{', '.join(NODE_BUTTONS)}")
        elif button.line is not None:
            chk.line(f"panic[{i}].line", button.line, "input")
    relays = [("beacon", cfg.beacon), ("session.sound_masking", cfg.session.sound_masking),
              ("session.doorbell_visual", cfg.session.doorbell_visual),
              ("session.recording_power", cfg.session.recording_power)]
    seen: dict[tuple[str, str], str] = {}
    for key, relay in relays:
        if relay is None:
            continue
        chk.register(f"{key}.output", relay.device, relay.output, switch=True)
        if (relay.device, relay.output) in seen:
            chk.fail(f"{key}.output", f"the same relay as {seen[(relay.device, relay.output)]}")
        seen[(relay.device, relay.output)] = key


# the node's buttons and their bit in its panic_latched register
NODE_BUTTONS = {"desk": 0, "door": 1}
