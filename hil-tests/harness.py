"""HIL harness: a real Mosquitto, the real supervisor process and an MQTT monitor.

Every process a test starts is stopped by its own pid, also when the test fails. Ports are
chosen free at run time; conditions are awaited with generous deadlines (a loaded 2-core
machine must pass too).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "config" / "demo.toml"
BIN = Path(sys.executable).parent
DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command to completion without blocking the event loop (the simulator lives there)."""
    return await asyncio.to_thread(subprocess.run, cmd, env=dict(os.environ),
                                   capture_output=True, text=True, timeout=timeout)


async def wait_until(predicate: Callable[[], object], timeout: float = DEADLINE_S,
                     what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)  # poll step inside a deadline


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                 timeout: float = 15.0) -> int:
    """Stop ``proc`` (by its own pid) and return its exit code; kill if it does not end."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)


@dataclass
class Broker:
    """A real Mosquitto on a free port, restartable on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start and wait until it listens (in a thread: the simulator keeps serving)."""
        await asyncio.to_thread(self._start)

    async def stop(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(stop_process, self.proc)
            self.proc = None

    def _start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 "set_tcp_nodelay true"]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start on {self.port}")
            time.sleep(0.05)  # waiting for the listening socket, bounded (own thread)


def van_env(run_dir: Path, broker_port: int, gx_port: int) -> dict[str, str]:
    """The environment that points config/demo.toml at this test's ports and paths."""
    return {"MCW_MQTT_PORT": str(broker_port), "MCW_GX_PORT": str(gx_port),
            "MCW_RUN_DIR": str(run_dir), "MCW_LOG_LEVEL": "info",
            "MCW_PANEL_PORT": str(free_port())}


@dataclass
class SupervisorProcess:
    """The unmodified ``mcw-supervisor`` command as its own process."""

    env: dict[str, str]
    log_path: Path
    config: Path = DEMO_CONFIG
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "mcw-supervisor"), "--config", str(self.config)],
            env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
        )

    async def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the supervisor and wait for its exit without blocking the simulator."""
        if self.proc is None:
            return None
        return await asyncio.to_thread(stop_process, self.proc, sig)

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            with suppress(ValueError):
                out.append(json.loads(line))
        return out


@dataclass
class Monitor:
    """What a remote monitor sees: the latest payload of every topic, and every message."""

    port: int
    prefix: str = "mcw/v1/demo"
    latest: dict[str, Any] = field(default_factory=dict)
    messages: list[tuple[str, Any, bool]] = field(default_factory=list)
    client: aiomqtt.Client | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await wait_until(lambda: self.client is not None, what="monitor connected")

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port) as client:
                    await client.subscribe(f"{self.prefix}/#", qos=1)
                    self.client = client
                    async for msg in client.messages:
                        arrived = time.perf_counter()
                        raw = msg.payload if isinstance(msg.payload, bytes | str) else b""
                        topic = msg.topic.value.removeprefix(self.prefix + "/")
                        try:
                            value = json.loads(raw) if raw else None
                        except ValueError:  # e.g. a malformed command a test sent
                            value = raw
                        self.latest[topic] = value
                        self.messages.append((topic, value, bool(msg.retain)))
                        self.on_message(topic, value, arrived)
            except aiomqtt.MqttError:
                self.client = None
                await asyncio.sleep(0.2)  # the broker is being restarted by the test

    def on_message(self, topic: str, value: Any, arrived: float) -> None:
        """Hook for subclasses (the benchmark stamps arrivals); ``arrived`` is perf_counter."""

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._task

    def value(self, point: str) -> Any:
        state = self.latest.get(f"state/{point}")
        return None if state is None else state.get("v")

    def quality(self, point: str) -> str | None:
        state = self.latest.get(f"state/{point}")
        return None if state is None else state.get("q")

    async def command(self, action: str, body: dict[str, Any] | bytes,
                      timeout: float = DEADLINE_S) -> dict[str, Any]:
        """Publish a command and wait for the result with its id (or the next one if none)."""
        assert self.client is not None
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        cid = None if isinstance(body, bytes) else body.get("id")
        topic = f"cmd/{action}/result"
        seen = len(self.messages)
        await self.client.publish(f"{self.prefix}/cmd/{action}", payload, qos=1)

        def result() -> dict[str, Any] | None:
            for t, value, _ in self.messages[seen:]:
                if t == topic and (cid is None or value.get("id") == cid):
                    return dict(value)
            return None

        found: dict[str, Any] = await wait_until(result, timeout, f"result of {action}")
        return found
