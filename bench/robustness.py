"""Robustness benchmark of the supervisor against the simulated van: prints figures.

What runs: as in bench/run.py, a real Mosquitto on a free port, the simulated van in this
process and the unmodified ``mcw-supervisor`` process configured by config/demo.toml (through
``van_env``). A recorder (an MQTT client with a persistent session) takes every result, status,
state and device topic; the commands go out through a second client, so no hostile payload
ever comes back to this process.

Figures:
  1. fuzz: hostile MQTT commands (random bytes and JSON, deep nesting, huge numbers, NaN,
     lone surrogates, long strings, unknown fields, wrong types, random action ids, malformed
     topics and unknown roles, retained/expired/forbidden commands whose arguments are valid),
     at most FUZZ_WINDOW unanswered at a time. Every message must get exactly one result; a
     readable id without one is lost; the process must not exit, its MQTT session must not
     drop; no relay may change (no command that could switch one is meant to be applied).
  2. flood: valid ``power/circuit`` commands toggling one circuit, all published at once;
     each must be answered (``busy`` is an answer); meanwhile one probe command at a time
     (``alarm/ack`` of no alarm, from another client) is timed, and the age of the newest
     ``power/battery/voltage`` reading (its ``ts`` against now) is sampled every 20 ms.
  3. kill -9 cycles: SIGKILL, one command published while the supervisor is down, start again,
     time until status ``ready`` with a new session; the command must be answered.
  4. worst event-loop stall: from the supervisor's log if it logs one, else from outside as
     the worst gap between consecutive updates of ``power/battery/voltage`` in a steady window.

The simulator sweeps the served battery voltage (+0.1 V/s, 12.40-13.19 V, far from every
threshold of the demo config while the SOC is fresh) so that every 1 s poll publishes a new
state: with a steady plant a point only publishes on change, and no gap could be measured.

Counts (environment): MCW_BENCH_FUZZ (10000), MCW_BENCH_FLOOD (5000), MCW_BENCH_KILLS (30),
MCW_BENCH_STEADY_S (20), MCW_BENCH_SEED (1).
Usage: ``make bench`` (or ``PYTHONPATH=hil-tests:tests .venv/bin/python bench/robustness.py
[--json PATH]``). Every process is stopped by its own pid, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
from testsupport import wait_until

from harness import Monitor, SupervisorProcess
from supervisor.power import power_config
from vansim.van import SimulatedVan

# The scripts run with bench/ as sys.path[0]; mypy (mypy_path hil-tests:tests) names this
# folder's modules bench.*.
if TYPE_CHECKING:
    from bench.arrivals import Arrivals, Match
    from bench.run import figure_table, finding_lines, save_figures, start_demo_van
else:
    from arrivals import Arrivals, Match
    from run import figure_table, finding_lines, save_figures, start_demo_van


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


FUZZ_N = env_int("MCW_BENCH_FUZZ", 10_000)
FLOOD_N = env_int("MCW_BENCH_FLOOD", 5_000)
KILLS = env_int("MCW_BENCH_KILLS", 30)
STEADY_S = float(os.environ.get("MCW_BENCH_STEADY_S", "20"))
SEED = env_int("MCW_BENCH_SEED", 1)

PREFIX = "mcw/v1/demo"
FUZZ_WINDOW = 50  # unanswered fuzz messages at most (the supervisor's intake limit is 100)
ANSWER_DEADLINE_S = 30.0  # generous: no new result for this long ends a wait for answers
ANSWER_CAP_S = 180.0  # and a wait for answers never lasts longer than this
STEP_TIMEOUT_S = 30.0
KILL_ANSWER_WAIT_S = 15.0
VOLTAGE = "power/battery/voltage"
POLL_FAST_S = 1.0  # the demo's fast poll period of the battery monitor
FLOOD_CIRCUIT = "sockets_12v"
PROBE_ALARM = "bench/none"
PROBE_EVERY_S = 0.1  # one probe command every 100 ms during the flood, each timed alone
SAFE_ACTIONS = frozenset({"system/republish", "alarm/ack"})  # change nothing in the van
RELAYS = tuple(f"relay_{n}" for n in range(1, 9))
# an event-loop lag the supervisor might log one day (watchdog's loop_stalled is not one)
LOG_STALL_EVENTS = ("event_loop_lag", "loop_lag", "event_loop_stall", "event_loop_blocked")


# aiomqtt warns about every queued publish of the flood: that is the point of a flood
QUIET = logging.getLogger("robustness.mqtt")
QUIET.setLevel(logging.ERROR)


def log(text: str) -> None:
    """Progress on stderr; the figures go to stdout."""
    print(f"[robustness] {text}", file=sys.stderr, flush=True)


def parse_iso(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    p99 = samples[0] if len(samples) == 1 else \
        statistics.quantiles(samples, n=100, method="inclusive")[98]
    return {"n": len(samples), "p50": statistics.median(samples), "p99": p99,
            "max": max(samples), "min": min(samples)}


def readable_id(raw: bytes) -> str | None:
    """The id the supervisor must be able to read, per the documented intake limits
    (supervisor/core/command_payload.py): a JSON object of at most 64 KiB in UTF-8 whose
    "id" is a string of 1-64 characters without NUL or lone surrogates."""
    if len(raw) > 65536:
        return None
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=float)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    cid = body.get("id")
    if not isinstance(cid, str) or not 0 < len(cid) <= 64 or "\0" in cid:
        return None
    try:
        cid.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return cid


# ---- MQTT clients ------------------------------------------------------------------------

@dataclass
class Recorder(Monitor):
    """Takes results, status, meta, states and device status (never cmd/#), stamped."""

    identifier: str = field(default_factory=lambda: f"mcw-bench-rec-{uuid.uuid4().hex[:8]}")
    results: list[tuple[float, str, Any]] = field(default_factory=list)
    by_id: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    voltage: list[tuple[float, float, float]] = field(default_factory=list)  # perf, wall, ts
    connects: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    id_waiters: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    arrivals: Arrivals = field(default_factory=Arrivals)

    async def _run(self) -> None:
        topics = ("result/#", "status", "meta", "state/#", "device/+/status")
        while True:
            try:
                # a persistent session: a reconnect of this recorder loses no result
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.identifier,
                                          clean_session=False, timeout=60) as client:
                    for topic in topics:
                        await client.subscribe(f"{self.prefix}/{topic}", qos=1)
                    self.client = client
                    self.connects += 1
                    async for msg in client.messages:
                        raw = msg.payload if isinstance(msg.payload, bytes) else b""
                        self._record(msg.topic.value, raw)
            except aiomqtt.MqttError:
                self.client = None
                await asyncio.sleep(0.2)  # reconnect pause

    def _record(self, full_topic: str, raw: bytes) -> None:
        arrived = time.perf_counter()
        try:
            value: Any = json.loads(raw) if raw else None
        except (ValueError, RecursionError):
            value = raw
        topic = full_topic.removeprefix(self.prefix + "/")
        self.latest[topic] = value
        if topic.startswith("result/"):
            self.results.append((arrived, topic, value))
            cid = value.get("id") if isinstance(value, dict) else None
            if isinstance(cid, str):
                self.by_id.setdefault(cid, []).append(value)
                fut = self.id_waiters.pop(cid, None)
                if fut is not None and not fut.done():
                    fut.set_result(arrived)
            self.progress.set()
        elif topic == "status" and isinstance(value, dict):
            self.statuses.append((arrived, value))
        elif topic == f"state/{VOLTAGE}" and isinstance(value, dict):
            ts = parse_iso(value.get("ts"))
            if ts is not None:
                self.voltage.append((arrived, time.time(), ts))
        self.arrivals.offer(topic, value, arrived)

    def expect(self, cid: str) -> asyncio.Future[float]:
        """A future resolved with the arrival time of the first result carrying ``cid``."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.id_waiters[cid] = fut
        return fut

    def watch(self, match: Match) -> asyncio.Future[float]:
        """A future resolved with the arrival time of the next message ``match`` accepts."""
        return self.arrivals.watch(match)

    def session(self) -> int:
        """The highest session number a live supervisor announced (a will says "lost")."""
        seen = [int(v.get("session", 0)) for _, v in self.statuses
                if v.get("state") in ("ready", "degraded")]
        return max(seen, default=0)


@dataclass
class Publisher:
    """Sends the commands from its own connection; reconnects if the broker drops it."""

    port: int
    client: aiomqtt.Client | None = None
    reconnects: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # by the client library
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def _connect(self) -> aiomqtt.Client:
        async with self._lock:
            if self.client is None:
                client = aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=f"mcw-bench-pub-{uuid.uuid4().hex[:8]}",
                    # aiomqtt does not fail a pending publish when the link drops: the
                    # timeout ends it, then the message is sent again on a new connection
                    timeout=30, max_inflight_messages=200, logger=QUIET,
                    socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
                await client.__aenter__()
                self.client = client
            return self.client

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def send(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """Publish with QoS 1 (True once the broker has it); False if it cannot be sent."""
        for _attempt in range(3):
            client = await self._connect()
            try:
                await client.publish(topic, payload, qos=1, retain=retain)
                return True
            except ValueError as exc:  # e.g. a topic the client library will not send
                self.refused[str(exc)[:60]] += 1
                return False
            except aiomqtt.MqttError:
                if self.client is client:
                    self.reconnects += 1
                    await self.close()
        return False


# ---- the fuzzer ----------------------------------------------------------------------------

RAW = "@@RAW{}@@"
HOSTILE_LITERALS = (
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "0.1e999999",
    "9007199254740993", "-9007199254740993", "1" + "0" * 30, "123456789" * 600,
    '"\\ud800"', '"\\udfff\\ud800"', '"a\\u0000b"', '"' + "x" * 300 + '"',
    "[" * 12 + "]" * 12, '{"a":' * 12 + "1" + "}" * 12, "-0", "1E+2", "true", "null",
    '"\\uffff"', '"\\u202e\\u0000"',
)
TEXT_CHARS = ("abcxyz019_/- .:\"'\\\t\n\x01\x7f" "ąęłóżźćńś" "ÄÖÜß" "中文" "😀🚐"
              "\u200b\u202e\ufeff")
# role names that are not roles: well-formed ones (answered on result/<role>/...) and not
BAD_ROLES = ("admin", "root", "mcw", "ekipa", "crew2", "hq_", "result", "cmd", "guest",
             "CREW", "Crew", "crew ", " crew", "", "x" * 121, "załoga", "crew-1", "$sys",
             "crew.hq", "ℌ𝔮")
TOPIC_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


@dataclass
class Case:
    topic: str  # full topic
    payload: bytes
    kind: str
    action: str
    retain: bool = False
    cid: str | None = None


@dataclass
class Fuzzer:
    rng: random.Random
    actions: dict[str, dict[str, Any]]  # action id -> meta (roles, args)
    circuits: dict[str, str]  # circuit -> relay register
    relay_on: Callable[[str], bool]
    nonce: str

    KINDS = (("args", 34), ("hostile_value", 12), ("bad_id", 6), ("random_bytes", 5),
             ("random_json", 5), ("random_object", 6), ("deep", 4), ("huge", 3),
             ("unknown_action", 8), ("malformed_topic", 6), ("bad_role", 5),
             ("refused_valid", 5), ("safe_valid", 1))

    def __post_init__(self) -> None:
        self._kinds = [k for k, _ in self.KINDS]
        self._weights = [w for _, w in self.KINDS]
        self.changing = sorted(a for a in self.actions if a not in SAFE_ACTIONS)

    # -- pieces ----------------------------------------------------------------------------

    def text(self, n: int | None = None) -> str:
        n = self.rng.randint(0, 20) if n is None else n
        return "".join(self.rng.choice(TEXT_CHARS) for _ in range(n))

    def segment(self, n: int | None = None) -> str:
        n = self.rng.randint(1, 12) if n is None else n
        return "".join(self.rng.choice(TOPIC_CHARS) for _ in range(n))

    def value(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if depth >= 3 or r < 0.55:
            return self.rng.choice((
                lambda: self.rng.randint(-(2**70), 2**70),
                lambda: self.rng.randint(-5, 40),
                lambda: self.rng.uniform(-1e6, 1e6),
                lambda: self.rng.random() < 0.5,
                lambda: None,
                self.text,
            ))()
        if r < 0.8:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {self.text(): self.value(depth + 1) for _ in range(self.rng.randint(0, 4))}

    def new_id(self, i: int) -> str:
        cid = f"f{i}-{self.nonce}"
        if self.rng.random() < 0.1:
            cid += "-zażółć-😀"
        return cid

    def render(self, obj: Any, raws: Iterable[str] = ()) -> bytes:
        """JSON text of ``obj`` with RAW placeholders replaced by literal JSON text."""
        ascii_only = self.rng.random() < 0.5
        text = json.dumps(obj, ensure_ascii=ascii_only, allow_nan=True)
        for n, literal in enumerate(raws):
            text = text.replace(json.dumps(RAW.format(n)), literal, 1)
        return text.encode("utf-8", "surrogatepass")

    def valid_value(self, name: str, spec: dict[str, Any], action: str) -> Any:
        kind = spec.get("type")
        if action == "power/circuit" and name == "circuit":
            return self.rng.choice(sorted(self.circuits))
        if kind == "bool":
            return self.rng.random() < 0.5
        if kind == "enum":
            return self.rng.choice(spec.get("enum") or ["x"])
        if kind in ("number", "integer"):
            lo = float(spec.get("min", 0))
            hi = float(spec.get("max", lo + 10))
            return self.rng.randint(math.ceil(lo), math.floor(hi)) if kind == "integer" \
                else round(self.rng.uniform(lo, hi), 1)
        return self.text(8)

    def valid_args(self, action: str) -> dict[str, Any]:
        specs: dict[str, Any] = self.actions[action].get("args", {})
        args = {name: self.valid_value(name, spec, action) for name, spec in specs.items()}
        if action == "power/circuit":  # the opposite of what it is: applied, it would show
            args["on"] = not self.relay_on(self.circuits[args["circuit"]])
        return args

    def invalid_args(self, action: str, raws: list[str]) -> Any:
        """Arguments the documented validation refuses, whatever else the command holds."""
        specs: dict[str, Any] = self.actions[action].get("args", {})
        args: dict[str, Any] = self.valid_args(action)
        defects = ["not_object", "extra"]
        if specs:
            defects += ["missing", "wrong_type", "out_of_range", "hostile", "deep"]
        defect = self.rng.choice(defects)
        if defect == "not_object":
            return self.rng.choice(([], [args], "args", 1, None, True, "", 0.5))
        if defect == "extra":
            key = self.rng.choice((self.text(6) or "x", "x" * 300, "\ud800", "args", "id",
                                   "__proto__", "on ", "ON"))
            if key in specs:
                key += "_x"
            args[key] = self.value()
            return args
        name = self.rng.choice(sorted(specs))
        kind = specs[name].get("type")
        if defect == "missing":
            del args[name]
        elif defect == "wrong_type" or (defect == "out_of_range" and kind == "bool"):
            if kind == "bool":
                bad: Any = self.rng.choice((1, 0, "true", "on", None, [], {}, 1.0, "false"))
            elif kind in ("enum", "string"):
                bad = self.rng.choice((1, True, None, [args[name]], {"v": args[name]}, 1.5))
            else:
                bad = self.rng.choice((str(args[name]), True, False, None, [args[name]], {}))
            args[name] = bad
        elif defect == "out_of_range":
            if kind == "enum":
                enum = specs[name].get("enum") or [""]
                choices = [str(e).upper() for e in enum] + [f"{e} " for e in enum] + \
                    ["", "\u00a0" + str(enum[0]), self.text(5)]
                args[name] = self.rng.choice([c for c in choices if c not in enum] or ["?"])
            else:
                lo, hi = specs[name].get("min"), specs[name].get("max")
                options: list[Any] = []
                if lo is not None:
                    options += [lo - 0.001, lo - 1, -1e308]
                if hi is not None:
                    options += [hi + 0.001, hi + 1, 1e308]
                literal = self.rng.choice(("NaN", "Infinity", "-Infinity", "1e400"))
                if not options or self.rng.random() < 0.3:
                    raws.append(literal)
                    args[name] = RAW.format(len(raws) - 1)
                else:
                    args[name] = self.rng.choice(options)
        elif defect == "hostile":
            literal = self.rng.choice(('"' + "x" * 257 + '"', '"\\ud800"', '"a\\u0000b"',
                                       '"\\udfff"', "1" + "0" * 20))
            raws.append(literal)
            args[name] = RAW.format(len(raws) - 1)
        else:  # deep
            depth = self.rng.randint(5, 40)
            nested: Any = 1
            for _ in range(depth):
                nested = [nested] if self.rng.random() < 0.5 else {"a": nested}
            args[name] = nested
        return args

    def command_body(self, cid: Any, action: str, raws: list[str],
                     valid: bool = False) -> dict[str, Any]:
        known = action in self.actions
        if valid and known:
            args: Any = self.valid_args(action)
        elif known and action not in SAFE_ACTIONS:
            args = self.invalid_args(action, raws)
        elif self.rng.random() < 0.5 and known:
            args = self.valid_args(action)
        else:
            args = {self.text(5): self.value() for _ in range(self.rng.randint(0, 3))}
        body: dict[str, Any] = {"id": cid, "args": args}
        if self.rng.random() < 0.5:
            body = {"args": args, "id": cid}  # the id last
        if self.rng.random() < 0.15:
            body["expires"] = self.rng.choice((
                "2099-01-01T00:00:00Z", time.time() + 3600, "2099-01-01T00:00:00",
                "yesterday", True, [], {}, "", "2099-13-45T99:99:99Z", 4e12))
        return body

    def topic(self, role: str, action: str) -> str:
        return f"{PREFIX}/cmd/{role}/{action}"

    def malformed_action(self) -> str:
        real = self.rng.choice(sorted(self.actions))
        return self.rng.choice((
            real.upper(), real + "/", real.replace("/", "//"), " " + real, real + " ",
            "/".join(self.segment() for _ in range(self.rng.randint(9, 20))),
            self.segment(self.rng.randint(121, 400)), real.replace("/", "."), real + "-1",
            "../../etc/passwd", "ąę/ß", "😀", "a b", "", "/", real + "/" + "x" * 120,
            "Power/Circuit", "power/ circuit", "power/circuit\u200b",
        ))

    def structural_topic(self) -> str:
        return PREFIX + "/" + self.rng.choice((
            "cmd", "cmd/", "cmd/crew", "cmd//", "cmd///", "cmd/crew//power",
            "cmd/" + "/".join(self.segment(2) for _ in range(30)), "cmd/" + "a" * 5000,
            # Mosquitto itself drops a client publishing to more than 200 topic levels
            "cmd/crew/" + "/".join("x" for _ in range(150)), "cmd/hq", "cmd/technician/",
        ))

    # -- cases -----------------------------------------------------------------------------

    def case(self, i: int) -> Case:
        kind = self.rng.choices(self._kinds, self._weights)[0]
        cid = self.new_id(i)
        rng = self.rng
        raws: list[str] = []
        role = "technician" if rng.random() < 0.1 else "crew"
        action = rng.choice(sorted(self.actions))
        retain = False
        topic = self.topic(role, action)
        if kind == "args":
            payload = self.render(self.command_body(cid, action, raws), raws)
        elif kind == "hostile_value":
            raws.append(rng.choice(HOSTILE_LITERALS))
            where = rng.random()
            body: dict[str, Any]
            if where < 0.6:
                body = {"id": cid, "args": {self.text(4): RAW.format(0)}}
            elif where < 0.8:
                body = {"id": cid, "expires": RAW.format(0)}
            else:
                body = {"id": cid, "args": {}, self.text(3) or "k": RAW.format(0)}
            payload = self.render(body, raws)
        elif kind == "bad_id":
            bad_id = rng.choice((12345, None, "", "x" * 65, "id\x00x", "\ud800", ["a"],
                                 {"a": 1}, True, 1.5, RAW.format(0), "missing"))
            if bad_id == RAW.format(0):
                raws.append("NaN")
            body = self.command_body(bad_id, action, raws, valid=rng.random() < 0.5)
            if bad_id == "missing":
                del body["id"]
            payload = self.render(body, raws)
        elif kind == "random_bytes":
            n = rng.randint(0, 400)
            head = rng.choice((b"", b"{", b'{"id":"' + cid.encode() + b'",', b"\xef\xbb\xbf{",
                               b"\xed\xa0\x80", b"\xff\xfe"))
            payload = head + rng.randbytes(n)
        elif kind == "random_json":
            value = self.value()
            if isinstance(value, dict):
                value.pop("id", None)
            payload = self.render(value)
        elif kind == "random_object":
            body = {"id": cid}
            for _ in range(rng.randint(1, 6)):
                key = self.text(rng.randint(1, 8))
                if key not in ("id", "args", "expires"):
                    body[key] = self.value()
            if len(body) == 1:
                body["unknown"] = 1
            payload = self.render(body)
        elif kind == "deep":
            depth = rng.choice((rng.randint(5, 300), rng.randint(5, 900),
                                rng.randint(2000, 30000)))
            inner = "[" * depth + "]" * depth if rng.random() < 0.5 else \
                '{"a":' * depth + "1" + "}" * depth
            raws.append(inner)
            payload = self.render({"id": cid, "args": {"x": RAW.format(0)}}, raws)
        elif kind == "huge":
            size = rng.choice((rng.randint(4097, 60000), rng.randint(65537, 300000)))
            if rng.random() < 0.01:
                size = rng.randint(1_000_000, 2_000_000)
            huge: dict[str, Any] = {"s": "x" * size} if rng.random() < 0.5 else \
                {f"k{n}": n for n in range(size // 10)}
            payload = self.render({"id": cid, "args": huge})
        elif kind == "unknown_action":
            action = "/".join(self.segment() for _ in range(rng.randint(1, 4)))
            topic = self.topic(role, action)
            payload = self.render(self.command_body(cid, action, raws), raws)
        elif kind == "malformed_topic":
            payload = self.render(self.command_body(cid, action, raws, valid=True), raws)
            if rng.random() < 0.7:
                action = self.malformed_action()
                topic = self.topic(role, action)
            else:
                topic = self.structural_topic()
                action = "?"
        elif kind == "bad_role":
            action = rng.choice(self.changing)
            role = rng.choice(BAD_ROLES)
            topic = self.topic(role, action)
            payload = self.render(self.command_body(cid, action, raws, valid=True), raws)
        elif kind == "refused_valid":
            how = rng.choice(("expired", "retained", "forbidden"))
            forbidden = [a for a in self.changing if "hq" not in self.actions[a]["roles"]]
            action = rng.choice(forbidden if how == "forbidden" else self.changing)
            body = self.command_body(cid, action, raws, valid=True)
            if how == "expired":
                body["expires"] = rng.choice((1, 1e9, time.time() - 60,
                                              "2001-01-01T00:00:00Z", "1970-01-01T00:00:01+00:00"))
            retain = how == "retained"
            topic = self.topic("hq" if how == "forbidden" else role, action)
            kind = f"refused_valid:{how}"
            payload = self.render(body, raws)
        else:  # safe_valid
            action = rng.choice(sorted(SAFE_ACTIONS))
            topic = self.topic(rng.choice(("crew", "hq", "technician")), action)
            args = {} if action == "system/republish" else {"alarm": self.segment() + "/x"}
            payload = self.render({"id": cid, "args": args})
        return Case(topic, payload, kind, action, retain, readable_id(payload))


# ---- the bench -----------------------------------------------------------------------------


@dataclass
class Bench:
    run_dir: Path
    env: dict[str, str]
    sim: SimulatedVan
    rec: Recorder
    pub: Publisher
    sup: SupervisorProcess
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    res: dict[str, Any] = field(default_factory=dict)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    lags: list[tuple[float, float]] = field(default_factory=list)

    # -- the supervisor ----------------------------------------------------------------------

    def circuits(self) -> dict[str, str]:
        return {c.name: c.output for c in power_config(self.sim.config).circuit
                if c.device == "relays"}

    def relays(self) -> dict[str, bool]:
        return {r: self.sim.relay("relays", r) for r in RELAYS}

    def relay_writes(self) -> int:
        return sum(len(self.sim.writes_to("relays", r)) for r in RELAYS)

    def log_count(self) -> int:
        return len(self.sup.log_lines()) if self.sup.log_path.exists() else 0

    def log_findings(self, since: int) -> dict[str, dict[str, int]]:
        found: dict[str, Counter[str]] = {}
        for line in self.sup.log_lines()[since:]:
            level = str(line.get("level", "?"))
            if level in ("warning", "error", "critical", "exception"):
                found.setdefault(level, Counter())[str(line.get("event"))] += 1
        return {level: dict(c) for level, c in found.items()}

    async def start_supervisor(self) -> float:
        """Start the process; seconds until status ready with a new session."""
        old = self.rec.session()
        ready = self.rec.watch(lambda t, v: t == "status" and isinstance(v, dict)
                               and v.get("state") == "ready" and int(v.get("session", 0)) > old)
        t0 = time.perf_counter()
        self.sup.start()
        return await asyncio.wait_for(ready, STEP_TIMEOUT_S) - t0

    async def check_alive(self, phase: str) -> None:
        """A supervisor found dead is a crash: recorded, and started again to go on."""
        proc = self.sup.proc
        if proc is not None and proc.poll() is not None:
            self.crashes.append({"phase": phase, "exit_code": proc.returncode})
            log(f"{phase}: mcw-supervisor exited with {proc.returncode}; starting it again")
            await self.start_supervisor()

    async def settled(self) -> None:
        rec = self.rec
        devices = [d.id for d in self.sim.config.device]
        await wait_until(lambda: (rec.latest.get("status") or {}).get("state") == "ready",
                         STEP_TIMEOUT_S, "status ready")
        await wait_until(lambda: all((rec.latest.get(f"device/{d}/status") or {}).get("state")
                                     == "online" for d in devices),
                         STEP_TIMEOUT_S, "every device online")
        await wait_until(lambda: all(
            rec.value(f"power/circuit/{n}/wanted") is not None
            and rec.value(f"power/circuit/{n}") == rec.value(f"power/circuit/{n}/wanted")
            for n in self.circuits()), STEP_TIMEOUT_S, "circuits switched as wanted")

    async def await_answers(self, ids: Iterable[str], results_from: int, sent: int) -> float:
        """Wait until every id has a result (and, if ``sent``, as many results arrived since
        ``results_from``), or nothing of that moved for ANSWER_DEADLINE_S; the time of the
        last answer."""
        pending = [c for c in ids if c not in self.rec.by_id]
        last: tuple[int, int] | None = None
        start = last_change = time.perf_counter()
        while True:
            now = time.perf_counter()
            pending = [c for c in pending if c not in self.rec.by_id]
            count = len(self.rec.results) - results_from if sent else 0
            if not pending and count >= sent:
                return now
            if (len(pending), count) != last:
                last, last_change = (len(pending), count), now
            elif now - last_change > ANSWER_DEADLINE_S or now - start > ANSWER_CAP_S:
                return last_change
            await asyncio.sleep(0.05)  # poll step of the wait

    def logged_ids(self, since: int) -> set[str]:
        """Command ids the supervisor logged as answered (its ``command`` log line)."""
        return {str(line.get("command_id")) for line in self.sup.log_lines()[since:]
                if line.get("event") == "command"}

    def sessions_and_wills(self, since: int, t0: float, t1: float) -> tuple[int, int]:
        """Sessions announced after session ``since``, and "lost" wills seen, in t0..t1."""
        sessions = {int(v.get("session", 0)) for t, v in self.rec.statuses
                    if t0 <= t <= t1 and v.get("state") in ("ready", "degraded")}
        wills = sum(1 for t, v in self.rec.statuses if t0 <= t <= t1 and v.get("state") == "lost")
        return len({s for s in sessions if s > since}), wills

    def voltage_gaps(self, t0: float, t1: float) -> dict[str, float]:
        """Gaps between updates in t0..t1, counting the last one before and the first after."""
        before = [(a, ts) for a, _, ts in self.rec.voltage if a < t0][-1:]
        after = [(a, ts) for a, _, ts in self.rec.voltage if a > t1][:1]
        pts = before + [(a, ts) for a, _, ts in self.rec.voltage if t0 <= a <= t1] + after
        arrival = [b[0] - a[0] for a, b in itertools.pairwise(pts)]
        reading = [b[1] - a[1] for a, b in itertools.pairwise(pts)]
        return {"n": len(pts), "arrival_gap_max_s": max(arrival, default=math.nan),
                "reading_gap_max_s": max(reading, default=math.nan),
                "arrival_gap_p50_s": statistics.median(arrival) if arrival else math.nan}

    # -- 4. steady window ----------------------------------------------------------------------

    async def steady(self) -> None:
        log(f"steady window {STEADY_S:g} s (updates of {VOLTAGE})")
        since = self.log_count()
        t0 = time.perf_counter()
        await asyncio.sleep(STEADY_S)  # the steady window
        t1 = time.perf_counter()
        await self.check_alive("steady")
        gaps = self.voltage_gaps(t0, t1)
        logged: list[float] = []
        for line in self.sup.log_lines()[since:]:
            if line.get("event") in LOG_STALL_EVENTS:
                logged += [float(v) * (0.001 if k.endswith("_ms") else 1.0)
                           for k, v in line.items()
                           if isinstance(v, int | float) and k.endswith(("_s", "_ms"))]
        watchdog = sum(1 for line in self.sup.log_lines() if line.get("event") == "loop_stalled")
        self.res["stall"] = {**gaps, "window_s": t1 - t0,
                             "bench_lag_max_s": max_lag(self.lags, t0, t1),
                             "logged_max_s": max(logged) if logged else None,
                             "watchdog_loop_stalled_lines": watchdog}

    # -- 1. fuzz -----------------------------------------------------------------------------

    async def fuzz(self) -> None:
        meta = await wait_until(lambda: self.rec.latest.get("meta"), STEP_TIMEOUT_S, "meta")
        actions = {a["id"]: a for a in meta["actions"]}
        circuits = self.circuits()
        fz = Fuzzer(self.rng, actions, circuits, lambda r: self.sim.relay("relays", r),
                    self.nonce)
        log(f"fuzz: {FUZZ_N} hostile commands, at most {FUZZ_WINDOW} unanswered "
            f"(actions: {', '.join(sorted(actions))})")
        relays0, writes0 = self.relays(), self.relay_writes()
        inverter0 = {r: self.sim.served_value("multiplus", r)
                     for r in ("mode", "ac_in_current_limit")}
        gen0 = self.sim.output_active("generator_start")
        since = self.log_count()
        session0 = self.rec.session()
        r0 = len(self.rec.results)
        t0 = time.perf_counter()
        cases: dict[str, Case] = {}
        kinds: Counter[str] = Counter()
        sent = unreadable = window_stalls = bad_role_or_topic = 0
        for i in range(FUZZ_N):
            case = fz.case(i)
            while sent - (len(self.rec.results) - r0) >= FUZZ_WINDOW:
                self.rec.progress.clear()
                try:
                    await asyncio.wait_for(self.rec.progress.wait(), 2.0)
                except TimeoutError:
                    window_stalls += 1  # answers are missing: go on, the count shows it
                    break
            if not await self.pub.send(case.topic, case.payload, case.retain):
                continue
            sent += 1
            kinds[case.kind] += 1
            if not case.topic.startswith(f"{PREFIX}/cmd/crew/"):
                bad_role_or_topic += 1
            if case.cid is not None:
                cases[case.cid] = case
            else:
                unreadable += 1
            if i % 500 == 499:
                await self.check_alive("fuzz")
                log(f"fuzz: {i + 1} sent, {len(self.rec.results) - r0} results")
        t_sent = time.perf_counter()
        t_end = await self.await_answers(cases, r0, sent)
        await self.check_alive("fuzz")
        await asyncio.sleep(1.0)  # a stray write would reach the relays by now
        results = self.rec.results[r0:]
        lost = [c for c in cases if c not in self.rec.by_id]
        twice = [c for c in cases if len(self.rec.by_id.get(c, [])) > 1]
        applied = [c for c, case in cases.items() if case.action not in SAFE_ACTIONS
                   and any(r.get("status") == "done" for r in self.rec.by_id.get(c, []))]
        statuses: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        null_ids = 0
        for _, _, value in results:
            if isinstance(value, dict):
                statuses[str(value.get("status"))] += 1
                codes[str(value.get("code"))] += 1
                null_ids += value.get("id") is None
            else:
                statuses["(not JSON)"] += 1
        sessions, wills = self.sessions_and_wills(session0, t0, time.perf_counter())
        relays1 = self.relays()
        inverter1 = {r: self.sim.served_value("multiplus", r) for r in inverter0}
        refused_valid = Counter(f"{c.kind.split(':')[1]}->{self.rec.by_id[cid][0].get('status')}"
                                if cid in self.rec.by_id else f"{c.kind.split(':')[1]}->lost"
                                for cid, c in cases.items() if c.kind.startswith("refused_valid"))
        self.res["fuzz"] = {
            "sent": sent, "not_sent": dict(self.pub.refused), "to_bad_role_or_topic":
            bad_role_or_topic, "readable_ids": len(cases), "unreadable": unreadable,
            "results": len(results), "null_id_results": null_ids, "lost": len(lost),
            "lost_examples": [(c, cases[c].kind, cases[c].topic[:80]) for c in lost[:5]],
            "lost_by_kind": dict(Counter(cases[c].kind for c in lost)),
            "lost_logged": len(set(lost) & self.logged_ids(since)),
            "answered_twice": len(twice), "applied_refusable": len(applied),
            "applied_examples": [(c, cases[c].topic[:80]) for c in applied[:5]],
            "statuses": dict(statuses), "codes": dict(codes.most_common()),
            "kinds": dict(kinds), "refused_valid": dict(refused_valid),
            "exits": sum(1 for c in self.crashes if c["phase"] == "fuzz"),
            "session_drops": max(0, sessions - sum(1 for c in self.crashes
                                                  if c["phase"] == "fuzz")),
            "wills": wills, "relays_before": relays0, "relays_after": relays1,
            "relays_changed": [r for r in RELAYS if relays0[r] != relays1[r]],
            "relay_writes": self.relay_writes() - writes0,
            "inverter_changed": inverter0 != inverter1,
            "generator_start_changed": gen0 != self.sim.output_active("generator_start"),
            "send_s": t_sent - t0, "total_s": t_end - t0, "window_stalls": window_stalls,
            "bench_lag_max_s": max_lag(self.lags, t0, t_end),
            "log": self.log_findings(since),
        }

    # -- 2. flood ----------------------------------------------------------------------------

    async def flood(self) -> None:
        await self.settled()
        relay = self.circuits()[FLOOD_CIRCUIT]
        initial = self.sim.relay("relays", relay)
        topic = f"{PREFIX}/cmd/crew/power/circuit"
        ids = [f"x{i}-{self.nonce}" for i in range(FLOOD_N)]
        payloads = [json.dumps({"id": cid, "args": {"circuit": FLOOD_CIRCUIT,
                                                    "on": (i % 2 == 0) != initial}}).encode()
                    for i, cid in enumerate(ids)]
        log(f"flood: {FLOOD_N} x power/circuit {FLOOD_CIRCUIT} at once, probes meanwhile")
        since = self.log_count()
        session0 = self.rec.session()
        r0 = len(self.rec.results)
        done = asyncio.Event()
        ages: list[float] = []
        probes: list[float] = []
        probe_status: Counter[str] = Counter()

        async def sample() -> None:
            while not done.is_set():
                if self.rec.voltage:
                    ages.append(time.time() - self.rec.voltage[-1][2])
                await asyncio.sleep(0.02)  # sampling period

        async def one_probe(n: int) -> None:
            cid = f"p{n}-{self.nonce}"
            answered = self.rec.expect(cid)
            t = time.perf_counter()
            assert self.rec.client is not None
            await self.rec.client.publish(
                f"{PREFIX}/cmd/crew/alarm/ack",
                json.dumps({"id": cid, "args": {"alarm": PROBE_ALARM}}).encode(), qos=1)
            try:
                probes.append(await asyncio.wait_for(answered, STEP_TIMEOUT_S) - t)
                probe_status[str(self.rec.by_id[cid][0].get("code"))] += 1
            except TimeoutError:
                probe_status["no answer"] += 1

        async def probe() -> None:
            running: list[asyncio.Task[None]] = []
            while not done.is_set():
                running.append(asyncio.create_task(one_probe(len(running))))
                await asyncio.sleep(PROBE_EVERY_S)  # probe rate
            await asyncio.gather(*running)

        t0 = time.perf_counter()
        tasks = [asyncio.create_task(sample()), asyncio.create_task(probe())]
        try:
            sent = await self.flood_publish(topic, payloads)
            t_sent = time.perf_counter()
            log(f"flood: {sent} published in {t_sent - t0:.2f} s; waiting for the answers")
            # ids only: the probes' results keep arriving meanwhile
            t_end = await self.await_answers(ids, r0, 0)
        finally:
            done.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.check_alive("flood")
        answered = [c for c in ids if c in self.rec.by_id]
        codes = Counter(str(self.rec.by_id[c][0].get("code")) for c in answered)
        statuses = Counter(str(self.rec.by_id[c][0].get("status")) for c in answered)
        arrival_ages = [wall - ts for a, wall, ts in self.rec.voltage if t0 <= a <= t_end]
        sessions, wills = self.sessions_and_wills(session0, t0, time.perf_counter())
        restored = await self.restore(FLOOD_CIRCUIT, relay, initial)
        self.res["flood"] = {
            "sent": sent, "answered": len(answered), "busy": codes.get("busy", 0),
            "lost": sent - len(answered), "statuses": dict(statuses), "codes": dict(codes),
            "lost_logged": len({c for c in ids if c not in self.rec.by_id}
                               & self.logged_ids(since)),
            "lost_examples": [c for c in ids if c not in self.rec.by_id][:5],
            "answered_twice": sum(1 for c in answered if len(self.rec.by_id[c]) > 1),
            "publish_s": t_sent - t0, "answered_s": t_end - t0,
            "bench_lag_max_s": max_lag(self.lags, t0, t_end),
            "publisher": self.res.get("flood_publisher"),
            "probe_s": summary(probes), "probe_codes": dict(probe_status),
            "voltage_age_max_s": max(ages, default=math.nan),
            "voltage_updates": len(arrival_ages),
            "voltage_age_at_arrival_max_s": max(arrival_ages, default=math.nan),
            "voltage_gaps": self.voltage_gaps(t0, t_end),
            "exits": sum(1 for c in self.crashes if c["phase"] == "flood"),
            "session_drops": max(0, sessions - sum(1 for c in self.crashes
                                                  if c["phase"] == "flood")),
            "wills": wills, "restored": restored, "log": self.log_findings(since),
        }

    async def flood_publish(self, topic: str, payloads: list[bytes]) -> int:
        """Publish every payload as fast as the broker takes them: from a separate
        ``mosquitto_pub`` process, so that the simulator (in this process) keeps answering
        the buses meanwhile; from this process if the tool is missing."""
        tool = shutil.which("mosquitto_pub")
        if tool is None:
            self.res["flood_publisher"] = "this process (no mosquitto_pub)"
            return sum(await asyncio.gather(*(self.pub.send(topic, p) for p in payloads)))
        self.res["flood_publisher"] = "mosquitto_pub -l -q 1 (separate process)"
        cmd = [tool, "-h", "127.0.0.1", "-p", str(self.rec.port), "-q", "1", "-M", "1000",
               "-i", f"mcw-bench-flood-{self.nonce}", "-t", topic, "-l"]
        # subprocess.run kills the child by its pid on a timeout
        done = await asyncio.to_thread(subprocess.run, cmd, input=b"\n".join(payloads) + b"\n",
                                       capture_output=True, timeout=STEP_TIMEOUT_S * 4)
        if done.returncode != 0:
            self.res["flood_publisher"] += f", exit {done.returncode}: {done.stderr[:200]!r}"
        return len(payloads)

    async def restore(self, circuit: str, relay: str, on: bool) -> bool:
        """Put the flooded circuit back as it was (retrying while the flood settles)."""
        for attempt in range(5):
            cid = f"r{attempt}-{self.nonce}"
            fut = self.rec.expect(cid)
            await self.pub.send(f"{PREFIX}/cmd/crew/power/circuit",
                                json.dumps({"id": cid, "args": {"circuit": circuit,
                                                                "on": on}}).encode())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, STEP_TIMEOUT_S)
            if self.rec.by_id.get(cid, [{}])[0].get("status") == "done":
                break
            await asyncio.sleep(1.0)  # let the flood's last writes pass
        with contextlib.suppress(AssertionError):
            await wait_until(lambda: self.sim.relay("relays", relay) == on, STEP_TIMEOUT_S,
                             f"{circuit} restored")
        return self.sim.relay("relays", relay) == on

    # -- 3. kill -9 ----------------------------------------------------------------------------

    async def kills(self) -> None:
        await self.settled()
        log(f"kill -9: {KILLS} cycles")
        relays0, writes0 = self.relays(), self.relay_writes()
        ready: list[float] = []
        answer_after_restart: list[float] = []
        not_ready = 0
        down_ids: list[str] = []
        codes: list[int] = []
        for i in range(KILLS):
            await self.check_alive("kill")
            codes.append(await self.sup.stop(signal.SIGKILL) or 0)
            cid = f"k{i}-{self.nonce}"
            down_ids.append(cid)
            answered = self.rec.expect(cid)
            await self.pub.send(f"{PREFIX}/cmd/crew/system/republish",
                                json.dumps({"id": cid, "args": {}}).encode())
            t_sent = time.perf_counter()
            try:
                ready.append(await self.start_supervisor())
            except TimeoutError:
                not_ready += 1
                log(f"kill {i + 1}: no status ready with a new session in {STEP_TIMEOUT_S} s")
            with contextlib.suppress(TimeoutError):
                answer_after_restart.append(
                    await asyncio.wait_for(answered, KILL_ANSWER_WAIT_S) - t_sent)
            if (i + 1) % 10 == 0:
                log(f"kill -9: {i + 1}/{KILLS} cycles")
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))  # kill at a random phase
        pending = [c for c in down_ids if c not in self.rec.by_id]
        if pending:
            await self.await_answers(pending, len(self.rec.results), 0)
        lost = [c for c in down_ids if c not in self.rec.by_id]
        await asyncio.sleep(1.0)
        relays1 = self.relays()
        self.res["kill"] = {
            "cycles": KILLS, "ready_s": summary(ready), "not_ready": not_ready,
            "down_commands": len(down_ids), "lost": len(lost), "lost_ids": lost[:10],
            "answered_twice": sum(1 for c in down_ids if len(self.rec.by_id.get(c, [])) > 1),
            "answer_after_restart_s": summary(answer_after_restart),
            "statuses": dict(Counter(str(self.rec.by_id[c][0].get("status"))
                                     for c in down_ids if c in self.rec.by_id)),
            "relays_changed": [r for r in RELAYS if relays0[r] != relays1[r]],
            "relay_writes": self.relay_writes() - writes0, "kill_exit_codes": set(codes),
        }


async def watch_lag(lags: list[tuple[float, float]]) -> None:
    """This process's event-loop lag (the simulator answers the buses from this loop)."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(0.01)  # lag probe period
        now = time.perf_counter()
        lags.append((now, now - t - 0.01))


def max_lag(lags: list[tuple[float, float]], t0: float, t1: float) -> float:
    return max((lag for t, lag in lags if t0 <= t <= t1), default=0.0)


async def sweep_voltage(sim: SimulatedVan) -> None:
    """The served battery voltage moves +0.1 V/s (12.40-13.19 V), so every poll publishes."""
    t0 = time.monotonic()
    try:
        while True:
            sim.override("battery", "voltage", round(12.4 + ((time.monotonic() - t0) * 0.1) % 0.8,
                                                     2))
            await asyncio.sleep(0.05)  # sweep step
    finally:
        sim.override("battery", "voltage", None)


# ---- main --------------------------------------------------------------------------------


async def main(keep_log: Path | None = None) -> dict[str, Any]:
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        os.environ.pop(key, None)
    started = time.perf_counter()
    main_task = asyncio.current_task()
    assert main_task is not None
    # SIGTERM (e.g. from `timeout`) cancels the bench, so every process is still stopped
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    # short path: Unix socket paths are limited to 107 bytes
    run_dir = Path(tempfile.mkdtemp(prefix="mcw-rob-"))
    res: dict[str, Any] = {}
    sup: SupervisorProcess | None = None
    try:
        async with AsyncExitStack() as stack:
            # each part is stopped by its own callback, whatever failed before it
            broker, env, sim = await start_demo_van(stack, run_dir)
            sweeper = asyncio.create_task(sweep_voltage(sim))
            stack.push_async_callback(_cancel, sweeper)
            rec = Recorder(broker.port, prefix=PREFIX)
            stack.push_async_callback(rec.stop)
            await rec.start()
            pub = Publisher(broker.port)
            stack.push_async_callback(pub.close)
            sup = SupervisorProcess(env, run_dir / "supervisor.log")

            async def stop_supervisor() -> None:
                assert sup is not None
                res["final_exit_code"] = await sup.stop()

            stack.push_async_callback(stop_supervisor)
            bench = Bench(run_dir, env, sim, rec, pub, sup)
            lag_watch = asyncio.create_task(watch_lag(bench.lags))
            stack.push_async_callback(_cancel, lag_watch)
            log(f"broker :{broker.port}, {sim.describe()}")
            res["first_ready_s"] = await bench.start_supervisor()
            await bench.settled()
            await bench.steady()
            await bench.fuzz()
            await bench.flood()
            await bench.kills()
            await bench.check_alive("end")
            res.update(bench.res)
            res["crashes"] = bench.crashes
            res["recorder_connects"] = rec.connects
            res["publisher_reconnects"] = pub.reconnects
            res["log_all"] = bench.log_findings(0)
        res["broker_drops"] = [line for line in (run_dir / "mosquitto.log").read_text(
            errors="replace").splitlines() if "dropped" in line.lower()][:5]
    except BaseException:
        log_path = run_dir / "supervisor.log"
        if log_path.exists():
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            print("--- last lines of the supervisor log ---", *tail, sep="\n", file=sys.stderr)
        raise
    finally:
        if keep_log is not None and (run_dir / "supervisor.log").exists():
            shutil.copy(run_dir / "supervisor.log", keep_log)
        shutil.rmtree(run_dir, ignore_errors=True)
    res["host"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                   "loadavg": os.getloadavg(), "runtime_s": time.perf_counter() - started}
    return res


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# ---- output ------------------------------------------------------------------------------


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def table(res: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    fz = res.get("fuzz")
    if fz:
        rows += [
            (f"fuzz: sent ({fz['to_bad_role_or_topic']} outside cmd/crew/, "
             f"{fz['unreadable']} without readable id)", str(fz["sent"]), ">= 10000"),
            ("fuzz: results received (without an id)",
             f"{fz['results']} ({fz['null_id_results']})", "= sent"),
            (f"fuzz: lost (readable id, no result in {ANSWER_DEADLINE_S:g} s)",
             str(fz["lost"]), "0"),
            ("fuzz: answered more than once", str(fz["answered_twice"]), "0"),
            ("fuzz: crashes: process exits / MQTT session drops",
             f"{fz['exits']} / {fz['session_drops']}", "0 / 0"),
            ("fuzz: relays 1-8 changed / relay writes",
             f"{','.join(fz['relays_changed']) or 'none'} / {fz['relay_writes']}", "none / 0"),
            ("fuzz: refusable commands applied (done, state-changing)",
             str(fz["applied_refusable"]), "0"),
            ("fuzz: time to send / to the last answer (s)",
             f"{fz['send_s']:.1f} / {fz['total_s']:.1f}", ""),
        ]
    fl = res.get("flood")
    if fl:
        p = fl["probe_s"]
        rows += [
            ("flood: power/circuit commands sent / answered",
             f"{fl['sent']} / {fl['answered']}", ">= 5000"),
            ("flood:   of which busy", str(fl["busy"]), ""),
            ("flood: lost (sent - answered)", str(fl["lost"]), "0"),
            ("flood: all published / all answered after (s)",
             f"{fl['publish_s']:.2f} / {fl['answered_s']:.2f}", ""),
            (f"flood: probe command latency (ms p50 / p99, n={p['n']})",
             f"{ms(p['p50'])} / {ms(p['p99'])}" if p["n"] else "no answer", ""),
            (f"flood: max age of {VOLTAGE} (now - ts; s)",
             f"{fl['voltage_age_max_s']:.2f}", f"~{POLL_FAST_S:g} s poll"),
            ("flood: crashes: process exits / MQTT session drops",
             f"{fl['exits']} / {fl['session_drops']}", "0 / 0"),
        ]
    kl = res.get("kill")
    if kl:
        r = kl["ready_s"]
        rows += [
            (f"kill -9: start -> ready, new session (s p50 / max, n={r['n']})",
             f"{r['p50']:.2f} / {r['max']:.2f}" if r["n"] else "never", ""),
            ("kill -9: cycles without ready in 30 s", str(kl["not_ready"]), "0"),
            (f"kill -9: commands sent while down ({kl['down_commands']}), lost",
             str(kl["lost"]), "0"),
            ("kill -9: relays changed / relay writes",
             f"{','.join(kl['relays_changed']) or 'none'} / {kl['relay_writes']}", ""),
        ]
    st = res.get("stall")
    if st:
        if st["logged_max_s"] is not None:
            rows.append(("worst event-loop stall, FROM THE SUPERVISOR'S LOG (s)",
                         f"{st['logged_max_s']:.3f}", ""))
        else:
            rows.append((f"event-loop stall, MEASURED FROM OUTSIDE: worst gap between "
                         f"voltage updates in {st['window_s']:.0f} s (s)",
                         f"{st['arrival_gap_max_s']:.3f}", f"poll {POLL_FAST_S:g} s"))
            rows.append(("  same between the readings' ts / median gap (s)",
                         f"{st['reading_gap_max_s']:.3f} / {st['arrival_gap_p50_s']:.3f}", ""))
    return "\n".join(figure_table(rows, rule_extra=10))


def report(res: dict[str, Any]) -> None:
    host = res["host"]
    print(f"\nmcw-supervisor robustness (demo van, simulated) - python {host['python']}, "
          f"{host['cpus']} CPUs, load {host['loadavg'][0]:.2f}, took {host['runtime_s']:.0f} s\n")
    print(table(res))
    extra: list[str] = []
    st = res.get("stall")
    if st and st["logged_max_s"] is None:
        extra.append(f"event-loop stall: the supervisor logs no event-loop lag, so the figure is "
                     f"measured from outside (includes the {POLL_FAST_S:g} s poll period and "
                     f"MQTT delivery; stall ~ gap - {POLL_FAST_S:g} s); watchdog loop_stalled "
                     f"lines: {st['watchdog_loop_stalled_lines']}")
    fz = res.get("fuzz")
    if fz:
        extra.append("fuzz kinds: " + ", ".join(f"{k} {n}" for k, n in sorted(fz["kinds"].items())))
        extra.append("fuzz results: " + ", ".join(f"{k} {n}" for k, n in fz["statuses"].items())
                     + "; codes: " + ", ".join(f"{k} {n}" for k, n in fz["codes"].items()))
        extra.append("fuzz valid state-changing commands refused for another reason: "
                     + ", ".join(f"{k} {n}" for k, n in sorted(fz["refused_valid"].items())))
        if fz["lost"]:
            extra.append(f"fuzz LOST by kind: {fz['lost_by_kind']}; e.g. {fz['lost_examples']}; "
                         f"{fz['lost_logged']} of them logged as answered by the supervisor")
        if fz["applied_refusable"]:
            extra.append(f"fuzz APPLIED: {fz['applied_examples']}")
        if fz["inverter_changed"] or fz["generator_start_changed"]:
            extra.append(f"fuzz CHANGED the inverter ({fz['inverter_changed']}) or the generator "
                         f"start line ({fz['generator_start_changed']})")
        if fz["not_sent"]:
            extra.append(f"fuzz: refused by the client library, not counted: {fz['not_sent']}")
        if fz["window_stalls"]:
            extra.append(f"fuzz: {fz['window_stalls']} times no answer for 2 s with "
                         f"{FUZZ_WINDOW} outstanding")
    fl = res.get("flood")
    if fl:
        extra.append("flood results: " + ", ".join(f"{k} {n}" for k, n in fl["codes"].items())
                     + f"; probe results: {fl['probe_codes']}; answered twice: "
                     f"{fl['answered_twice']}")
        if fl["lost"]:
            extra.append(f"flood LOST: {fl['lost']}, {fl['lost_logged']} of them logged as "
                         f"answered by the supervisor (the result never reached the broker); "
                         f"e.g. {fl['lost_examples']}")
        gaps = fl["voltage_gaps"]
        extra.append(f"flood: {fl['voltage_updates']} updates of {VOLTAGE} during the flood "
                     f"(age at arrival max {fl['voltage_age_at_arrival_max_s']:.2f} s), worst gap "
                     f"between updates {gaps['arrival_gap_max_s']:.2f} s, between the readings' "
                     f"ts {gaps['reading_gap_max_s']:.2f} s; "
                     f"{FLOOD_CIRCUIT} restored afterwards: {fl['restored']}")
    lags = [f"{phase} {ms(res[phase]['bench_lag_max_s'])} ms" for phase in ("stall", "fuzz",
                                                                             "flood")
            if phase in res]
    if lags:
        extra.append("this process's event-loop lag max (the simulator answers the buses from "
                     "it; over the 0.3 s RTU timeout = bench artefact): " + ", ".join(lags))
    if fl:
        extra.append(f"flood published by {fl['publisher']}")
    kl = res.get("kill")
    if kl:
        a = kl["answer_after_restart_s"]
        if a["n"]:
            extra.append(f"kill -9: command sent while down answered after (s p50 / max) "
                         f"{a['p50']:.2f} / {a['max']:.2f}; results {kl['statuses']}")
        if kl["lost"]:
            extra.append(f"kill -9 LOST: {kl['lost_ids']}")
    for c in res.get("crashes", []):
        extra.append(f"CRASH in {c['phase']}: mcw-supervisor exited with {c['exit_code']}")
    if res.get("final_exit_code"):
        extra.append(f"supervisor exit code after the final SIGTERM: {res['final_exit_code']}")
    if res.get("broker_drops"):
        extra.append(f"broker dropped messages (bench artefact, not the supervisor): "
                     f"{res['broker_drops']}")
    if res.get("recorder_connects", 1) != 1 or res.get("publisher_reconnects"):
        extra.append(f"recorder connects {res.get('recorder_connects')}, publisher reconnects "
                     f"{res.get('publisher_reconnects')}")
    for phase in ("fuzz", "flood"):
        extra += finding_lines(f"supervisor log in {phase},",
                                   (res.get(phase) or {}).get("log", {}))
    print()
    print("\n".join(extra))


def cli() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--log", type=Path, default=None,
                   help="keep a copy of the supervisor's log here")
    args = p.parse_args()
    res = asyncio.run(main(args.log))
    report(res)
    save_figures(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
