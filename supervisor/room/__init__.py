"""The consultation room: session mode, panic and duress, the room node."""

from supervisor.core.subsystem import SubsystemSpec
from supervisor.room.config import RoomConfig, check_room
from supervisor.room.subsystem import build

ROOM = SubsystemSpec("room", RoomConfig, build, check_room)
