"""What every test of this project needs, in one place (unit tests, HIL tests and the bench).

* ``free_port()``: a TCP port on 127.0.0.1 chosen by the kernel at run time.
* ``wait_until()``: wait for a condition with a deadline instead of sleeping.
* ``stop_process()``: stop one process by its own pid, killing it if it does not end.
* ``start_mosquitto()``, ``running_mosquitto()`` and ``Broker``: a real Mosquitto, waited for
  until it listens.
* ``require_tool()`` and ``needs_tool()``: a test that needs a binary skips when it is missing,
  except in CI (``CI=true``), where a missing tool fails the test: CI must run every test.
* ``modbus_crc()``: the Modbus RTU CRC, bit by bit as the specification defines it.
* ``LoopStalls``: when this process's event loop could not run (a loaded machine), so a latency
  measured in loop time can leave out what the machine, not the code, added.
* ``RedisServer`` and ``HqNode``: HQ's clustered broker (hq/broker.js nodes sharing a Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

DEADLINE_S = 30.0  # generous: a loaded 2-core machine must pass too
POLL_STEP_S = 0.05
LOG_TAIL_CHARS = 4000


# ---- tools -----------------------------------------------------------------------------------


def in_ci() -> bool:
    """Whether this run is CI (``CI=true``, as GitHub Actions, GitLab and others set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_tool(name: str) -> str:
    """The path of the binary ``name``; without it the calling test fails in CI, else skips."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not installed (make test installs it)"
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so a missing tool is a failure, not a skip",
                    pytrace=False)
    pytest.skip(reason)


def needs_tool(name: str) -> Any:
    """An autouse fixture for a module whose every test needs ``name``.

    Assign it to a module attribute, whose name becomes the fixture's name::

        chromium_installed = needs_tool("chromium")
    """

    @pytest.fixture(autouse=True, scope="module")
    def tool_installed() -> str:
        return require_tool(name)

    return tool_installed


# ---- ports, conditions, processes --------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(predicate: Callable[[], object], timeout: float = DEADLINE_S,
                     what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; fail at the deadline.

    Checked at once, then every POLL_STEP_S on the event loop, so whatever runs on the
    loop (the simulator, a bus worker) keeps running meanwhile.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(POLL_STEP_S)  # poll step inside a deadline


class LoopStalls:
    """The spans of loop time in which this process's event loop did not run though a timer
    was due (another process had the CPU), recorded while the ``async with`` block runs.

    A tick every STEP_S that fires late by more than STALL_MIN_S is a stall; only the part
    beyond STALL_MIN_S counts, so the loop's own work (the code under test) is never left out."""

    STEP_S = 0.01
    STALL_MIN_S = 0.02

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopStalls:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.STEP_S
            await asyncio.sleep(self.STEP_S)  # the tick whose lateness is measured
            if loop.time() - due > self.STALL_MIN_S:
                self.spans.append((due + self.STALL_MIN_S, loop.time()))

    def within(self, start: float, end: float) -> float:
        """Seconds of stall between loop times ``start`` and ``end``."""
        return sum(max(0.0, min(e, end) - max(s, start)) for s, e in self.spans)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                 timeout: float = 15.0) -> int:
    """Stop ``proc`` by its own pid and return its exit code; kill it if it does not end."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)


def _log_tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "(no log)"


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return False
    return True


# ---- Mosquitto --------------------------------------------------------------------------------


def start_mosquitto(config: Path, ports: Sequence[int], log: Path,
                    timeout: float = DEADLINE_S) -> subprocess.Popen[bytes]:
    """Start ``mosquitto -c config`` and return it once every port in ``ports`` accepts.

    Blocking (run it in a thread from async code). If it exits or does not listen in time it
    is stopped and the error carries the end of its log (appended to ``log``).
    """
    return start_listening([require_tool("mosquitto"), "-c", str(config)], ports, log,
                           "mosquitto", timeout)


@contextlib.contextmanager
def running_mosquitto(config: Path, ports: Sequence[int],
                      log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``start_mosquitto`` for a ``with`` block: stopped by its pid afterwards, whatever happens.

    SIGTERM first, so a broker with persistence saves its state.
    """
    proc = start_mosquitto(config, ports, log)
    try:
        yield proc
    finally:
        stop_process(proc)


@dataclass
class Broker:
    """A real Mosquitto for the tests: anonymous, on 127.0.0.1, restartable on the same port.

    ``extra`` lines are appended to the generated configuration (a later line wins).
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    extra: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def config_lines(self) -> list[str]:
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 "persistence false", "set_tcp_nodelay true",
                 "max_queued_messages 500000"]  # as the shipped broker
        if os.geteuid() == 0:
            # a root-run mosquitto would drop to the `mosquitto` user, who cannot read or
            # write this test's private directory
            lines.append("user root")
        return [*lines, *self.extra]

    def start_blocking(self) -> None:
        """Start (or restart, on the same port) and return once it listens."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"mosquitto on {self.port} is already running")
        self.config_path.write_text("\n".join(self.config_lines()) + "\n")
        self.proc = start_mosquitto(self.config_path, [self.port], self.log_path)

    def stop_blocking(self) -> int | None:
        """Stop it by its pid; its exit code, or None if it was not running."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        return stop_process(proc)

    async def start(self) -> None:
        """Start in a thread, so whatever runs on the event loop keeps serving meanwhile."""
        await asyncio.to_thread(self.start_blocking)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_blocking)


class TcpRelay:
    """A TCP relay between a client (a bridge) and a broker, standing in for the network.

    ``delay_s`` and ``rate_bps`` make it a slow radio link (latency each way, bandwidth);
    ``stall()`` makes it drop what the client sends (a dead radio link: the client's bytes
    leave, nothing arrives); ``cut()`` then closes the connection as a network failure would
    (no DISCONNECT, so the broker publishes the client's will). New connections work again,
    unless ``down`` (out of coverage: every new connection is dropped at once).
    """

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.stalled = False
        self.down = False
        self.delay_s = 0.0  # one way, each byte
        self.rate_bps: float | None = None  # bytes a second each way (None: as fast as it goes)
        self.dropped_bytes = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        self.stalled = True

    def cut(self) -> None:
        self.stalled = False
        for client_side, broker_side in self._open:
            client_side.transport.abort()
            broker_side.transport.abort()
        self._open.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.cut()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.broker_port)
        except OSError:
            writer.transport.abort()
            return
        self._open.append((writer, up_writer))
        await asyncio.gather(self._pump(reader, up_writer, from_client=True),
                             self._pump(up_reader, writer, from_client=False),
                             return_exceptions=True)
        writer.transport.abort()
        up_writer.transport.abort()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    from_client: bool) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = asyncio.create_task(self._deliver(queue, dst))
        try:
            while data := await src.read(4096 if self.rate_bps else 65536):
                if from_client and self.stalled:
                    self.dropped_bytes += len(data)
                    continue
                queue.put_nowait((loop.time() + self.delay_s, data))
            await queue.join()  # what is on its way still arrives
        finally:
            deliver.cancel()

    async def _deliver(self, queue: asyncio.Queue[tuple[float, bytes]],
                       dst: asyncio.StreamWriter) -> None:
        """Bytes arrive ``delay_s`` after they were sent (the radio's latency), in order, at
        most ``rate_bps`` bytes a second (its bandwidth)."""
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            try:
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())  # the link's latency
                dst.write(data)
                await dst.drain()
                if self.rate_bps:
                    await asyncio.sleep(len(data) / self.rate_bps)  # the link's bandwidth
            finally:
                queue.task_done()


def enable_bridge(fragment: str, vehicle: str, hq_port: int,
                  tls: dict[str, Path] | None = None,
                  failover_ports: Sequence[int] = ()) -> str:
    """The shipped van broker configuration (systemd/mosquitto-mcw.conf) with its commented
    bridge section enabled for ``vehicle`` and pointed at 127.0.0.1:``hq_port``.

    Without ``tls`` the TLS lines stay commented (plain MQTT); with it they are enabled, their
    files replaced by ``tls``'s (keys ``bridge_cafile``, ``bridge_certfile``,
    ``bridge_keyfile``). ``failover_ports``: more HQ nodes on 127.0.0.1, after ``hq_port`` in
    mosquitto's address list (``address h1:p1 h2:p2``: the first is the main one, the others
    are tried in turn when it fails). Everything else in the section is used as written.
    """
    head, marker, section = fragment.partition("#connection hq")
    assert marker, "bridge section not found"
    lines = []
    for line in (marker + section).splitlines():
        if line.startswith("#bridge_"):
            if tls is None:
                continue
            key = line[1:].split()[0]
            line = f"{key} {tls[key]}" if key in tls else line[1:]
        if line.startswith("#") and not line.startswith("##"):
            line = line[1:]
        lines.append(line)
    bridge = "\n".join(lines).replace("VEHICLE_ID", vehicle)
    addresses = " ".join(f"127.0.0.1:{port}" for port in (hq_port, *failover_ports))
    bridge, n = re.subn(r"(?m)^address .*$", f"address {addresses}", bridge)
    assert n == 1
    return head + bridge + "\n"


# ---- HQ: Redis and the aedes broker nodes (hq/) ------------------------------------------------

HQ_BROKER = Path(__file__).resolve().parents[1] / "hq" / "broker.js"


def require_hq_broker() -> str:
    """The ``node`` binary, once hq/'s packages are installed (``npm ci --prefix hq``); without
    either the calling test fails in CI, else skips."""
    node = require_tool("node")
    if not (HQ_BROKER.parent / "node_modules" / "aedes").is_dir():
        reason = "HQ's broker is not installed (make test: npm ci --prefix hq)"
        if in_ci():
            pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip", pytrace=False)
        pytest.skip(reason)
    return node


def start_listening(cmd: Sequence[str], ports: int | Sequence[int], log: Path, what: str,
                    timeout: float = DEADLINE_S) -> subprocess.Popen[bytes]:
    """Start ``cmd`` (output appended to ``log``) and return it once every one of ``ports``
    accepts.

    Blocking. If it exits or does not listen in time it is stopped by its pid and the error
    carries the end of its log.
    """
    with log.open("ab") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        for port in [ports] if isinstance(ports, int) else ports:
            while not _listens(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} does not listen on {port}:\n{_log_tail(log)}")
                try:  # the poll step, which also notices at once when it exits
                    code = proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                raise RuntimeError(f"{what} exited with {code}:\n{_log_tail(log)}")
    except BaseException:
        stop_process(proc)
        raise
    return proc


@dataclass
class RedisServer:
    """A Redis server of its own on 127.0.0.1 (Debian's redis-server), its files in
    ``workdir``; nothing saved to disk (HQ's nodes are what fails in these tests, not Redis)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start_blocking(self) -> None:
        """Start it and return once it listens."""
        server = require_tool("redis-server")
        config = self.workdir / "redis.conf"
        config.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.workdir}", 'save ""',
            "appendonly no", "daemonize no", f"logfile {self.workdir / 'redis.log'}"]) + "\n")
        self.proc = start_listening([server, str(config)], self.port,
                                    self.workdir / "redis.log", "redis-server")

    def stop_blocking(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            stop_process(proc)


@dataclass
class HqNode:
    """One HQ broker node (hq/broker.js: aedes joined to the others through Redis)."""

    workdir: Path
    node_id: str
    redis_url: str
    port: int = field(default_factory=free_port)
    heartbeat_ms: int = 1000
    log_clients: bool = True
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.node_id}.log"

    def start_blocking(self) -> None:
        """Start it and return once it listens."""
        node = require_hq_broker()
        cmd = [node, str(HQ_BROKER), "--port", str(self.port), "--redis", self.redis_url,
               "--id", self.node_id, "--heartbeat-ms", str(self.heartbeat_ms)]
        if self.log_clients:
            cmd.append("--log-clients")
        self.proc = start_listening(cmd, self.port, self.log_path, f"HQ node {self.node_id}")

    def stop_blocking(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop it by its pid (``SIGKILL``: a node that dies); its exit code, or None."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        return stop_process(proc, sig)

    def log_lines(self) -> list[dict[str, Any]]:
        """Its JSON log lines (one when listening, one per client with ``log_clients``)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def connected(self, client_id: str) -> bool:
        """Whether its log says ``client_id`` is connected to it now."""
        state = False
        for line in self.log_lines():
            if line.get("client") == client_id:
                state = bool(line.get("connected"))
        return state


# Property-based tests: a fixed budget (more with MCW_FUZZ_EXAMPLES); in CI the examples are
# the same at every run (derandomized: a red CI is reproducible, not a lucky draw); locally
# every run explores new ones.
FUZZ = settings(max_examples=int(os.environ.get("MCW_FUZZ_EXAMPLES", "300")), deadline=None,
                derandomize=os.environ.get("CI") == "true",
                suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---- Modbus ------------------------------------------------------------------------------------


def modbus_crc(data: bytes) -> int:
    """The CRC as the Modbus specification defines it, bit by bit (the tests' oracle and the
    simulated devices' frames; sent low byte first)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc
