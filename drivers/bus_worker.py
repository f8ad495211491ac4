"""One worker per physical bus: owns the link, serialises requests, polls and writes.

Order of work: queued writes (each with its read-back) go first; then the block that is most
overdue; offline devices are only re-probed when their backoff expires. Each block is due
again after the smallest maximum age of the registers in it. On RTU a silent gap of at least
3.5 character times separates frames.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import structlog

from drivers.block_planner import Block, BlockPlanner
from drivers.device_health import DeviceHealth, HealthState
from drivers.errors import WriteError
from drivers.modbus_link import ILLEGAL_DATA_ADDRESS, ModbusError, ModbusLink
from drivers.profile import (
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    Profile,
    Register,
    Table,
)
from drivers.register_codec import CodecError, Value, decode, encode
from drivers.wakeup import woken

log = structlog.get_logger("drivers.bus")
T = TypeVar("T")
IDLE_WAKE_S = 1.0
STARVING_S = 0.25  # a poll this late goes before a second write in a row
# Devices whose requests failed in a row, with no answer on the bus in between, that make the
# whole bus offline: two devices silent at once is the host or the line (a silent GX goes
# offline after two timeouts, not three per unit)
BUS_DOWN_AFTER = 2
RETRY_UNSUPPORTED_S = 300.0
IDENTIFY_AGAIN_S = 30.0  # a unit of the wrong model is asked again this often (swapped?)
MAX_RTU_FRAME = 256  # characters: the longest Modbus RTU frame


class ReadingSink(Protocol):
    """Where a bus worker delivers what it learns; implemented by the supervisor."""

    def values(self, device: str, values: dict[str, Value | None], ts: float,
               same: Sequence[str] = ()) -> None:
        """Fresh values (None = the device reports the value as invalid); ``same``: registers
        read again with the words of their last reading (only their time is new)."""

    def unavailable(self, device: str, registers: Sequence[str], quality: str) -> None:
        """These registers can no longer be trusted ('stale') or are unsupported ('invalid')."""

    def health(self, device: str, status: dict[str, object]) -> None:
        """The device's health changed (state or counts)."""


class _ContainedSink:
    """The sink as the worker calls it: an exception in the receiving code (a listener far up
    in the supervisor) is logged once and never stops the bus."""

    def __init__(self, sink: ReadingSink, log: structlog.typing.FilteringBoundLogger) -> None:
        self._sink = sink
        self._log = log
        self._failed: set[str] = set()

    def values(self, device: str, values: dict[str, Value | None], ts: float,
               same: Sequence[str] = ()) -> None:
        self._call("values", lambda: self._sink.values(device, values, ts, same))

    def unavailable(self, device: str, registers: Sequence[str], quality: str) -> None:
        self._call("unavailable", lambda: self._sink.unavailable(device, registers, quality))

    def health(self, device: str, status: dict[str, object]) -> None:
        self._call("health", lambda: self._sink.health(device, status))

    def _call(self, what: str, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            if what not in self._failed:
                self._failed.add(what)
                self._log.exception("sink_failed", call=what)


@dataclass
class DeviceSpec:
    """A device on this bus as the worker needs it."""

    id: str
    unit: int
    profile: Profile
    poll_fast_s: float
    poll_slow_s: float

    def max_age(self, reg: Register) -> float:
        return self.poll_fast_s if reg.poll == "fast" else self.poll_slow_s


@dataclass
class _Device:
    spec: DeviceSpec
    planner: BlockPlanner
    health: DeviceHealth = field(default_factory=DeviceHealth)
    blocks: list[Block] = field(default_factory=list)
    due: dict[Block, float] = field(default_factory=dict)
    period: dict[Block, float] = field(default_factory=dict)  # how often each is read
    unsupported: set[str] = field(default_factory=set)
    retry_unsupported_at: float = float("inf")
    identified: bool = False  # its identity register matched since it last came online
    # each block's words as last read: registers whose words did not change are not decoded
    # again (most of a poll); forgotten whenever the points may no longer show them
    words: dict[Block, list[int]] = field(default_factory=dict)

    def replan(self, now: float) -> None:
        regs = [
            r
            for r in self.spec.profile.registers
            if r.readable and r.poll != "never" and r.name not in self.unsupported
        ]
        self.blocks = self.planner.plan(regs)
        self.due = {b: now for b in self.blocks}
        self.period = {b: min(self.spec.max_age(r) for r in b.registers) for b in self.blocks}
        self.words.clear()

    def read_again(self, reg: Register, raw: list[int]) -> None:
        """``reg`` was read on its own (a write's read-back, now shown by its points): the
        blocks holding it compare the next poll with that."""
        for block, words in self.words.items():
            offset = reg.address - block.start
            if block.table == reg.table and 0 <= offset <= block.count - reg.count:
                words[offset : offset + reg.count] = raw

    def interval(self, block: Block) -> float:
        return self.period[block]

    def status(self) -> dict[str, object]:
        """Its health, and the requests it is read with (table, start, count): what a
        technician compares with the device's manual."""
        return {**self.health.snapshot(),
                "blocks": [[b.table, b.start, b.count] for b in self.blocks]}


@dataclass
class _WriteRequest:
    device: str
    register: Register
    value: Value
    done: asyncio.Future[Value | None]


@dataclass
class _ReadRequest:
    """A technician's read of any registers, between the polls."""

    device: str
    table: Table
    address: int
    count: int
    done: asyncio.Future[list[int]]


class BusWorker:
    """Drives one bus. ``run()`` is the task; ``write()`` may be called from any task."""

    def __init__(
        self,
        name: str,
        link: ModbusLink,
        devices: Sequence[DeviceSpec],
        sink: ReadingSink,
        frame_gap_s: float = 0.0,
        retry_unsupported_s: float = RETRY_UNSUPPORTED_S,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        idle_wake_s: float = IDLE_WAKE_S,
        timeout_min_s: float | None = None,
    ) -> None:
        self.name = name
        self.link = link
        self.log = log.bind(bus=name)
        self.sink = _ContainedSink(sink, self.log)
        self.frame_gap_s = frame_gap_s
        self._silence_s = frame_gap_s  # before the next request (longer after a damaged answer)
        self.retry_unsupported_s = retry_unsupported_s
        self.idle_wake_s = idle_wake_s
        # each device's answer timeout adapts to its latency between these (the link's own
        # timeout is the longest; None: no adapting)
        self.timeout_max_s = link.settings.timeout_s
        self.timeout_min_s = self.timeout_max_s if timeout_min_s is None else timeout_min_s
        self._mono = monotonic
        self._wall = wall
        self._devices = {
            d.id: _Device(
                d,
                BlockPlanner(
                    link.settings.kind, d.profile.device.max_block, d.profile.device.align
                ),
            )
            for d in devices
        }
        # writes and a technician's reads, in the order asked, ahead of the polls
        self._writes: asyncio.Queue[_WriteRequest | _ReadRequest] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._last_frame_end = 0.0
        self._last_was_write = False
        self._bus_failures: set[str] = set()  # devices failed since the bus's last answer
        self.progress = 0  # grows with every turn of the loop: the watchdog watches it

    # ---- public ---------------------------------------------------------------

    @property
    def device_ids(self) -> list[str]:
        return list(self._devices)

    def health(self, device: str) -> DeviceHealth:
        return self._devices[device].health

    def status(self, device: str) -> dict[str, object]:
        """What the device's status topic shows: its health and its block plan."""
        return self._devices[device].status()

    async def write(self, device: str, register: str, value: Value) -> Value | None:
        """Write ``value`` to a register and return the value read back from the device."""
        dev = self._devices[device]
        reg = dev.spec.profile.get(register)
        if not reg.writable:
            raise WriteError("read_only", f"{device}.{register} is not writable")
        if dev.health.wrong_identity:  # its addresses may mean anything on that unit
            raise WriteError("wrong_device", f"{device} is not a {dev.spec.profile.device.model}:"
                                             f" {dev.health.wrong_identity}")
        fut: asyncio.Future[Value | None] = asyncio.get_running_loop().create_future()
        self._writes.put_nowait(_WriteRequest(device, reg, value, fut))
        self._wake.set()
        return await fut

    async def read_raw(self, device: str, table: Table, address: int, count: int) -> list[int]:
        """Read ``count`` registers (or bits) of ``table`` from ``address`` of a device, as a
        technician's diagnostic: queued like a write, so the worker stays the bus's only
        master. ModbusError if the device does not answer it."""
        limit = MAX_BITS_PER_READ if table in ("coil", "discrete") else MAX_REGISTERS_PER_READ
        if not 1 <= count <= limit or not 0 <= address <= 0xFFFF - count + 1:
            raise ModbusError("exception", f"{count} at {address} is outside the protocol's "
                                           f"limits (1..{limit} from 0..65535)", 3)
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._writes.put_nowait(_ReadRequest(device, table, address, count, fut))
        self._wake.set()
        return await fut

    async def run(self) -> None:
        """Poll and write forever; a failing device never stops the others."""
        now = self._mono()
        for dev in self._devices.values():
            dev.replan(now)
        self.log.info("bus_started", devices=sorted(self._devices))
        try:
            while True:
                self.progress += 1
                job, wait = self._next_job()
                # writes first, but never two in a row while a poll is late: a flood of
                # commands must not starve the readings (fast points stay fresh), and a single
                # command does not wait for a poll that is only just due
                starving = job is not None and -wait >= STARVING_S
                if not self._writes.empty() and (not starving or not self._last_was_write):
                    self._last_was_write = True
                    await self._do_write(self._writes.get_nowait())
                    continue
                self._last_was_write = False
                if job is None:
                    self._wake.clear()
                    # at most idle_wake_s, so an idle worker still shows it is alive
                    await woken(self._wake, min(wait, self.idle_wake_s))
                    continue
                await self._poll(*job)
        finally:
            self.link.close()
            while not self._writes.empty():
                req = self._writes.get_nowait()
                if not req.done.done():
                    req.done.set_exception(WriteError("shutdown", "bus worker stopped"))
                    req.done.exception()  # nobody may be waiting any more: not an error

    # ---- scheduling -------------------------------------------------------------

    def _next_job(self) -> tuple[tuple[_Device, Block] | None, float]:
        now = self._mono()
        best: tuple[_Device, Block] | None = None
        best_due = float("inf")
        for dev in self._devices.values():
            if dev.retry_unsupported_at <= now:
                dev.unsupported.clear()
                dev.retry_unsupported_at = float("inf")
                dev.replan(now)
            if not dev.blocks:
                continue
            if dev.health.state == "offline":
                due, block = dev.health.next_probe, dev.blocks[0]
            else:
                block = min(dev.blocks, key=lambda b: dev.due[b])
                due = dev.due[block]
            if due < best_due:
                best, best_due = (dev, block), due
        if best is None:
            return None, 3600.0
        if best_due > now:
            return None, best_due - now
        return best, best_due - now  # <= 0: how late it is

    # ---- transactions -------------------------------------------------------------

    async def _transact(self, dev: _Device, call: Callable[[], Awaitable[T]],
                        settle: bool = True) -> T:
        """Run one request with the RTU gap, time it and record health (``settle`` False:
        an answer does not make the device online yet, its identity check decides)."""
        if self.frame_gap_s:
            wait = self._last_frame_end + self._silence_s - self._mono()
            if wait > 0:
                await asyncio.sleep(wait)  # the RTU inter-frame silence, not a wait for state
        start = self._mono()
        self._silence_s = self.frame_gap_s
        self.link.set_timeout(dev.health.answer_timeout(self.timeout_min_s, self.timeout_max_s))
        try:
            result = await call()
        except ModbusError as exc:
            self._last_frame_end = self._mono()
            if exc.kind == "framing":
                # a damaged answer may still be on the wire: let the line go quiet for the
                # longest frame before the next request, or it lands in the next answer
                self._silence_s = self.frame_gap_s * MAX_RTU_FRAME / 3.5
            self._record(dev, dev.health.failure(exc.kind, str(exc), self._mono()), failed=True)
            self._bus_failed(dev, exc)
            raise
        self._last_frame_end = self._mono()
        self._bus_failures.clear()
        self._record(dev, dev.health.success(self._last_frame_end - start, self._wall(), settle))
        return result

    def _bus_failed(self, dev: _Device, exc: ModbusError) -> None:
        """A lost connection, or requests to different devices failing in a row, is the host
        or the line, not one device: every device on the bus goes offline at once instead of
        one after another (a silent GX would otherwise take 3 timeouts per unit)."""
        if exc.kind not in ("timeout", "connection"):
            return  # an exception reply or a damaged answer: bytes came, the line is alive
        self._bus_failures.add(dev.spec.id)
        if exc.kind == "connection" or len(self._bus_failures) >= BUS_DOWN_AFTER:
            for other in self._devices.values():
                self._record(other, other.health.lost(f"bus down: {exc}", self._mono()))

    def _record(self, dev: _Device, transition: HealthState | None, failed: bool = False) -> None:
        """Log a health transition once and show it; a failure shows its new error counts."""
        if transition is None:
            if failed:
                self.sink.health(dev.spec.id, dev.status())
            return
        h = dev.health
        if transition == "offline":
            dev.identified = False  # the unit may be swapped while it is away
            dev.words.clear()
            self.log.warning("device_offline", device=dev.spec.id, error=h.last_error)
            names = [r.name for r in dev.spec.profile.registers if r.readable]
            self.sink.unavailable(dev.spec.id, names, "stale")
        elif transition == "degraded":
            self.log.warning("device_degraded", device=dev.spec.id, error=h.last_error)
        else:
            self.log.info("device_online", device=dev.spec.id, latency_ms=h.latency_ms)
            now = self._mono()
            # refresh everything after a recovery, but not the block just read
            dev.due = {b: min(due, now) for b, due in dev.due.items()}
        self.sink.health(dev.spec.id, dev.status())

    async def _poll(self, dev: _Device, block: Block) -> None:
        dev.due[block] = self._mono() + dev.interval(block)
        if not dev.identified and not await self._identify(dev):
            return
        try:
            words = await self._transact(
                dev, lambda: self.link.read(block.table, block.start, block.count, dev.spec.unit)
            )
        except ModbusError as exc:
            if exc.exception_code == ILLEGAL_DATA_ADDRESS:
                self._refused(dev, block)
            return
        previous = dev.words.get(block)
        dev.words[block] = words
        changed, same = self._decode(dev, block, words, previous)
        self.sink.values(dev.spec.id, changed, self._wall(), same)

    async def _identify(self, dev: _Device) -> bool:
        """Ask a unit what it is before its readings are used, where its profile says how
        (a relay board answering in a sensor's place would otherwise be read as garbage).
        True when it is its profile's model (or the profile cannot tell)."""
        ident = dev.spec.profile.device.identity
        if ident is None:
            dev.identified = True
            return True
        reg = dev.spec.profile.get(ident.name)
        try:
            words = await self._transact(
                dev, lambda: self.link.read(reg.table, reg.address, reg.count, dev.spec.unit),
                settle=False)
            value = decode(words, reg.type, reg.scale, dev.spec.profile.device.word_order,
                           reg.invalid)
        except (ModbusError, CodecError):
            return False  # asked again at its next poll
        if ident.accepts(value):
            dev.identified = True
            self._record(dev, dev.health.identified(""))
            return True
        wrong = (f"{reg.name} reads {value!r}, a {dev.spec.profile.device.model} answers "
                 f"{ident.expected()}")
        if dev.health.wrong_identity != wrong[:200]:
            self.log.warning("device_wrong_identity", device=dev.spec.id, detail=wrong)
        self._record(dev, dev.health.identified(wrong), failed=True)
        self.sink.unavailable(dev.spec.id, [r.name for r in dev.spec.profile.registers
                                            if r.readable], "invalid")
        dev.words.clear()
        again = self._mono() + IDENTIFY_AGAIN_S
        dev.due = {b: max(due, again) for b, due in dev.due.items()}
        return False

    def _refused(self, dev: _Device, block: Block) -> None:
        """The device refused a block's addresses: split it, or give up on the register."""
        if dev.planner.split(block):
            self.log.info(
                "block_split",
                device=dev.spec.id,
                table=block.table,
                start=block.start,
                count=block.count,
            )
        else:
            names = [r.name for r in block.registers]
            dev.unsupported.update(names)
            # firmware may be updated or a service (re)appear on the GX: ask again later
            dev.retry_unsupported_at = self._mono() + self.retry_unsupported_s
            self.log.warning("register_unsupported", device=dev.spec.id, registers=names)
            self.sink.unavailable(dev.spec.id, names, "invalid")
        dev.replan(self._mono())

    def _decode(self, dev: _Device, block: Block, words: list[int], previous: list[int] | None
                ) -> tuple[dict[str, Value | None], list[str]]:
        """The block's registers decoded, except those whose words are as ``previous`` (the
        block's last reading): their names come second."""
        order = dev.spec.profile.device.word_order
        out: dict[str, Value | None] = {}
        same: list[str] = []
        for reg in block.registers:
            offset = reg.address - block.start
            end = offset + reg.count
            mine = words[offset:end]
            if previous is not None and previous[offset:end] == mine:
                same.append(reg.name)
                continue
            try:
                out[reg.name] = decode(mine, reg.type, reg.scale, order, reg.invalid)
            except CodecError:
                out[reg.name] = None
        return out, same

    def _encode(self, dev: _Device, reg: Register, value: Value) -> list[int]:
        return encode(value, reg.type, reg.scale, dev.spec.profile.device.word_order, reg.words)

    async def _do_write(self, req: _WriteRequest | _ReadRequest) -> None:
        """One write with its read-back (or a technician's read); the caller is answered
        whatever happens, also when the worker is cancelled or fails in the middle (it is
        restarted, the caller is not left waiting)."""
        try:
            if isinstance(req, _ReadRequest):
                await self._read_for(req)
            else:
                await self._write_and_read_back(req)
        except BaseException as exc:
            if not req.done.done():
                req.done.set_exception(WriteError("bus_error", f"write interrupted: {exc!r}"))
            raise

    async def _read_for(self, req: _ReadRequest) -> None:
        dev = self._devices[req.device]
        try:
            words = await self._transact(
                dev, lambda: self.link.read(req.table, req.address, req.count, dev.spec.unit))
        except ModbusError as exc:
            if not req.done.done():
                req.done.set_exception(exc)
            return
        if not req.done.done():
            req.done.set_result(words)

    async def _write_and_read_back(self, req: _WriteRequest) -> None:
        dev = self._devices[req.device]
        reg = req.register
        try:
            words = self._encode(dev, reg, req.value)
        except CodecError as exc:
            req.done.set_exception(WriteError("out_of_range", str(exc)))
            return
        try:
            await self._transact(
                dev, lambda: self.link.write(reg.table, reg.address, words, dev.spec.unit)
            )
            back: Value | None = None
            if reg.readable:
                raw = await self._transact(
                    dev, lambda: self.link.read(reg.table, reg.address, reg.count, dev.spec.unit)
                )
                try:
                    back = decode(
                        raw, reg.type, reg.scale, dev.spec.profile.device.word_order, reg.invalid
                    )
                except CodecError:
                    back = None  # a read-back we cannot decode confirms nothing
                self.sink.values(dev.spec.id, {reg.name: back}, self._wall())
                dev.read_again(reg, raw)
        except ModbusError as exc:
            if not req.done.done():
                req.done.set_exception(WriteError(f"bus_{exc.kind}", str(exc)))
            return
        if not req.done.done():
            req.done.set_result(back)
