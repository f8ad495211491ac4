"""Fleet benchmark: 1000 simulated vans on HQ's clustered broker, and one HQ node killed.

What runs, all on 127.0.0.1: a Redis server (Debian's) and two HQ broker nodes, A and B
(hq/broker.js: aedes with its sessions, retained messages and QoS 1 queues in Redis, the nodes
joined through Redis; testsupport.RedisServer and HqNode, as the HIL test runs them). The vans
are spread over the nodes as a load balancer or DNS would spread them: even vans have the
address list ``A B``, odd ones ``B A``, so killing A moves half the fleet onto a node that
already carries the other half. HQ's subscriber is on A, the node that dies.

A van is what its bridge (systemd/mosquitto-mcw.conf) is to HQ, in a few hundred bytes of
Python: its own client id ``mcw-<vehicle>``, cleansession false, keepalive 60 s, a will on its
notification topic (``bridge/hq`` "0", retained) and "1" published at each connection, a QoS 1
subscription to its ``cmd/hq/#``, everything published at QoS 1 (the bridge's ``out 1``) with
the supervisor's retain flags, unacknowledged messages sent again after a reconnection and
messages made meanwhile queued, as the bridge does. Its reconnection waits as the shipped
``restart_timeout 5 120`` does (mosquitto's decorrelated jitter: the first wait is 5-15 s).
The vans run in two processes of this script (``--vans``), over a raw asyncio MQTT 3.1.1 client
(CONNECT/SUBSCRIBE/PUBLISH/PUBACK/PINGREQ on asyncio streams): 1000 clients on 2 cores.

Rates and topics: recorded from the idle demo van (the real supervisor against the simulated
van, hil-tests' start_van, 60 s after it settled: 81 messages, 1.35 messages/s, 208 B/s of
payload): the status of its 13 devices every 10 s (~166 B each), the load current every 8.5 s
(~52 B), the HQ ping every 30 s (~50 B). The idle van made no event or alarm; one event a
minute and one alarm every 5 minutes are added so every van also uses the QoS 1 path HQ's
event consumer depends on: 1.47 messages/s per van. Each payload carries the van's sequence
number (``seq``) and its send time (``t``, the wall clock, shared by the processes).

HQ's subscriber: a persistent session (cleansession false) on ``mcw/v1/#`` at QoS 1, the
harshest HQ consumer (every message of the fleet through its Redis queue), in this process. It
measures the end-to-end latency (van's send time to its arrival) and, per van, the sequence
numbers that never arrived: messages lost. It reconnects at once, to B then A, as an HQ service
with both addresses would.

Timeline: vans connect; warm-up; a steady window (rates, latency, CPU and memory of the nodes
and Redis from /proc); node A killed (SIGKILL); the vans on A and the subscriber fail over; the
vans stop publishing, the queues drain, then the counts. Prints figures, asserts nothing. Usage:
``make bench`` (or ``PYTHONPATH=hil-tests .venv/bin/python bench/fleet.py [--vans 1000]``).
Every process is stopped by its own pid, also on failure, and the temporary directory removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import random
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testsupport import HqNode, RedisServer, wait_until

# ---- a raw MQTT 3.1.1 client ------------------------------------------------------------------

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14


def _length(n: int) -> bytes:
    """MQTT's remaining length: 7 bits a byte, least significant first."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def packet(kind: int, flags: int, body: bytes) -> bytes:
    """A control packet: fixed header (type, flags, remaining length) and ``body``."""
    return bytes([kind << 4 | flags]) + _length(len(body)) + body


def connect_packet(client_id: str, clean: bool, keepalive: int,
                   will: tuple[str, bytes] | None = None) -> bytes:
    """CONNECT (protocol level 4); ``will``: topic and payload, QoS 1, retained."""
    flags = (0x02 if clean else 0) | (0x04 | 0x08 | 0x20 if will else 0)
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    body += _string(client_id)
    if will:
        body += _string(will[0]) + struct.pack("!H", len(will[1])) + will[1]
    return packet(CONNECT, 0, body)


def publish_packet(topic: str, payload: bytes, msg_id: int, retain: bool,
                   dup: bool = False) -> bytes:
    """PUBLISH at QoS 1."""
    flags = (0x08 if dup else 0) | 0x02 | (0x01 if retain else 0)
    return packet(PUBLISH, flags, _string(topic) + struct.pack("!H", msg_id) + payload)


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """The next control packet: (type, flags, body)."""
    head = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = await reader.readexactly(length) if length else b""
    return head >> 4, head & 0x0F, body


def parse_publish(flags: int, body: bytes) -> tuple[str, int | None, bytes]:
    """Topic, packet id (QoS 1 and 2) and payload of a PUBLISH body."""
    (n,) = struct.unpack_from("!H", body)
    topic = body[2:2 + n].decode()
    pos = 2 + n
    msg_id = None
    if flags & 0x06:
        (msg_id,) = struct.unpack_from("!H", body, pos)
        pos += 2
    return topic, msg_id, body[pos:]


class Session:
    """One MQTT connection: CONNECT, then packets read by a task; closed by the caller."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, connect: bytes, timeout: float = 30) -> tuple[Session, bool]:
        """Connect to 127.0.0.1:``port``; the session and CONNACK's session-present flag."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            session = cls(reader, writer)
            try:
                writer.write(connect)
                kind, _, body = await read_packet(reader)
            except BaseException:
                session.close()
                raise
        if kind != CONNACK or body[1] != 0:
            session.close()
            raise ConnectionError(f"CONNACK {body!r}")
        return session, bool(body[0] & 1)

    def close(self) -> None:
        self.writer.transport.abort()


# ---- the vans -------------------------------------------------------------------------------

DEVICES = ("gx_system", "battery", "multiplus", "solar", "room_climate", "relays",
           "shore_meter", "crew_climate", "outside_climate", "climate_relays", "room_node",
           "lte_router", "gps")
# (what, period s, retained): the recorded idle demo van, plus events and alarms
SCHEDULE: list[tuple[str, float, bool]] = [
    *((f"device/{d}/status", 10.0, True) for d in DEVICES),
    ("state/power/load/average_current", 8.5, True),
    ("state/comms/hq/ping", 30.0, True),
    ("event", 60.0, False),
    ("alarm/power/soc_low", 300.0, True),
]
KEEPALIVE_S = 60
RESTART_BASE_S, RESTART_CAP_S = 5.0, 120.0  # the shipped bridge's restart_timeout


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def payload(what: str, seq: int, now: float, event_id: int) -> bytes:
    """A message shaped (and sized) as the supervisor's, with ``seq`` and send time ``t``."""
    body: dict[str, Any]
    if what.startswith("device/"):
        body = {"state": "online", "errors": {"timeout": 0, "crc": 0, "exception": 0},
                "last_ok": iso(now), "latency_ms": round(random.uniform(5, 40), 1)}
    elif what == "event":
        body = {"id": event_id, "what": "command", "action": "power/circuit",
                "role": "crew", "ts": iso(now)}
    elif what.startswith("alarm/"):
        body = {"severity": "warning", "active": True, "acked": False, "since": iso(now),
                "text": "Low battery / Niski poziom baterii"}
    else:
        body = {"v": round(random.uniform(0, 30), 2), "q": "good"}
    body["seq"], body["t"] = seq, now
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Van:
    """A van's bridge to HQ: its messages in flight (the bridge's queue), its failover."""

    vehicle: str
    ports: list[int]  # its address list: home node first
    window: tuple[float, float]  # the steady window: messages made and acknowledged in it
    seq: int = 0
    events: int = 0
    next_id: int = 1
    inflight: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # id -> seq, PUBLISH
    session: Session | None = None
    made_in_window: int = 0
    acked_in_window: int = 0
    lost_at: float | None = None  # the connection lost (the first time)
    retry_at: float | None = None  # the successful reconnection attempt began
    back_at: float | None = None  # CONNACK from the other node
    flowing_at: float | None = None  # the first PUBACK after it
    back_port: int | None = None

    @property
    def client_id(self) -> str:
        return f"mcw-{self.vehicle}"

    def topic(self, what: str) -> str:
        return f"mcw/v1/{self.vehicle}/{what}"

    def _in_window(self, t: float) -> bool:
        return self.window[0] <= t < self.window[1]

    def make(self, what: str, retained: bool, now: float) -> None:
        """The next message: written at once while connected; in flight until its PUBACK,
        so sent again after a reconnection (the bridge's queue)."""
        self.seq += 1
        self.made_in_window += self._in_window(now)
        if what == "event":
            self.events += 1
        msg_id = self.next_id
        self.next_id = self.next_id % 60000 + 1  # ids above are the connection's own
        pub = publish_packet(self.topic(what), payload(what, self.seq, now, self.events),
                             msg_id, retained)
        self.inflight[msg_id] = (self.seq, pub)
        if self.session is not None:
            self.session.writer.write(pub)

    async def connect(self, port: int) -> bool:
        """One connection attempt. On success: the subscription to HQ's commands, "1" on the
        notification topic, and every message still in flight again (DUP), in order."""
        will = (self.topic("bridge/hq"), b"0")
        try:
            session, _ = await Session.open(port, connect_packet(self.client_id, False,
                                                                 KEEPALIVE_S, will))
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            return False
        w = session.writer
        w.write(packet(SUBSCRIBE, 2, struct.pack("!H", 65001)
                       + _string(self.topic("cmd/hq/#")) + b"\x01"))
        w.write(publish_packet(self.topic("bridge/hq"), b"1", 65002, True))
        for _, pub in self.inflight.values():
            w.write(bytes([pub[0] | 0x08]) + pub[1:])
        self.session = session
        return True

    async def read(self, session: Session) -> None:
        """PUBACKs, SUBACK, HQ's commands (acknowledged), PINGRESP, until the connection ends."""
        try:
            while True:
                kind, flags, body = await read_packet(session.reader)
                if kind == PUBACK:
                    (msg_id,) = struct.unpack("!H", body)
                    if self.inflight.pop(msg_id, None) is not None:
                        now = time.time()
                        self.acked_in_window += self._in_window(now)
                        if self.back_at is not None and self.flowing_at is None:
                            self.flowing_at = now
                elif kind == PUBLISH:
                    _, cmd_id, _ = parse_publish(flags, body)
                    if cmd_id is not None:
                        session.writer.write(packet(PUBACK, 0, struct.pack("!H", cmd_id)))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            session.close()
            if self.session is session:
                self.session = None

    async def keep_connected(self) -> None:
        """Connected to the home node first; after a loss, the bridge's backoff, then the next
        address of the list, until cancelled."""
        index, wait = 0, RESTART_BASE_S
        while True:
            if await self.connect(self.ports[index]):
                break
            await asyncio.sleep(1.0)  # the pace of first attempts (a node not yet listening)
        while True:
            assert self.session is not None
            pinger = asyncio.create_task(self._ping(self.session))
            try:
                await self.read(self.session)
            finally:
                pinger.cancel()
            if self.lost_at is None:
                self.lost_at = time.time()
            while True:
                # mosquitto's decorrelated jitter between attempts, then the next address
                wait = min(RESTART_CAP_S, random.uniform(RESTART_BASE_S, wait * 3))
                await asyncio.sleep(wait)  # the bridge's reconnection backoff
                index = (index + 1) % len(self.ports)
                attempt = time.time()
                if await self.connect(self.ports[index]):
                    if self.back_at is None:
                        self.retry_at, self.back_at = attempt, time.time()
                        self.back_port = self.ports[index]
                    wait = RESTART_BASE_S
                    break

    async def _ping(self, session: Session) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S / 2)  # PINGREQ's pace, within the keepalive
            session.writer.write(packet(PINGREQ, 0, b""))

    async def publish(self, start_at: float, stop_at: float) -> None:
        """The schedule from ``start_at`` to ``stop_at``, each kind at its own period, the
        first at a random phase."""
        due = [(start_at + random.uniform(0, period), what, period, retained)
               for what, period, retained in SCHEDULE]
        heapq.heapify(due)
        while due:
            at, what, period, retained = heapq.heappop(due)
            if at >= stop_at:
                continue
            await asyncio.sleep(max(0.0, at - time.time()))  # the schedule's pace
            self.make(what, retained, time.time())
            heapq.heappush(due, (at + period, what, period, retained))

    def report(self) -> dict[str, Any]:
        return {"vehicle": self.vehicle, "sent": self.seq,
                "unacked": sorted(seq for seq, _ in self.inflight.values()),
                "made_in_window": self.made_in_window, "acked_in_window": self.acked_in_window,
                "lost_at": self.lost_at, "retry_at": self.retry_at, "back_at": self.back_at,
                "flowing_at": self.flowing_at, "back_port": self.back_port}


async def until(condition: Callable[[], bool], deadline: float) -> bool:
    """Wait for ``condition`` until the wall clock reaches ``deadline``; whether it held."""
    with contextlib.suppress(AssertionError):
        await wait_until(condition, timeout=max(0.0, deadline - time.time()))
        return True
    return False


async def run_vans(spec: dict[str, Any]) -> None:
    """The ``--vans`` process: its share of the fleet; one JSON report on stdout at the end."""
    window = (spec["window"][0], spec["window"][1])
    vans = [Van(vehicle, ports, window) for vehicle, ports in spec["vans"]]
    started = time.time()
    links = []
    for van in vans:
        links.append(asyncio.create_task(van.keep_connected()))
        await asyncio.sleep(spec["ramp_s"] / len(vans))  # connections spread over the ramp
    await until(lambda: all(van.session is not None for van in vans), spec["start_at"])
    connected = sum(van.session is not None for van in vans)
    connected_in = time.time() - started
    await asyncio.gather(*(van.publish(spec["start_at"], spec["stop_at"]) for van in vans))
    await until(lambda: not any(van.inflight for van in vans), spec["end_at"])
    for link in links:
        link.cancel()
    await asyncio.gather(*links, return_exceptions=True)
    for van in vans:
        if van.session is not None:  # a clean goodbye: no will
            van.session.writer.write(packet(DISCONNECT, 0, b""))
            van.session.writer.close()
    print(json.dumps({"connected": connected, "connected_in_s": connected_in,
                      "vans": [van.report() for van in vans]}))


# ---- HQ's subscriber ------------------------------------------------------------------------


@dataclass
class HqSubscriber:
    """HQ's consumer of the whole fleet: persistent session, QoS 1, on ``mcw/v1/#``."""

    ports: list[int]  # its address list
    window: tuple[float, float] = (0.0, 0.0)
    client_id: str = "hq-fleet"
    seqs: dict[str, set[int]] = field(default_factory=dict)  # vehicle -> seqs received
    copies: int = 0  # messages with a seq, duplicates included
    in_window: int = 0  # messages received in the steady window
    latency_steady: list[float] = field(default_factory=list)  # sent in the window, s
    latency_after: list[float] = field(default_factory=list)  # sent after the kill, s
    killed_at: float = float("inf")
    notes: dict[str, list[bytes]] = field(default_factory=dict)  # vehicle -> bridge/hq values
    port: int | None = None
    lost_at: float | None = None
    back_at: float | None = None
    first_after: float | None = None  # the first message after the reconnection
    session_present: bool | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await wait_until(lambda: self.port is not None, what="HQ's subscriber connected")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        attempt, subscribed = 0, False
        while True:
            port = self.ports[attempt % len(self.ports)]
            try:
                session, present = await Session.open(
                    port, connect_packet(self.client_id, False, KEEPALIVE_S))
            except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
                attempt += 1
                await asyncio.sleep(0.2)  # an HQ service's pace of reconnection attempts
                continue
            if self.lost_at is not None and self.back_at is None:
                self.back_at, self.session_present = time.time(), present
            if not subscribed:
                session.writer.write(packet(SUBSCRIBE, 2, struct.pack("!H", 1)
                                            + _string("mcw/v1/#") + b"\x01"))
                subscribed = True
            self.port = port
            try:
                await self._receive(session)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                session.close()
            self.port = None
            if self.lost_at is None:
                self.lost_at = time.time()
            attempt += 1

    async def _receive(self, session: Session) -> None:
        while True:
            kind, flags, body = await read_packet(session.reader)
            if kind != PUBLISH:
                continue
            topic, msg_id, data = parse_publish(flags, body)
            if msg_id is not None:
                session.writer.write(packet(PUBACK, 0, struct.pack("!H", msg_id)))
            self.on_message(topic, data, time.time())

    def on_message(self, topic: str, data: bytes, now: float) -> None:
        vehicle = topic.split("/")[2]
        if topic.endswith("/bridge/hq"):
            self.notes.setdefault(vehicle, []).append(data)
            return
        try:
            body = json.loads(data)
            seq, sent = int(body["seq"]), float(body["t"])
        except (ValueError, KeyError, TypeError):
            return
        if self.back_at is not None and self.first_after is None:
            self.first_after = now
        self.copies += 1
        self.seqs.setdefault(vehicle, set()).add(seq)
        if self.window[0] <= now < self.window[1]:
            self.in_window += 1
        if self.window[0] <= sent < self.window[1]:
            self.latency_steady.append(now - sent)
        elif sent >= self.killed_at:
            self.latency_after.append(now - sent)


# ---- /proc ----------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> tuple[float, float]:
    """RSS and peak RSS (VmHWM) of ``pid``, in MB (0 for a process that has exited)."""
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    if "VmRSS" not in status:  # a zombie: exited, not yet reaped
        return (0.0, 0.0)
    return (int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024)


class CpuWindow:
    """CPU % of one core of each process over a window: ``start()``, then ``stop()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.begin: dict[str, float] = {}
        self.began = 0.0
        self.percent: dict[str, float] = {}
        self.rss: dict[str, tuple[float, float]] = {}

    def start(self) -> None:
        self.began = time.monotonic()
        self.begin = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        span = time.monotonic() - self.began
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):  # a process that died meanwhile
                self.percent[name] = 100 * (cpu_seconds(pid) - self.begin[name]) / span
                self.rss[name] = memory_mb(pid)


# ---- the run --------------------------------------------------------------------------------


def log(text: str) -> None:
    """Progress on stderr; the figures go to stdout."""
    print(f"[fleet] {text}", file=sys.stderr, flush=True)


def quantiles(samples: list[float]) -> dict[str, float]:
    """n, p50, p99 and max of ``samples``."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    p99 = ordered[0] if len(ordered) == 1 else statistics.quantiles(
        ordered, n=100, method="inclusive")[98]
    return {"n": len(ordered), "p50": statistics.median(ordered), "p99": p99,
            "max": ordered[-1]}


async def sleep_until(at: float) -> None:
    """Until the wall clock reaches ``at`` (the run's timeline)."""
    await asyncio.sleep(max(0.0, at - time.time()))  # the timeline's pace


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, run the timeline, stop everything; the raw results."""
    workdir = Path(tempfile.mkdtemp(prefix="mcw-fleet-"))
    procs: list[asyncio.subprocess.Process] = []
    sub = HqSubscriber([])
    redis = RedisServer(workdir)
    nodes = [HqNode(workdir, node_id, redis.url, heartbeat_ms=args.heartbeat_ms,
                    log_clients=False) for node_id in ("hq-a", "hq-b")]
    try:
        await asyncio.to_thread(redis.start_blocking)
        for node in nodes:
            await asyncio.to_thread(node.start_blocking)
        a, b = nodes
        assert redis.proc is not None and a.proc is not None and b.proc is not None
        pids = {"node A": a.proc.pid, "node B": b.proc.pid, "redis": redis.proc.pid}
        sub.ports = [a.port, b.port]
        await sub.start()

        t0 = time.time()
        start_at = t0 + args.ramp_s + 3
        steady = (start_at + args.warmup_s, start_at + args.warmup_s + args.steady_s)
        kill_at = steady[1]
        stop_at = kill_at + args.after_kill_s
        end_at = stop_at + args.drain_s
        sub.window = steady
        fleet = [(f"van{n:04d}", [a.port, b.port] if n % 2 == 0 else [b.port, a.port])
                 for n in range(args.vans)]
        for share in range(args.processes):
            spec = {"vans": fleet[share::args.processes], "ramp_s": args.ramp_s,
                    "start_at": start_at, "stop_at": stop_at, "end_at": end_at,
                    "window": steady}
            spec_path = workdir / f"vans-{share}.json"
            spec_path.write_text(json.dumps(spec))
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--vans-spec", str(spec_path),
                stdout=asyncio.subprocess.PIPE))
        for n, proc in enumerate(procs):
            pids[f"vans {n + 1}"] = proc.pid
        pids["HQ subscriber"] = os.getpid()
        log(f"{args.vans} vans connecting over {args.ramp_s} s, publishing from "
            f"+{start_at - t0:.0f} s, steady window +{steady[0] - t0:.0f}..+{steady[1] - t0:.0f}"
            f" s, node A killed at +{kill_at - t0:.0f} s, publishing ends +{stop_at - t0:.0f} s")

        await sleep_until(steady[0])
        cpu = CpuWindow(pids)
        cpu.start()
        await sleep_until(steady[1])
        cpu.stop()
        log("steady window done; killing node A (SIGKILL)")
        after = CpuWindow({k: v for k, v in pids.items() if k != "node A"})
        after.start()
        killed = time.time()
        sub.killed_at = killed
        await asyncio.to_thread(a.stop_blocking, signal.SIGKILL)
        await sleep_until(killed + args.failover_window_s)
        after.stop()
        await sleep_until(stop_at)
        # what HQ believes of each van's bridge while they all still run
        notes_at_stop = {vehicle: values[-1] for vehicle, values in sub.notes.items()}

        reports = []
        for proc in procs:
            out, _ = await proc.communicate()
            reports.append(json.loads(out))
        vans = [van for report in reports for van in report["vans"]]
        # the subscriber gets what the vans had acknowledged (or the deadline passes)
        expected = {v["vehicle"]: set(range(1, v["sent"] + 1)) - set(v["unacked"])
                    for v in vans}
        await until(lambda: all(want <= sub.seqs.get(vehicle, set())
                                for vehicle, want in expected.items()),
                    time.time() + args.drain_s)
        return {"args": vars(args), "steady": steady, "killed": killed, "t0": t0,
                "reports": reports, "vans": vans, "expected": expected, "cpu": cpu,
                "after": after, "sub": sub, "b_port": b.port,
                "notes_at_stop": notes_at_stop}
    finally:
        await sub.stop()
        for node in nodes[1:]:  # B must have lived through it all: say so if it did not
            if node.proc is not None and node.proc.poll() is not None:
                tail = node.log_path.read_text(errors="replace")[-3000:]
                log(f"{node.node_id} exited with {node.proc.returncode}:\n{tail}")
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for node in nodes:
            await asyncio.to_thread(node.stop_blocking)
        await asyncio.to_thread(redis.stop_blocking)
        shutil.rmtree(workdir, ignore_errors=True)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def lines(res: dict[str, Any]) -> Iterator[str]:
    """The figures, as printed."""
    args, sub, cpu, after = res["args"], res["sub"], res["cpu"], res["after"]
    vans, killed = res["vans"], res["killed"]
    span = res["steady"][1] - res["steady"][0]
    made = sum(v["made_in_window"] for v in vans)
    acked = sum(v["acked_in_window"] for v in vans)
    connected = sum(r["connected"] for r in res["reports"])
    missing = {vehicle: want - sub.seqs.get(vehicle, set())
               for vehicle, want in res["expected"].items()}
    lost = sum(len(m) for m in missing.values())
    unacked = sum(len(v["unacked"]) for v in vans)
    received = sum(len(s) for s in sub.seqs.values())
    moved = [v for v in vans if v["lost_at"] is not None]
    back = [v for v in moved if v["back_at"] is not None]
    flowing = [v for v in back if v["flowing_at"] is not None]
    lat, lat_after = quantiles(sub.latency_steady), quantiles(sub.latency_after)

    yield (f"\nFleet on HQ's cluster (2 aedes nodes + Redis, {os.cpu_count()} CPUs, "
           f"load {os.getloadavg()[0]:.2f})")
    yield "-" * 78
    yield f"vans                                  {len(vans)} ({connected} connected in "\
          f"{max(r['connected_in_s'] for r in res['reports']):.1f} s, half on each node)"
    yield f"messages/s in (vans -> HQ)            {made / span:.0f} made, {acked / span:.0f} "\
          f"acknowledged by HQ ({made / span / max(1, len(vans)):.2f} per van)"
    yield f"messages/s out (HQ -> subscriber)     {sub.in_window / span:.0f}"
    yield f"end-to-end latency, steady            p50 {ms(lat.get('p50'))}, "\
          f"p99 {ms(lat.get('p99'))}, max {ms(lat.get('max'))} (n={lat['n']})"
    yield f"  sent after the kill                 p50 {ms(lat_after.get('p50'))}, "\
          f"p99 {ms(lat_after.get('p99'))}, max {ms(lat_after.get('max'))} "\
          f"(queued in the vans while they fail over)"
    yield f"CPU and memory, steady window of {span:.0f} s (% of one core, RSS / peak RSS):"
    for name in cpu.percent:
        rss, hwm = cpu.rss[name]
        yield f"  {name:<14} {cpu.percent[name]:6.1f} %   {rss:6.1f} / {hwm:6.1f} MB"
    yield f"  after the kill, {args['failover_window_s']:.0f} s: " + ", ".join(
        f"{name} {pct:.0f} %" for name, pct in after.percent.items()
        if name in ("node B", "redis"))
    yield "failover (node A killed with SIGKILL):"
    yield f"  vans on A that lost their connection  {len(moved)}; back on B: "\
          f"{sum(v['back_port'] == res['b_port'] for v in back)}"
    if back:
        to_back = [v["back_at"] - killed for v in back]
        to_flow = [v["flowing_at"] - killed for v in flowing]
        hq_side = [v["flowing_at"] - v["retry_at"] for v in flowing]
        q_back, q_flow, q_hq = quantiles(to_back), quantiles(to_flow), quantiles(hq_side)
        yield f"  kill -> van reconnected             p50 {seconds(q_back.get('p50'))}, "\
              f"max {seconds(q_back.get('max'))} (the bridge's backoff: 5-15 s)"
        yield f"  kill -> its messages acknowledged   p50 {seconds(q_flow.get('p50'))}, "\
              f"max {seconds(q_flow.get('max'))}  <- failover time"
        yield f"  HQ's part (attempt -> first PUBACK) p50 {ms(q_hq.get('p50'))}, "\
              f"p99 {ms(q_hq.get('p99'))}, max {ms(q_hq.get('max'))}"
    ended_up = sum(res["notes_at_stop"].get(v["vehicle"]) == b"1" for v in vans)
    wills = sum(b"0" in sub.notes.get(v["vehicle"], []) for v in moved)
    yield f"  bridge notification at HQ           '1' (up) for {ended_up} of {len(vans)} vans "\
          f"at the end; the dead connection's '0' seen for {wills} of {len(moved)} moved vans"
    if sub.lost_at is not None:
        back_after = None if sub.back_at is None else sub.back_at - killed
        first = None if sub.first_after is None else sub.first_after - killed
        yield f"  HQ subscriber (on A)                session back on B {ms(back_after)} after "\
              f"the kill (session present: {sub.session_present}), first message {ms(first)}"
    yield f"messages lost (per-van sequence gaps) {lost} of {received + lost} acknowledged "\
          f"by HQ ({sum(1 for m in missing.values() if m)} vans with a gap); "\
          f"{sub.copies - received} duplicates; {unacked} never acknowledged at the end"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vans", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2, help="processes for the vans")
    parser.add_argument("--ramp-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--steady-s", type=float, default=40.0)
    parser.add_argument("--after-kill-s", type=float, default=35.0,
                        help="publishing goes on this long after the kill")
    parser.add_argument("--failover-window-s", type=float, default=20.0)
    parser.add_argument("--drain-s", type=float, default=15.0)
    parser.add_argument("--heartbeat-ms", type=int, default=2000,
                        help="the nodes' heartbeat (a dead node's wills after 3-4)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--vans-spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.vans_spec is not None:  # a process of vans, started by the bench itself
        asyncio.run(run_vans(json.loads(args.vans_spec.read_text())))
        return
    began = time.monotonic()
    res = asyncio.run(run(args))
    out = list(lines(res))
    out.append(f"(bench took {time.monotonic() - began:.0f} s)")
    print("\n".join(out))
    if args.json is not None:
        args.json.write_text(json.dumps({"lines": out}, indent=1))


if __name__ == "__main__":
    main()
