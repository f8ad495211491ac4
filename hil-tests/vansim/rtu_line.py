"""An RS-485 line made of a pty pair: socat links the supervisor's port to the simulator's.

``socat pty,link=<port> pty,link=<port>.sim`` gives two terminals whose bytes cross over:
the supervisor opens the configured port path with pyserial as if it were a USB RS-485
adapter, and the simulator's RTU server opens the ``.sim`` side. socat is our child process:
it is stopped by its own pid, killed by the kernel if we die (Linux parent-death signal),
and terminated at interpreter exit as a last resort.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# socat children still running, by pid: terminated at exit if stop() never ran
_LIVE: set[int] = set()


def _kill_leftovers() -> None:
    for pid in list(_LIVE):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    _LIVE.clear()


atexit.register(_kill_leftovers)


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec function asking the kernel to SIGTERM the child when we die (Linux only)."""
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: nothing to load in the child
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


class RtuLine:
    """A pty pair standing in for one RS-485 bus."""

    def __init__(self, supervisor_side: Path | str, sim_side: Path | str | None = None) -> None:
        self.supervisor_side = Path(supervisor_side)
        self.sim_side = Path(sim_side) if sim_side else Path(f"{supervisor_side}.sim")
        for path in (self.supervisor_side, self.sim_side):
            if "," in str(path):
                raise ValueError(f"{path}: socat cannot take a link path containing ','")
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: deque[str] = deque(maxlen=20)
        self._stderr_task: asyncio.Task[None] | None = None
        self._started = False  # only a line we started may remove the link paths

    @property
    def pid(self) -> int | None:
        """Process id of socat while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether socat is alive."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self, timeout_s: float = 5.0) -> None:
        """Start socat and wait until both link paths exist."""
        for link in (self.supervisor_side, self.sim_side):
            link.parent.mkdir(parents=True, exist_ok=True)
            _remove_link(link, stale=True)
        self._started = True
        hook = _die_with_parent_hook()
        self._proc = await asyncio.create_subprocess_exec(
            "socat", "-d", "-d",
            f"pty,raw,echo=0,link={self.supervisor_side}",
            f"pty,raw,echo=0,link={self.sim_side}",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=hook,
        )
        _LIVE.add(self._proc.pid)
        self._stderr_task = asyncio.create_task(self._drain_stderr(), name="socat stderr")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not (self.supervisor_side.exists() and self.sim_side.exists()):
            if self._proc.returncode is not None:
                with contextlib.suppress(TimeoutError):  # let it finish saying why
                    await asyncio.wait_for(asyncio.shield(self._stderr_task), timeout=1.0)
                await self.stop()
                raise OSError(f"socat exited at start: {' | '.join(self._stderr)}")
            if loop.time() > deadline:
                await self.stop()
                raise TimeoutError(f"socat did not create {self.supervisor_side} in {timeout_s} s")
            await asyncio.sleep(0.005)
        log.debug("pty pair %s <-> %s (socat pid %d)", self.supervisor_side, self.sim_side,
                  self._proc.pid)

    async def stop(self) -> None:
        """Stop socat (by its pid) and remove the link paths."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), timeout=2.0)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            _LIVE.discard(proc.pid)
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
            self._stderr_task = None
        if self._started:
            self._started = False
            for link in (self.supervisor_side, self.sim_side):
                _remove_link(link, stale=False)

    def inject(self, data: bytes) -> None:
        """Write raw bytes on the line towards the supervisor, beside the RTU server."""
        # A second descriptor on the simulator's pty: what it writes reaches the supervisor.
        fd = os.open(self.sim_side, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    async def _drain_stderr(self) -> None:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr.append(line)
            log.debug("socat: %s", line)


def _remove_link(path: Path, *, stale: bool) -> None:
    """Remove a symlink left at ``path``; refuse to clobber a real file at start."""
    if path.is_symlink():
        path.unlink(missing_ok=True)
    elif stale and path.exists():
        raise FileExistsError(f"{path} exists and is not a link: not replacing it with a pty")
