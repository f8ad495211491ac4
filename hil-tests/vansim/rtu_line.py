"""An RS-485 line made of ptys whose bytes cross over in wire time (``wire.py``).

The supervisor opens the configured port path with pyserial as if it were a USB RS-485
adapter, and the simulator's RTU server opens the ``.sim`` side. More slaves hang on the same
line through drops of their own (``PORT.<name>``, e.g. the room node's firmware): the master's
frames reach them all, their answers share the one half-duplex line. The line is our child
process: it is stopped by its own pid, killed by the kernel if we die (Linux parent-death
signal), and terminated at interpreter exit as a last resort.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_WIRE = Path(__file__).with_name("wire.py")
# line processes still running, by pid: terminated at exit if stop() never ran
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


@dataclass(frozen=True)
class LineStats:
    """What the line has carried since it started (``wire.py``'s ``stats``)."""

    elapsed_s: float
    busy_s: float  # time a character was on the wire
    frames: int  # transmissions, either way

    def utilisation_since(self, earlier: LineStats) -> float:
        """Share of the time between ``earlier`` and these figures the line was busy."""
        span = self.elapsed_s - earlier.elapsed_s
        return (self.busy_s - earlier.busy_s) / span if span > 0 else 0.0


class RtuLine:
    """One RS-485 bus: ptys joined by ``wire.py``, which takes wire time at ``baudrate``."""

    def __init__(self, supervisor_side: Path | str, sim_side: Path | str | None = None, *,
                 baudrate: int = 9600, bits_per_character: int = 10,
                 drops: Sequence[str] = ()) -> None:
        """``drops``: names of further slaves' ends, each at :meth:`drop_path`."""
        self.supervisor_side = Path(supervisor_side)
        self.sim_side = Path(sim_side) if sim_side else Path(f"{supervisor_side}.sim")
        self.drops = tuple(drops)
        self.baudrate = baudrate
        self.bits_per_character = bits_per_character
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: deque[str] = deque(maxlen=20)
        self._stderr_task: asyncio.Task[None] | None = None
        self._stats_lock = asyncio.Lock()
        self._started = False  # only a line we started may remove the link paths

    def drop_path(self, name: str) -> Path:
        """Where the slave ``name`` (one of ``drops``) opens its end of the line."""
        if name not in self.drops:
            raise KeyError(f"RS-485 line {self.supervisor_side} has no drop {name!r}")
        return Path(f"{self.supervisor_side}.{name}")

    @property
    def _links(self) -> tuple[Path, ...]:
        return (self.supervisor_side, self.sim_side, *(self.drop_path(n) for n in self.drops))

    @property
    def pid(self) -> int | None:
        """Process id of the line while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the line's process is alive."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def character_s(self) -> float:
        """Wire time of one character."""
        return self.bits_per_character / self.baudrate

    async def start(self, timeout_s: float = 5.0) -> None:
        """Start the line and wait until every link path exists."""
        for link in self._links:
            link.parent.mkdir(parents=True, exist_ok=True)
            _remove_link(link, stale=True)
        self._started = True
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, str(_WIRE), *(str(link) for link in self._links),
            str(self.baudrate), str(self.bits_per_character),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent_hook(),
        )
        _LIVE.add(self._proc.pid)
        self._stderr_task = asyncio.create_task(self._drain_stderr(), name="wire stderr")
        assert self._proc.stdout is not None
        try:
            ready = await asyncio.wait_for(self._proc.stdout.readline(), timeout_s)
        except TimeoutError:
            ready = b""
        if ready.strip() != b"ready":
            with contextlib.suppress(TimeoutError):  # let it finish saying why
                await asyncio.wait_for(asyncio.shield(self._stderr_task), timeout=1.0)
            await self.stop()
            raise OSError(f"RS-485 line {self.supervisor_side} did not start: "
                          f"{' | '.join(self._stderr)}")
        log.debug("RS-485 line %s <-> %s at %d baud (pid %d)", self.supervisor_side,
                  self.sim_side, self.baudrate, self._proc.pid)

    async def stop(self) -> None:
        """Stop the line (by its pid) and remove the link paths."""
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
            for link in self._links:
                _remove_link(link, stale=False)

    def inject(self, data: bytes) -> None:
        """A burst of interference: ``data`` reaches the supervisor, in wire time."""
        if data:
            self._tell(f"noise {data.hex()}")

    def inject_all(self, data: bytes) -> None:
        """Interference on the whole line: ``data`` reaches the supervisor and every slave."""
        if data:
            self._tell(f"noise_all {data.hex()}")

    async def stats(self, timeout_s: float = 5.0) -> LineStats:
        """What the line has carried so far (for its utilisation)."""
        async with self._stats_lock:  # one question, one answer line
            self._tell("stats")
            assert self._proc is not None and self._proc.stdout is not None
            async with asyncio.timeout(timeout_s):
                while True:
                    words = (await self._proc.stdout.readline()).decode().split()
                    if not words:
                        raise OSError(f"RS-485 line {self.supervisor_side} has stopped")
                    if words[0] == "stats" and len(words) == 4:
                        return LineStats(float(words[1]), float(words[2]), int(words[3]))

    def corrupt(self, frames: int) -> None:
        """Damage one bit in each of the next ``frames`` answers towards the supervisor."""
        self._tell(f"corrupt {frames}")

    def _tell(self, command: str) -> None:
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError(f"RS-485 line {self.supervisor_side} is not running")
        self._proc.stdin.write(command.encode() + b"\n")

    async def _drain_stderr(self) -> None:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr.append(line)
            log.debug("wire: %s", line)


def _remove_link(path: Path, *, stale: bool) -> None:
    """Remove a symlink left at ``path``; refuse to clobber a real file at start."""
    if path.is_symlink():
        path.unlink(missing_ok=True)
    elif stale and path.exists():
        raise FileExistsError(f"{path} exists and is not a link: not replacing it with a pty")
