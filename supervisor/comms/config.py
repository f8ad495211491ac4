"""The ``[comms]`` section of the vehicle config: the GPS and what is told of the position.

The position comes from the GPS receiver (``[comms.gps]``), or from the LTE router's own GPS
(``[comms.router]``) while the receiver has no fix. Privacy by config: the routine position
goes to MQTT (so to HQ) rounded to ``position.decimals`` places (3: about 100 m), or not at
all (``position.publish = false``). A panic is an emergency: it carries the position to HQ
at full precision unless ``position.in_panic = false``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from supervisor.core.config import Checker, Name, Strict


class GpsConfig(Strict):
    """An NMEA 0183 receiver on a serial port."""

    port: Path
    baudrate: int = Field(default=9600, ge=1200, le=115200)
    # no fix (or not a word from the receiver) this long: the position is stale
    stale_s: float = Field(default=10.0, ge=2, le=300)


class WatchdogConfig(Strict):
    """Power-cycle a hung router: HQ unreachable ``after_s`` while the router says its WAN is
    up (or does not answer), its power relay off for ``off_s``; at most ``max_per_hour``."""

    # the GPIO output driving the relay the router's supply runs through (active: powered;
    # give the line safe_state = true, so that a stopped supervisor leaves the router on)
    power_line: Name
    after_s: float = Field(default=600.0, ge=2, le=86_400)
    off_s: float = Field(default=15.0, ge=1, le=300)
    max_per_hour: int = Field(default=2, ge=1, le=10)


class HqLinkConfig(Strict):
    """The end-to-end supervision of the path to HQ (a ping, HQ's echo)."""

    heartbeat_s: float = Field(default=30.0, ge=0.5, le=600)
    down_after_s: float = Field(default=90.0, ge=1, le=3600)
    # the van broker's bridge connection to HQ (mosquitto-mcw-bridge.conf: "connection hq"):
    # its notifications say at once when the bridge drops
    bridge: str | None = Field(default="hq", pattern=r"^[a-z0-9_]{1,32}$")

    @model_validator(mode="after")
    def _longer(self) -> HqLinkConfig:
        if self.down_after_s <= self.heartbeat_s:
            raise ValueError("down_after_s must be longer than heartbeat_s")
        return self


class RouterConfig(Strict):
    """The LTE router's Modbus TCP server (a [[device]] in the lte_router role)."""

    device: Name
    watchdog: WatchdogConfig | None = None
    # the GPS floats' byte order of its firmware; auto: learnt (see supervisor/comms/router.py)
    gps_byte_order: Literal["auto", "ABCD", "DCBA"] = "auto"


class PositionConfig(Strict):
    publish: bool = True
    decimals: int = Field(default=3, ge=0, le=6)
    in_panic: bool = True


class CommsConfig(Strict):
    gps: GpsConfig | None = None
    router: RouterConfig | None = None
    hq_link: HqLinkConfig | None = None
    position: PositionConfig = PositionConfig()


def check_comms(cfg: CommsConfig, chk: Checker) -> None:
    """The router is a device in the lte_router role."""
    if cfg.router is not None:
        chk.role("router.device", cfg.router.device, "lte_router")
        dog = cfg.router.watchdog
        if dog is not None:
            chk.line("router.watchdog.power_line", dog.power_line, "output")
            if cfg.hq_link is None:
                chk.fail("router.watchdog", "needs [comms.hq_link]: it acts on HQ's silence")
