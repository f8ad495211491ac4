"""The room node: its register map, its inputs and outputs, and the output lease.

The register map is the contract with the supervisor (``drivers/profiles/room_node.toml``;
a test keeps the two, and the README's table, in agreement). The node is driven by three
calls from its main loop (``main.py`` on the board, the simulated van's host in the tests):

* :meth:`Node.receive` with the bytes the UART got,
* :meth:`Node.sample` with the inputs' readings every few milliseconds,
* :meth:`Node.poll`, which runs the clocks (uptime, the lease) and returns an answer to send.

Safety lives here, not in the master: every write to a holding register renews the output
lease; when ``lease`` tenths of a second pass without one, the outputs go to their safe
states by themselves (door sign, recording light and buzzer off, calm light at 30 %), so a
dead supervisor or a cut cable never leaves "recording" lit or a buzzer sounding. Before the
first write after boot the outputs are in their safe states and no lease runs.
"""

from roomnode import board
from roomnode.inputs import NORMAL, Contact, Zone
from roomnode.modbus import (
    FC_READ_HOLDING,
    FC_READ_INPUT,
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    RegisterBank,
    RtuSlave,
)
from roomnode.ticks import ticks_add, ticks_diff

IDENTITY = 0x524E  # "RN"
FW_VERSION = 0x0100  # 1.0: major * 256 + minor

RESET_POWER_ON = 0
RESET_WATCHDOG = 1
RESET_SOFT = 2

ERR_LEASE_EXPIRED = 1  # the lease expired since boot
ERR_WIRE_FAULT = 2  # a panic loop is cut or shorted now
ERR_WATCHDOG = 4  # the watchdog reset the node

BUTTON_DESK = 0  # bit 0 of panic_latched / panic_ack
BUTTON_DOOR = 1  # bit 1

SAFE_CALM_LIGHT = 300  # 30.0 %: a room never goes dark on whoever is in it
DEFAULT_LEASE = 100  # 10.0 s

INPUT = "input"
HOLDING = "holding"

# name, table, address, type, access, lowest and highest raw value a write may set
REGISTERS = (
    ("panic_latched", INPUT, 0, "u16", "r", None, None),
    ("panic_presses", INPUT, 1, "u16", "r", None, None),
    ("panic_desk", INPUT, 2, "u16", "r", None, None),
    ("panic_door", INPUT, 3, "u16", "r", None, None),
    ("session_presses", INPUT, 4, "u16", "r", None, None),
    ("door", INPUT, 5, "u16", "r", None, None),
    ("occupancy", INPUT, 6, "u16", "r", None, None),
    ("identity", INPUT, 16, "u16", "r", None, None),
    ("fw_version", INPUT, 17, "u16", "r", None, None),
    ("uptime", INPUT, 18, "u32", "r", None, None),
    ("reset_cause", INPUT, 20, "u16", "r", None, None),
    ("errors", INPUT, 21, "u16", "r", None, None),
    ("lease_expiries", INPUT, 22, "u16", "r", None, None),
    ("frame_errors", INPUT, 23, "u16", "r", None, None),
    ("door_sign", HOLDING, 100, "u16", "rw", 0, 1),
    ("recording_light", HOLDING, 101, "u16", "rw", 0, 1),
    ("buzzer", HOLDING, 102, "u16", "rw", 0, 1),
    ("calm_light", HOLDING, 103, "u16", "rw", 0, 1000),
    ("lease", HOLDING, 104, "u16", "rw", 5, 600),
    ("panic_ack", HOLDING, 105, "u16", "w", 0, 3),
)

# what the codes of the enumerated registers mean (the profile's [enum] tables)
ENUMS = {
    "zone_state": {0: "normal", 1: "alarm", 2: "tamper_open", 3: "tamper_short"},
    "door": {0: "closed", 1: "open"},
    "occupancy": {0: "empty", 1: "occupied"},
    "reset_cause": {0: "power_on", 1: "watchdog", 2: "soft"},
}


def _span(table: str) -> tuple[int, int]:
    """First address and the address after the last word of ``table``."""
    lo = 0x10000
    hi = 0
    for reg in REGISTERS:
        if reg[1] == table:
            words = 2 if reg[3] == "u32" else 1
            lo = min(lo, reg[2])
            hi = max(hi, reg[2] + words)
    return lo, hi


INPUT_SPAN = _span(INPUT)  # (0, 24): reads inside it answer, holes read 0
HOLDING_SPAN = _span(HOLDING)  # (100, 106)


def _writable() -> dict[int, tuple[str, int, int]]:
    """Holding address -> (name, lowest, highest value a write may set)."""
    out = {}
    for name, table, address, _type, _access, lo, hi in REGISTERS:
        if table == HOLDING and lo is not None and hi is not None:
            out[address] = (name, lo, hi)
    return out


_WRITABLE = _writable()


class Node(RegisterBank):
    """The consultation-room node's logic, without any hardware."""

    def __init__(self, now_ms: int, unit: int = board.UNIT, baudrate: int = board.BAUDRATE,
                 reset_cause: int = RESET_POWER_ON, hold_ms: int = board.PANIC_HOLD_MS) -> None:
        self.slave = RtuSlave(unit, self, baudrate)
        self.reset_cause = reset_cause
        self.zones = [Zone(now_ms, hold_ms=hold_ms), Zone(now_ms, hold_ms=hold_ms)]
        self.door = Contact(now_ms, board.DOOR_DEBOUNCE_MS)
        self.session = Contact(now_ms, board.SESSION_DEBOUNCE_MS)
        self.occupancy = Contact(now_ms, board.OCCUPANCY_DEBOUNCE_MS)
        self.panic_latched = 0
        self.panic_presses = 0
        self.session_presses = 0
        self._acked = 0  # latched bits the master delivered: cleared once their loop is normal
        self.lease = DEFAULT_LEASE
        self.lease_expiries = 0
        self._lease_expired = False
        self._lease_deadline = -1  # ticks; -1: no lease running (no master yet, or it left)
        self.door_sign = 0
        self.recording_light = 0
        self.buzzer = 0
        self.calm_light = SAFE_CALM_LIGHT
        self.uptime_s = 0
        self._uptime_ms = 0  # the part of a second not yet in uptime_s
        self._last_ms = now_ms
        self._now = now_ms

    # ---- the main loop's calls -----------------------------------------------------------

    def receive(self, data: bytes | bytearray, now_ms: int) -> None:
        """Bytes the UART received."""
        self.slave.receive(data, now_ms)

    def sample(self, now_ms: int, desk_counts: int, door_counts: int, door_open: bool,
               session_pressed: bool, occupied: bool) -> None:
        """One reading of every input: the panic loops' ADC counts and the contacts' levels."""
        for bit, zone, counts in ((BUTTON_DESK, self.zones[0], desk_counts),
                                  (BUTTON_DOOR, self.zones[1], door_counts)):
            if zone.update(counts, now_ms):
                self.panic_latched |= 1 << bit
                self.panic_presses = (self.panic_presses + 1) & 0xFFFF
        self._settle_acks()
        self.door.update(door_open, now_ms)
        if self.session.update(session_pressed, now_ms):
            self.session_presses = (self.session_presses + 1) & 0xFFFF
        self.occupancy.update(occupied, now_ms)

    def poll(self, now_ms: int) -> bytes | None:
        """Run the clocks to ``now_ms``; the answer to send, if a request just ended."""
        self._now = now_ms
        elapsed = ticks_diff(now_ms, self._last_ms)
        if elapsed > 0:  # never backwards: a late caller's older time changes nothing
            self._last_ms = now_ms
            self._uptime_ms += elapsed
            if self._uptime_ms >= 1000:
                self.uptime_s = (self.uptime_s + self._uptime_ms // 1000) & 0xFFFFFFFF
                self._uptime_ms %= 1000
        if self._lease_deadline >= 0 and ticks_diff(now_ms, self._lease_deadline) >= 0:
            self._expire_lease()
        return self.slave.poll(now_ms)

    def outputs(self) -> tuple[int, int, int, int]:
        """(door sign, recording light, buzzer, calm light in 0.1 %) as they should be now."""
        return (self.door_sign, self.recording_light, self.buzzer, self.calm_light)

    def lease_running(self) -> bool:
        """Whether a master's lease holds the outputs now."""
        return self._lease_deadline >= 0

    def errors(self) -> int:
        """The ``errors`` register's bits."""
        bits = ERR_LEASE_EXPIRED if self._lease_expired else 0
        if self.zones[0].tampered() or self.zones[1].tampered():
            bits |= ERR_WIRE_FAULT
        if self.reset_cause == RESET_WATCHDOG:
            bits |= ERR_WATCHDOG
        return bits

    def values(self) -> dict[str, int]:
        """Every register's raw value now, by name (panic_ack, write-only, reads 0)."""
        return {
            "panic_latched": self.panic_latched,
            "panic_presses": self.panic_presses,
            "panic_desk": self.zones[0].state,
            "panic_door": self.zones[1].state,
            "session_presses": self.session_presses,
            "door": 1 if self.door.level else 0,
            "occupancy": 1 if self.occupancy.level else 0,
            "identity": IDENTITY,
            "fw_version": FW_VERSION,
            "uptime": self.uptime_s,
            "reset_cause": self.reset_cause,
            "errors": self.errors(),
            "lease_expiries": self.lease_expiries,
            "frame_errors": self.slave.frame_errors,
            "door_sign": self.door_sign,
            "recording_light": self.recording_light,
            "buzzer": self.buzzer,
            "calm_light": self.calm_light,
            "lease": self.lease,
            "panic_ack": 0,
        }

    # ---- RegisterBank ----------------------------------------------------------------------

    def read_words(self, fc: int, address: int, count: int) -> list[int] | int:
        """Words of the input (FC04) or holding (FC03) table; holes in a table read 0."""
        if fc == FC_READ_INPUT:
            table, span = INPUT, INPUT_SPAN
        elif fc == FC_READ_HOLDING:
            table, span = HOLDING, HOLDING_SPAN
        else:
            return ILLEGAL_DATA_ADDRESS
        if address < span[0] or address + count > span[1]:
            return ILLEGAL_DATA_ADDRESS
        image = [0] * (span[1] - span[0])
        values = self.values()
        for name, reg_table, reg_address, reg_type, _access, _lo, _hi in REGISTERS:
            if reg_table != table:
                continue
            value = values[name]
            at = reg_address - span[0]
            if reg_type == "u32":  # big word order, as the profile says
                image[at] = (value >> 16) & 0xFFFF
                image[at + 1] = value & 0xFFFF
            else:
                image[at] = value & 0xFFFF
        start = address - span[0]
        return image[start : start + count]

    def write_words(self, address: int, words: list[int]) -> int:
        """Holding registers from ``address``, all checked before any changes; any accepted
        write renews the lease."""
        for i in range(len(words)):
            reg = _WRITABLE.get(address + i)
            if reg is None:
                return ILLEGAL_DATA_ADDRESS
            if words[i] < reg[1] or words[i] > reg[2]:
                return ILLEGAL_DATA_VALUE
        for i in range(len(words)):
            self._set(_WRITABLE[address + i][0], words[i])
        self._lease_deadline = ticks_add(self._now, self.lease * 100)
        return 0

    # ---- inside ----------------------------------------------------------------------------

    def _set(self, name: str, value: int) -> None:
        if name == "door_sign":
            self.door_sign = value
        elif name == "recording_light":
            self.recording_light = value
        elif name == "buzzer":
            self.buzzer = value
        elif name == "calm_light":
            self.calm_light = value
        elif name == "lease":
            self.lease = value
        elif name == "panic_ack":
            # only what is latched now: an acknowledgement never pre-clears a later press
            self._acked |= value & self.panic_latched
            self._settle_acks()

    def _settle_acks(self) -> None:
        """Clear each delivered bit whose button is back at rest."""
        for bit in (BUTTON_DESK, BUTTON_DOOR):
            mask = 1 << bit
            if self._acked & mask and self.zones[bit].state == NORMAL:
                self.panic_latched &= ~mask
                self._acked &= ~mask

    def _expire_lease(self) -> None:
        self._lease_deadline = -1
        self._lease_expired = True
        self.lease_expiries = (self.lease_expiries + 1) & 0xFFFF
        self.door_sign = 0
        self.recording_light = 0
        self.buzzer = 0
        self.calm_light = SAFE_CALM_LIGHT
