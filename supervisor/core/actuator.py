"""The one writer of a subsystem's outputs: it brings every output to its target.

Rules and commands only set targets (:meth:`Actuator.want`); :meth:`Actuator.step`, run by
the subsystem's loop, writes what differs from the read-back: moves to the safe state first
and all at once (cutting is always safe), then the rest, outputs with an inrush current one at
a time, ``stagger_s`` apart. A command waits for its output with :meth:`Actuator.confirm` and
is answered from what the writer saw. A write that fails or is not confirmed is retried with
an exponential backoff, so a device that refuses a value is not rewritten on every loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from drivers.errors import WriteError
from drivers.register_codec import Value
from supervisor.core.outputs import OutputPort

RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0


@dataclass
class _Target:
    value: Value
    inrush: bool
    retry_at: float = float("-inf")
    backoff_s: float = 0.0
    waiters: list[asyncio.Future[Value | None]] = field(default_factory=list)


class Actuator:
    def __init__(self, port: OutputPort, monotonic: Callable[[], float],
                 log: structlog.typing.FilteringBoundLogger, stagger_s: float = 0.0) -> None:
        self.port = port
        self._mono = monotonic
        self.log = log
        self.stagger_s = stagger_s
        self._targets: dict[str, _Target] = {}
        self._last_inrush = float("-inf")
        self.wake = asyncio.Event()  # set when there is something to write

    def want(self, output_id: str, value: Value, inrush: bool = False) -> None:
        """Set what an output should be; waiters for another value are told it changed."""
        old = self._targets.get(output_id)
        if old is not None and self.port.same(output_id, old.value, value):
            return
        new = _Target(value, inrush)
        if old is not None:
            for fut in old.waiters:
                if not fut.done():
                    fut.set_exception(WriteError("overridden", f"{output_id} is now wanted "
                                                               f"{value} by the rules"))
        self._targets[output_id] = new
        self.wake.set()

    def target(self, output_id: str) -> Value | None:
        t = self._targets.get(output_id)
        return None if t is None else t.value

    async def confirm(self, output_id: str, value: Value, timeout_s: float) -> Value | None:
        """Wait until the writer has brought ``output_id`` to ``value`` (its target must be
        ``value``); return the read-back. WriteError when it failed or took too long."""
        target = self._targets[output_id]
        if not self.port.same(output_id, target.value, value):
            raise WriteError("overridden", f"{output_id} is wanted {target.value} by the rules")
        fut: asyncio.Future[Value | None] = asyncio.get_running_loop().create_future()
        target.waiters.append(fut)
        target.retry_at = float("-inf")  # an explicit ask: no backoff wait
        self.wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                return await fut
        except TimeoutError as exc:
            raise WriteError("timeout", f"{output_id} not confirmed within {timeout_s:g} s") \
                from exc
        finally:
            if fut in target.waiters:
                target.waiters.remove(fut)

    async def step(self) -> None:
        """One pass of the writer over every output that differs from its target."""
        moves = []
        for oid, t in self._targets.items():
            actual = self.port.actual(oid)
            if self.port.same(oid, actual, t.value):
                t.backoff_s = 0.0
                _resolve(t, actual)
            elif self._mono() >= t.retry_at and (actual is not None or t.waiters):
                # unknown read-back (device not answering): written only when a command asks
                moves.append((oid, t))
        safe_first = sorted(moves, key=lambda m: not self._to_safe(m[0], m[1].value))
        for oid, t in safe_first:
            if t.inrush and not self._to_safe(oid, t.value):
                if self._mono() - self._last_inrush < self.stagger_s:
                    continue
                self._last_inrush = self._mono()
            await self._write(oid, t)

    def _to_safe(self, output_id: str, value: Value) -> bool:
        safe = self.port.outputs[output_id].safe
        return safe is not None and self.port.same(output_id, value, safe)

    async def _write(self, oid: str, t: _Target) -> None:
        value = t.value
        try:
            back = await self.port.write(oid, value)
        except WriteError as exc:
            self._retry_later(oid, t, exc)
            return
        if self._targets.get(oid) is not t:
            return  # the target changed while writing: the next step deals with it
        if self.port.same(oid, back, value):
            t.backoff_s = 0.0
            _resolve(t, back)
        else:
            self._retry_later(oid, t, WriteError("not_confirmed",
                                                 f"{oid} reads {back} after writing {value}"))

    def _retry_later(self, oid: str, t: _Target, exc: WriteError) -> None:
        t.backoff_s = min(max(t.backoff_s * 2, RETRY_MIN_S), RETRY_MAX_S)
        t.retry_at = self._mono() + t.backoff_s
        self.log.warning("output_write_failed", output=oid, code=exc.code, error=str(exc),
                         retry_in_s=t.backoff_s)
        for fut in t.waiters:
            if not fut.done():
                fut.set_exception(WriteError(exc.code, str(exc)))


def _resolve(t: _Target, back: Value | None) -> None:
    for fut in t.waiters:
        if not fut.done():
            fut.set_result(back)
