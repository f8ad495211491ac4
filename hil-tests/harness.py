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
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

# One implementation of these, shared with the unit tests and the bench; imported from here too.
from testsupport import DEADLINE_S as DEADLINE_S
from testsupport import Broker as Broker
from testsupport import free_port as free_port
from testsupport import stop_process as stop_process
from testsupport import wait_until as wait_until

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "config" / "demo.toml"
BIN = Path(sys.executable).parent


async def run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command to completion without blocking the event loop (the simulator lives there)."""
    return await asyncio.to_thread(subprocess.run, cmd, env=dict(os.environ),
                                   capture_output=True, text=True, timeout=timeout)


def van_env(run_dir: Path, broker_port: int, gx_port: int) -> dict[str, str]:
    """The environment that points config/demo.toml at this test's ports and paths."""
    return {"MCW_MQTT_PORT": str(broker_port), "MCW_GX_PORT": str(gx_port),
            "MCW_ROUTER_PORT": str(free_port()), "MCW_RUN_DIR": str(run_dir),
            "MCW_LOG_LEVEL": "info", "MCW_PANEL_PORT": str(free_port())}


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
                      timeout: float = DEADLINE_S, role: str = "crew") -> dict[str, Any]:
        """Publish a command as ``role`` and wait for the result with its id (or the next
        one if none)."""
        assert self.client is not None
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        cid = None if isinstance(body, bytes) else body.get("id")
        topic = f"result/{role}/{action}"
        seen = len(self.messages)
        await self.client.publish(f"{self.prefix}/cmd/{role}/{action}", payload, qos=1)

        def result() -> dict[str, Any] | None:
            for t, value, _ in self.messages[seen:]:
                if t == topic and (cid is None or value.get("id") == cid):
                    return dict(value)
            return None

        found: dict[str, Any] = await wait_until(result, timeout, f"result of {action}")
        return found


@dataclass
class HqEcho:
    """HQ's echo process and every JSON line it printed (its reports, the desk's events)."""

    proc: asyncio.subprocess.Process
    reports: list[dict[str, Any]] = field(default_factory=list)

    async def read(self) -> None:
        """Collect the lines as they come: an unread pipe would stall the echo."""
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.reports.append(json.loads(line))

    async def says(self, timeout: float, since: int = 0, **match: Any) -> dict[str, Any]:
        """The first report from number ``since`` on with these keys and values."""
        def found() -> dict[str, Any] | None:
            return next((r for r in self.reports[since:]
                         if all(r.get(k) == v for k, v in match.items())), None)
        report: dict[str, Any] = await wait_until(found, timeout, f"the echo saying {match}")
        return report


@asynccontextmanager
async def hq_echo(port: int, down_after_s: float,
                  desk: Path | None = None) -> AsyncIterator[HqEcho]:
    """HQ's echo (``mcw-hq-echo``) on the broker at ``port``, stopped by its own pid; with
    ``desk``, HQ's alarm desk too, logging to that SQLite file."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "mcw-hq-echo"), "--port", str(port), "--down-after", f"{down_after_s:g}",
        "--client-id", f"hq-echo-{port}", *(() if desk is None else ("--db", str(desk))),
        stdout=asyncio.subprocess.PIPE)
    reader = None
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            ready = json.loads(await proc.stdout.readline())
        assert ready["echo"] == "ready", ready
        echo = HqEcho(proc)
        reader = asyncio.create_task(echo.read())
        yield echo
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if reader is not None:
            reader.cancel()
            with suppress(asyncio.CancelledError, ValueError):
                await reader
