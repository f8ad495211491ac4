"""Peer job benchmark: the supervisor against Node-RED + node-red-contrib-modbus, on the job a
van builder does with Node-RED today.

The job: 5 Modbus TCP units x 40 holding registers polled every 1 s (and, in a second run,
every 200 ms), every change published to MQTT, one register written on an MQTT command. Both
sides do it one after the other (a 2-core machine is not shared between them), against the
same simulator code and the same Mosquitto:

* the supervisor: the unmodified ``mcw-supervisor`` with bench/peer/vehicle.toml, whose five
  ``[[device]]`` entries use a van builder's profile file (bench/peer/peer_unit.toml) with
  ``expose = true``, no code: every register is the point ``device/{id}/{register}``,
  published retained on ``mcw/v1/peer/state/device/{id}/{register}``; r05 of u1 is written
  with the technician action ``device/u1/write``;
* Node-RED 4.1 with node-red-contrib-modbus 5.x, pinned in bench/peer/package.json and its
  lock (4.1.15 and 5.23.3: the later 5.x releases on npm, 5.45.2 and 5.60.2, fetch a
  dependency from dl.cloudsmith.io, outside the npm registry, and 5.60.2 needs Node.js 22),
  installed here with ``npm ci``, run headless (bench/peer/settings.js) with the flows
  of bench/peer/flows.json: per unit a modbus-read (FC3, 40 registers, rate = the poll
  period) -> a function node emitting one message per changed register, on the supervisor's
  topics and payload shape (``{"v": value}``) -> mqtt out (QoS 0, retained, as the
  supervisor publishes its retained state); an mqtt in on a command topic of its own (the
  supervisor's payload) -> a function node (register and value) -> modbus-write (FC6, u1
  r05).

The simulator runs in its own process (this script with ``--simulator``), so its CPU is
charged to neither side: one pymodbus 3.16 server (``SimDevice``, device id 1) per unit on
127.0.0.1, each on a port the kernel picks at run time; a changer that writes a new value to a
random register of a random unit at a steady 20 changes/s (never the commanded register, nor
one changed within the last two poll periods, so every change can be published before the
next one overwrites it), and a hook that sees the clients' writes. It reports each change and
each client write as (unit, address, value, ``time.perf_counter()``) on its stdout; on Linux
perf_counter is CLOCK_MONOTONIC, one clock for every process of the machine (checked at
start). The values written are unique within a run, so an MQTT arrival names its change.

Figures per side and poll period, over a measuring window after a warm-up:
  * CPU: % of one core, utime + stime of the side's process (/proc/<pid>/stat) over the window;
  * RSS: VmHWM (the peak) and VmRSS at the end of the window (/proc/<pid>/status), in MB;
  * change -> MQTT p50 / p95: the simulator's change to a subscriber in this process receiving
    that value (the first arrival of each change made in the window);
  * command -> write p50 / p95: publishing the command (QoS 1) to the simulator's register
    holding the value; one command every 0.5-1.5 s through the window, while the changes go on;
and the ratios supervisor / Node-RED beside their targets. Each side runs ``--rounds`` times
per poll period, taking turns (supervisor, Node-RED, Node-RED, supervisor, ...): a 2-core
machine's load drifts, and one run of each moved either side's CPU by half (0.65-1.07 % and
0.82-1.57 % of a core on the same machine within an hour); the figures are over all rounds
(CPU and VmRSS the mean, VmHWM the highest, the latencies pooled), each round's CPU listed.
Prints figures; never tunes anything to meet them.

Usage: ``make bench`` (or ``PYTHONPATH=hil-tests .venv/bin/python bench/peer_job.py
[--window 60] [--warmup 10] [--polls 1,0.2] [--rounds 2] [--json PATH]``). Every process it
starts is stopped by its own pid, also on failure, and the temporary directory removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from testsupport import Broker, stop_process, wait_until

# The scripts run with bench/ as sys.path[0]; mypy (mypy_path hil-tests:tests) names this
# folder's modules bench.*.
if TYPE_CHECKING:
    from bench.run import Figures, cpu_seconds, finding_lines, memory, report_head, save_figures
else:
    from run import Figures, cpu_seconds, finding_lines, memory, report_head, save_figures

PEER = Path(__file__).resolve().parent / "peer"
VEHICLE_CONFIG = PEER / "vehicle.toml"
FLOWS = PEER / "flows.json"
SETTINGS = PEER / "settings.js"
NODE_MODULES = PEER / "node_modules"
INSTALLED = NODE_MODULES / ".installed"  # stamp: npm ci ran for the present lock file
BIN = Path(sys.executable).parent
THIS_SCRIPT = Path(__file__).resolve()  # run again with --simulator

SIDES = ("supervisor", "node-red")
UNITS = 5  # u1..u5, one Modbus TCP server each, device id 1
REGISTERS = 40  # r00..r39 = holding registers 0..39
COMMAND_UNIT, COMMAND_ADDRESS = 1, 5  # the one register written on command: u1 r05
PREFIX = "mcw/v1/peer"
STATE_TOPIC = re.compile(rf"^{PREFIX}/state/device/u(\d+)/r(\d\d)$")
COMMAND_TOPIC = {
    "supervisor": f"{PREFIX}/cmd/technician/device/u1/write",
    "node-red": "nodered/peer/cmd/device/u1/write",  # its own topic, the same payload
}
RESULT_FILTER = f"{PREFIX}/result/technician/#"  # the supervisor's answers (Node-RED gives none)
CHANGES_PER_S = 20.0
# The changer writes 1..COMMAND_VALUES_FROM-1 (cycling), the commands COMMAND_VALUES_FROM up:
# a value never means both.
COMMAND_VALUES_FROM = 40000
START_TIMEOUT_S = 90.0  # generous: a loaded 2-core machine must finish too
STEP_TIMEOUT_S = 10.0
TARGETS = {"cpu_ratio": 0.8, "rss_ratio": 0.5, "command_p50_ratio": 0.5,
           "change_p95_over_poll_s": 0.020}


def log(text: str) -> None:
    """Progress on stderr; the figures go to stdout."""
    print(f"[peer-job] {text}", file=sys.stderr, flush=True)


# ---- the simulator (its own process) -----------------------------------------------------


class SimulatedUnits:
    """The five units' servers, the changer and the write hook, in the simulator process."""

    def __init__(self, poll_s: float, seed: int, emit: Callable[[dict[str, Any]], None]) -> None:
        self.emit = emit
        self.rng = random.Random(seed)
        # a register changed within two poll periods is left alone: its change must be seen
        self.min_gap_s = 2 * poll_s
        self.servers: list[ModbusTcpServer] = []
        self.last_change: dict[tuple[int, int], float] = {}
        self.value = 0
        self.own_write: tuple[int, int, int] | None = None  # the changer's write in progress

    async def start(self) -> list[int]:
        """Start one server per unit; their ports, unit 1 first."""
        ports = []
        for unit in range(1, UNITS + 1):
            device = SimDevice(
                id=1, simdata=[SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
                action=functools.partial(self.on_access, unit))
            server = ModbusTcpServer(device, address=("127.0.0.1", 0))  # the kernel picks a port
            await server.serve_forever(background=True)
            self.servers.append(server)
            listener = server.transport
            assert isinstance(listener, asyncio.Server)
            ports.append(listener.sockets[0].getsockname()[1])
        return ports

    async def stop(self) -> None:
        for server in self.servers:
            await server.shutdown()  # type: ignore[no-untyped-call]

    async def on_access(self, unit: int, func_code: int, start: int, address: int, count: int,
                        registers: list[int], values: list[int] | list[bool] | None,
                        ) -> ExcCodes | None:
        """pymodbus's hook, called before a request is served: report the clients' writes."""
        if values is None:  # a read
            return None
        now = time.perf_counter()  # the register holds it as soon as this hook returns
        for offset, value in enumerate(values):
            key = (unit, address + offset, int(value))
            if key != self.own_write:
                self.emit({"k": "write", "u": key[0], "a": key[1], "v": key[2], "t": now})
        return None

    async def change_one(self) -> None:
        """A new value in a random register of a random unit that may change now."""
        now = time.perf_counter()
        free = [(u, a) for u in range(1, UNITS + 1) for a in range(REGISTERS)
                if (u, a) != (COMMAND_UNIT, COMMAND_ADDRESS)
                and now - self.last_change.get((u, a), -math.inf) >= self.min_gap_s]
        unit, address = self.rng.choice(free)
        self.value = self.value % (COMMAND_VALUES_FROM - 1) + 1
        self.own_write = (unit, address, self.value)
        await self.servers[unit - 1].async_setValues(1, 6, address, [self.value])
        changed = time.perf_counter()
        self.own_write = None
        self.last_change[(unit, address)] = changed
        self.emit({"k": "change", "u": unit, "a": address, "v": self.value, "t": changed})

    async def change_forever(self) -> None:
        """CHANGES_PER_S changes a second, on a fixed schedule (late ones do not pile up)."""
        started = time.perf_counter()
        n = 0
        while True:
            n += 1
            due = started + n / CHANGES_PER_S
            await asyncio.sleep(max(0.0, due - time.perf_counter()))  # the changer's pace
            await self.change_one()


def emit_line(record: dict[str, Any]) -> None:
    """One JSON line to the bench (stdout is its pipe)."""
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def simulate(poll_s: float, seed: int) -> None:
    """The simulator process: serve, change and report until SIGTERM or the bench's end
    (its stdin closed)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def bench_gone() -> None:
        await stdin.read()  # EOF: the bench is gone, with it the reason to run
        stop.set()

    units = SimulatedUnits(poll_s, seed, emit_line)
    ports = await units.start()
    emit_line({"k": "ready", "ports": ports, "t": time.perf_counter(),
               "clock": time.get_clock_info("perf_counter").implementation})
    tasks = [asyncio.create_task(units.change_forever()), asyncio.create_task(bench_gone())]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await units.stop()


# ---- the bench's end of the simulator ----------------------------------------------------

Key = tuple[int, int, int]  # unit, address, value


class SimulatorProcess:
    """The simulator as a child process, and what it reported: changes and client writes."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.changes: dict[Key, float] = {}
        self.writes: dict[Key, float] = {}
        self.waiting: dict[Key, asyncio.Future[float]] = {}
        self.hello: asyncio.Future[dict[str, Any]] | None = None
        self.clock_offset_s = 0.0
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, poll_s: float, seed: int) -> list[int]:
        """Start it; the units' ports once it serves them."""
        self.hello = asyncio.get_running_loop().create_future()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(THIS_SCRIPT), "--simulator", "--poll", f"{poll_s:g}",
            "--seed", str(seed), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 20)
        self._reader = asyncio.create_task(self._read())
        hello = await asyncio.wait_for(asyncio.shield(self.hello), START_TIMEOUT_S)
        # one clock for both processes: its stamp is a moment ago on ours, not seconds away
        self.clock_offset_s = time.perf_counter() - float(hello["t"])
        if hello["clock"] != "clock_gettime(CLOCK_MONOTONIC)" or not 0 <= self.clock_offset_s < 1:
            raise RuntimeError(f"the simulator's clock is not ours: {hello}, "
                               f"offset {self.clock_offset_s:.3f} s")
        return [int(p) for p in hello["ports"]]

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            rec = json.loads(line)
            kind = rec["k"]
            if kind == "ready":
                assert self.hello is not None
                self.hello.set_result(rec)
                continue
            key = (int(rec["u"]), int(rec["a"]), int(rec["v"]))
            if kind == "change":
                self.changes[key] = float(rec["t"])
            elif kind == "write":
                self.writes.setdefault(key, float(rec["t"]))
                fut = self.waiting.pop(key, None)
                if fut is not None and not fut.done():
                    fut.set_result(float(rec["t"]))

    def write_of(self, key: Key) -> asyncio.Future[float]:
        """A future resolved with the time the simulator's register took ``key``'s value."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if key in self.writes:
            fut.set_result(self.writes[key])
        else:
            self.waiting[key] = fut
        return fut

    async def stop(self) -> None:
        """Stop it by its pid (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


# ---- the subscriber: one for both sides --------------------------------------------------


class Subscriber:
    """Stamps every state message on arrival and matches it with the simulator's change of
    that value; also sends the commands and collects the supervisor's results."""

    def __init__(self, port: int, sim: SimulatorProcess) -> None:
        self.port = port
        self.sim = sim
        self.client: aiomqtt.Client | None = None
        self.seen: set[tuple[int, int]] = set()  # registers published since the start
        self.arrived: dict[Key, float] = {}  # a change's value -> its first arrival
        self.stamps: list[float] = []  # every live state message
        self.results: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await wait_until(lambda: self.client is not None or self._task_failed(), STEP_TIMEOUT_S,
                         "the subscriber connected")
        if self.client is None:
            assert self._task is not None
            await self._task  # raises what went wrong

    def _task_failed(self) -> bool:
        return self._task is not None and self._task.done()

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.subscribe(f"{PREFIX}/state/device/+/+", qos=1)
            await client.subscribe(RESULT_FILTER, qos=1)
            self.client = client
            async for msg in client.messages:
                self.on_message(msg, time.perf_counter())

    def on_message(self, msg: aiomqtt.Message, arrived: float) -> None:
        # retained copies are what an earlier run left on the broker, not this side's work
        if msg.retain or not isinstance(msg.payload, bytes | str):
            return
        topic = msg.topic.value
        try:
            value = json.loads(msg.payload)
        except ValueError:
            return
        if topic.startswith(f"{PREFIX}/result/"):
            self.results[str(value.get("status")) if isinstance(value, dict) else "?"] += 1
            return
        match = STATE_TOPIC.match(topic)
        if match is None or not isinstance(value, dict) or not isinstance(value.get("v"), int):
            return
        unit, address = int(match[1]), int(match[2])
        self.seen.add((unit, address))
        self.stamps.append(arrived)
        key = (unit, address, int(value["v"]))
        self.arrived.setdefault(key, arrived)

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        assert self.client is not None
        await self.client.publish(topic, json.dumps(payload).encode(), qos=1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task


# ---- the two sides -------------------------------------------------------------------------


def ensure_node_red() -> dict[str, str]:
    """Node-RED and node-red-contrib-modbus installed from bench/peer's lock (``npm ci``, only
    when the lock is newer than the last install); the versions that will run."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SystemExit("peer_job: Node.js and npm are needed (make bench installs them)")
    lock = PEER / "package-lock.json"
    if not INSTALLED.exists() or INSTALLED.stat().st_mtime < lock.stat().st_mtime:
        log(f"installing Node-RED from {lock.relative_to(PEER.parent.parent)} (npm ci)")
        subprocess.run([npm, "ci", "--prefix", str(PEER), "--no-audit", "--no-fund",
                        "--loglevel=error"], check=True)
        INSTALLED.touch()
    versions = {"node": subprocess.run(["node", "--version"], capture_output=True, text=True,
                                       check=True).stdout.strip()}
    for package in ("node-red", "node-red-contrib-modbus"):
        meta = json.loads((NODE_MODULES / package / "package.json").read_text())
        versions[package] = str(meta["version"])
    return versions


@dataclass
class Side:
    """One side's process: the supervisor or Node-RED, with its log file."""

    name: str
    run_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def command(self) -> list[str]:
        if self.name == "supervisor":
            return [str(BIN / "mcw-supervisor"), "--config", str(VEHICLE_CONFIG)]
        # Node-RED's own entry point run by node itself: the pid measured is Node-RED's
        user_dir = self.run_dir / "node-red"
        user_dir.mkdir(exist_ok=True)
        flows = user_dir / "flows.json"  # a copy: Node-RED may write beside its flow file
        shutil.copyfile(FLOWS, flows)
        return [str(shutil.which("node")), str(NODE_MODULES / "node-red" / "red.js"),
                "--settings", str(SETTINGS), "--userDir", str(user_dir), str(flows)]

    def start(self, env: dict[str, str]) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), env={**os.environ, **env},
                                         stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise RuntimeError(f"{self.name} is not running (exit {code}); its log:\n"
                               + self.log_tail())

    async def stop(self) -> int | None:
        """SIGTERM by its pid (SIGKILL if it does not end); its exit code."""
        if self.proc is None:
            return None
        return await asyncio.to_thread(stop_process, self.proc)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def findings(self) -> dict[str, dict[str, int]]:
        """Warnings and errors it logged, by level and event (first 60 characters)."""
        out: dict[str, Counter[str]] = {}
        if not self.log_path.exists():
            return {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            if self.name == "supervisor":
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                level, event = str(rec.get("level")), str(rec.get("event"))
            else:  # "3 Dec 08:30:00 - [warn] [node type:name] text"
                found = re.search(r" - \[(\w+)\] (.*)$", line)
                if found is None:
                    continue
                level, event = found[1], found[2][:60]
            if level in ("warn", "warning", "error", "critical", "exception", "fatal"):
                out.setdefault(level, Counter())[event] += 1
        return {level: dict(c) for level, c in out.items()}


def children(pid: int) -> int:
    """How many child processes ``pid`` has (its CPU and memory would not be in its own)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += len((task / "children").read_text().split())
    return total


def side_env(side: str, run_dir: Path, broker_port: int, ports: list[int],
             poll_s: float) -> dict[str, str]:
    """What points the side's committed config or flows at this run's ports and period."""
    env = {f"PEER_PORT_{i}": str(port) for i, port in enumerate(ports, start=1)}
    env["PEER_MQTT_PORT"] = str(broker_port)
    if side == "supervisor":
        env.update({"PEER_RUN_DIR": str(run_dir), "PEER_POLL_S": f"{poll_s:g}"})
    else:
        env["PEER_POLL_MS"] = str(round(poll_s * 1000))
    return env


# ---- one side, one poll period -------------------------------------------------------------


def quantile(samples: list[float], q: float) -> float | None:
    """The ``q`` quantile (0 < q < 1) of ``samples``, inclusive method; None when empty."""
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[round(q * 100) - 1]


def latencies(samples: list[float]) -> dict[str, Any]:
    return {"n": len(samples), "p50": quantile(samples, 0.5), "p95": quantile(samples, 0.95),
            "max": max(samples, default=None)}


async def measure(args: argparse.Namespace, broker: Broker, side_name: str, poll_s: float,
                  run_dir: Path, seed: int) -> dict[str, Any]:
    """Run ``side_name`` on a fresh simulator with period ``poll_s``: its figures."""
    sim = SimulatorProcess()
    sub = Subscriber(broker.port, sim)
    side = Side(side_name, run_dir)
    rng = random.Random(seed)
    res: dict[str, Any] = {"side": side_name, "poll_s": poll_s}
    try:
        ports = await sim.start(poll_s, seed)
        await sub.start()
        started = time.perf_counter()
        side.start(side_env(side_name, run_dir, broker.port, ports, poll_s))

        def all_published() -> bool:
            side.check_alive()
            return len(sub.seen) == UNITS * REGISTERS

        await wait_until(all_published, START_TIMEOUT_S, f"{side_name}: every register on MQTT")
        res["start_to_all_published_s"] = time.perf_counter() - started
        log(f"{side_name}, poll {poll_s * 1000:.0f} ms: all {UNITS * REGISTERS} registers "
            f"published after {res['start_to_all_published_s']:.1f} s; warm-up {args.warmup:g} s, "
            f"window {args.window:g} s")
        await asyncio.sleep(args.warmup)  # warm-up: start-up work settles
        res.update(await window(args, sim, sub, side, rng))
        side.check_alive()
        res["children"] = children(side.pid)
    except BaseException:
        log(f"{side_name} failed; the end of its log:\n{side.log_tail()}")
        raise
    finally:
        res["exit_code"] = await side.stop()
        await sub.stop()
        await sim.stop()
    res["log_findings"] = side.findings()
    return res


async def window(args: argparse.Namespace, sim: SimulatorProcess, sub: Subscriber, side: Side,
                 rng: random.Random) -> dict[str, Any]:
    """The measuring window: commands at a random pace while the changes go on; CPU, memory
    and both latencies."""
    pid = side.pid
    value = COMMAND_VALUES_FROM
    commands: list[float] = []
    missed = 0
    results0 = sum(sub.results.values())
    rss_samples: list[float] = []
    w0 = time.perf_counter()
    c0, sim_c0, own0 = cpu_seconds(pid), cpu_seconds(sim.pid), os.times()
    end = w0 + args.window

    async def sample_memory() -> None:
        while True:
            rss_samples.append(memory(pid)["rss_mb"])
            await asyncio.sleep(1.0)  # sampling pace

    sampler = asyncio.create_task(sample_memory())
    try:
        while time.perf_counter() < end:
            side.check_alive()
            value += 1
            written = sim.write_of((COMMAND_UNIT, COMMAND_ADDRESS, value))
            body = {"id": f"peer-{side.name}-{value}", "args": {"register": "r05", "value": value}}
            t0 = time.perf_counter()
            await sub.publish(COMMAND_TOPIC[side.name], body)
            try:
                commands.append(await asyncio.wait_for(written, STEP_TIMEOUT_S) - t0)
            except TimeoutError:
                missed += 1
            # a random phase against the polls; the command rate of a busy technician
            pause = rng.uniform(0.5, 1.5)
            await asyncio.sleep(max(0.0, min(pause, end - time.perf_counter())))
    finally:
        sampler.cancel()
    w1 = time.perf_counter()
    c1, sim_c1, own1 = cpu_seconds(pid), cpu_seconds(sim.pid), os.times()
    mem = memory(pid)
    wall = w1 - w0

    # every change made in the window, given the time to be polled and published
    made = [k for k, t in sim.changes.items() if w0 <= t <= w1]
    with contextlib.suppress(AssertionError):
        await wait_until(lambda: all(k in sub.arrived for k in made),
                         2 * args.polls_max + 5.0, "the window's changes published")
    changes = [sub.arrived[k] - sim.changes[k] for k in made if k in sub.arrived]
    return {
        "window_s": wall,
        "cpu_percent": (c1 - c0) / wall * 100,
        "vm_hwm_mb": mem["hwm_mb"],
        "vm_rss_mb": mem["rss_mb"],
        "vm_rss_max_sampled_mb": max(rss_samples, default=mem["rss_mb"]),
        "threads": int(mem["threads"]),
        "change_to_mqtt_s": latencies(changes),
        "change_samples_s": changes,
        "changes_made": len(made),
        "changes_not_seen": len(made) - len(changes),
        "command_to_write_s": latencies(commands),
        "command_samples_s": commands,
        "commands_missed": missed,
        "results": sum(sub.results.values()) - results0,
        "result_statuses": dict(sub.results),
        "state_messages_per_s": sum(1 for t in sub.stamps if w0 <= t <= w1) / wall,
        "simulator_cpu_percent": (sim_c1 - sim_c0) / wall * 100,
        "bench_cpu_percent": (own1.user + own1.system - own0.user - own0.system) / wall * 100,
    }


# ---- main ----------------------------------------------------------------------------------


async def main(args: argparse.Namespace, versions: dict[str, str]) -> dict[str, Any]:
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        os.environ.pop(key, None)  # no systemd notification, no watchdog
    started = time.perf_counter()
    run_dir = Path(tempfile.mkdtemp(prefix="mcw-peer-"))
    broker = Broker(run_dir)  # one Mosquitto for every run of both sides
    runs: list[dict[str, Any]] = []
    try:
        await broker.start()
        log(f"broker :{broker.port}; {versions}")
        for i, poll_s in enumerate(args.polls):
            for round_no in range(args.rounds):
                # supervisor, Node-RED, then Node-RED, supervisor: a load that drifts during
                # the bench weighs on both sides alike
                order = SIDES if round_no % 2 == 0 else SIDES[::-1]
                for side in order:
                    side_dir = run_dir / f"{side}-{poll_s:g}-{round_no}"
                    side_dir.mkdir()
                    run = await measure(args, broker, side, poll_s, side_dir,
                                        seed=100 * i + 10 * round_no + SIDES.index(side) + 1)
                    runs.append({**run, "round": round_no})
    finally:
        await broker.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return {"runs": runs, "versions": versions,
            "host": {"python": platform.python_version(), "cpus": os.cpu_count(),
                     "loadavg": os.getloadavg(), "machine": platform.machine(),
                     "bench_runtime_s": time.perf_counter() - started}}


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's rounds at one poll period as one run: CPU and VmRSS their mean (the rounds
    take turns with the other side's), VmHWM the highest, the latencies of every round
    pooled, the counts summed."""
    changes = [x for r in runs for x in r["change_samples_s"]]
    commands = [x for r in runs for x in r["command_samples_s"]]
    return {
        "rounds": len(runs),
        "cpus": [r["cpu_percent"] for r in runs],
        "cpu_percent": statistics.fmean(r["cpu_percent"] for r in runs),
        "window_s": statistics.fmean(r["window_s"] for r in runs),
        "vm_hwm_mb": max(r["vm_hwm_mb"] for r in runs),
        "vm_rss_mb": statistics.fmean(r["vm_rss_mb"] for r in runs),
        "change_to_mqtt_s": latencies(changes),
        "changes_not_seen": sum(r["changes_not_seen"] for r in runs),
        "command_to_write_s": latencies(commands),
        "commands_missed": sum(r["commands_missed"] for r in runs),
        "state_messages_per_s": statistics.fmean(r["state_messages_per_s"] for r in runs),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def num(x: float | None, fmt: str, scale: float = 1.0) -> str:
    return "-" if x is None else format(x * scale, fmt)


def poll_label(poll_s: float) -> str:
    return f"{poll_s:g} s" if poll_s >= 1 else f"{poll_s * 1000:.0f} ms"


def triple(a: float | None, b: float | None, fmt: str,
           scale: float = 1.0) -> tuple[str, float | None]:
    """``a / b / a:b`` as text, and the ratio."""
    r = ratio(a, b)
    return f"{num(a, fmt, scale)} / {num(b, fmt, scale)} / {num(r, '.2f')}x", r


def table(res: dict[str, Any]) -> str:
    figures = Figures()
    row = figures.row
    row("values: supervisor / Node-RED / ratio", "")
    for poll_s in sorted({r["poll_s"] for r in res["runs"]}, reverse=True):
        sup, nr = (combined([r for r in res["runs"] if r["poll_s"] == poll_s and r["side"] == s])
                   for s in SIDES)
        p = f"poll {poll_label(poll_s)}:"
        row("", "")
        text, r = triple(sup["cpu_percent"], nr["cpu_percent"], ".2f")
        rounds = f"{sup['rounds']} x {sup['window_s']:.0f} s" if sup["rounds"] > 1 \
            else f"{sup['window_s']:.0f} s window"
        row(f"{p} CPU (% of one core, {rounds})", text,
            f"ratio <= {TARGETS['cpu_ratio']}", None if r is None else r <= TARGETS["cpu_ratio"])
        if sup["rounds"] > 1:
            row("  CPU in each round", " / ".join(", ".join(f"{c:.2f}" for c in side["cpus"])
                                                  for side in (sup, nr)))
        text, r = triple(sup["vm_hwm_mb"], nr["vm_hwm_mb"], ".1f")
        row(f"{p} RSS peak, VmHWM (MB)", text, f"ratio <= {TARGETS['rss_ratio']}",
            None if r is None else r <= TARGETS["rss_ratio"])
        text, r = triple(sup["vm_rss_mb"], nr["vm_rss_mb"], ".1f")
        row(f"{p} RSS at the end, VmRSS (MB)", text, f"ratio <= {TARGETS['rss_ratio']}",
            None if r is None else r <= TARGETS["rss_ratio"])
        sc, nc = sup["change_to_mqtt_s"], nr["change_to_mqtt_s"]
        text, _ = triple(sc["p50"], nc["p50"], ".1f", 1000)
        row(f"{p} change -> MQTT p50 (ms)", text)
        text, _ = triple(sc["p95"], nc["p95"], ".1f", 1000)
        limit = poll_s + TARGETS["change_p95_over_poll_s"]
        row(f"{p} change -> MQTT p95 (ms)", text, f"supervisor <= {limit * 1000:.0f}",
            None if sc["p95"] is None else sc["p95"] <= limit)
        row("  changes timed (not seen)",
            f"{sc['n']} ({sup['changes_not_seen']}) / {nc['n']} ({nr['changes_not_seen']})")
        sw, nw = sup["command_to_write_s"], nr["command_to_write_s"]
        text, r = triple(sw["p50"], nw["p50"], ".1f", 1000)
        row(f"{p} command -> write p50 (ms)", text, f"ratio <= {TARGETS['command_p50_ratio']}",
            None if r is None else r <= TARGETS["command_p50_ratio"])
        text, _ = triple(sw["p95"], nw["p95"], ".1f", 1000)
        row(f"{p} command -> write p95 (ms)", text)
        row("  commands timed (missed)",
            f"{sw['n']} ({sup['commands_missed']}) / {nw['n']} ({nr['commands_missed']})")
        row("  state messages per s",
            f"{sup['state_messages_per_s']:.1f} / {nr['state_messages_per_s']:.1f}")
    notes = ["", "ratio = supervisor / Node-RED. CPU and RSS: each side's own process (its "
                 "child processes, if any, are counted below, not in it); the simulator runs in "
                 "a process of its own.",
             "change -> MQTT includes the wait for the next poll; command -> write: the "
             "command's publish (QoS 1) to the simulator's register holding the value.", ""]
    notes += notes_of(res)
    return figures.render("\n".join(notes))


def notes_of(res: dict[str, Any]) -> list[str]:
    out = []
    for r in res["runs"]:
        label = f"{r['side']}, poll {poll_label(r['poll_s'])}, round {r['round'] + 1}"
        out.append(f"{label}: all registers published {r['start_to_all_published_s']:.1f} s "
                   f"after its start; simulator {r['simulator_cpu_percent']:.1f} %, bench "
                   f"process {r['bench_cpu_percent']:.1f} % of one core; {r['threads']} threads, "
                   f"{r['children']} children; exit code {r['exit_code']}")
        if r["side"] == "supervisor":
            out.append(f"  its command results: {r['result_statuses']}")
        out += ["  " + line for line in finding_lines("log", r["log_findings"])]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--window", type=float, default=60.0,
                   help="measuring window per side and poll period, seconds (default 60)")
    p.add_argument("--warmup", type=float, default=10.0,
                   help="seconds after every register was published, before the window")
    p.add_argument("--polls", default="1,0.2",
                   help="poll periods in seconds, comma separated (default 1,0.2)")
    p.add_argument("--rounds", type=int, default=2,
                   help="runs of each side per poll period, taking turns (default 2: "
                        "supervisor, Node-RED, Node-RED, supervisor); figures over all")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--simulator", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.polls = [float(x) for x in args.polls.split(",") if x.strip()]
    if not args.polls or min(args.polls) < 0.05 or args.window <= 0 or args.warmup < 0 \
            or args.rounds < 1:
        p.error("--polls must be >= 0.05 s each, --window > 0, --warmup >= 0, --rounds >= 1")
    args.polls_max = max(args.polls)
    return args


def report(res: dict[str, Any]) -> None:
    v = res["versions"]
    title = (f"peer job: mcw-supervisor vs Node-RED {v['node-red']} + node-red-contrib-modbus "
             f"{v['node-red-contrib-modbus']} (node {v['node']}), {UNITS} units x {REGISTERS} "
             f"registers, {CHANGES_PER_S:g} changes/s")
    print(report_head(title, res["host"]))
    print(table(res))


def cli() -> int:
    args = parse_args()
    if args.simulator:
        asyncio.run(simulate(args.poll, args.seed))
        return 0
    versions = ensure_node_red()
    res = asyncio.run(main(args, versions))
    report(res)
    save_figures(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
