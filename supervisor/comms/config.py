"""The ``[comms]`` section of the vehicle config: the GPS, the LTE router and/or modem, the
path to HQ and what is told of the position.

The position comes from the GPS receiver (``[comms.gps]``), or from the LTE router's own GPS
(``[comms.router]``) while the receiver has no fix. The mobile link's points
(``comms/lte/*``) come from the router, or from a modem on AT commands (``[comms.modem]``):
with both, the router while it answers, the modem while the router is offline. Privacy by
config: the routine position goes to MQTT (so to HQ) rounded to ``position.decimals``
places (3: about 100 m), or not at all (``position.publish = false``). A panic is an
emergency: it carries the position to HQ at full precision unless
``position.in_panic = false``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from drivers.buses import RtuBus
from supervisor.core.config import Checker, Name, Strict


class GpsConfig(Strict):
    """An NMEA 0183 receiver on a serial port."""

    port: Path
    baudrate: int = Field(default=9600, ge=1200, le=115200)
    # no fix (or not a word from the receiver) this long: the position is stale
    stale_s: float = Field(default=10.0, ge=2, le=300)


class ModemConfig(Strict):
    """A Quectel-class LTE modem's AT command port (drivers/quectel_at.py)."""

    port: Path  # e.g. /dev/serial/by-id/usb-Quectel_EG25-G-if02-port0 (the AT port)
    # over USB the rate is not used; on the module's UART its factory rate is 115200
    baudrate: Literal[4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600] = 115200
    poll_s: float = Field(default=5.0, ge=0.2, le=300)
    # each command's answer; the modem answers these reads within 300 ms (its manual)
    timeout_s: float = Field(default=1.0, ge=0.1, le=30)
    # no fresh answer for this long: its readings are stale
    stale_s: float = Field(default=30.0, ge=1, le=3600)

    @model_validator(mode="after")
    def _times(self) -> ModemConfig:
        if self.timeout_s >= self.poll_s:
            raise ValueError("timeout_s must be shorter than poll_s")
        if self.stale_s < 2 * self.poll_s:
            raise ValueError("stale_s must be at least twice poll_s (a reading may miss a "
                             "poll without going stale)")
        return self


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
    modem: ModemConfig | None = None
    hq_link: HqLinkConfig | None = None
    position: PositionConfig = PositionConfig()


def check_comms(cfg: CommsConfig, chk: Checker) -> None:
    """The router is a device in the lte_router role, powered through a line whose safe
    state is on; the modem has a serial port of its own (the port is opened exclusively:
    shared, one of the two would never read it)."""
    if cfg.modem is not None:
        port = str(cfg.modem.port)
        if cfg.gps is not None and str(cfg.gps.port) == port:
            chk.fail("modem.port", f"{port} is the GPS's port (comms.gps.port)")
        for i, bus in enumerate(chk.cfg.bus):
            if isinstance(bus, RtuBus) and bus.port == port:
                chk.fail("modem.port", f"{port} is the port of bus[{i}] ({bus.name!r})")
    if cfg.router is not None:
        chk.role("router.device", cfg.router.device, "lte_router")
        dog = cfg.router.watchdog
        if dog is not None:
            line = chk.line("router.watchdog.power_line", dog.power_line, "output")
            if not line.safe_state:
                # the line starts (every start, a crash's too) and stops in its safe state
                chk.fail("router.watchdog.power_line", f"gpio.line {line.name!r} must have "
                         "safe_state = true: the router stays powered while the supervisor "
                         "is stopped or starting")
            if cfg.hq_link is None:
                chk.fail("router.watchdog", "needs [comms.hq_link]: it acts on HQ's silence")
