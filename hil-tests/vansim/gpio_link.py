"""The van's GPIO wiring, served to the supervisor's "sim" GPIO backend over a Unix socket.

Newline-delimited JSON objects, physical levels (``true`` = high):

* simulator -> supervisor: ``{"pin": 17, "level": true}`` for an INPUT line, for every input
  when a client connects and again whenever one changes;
* supervisor -> simulator: ``{"pin": 27, "level": false}`` for an OUTPUT line, at connect and
  on every change; the simulator records it.

Tests speak logical states (active / inactive); each line's ``active`` ("high" / "low") from
the config maps them to physical levels, as the real wiring would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from supervisor.core.config import GpioLine

log = logging.getLogger(__name__)


def physical_level(line: GpioLine, active: bool) -> bool:
    """Level on the pin for the logical state ``active``."""
    return active if line.active == "high" else not active


class GpioLink:
    """Unix-socket server carrying GPIO levels between the simulated van and the supervisor."""

    def __init__(self, socket_path: Path | str, lines: Sequence[GpioLine]) -> None:
        self.socket_path = Path(socket_path)
        self._lines = {line.name: line for line in lines}
        self._by_pin = {line.pin: line for line in lines}
        # logical states; inputs start inactive, outputs unknown until the supervisor says
        self._inputs: dict[str, bool] = {
            line.name: False for line in lines if line.direction == "input"
        }
        self._outputs: dict[str, bool] = {}
        # called with (line name, logical state) whenever the supervisor reports an output
        self.on_output: Callable[[str, bool], None] | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on the socket path (a stale socket file from a crashed run is removed)."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(self.socket_path.lstat().st_mode):
                raise FileExistsError(f"{self.socket_path} exists and is not a socket")
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=self.socket_path)

    async def stop(self) -> None:
        """Close the server and every connection; remove the socket file."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
            self.socket_path.unlink(missing_ok=True)

    @property
    def client_count(self) -> int:
        """Supervisor connections open now."""
        return len(self._clients)

    def set_input(self, name: str, active: bool) -> None:
        """Drive input line ``name`` to the logical state ``active``; clients hear of changes."""
        line = self._line(name, "input")
        if self._inputs[name] == active:
            return
        self._inputs[name] = active
        message = _encode(line.pin, physical_level(line, active))
        for writer in list(self._clients):
            _send(writer, message)

    def input_active(self, name: str) -> bool:
        """Logical state the simulator drives on input line ``name``."""
        self._line(name, "input")
        return self._inputs[name]

    def output_active(self, name: str) -> bool | None:
        """Logical state of output ``name`` as last reported; None if never reported."""
        self._line(name, "output")
        return self._outputs.get(name)

    def _line(self, name: str, direction: str) -> GpioLine:
        line = self._lines.get(name)
        if line is None:
            raise KeyError(f"no GPIO line named {name!r}")
        if line.direction != direction:
            raise ValueError(f"GPIO line {name!r} is an {line.direction}, not an {direction}")
        return line

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._clients.add(writer)
        try:
            for name, active in self._inputs.items():
                line = self._lines[name]
                _send(writer, _encode(line.pin, physical_level(line, active)))
            while raw := await reader.readline():
                self._receive(raw)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the supervisor went away; it may come back
        finally:
            self._clients.discard(writer)
            if task is not None:
                self._handlers.discard(task)
            writer.close()

    def _receive(self, raw: bytes) -> None:
        try:
            msg = json.loads(raw)
            pin, level = msg["pin"], msg["level"]
            if not isinstance(pin, int) or not isinstance(level, bool):
                raise TypeError("pin must be an integer and level a boolean")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("GPIO link: ignoring malformed message %r: %s", raw[:80], exc)
            return
        line = self._by_pin.get(pin)
        if line is None or line.direction != "output":
            log.warning("GPIO link: pin %s is not an output line; ignored", pin)
            return
        # the inverse of physical_level(): active-low lines are active when low
        active = level if line.active == "high" else not level
        self._outputs[line.name] = active
        if self.on_output is not None:
            self.on_output(line.name, active)


def _encode(pin: int, level: bool) -> bytes:
    return json.dumps({"pin": pin, "level": level}).encode() + b"\n"


def _send(writer: asyncio.StreamWriter, message: bytes) -> None:
    if writer.is_closing():
        return
    # a dead connection is noticed and dropped by its handler
    with contextlib.suppress(ConnectionError, RuntimeError):
        writer.write(message)
