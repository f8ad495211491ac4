"""Panic benchmark: a press to the alarm at an MQTT subscriber, the room node's lease, the bus.

What runs: as in the HIL tests (hil-tests/test_room_hil.py), a real Mosquitto on a free port,
the simulated van in this process (its RS-485 line is ``wire.py``, which takes the wire time
of 9600 Bd, and the room node on it is its real firmware core, vansim/room_node_host.py) and
the unmodified ``mcw-supervisor`` command configured by config/demo.toml. An MQTT monitor in
this process (bench/run.py's ``TimedMonitor``) stamps every message with
``time.perf_counter()`` on arrival; presses are stamped on the same clock just before the
simulator's hands act. Every process is stopped by its own handle, also on failure, and the
temporary directory removed.

Figures:
  1. GPIO panic button (line ``panic_crew``, active low, its debounce in the config): from
     ``van.set_input("panic_crew", True)`` to the ``alarm/room/panic`` message with
     ``active`` at the subscriber. Between presses: the press seen on MQTT
     (``room/panic/crew/zone`` alarm), released, the release seen (the zone normal),
     ``room/panic_ack``, the alarm cleared (its retained message emptied), then a random
     pause of 0-0.2 s.
  2. The room node's desk button: from ``node.press("desk")`` to the same alarm. Includes
     the node's 30 ms loop debounce, the 0.15 s poll of the node over the paced 9600 Bd line
     shared with six other devices, the supervisor's turn and MQTT. Between presses as for
     GPIO, and the node's latch seen cleared (the supervisor acknowledged it).
  3. The node's output lease: a session runs (door sign and recording light lit, the calm
     light at its scene), the supervisor is killed (SIGKILL); the time until the node's
     output pins are all in their safe states, on the node's own clock (the host's
     monotonic clock, its pins sampled every 5 ms), from the kill and from the supervisor's
     last write the node accepted (any write to a holding register renews the lease; a
     frame still on the wire at the kill is accepted after it). Then
     the supervisor is started again and the session's outputs come back; a few rounds.
  4. The RS-485 line in the demo van with the node on it, nothing pressed: the share of wire
     time a character was on the line over a window (``wire.py``'s ``stats``), frames per
     second, and the node's own share (its requests and answers, from the node's log).

Prints figures and their targets; never tunes anything to meet them. Usage: ``make bench``
(or ``PYTHONPATH=hil-tests .venv/bin/python bench/panic.py [--presses 200] [--json PATH]``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testsupport import wait_until

from conftest import Van, settled
from harness import SupervisorProcess
from roomnode.board import SAMPLE_MS
from supervisor.room.config import RoomConfig
from vansim.room_node_host import SAFE_STATES, RoomNodeHost

# The scripts run with bench/ as sys.path[0]; mypy (mypy_path hil-tests:tests) names this
# folder's modules bench.*.
if TYPE_CHECKING:
    from bench.run import (
        Figures,
        TimedMonitor,
        finding_lines,
        report_head,
        save_figures,
        start_demo_van,
        summary,
    )
else:
    from run import (
        Figures,
        TimedMonitor,
        finding_lines,
        report_head,
        save_figures,
        start_demo_van,
        summary,
    )

NODE = "room_node"
BUS = "rs485"
LEASE_ADDRESS = 104  # the node's lease register
STEP_TIMEOUT_S = 30.0  # generous: a loaded 2-core machine must finish too
TARGETS = {
    "gpio_p99_s": 0.010,
    "node_p99_s": 0.300,
}


def log(text: str) -> None:
    """Progress on stderr; the figures go to stdout."""
    print(f"[panic] {text}", file=sys.stderr, flush=True)


def panic_active(topic: str, value: Any) -> bool:
    return topic == "alarm/room/panic" and isinstance(value, dict) and value.get("active") is True


class PanicBench:
    """One van, its monitor and the figures."""

    def __init__(self, args: argparse.Namespace, van: Van, monitor: TimedMonitor) -> None:
        self.args, self.van, self.monitor = args, van, monitor
        self.rng = random.Random(1)
        self.results: dict[str, Any] = {}
        self.nonce = f"{time.time_ns():x}"[-8:]
        self.sent = 0
        # panics nobody pressed for (a restart raising one): by source
        self.unexpected: Counter[str] = Counter()

    @property
    def node(self) -> RoomNodeHost:
        return self.van.sim.room_node(NODE)

    def room(self) -> RoomConfig:
        section = self.van.sim.config.section("room")
        assert isinstance(section, RoomConfig), "the demo config has a [room] section"
        return section

    def check_alive(self) -> None:
        proc = self.van.supervisor.proc
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"mcw-supervisor is not running (exit {proc and proc.returncode})")

    async def command(self, action: str, role: str = "crew", **args: Any) -> dict[str, Any]:
        self.sent += 1
        result = await self.monitor.command(
            action, {"id": f"bench-{self.nonce}-{self.sent}", "args": args}, STEP_TIMEOUT_S,
            role)
        if result.get("status") != "done":
            raise RuntimeError(f"{action} {args}: {result}")
        return result

    def alarm(self) -> dict[str, Any]:
        value = self.monitor.latest.get("alarm/room/panic")
        return value if isinstance(value, dict) else {}

    async def ack(self) -> None:
        """room/panic_ack, then the alarm gone from the broker and the point false."""
        await self.command("room/panic_ack")
        await wait_until(lambda: not self.alarm()
                         and self.monitor.value("room/panic/active") is False,
                         STEP_TIMEOUT_S, "the panic cleared")

    # -- 1 and 2. press -> alarm ------------------------------------------------------------

    async def presses(self, key: str, press: Callable[[], None], release: Callable[[], None],
                      zone: str, released: Callable[[], bool], source: str) -> None:
        """``zone``: the button's zone point, seen "alarm" before the release (so that its
        "normal" afterwards is news, not the value from before the press); ``released``: the
        release seen where the next press needs it."""
        n = self.args.presses
        log(f"{key}: {n} presses")
        samples: list[float] = []
        wrong: Counter[str] = Counter()
        for i in range(n):
            self.check_alive()
            seen = self.monitor.watch(panic_active)
            t0 = time.perf_counter()
            press()
            try:
                samples.append(await asyncio.wait_for(seen, STEP_TIMEOUT_S) - t0)
            except TimeoutError:
                raise RuntimeError(
                    f"press {i + 1}: no active alarm/room/panic within {STEP_TIMEOUT_S:g} s "
                    f"(the alarm now: {self.alarm() or 'none'}, room/panic/active "
                    f"{self.monitor.value('room/panic/active')})") from None
            detail = str(self.alarm().get("detail", ""))
            if f"({source})" not in detail:
                wrong[detail] += 1
            await wait_until(lambda: self.monitor.value(zone) == "alarm", STEP_TIMEOUT_S,
                             f"{key}: the press on {zone}")
            release()
            await wait_until(lambda: self.monitor.value(zone) == "normal" and released(),
                             STEP_TIMEOUT_S, f"{key}: the release seen")
            await self.ack()
            if (i + 1) % 50 == 0:
                p50 = sorted(samples)[len(samples) // 2]
                log(f"{key}: {i + 1}/{n}, p50 so far {p50 * 1000:.1f} ms")
            # a random phase against the node's poll and the supervisor's turns
            await asyncio.sleep(self.rng.uniform(0.0, 0.2))
        self.results[key] = {**summary(samples), "samples": [round(s, 5) for s in samples],
                             "other_source": dict(wrong)}

    async def gpio_presses(self) -> None:
        sim, mon = self.van.sim, self.monitor
        await wait_until(lambda: mon.value("room/panic/crew/zone") == "normal", STEP_TIMEOUT_S,
                         "the crew's button at rest")
        await self.presses("gpio", lambda: sim.set_input("panic_crew", True),
                           lambda: sim.set_input("panic_crew", False),
                           "room/panic/crew/zone", lambda: True, "crew")

    async def node_presses(self) -> None:
        node = self.node
        await self.presses("node", lambda: node.press("desk"), lambda: node.release("desk"),
                           "room/panic/desk/zone", lambda: node.register("panic_latched") == 0,
                           "desk")

    # -- 3. the lease ----------------------------------------------------------------------

    def write_times(self, lease_only: bool) -> list[float]:
        """Node clock of every write (FC06/FC16) the node accepted; ``lease_only``: those
        covering the lease register."""
        out = []
        for x in self.node.exchanges:
            req = x.request
            if len(req) < 6 or req[1] not in (6, 16) or x.answer[1] != req[1]:
                continue  # not a write, or refused with an exception
            start = req[2] << 8 | req[3]
            count = 1 if req[1] == 6 else req[4] << 8 | req[5]
            if not lease_only or start <= LEASE_ADDRESS < start + count:
                out.append(x.at)
        return out

    def last_write(self, before: float) -> float | None:
        """Node clock of the last write accepted by ``before``: any write to a holding
        register renews the node's lease."""
        return max((at for at in self.write_times(False) if at <= before), default=None)

    def lease_writes(self, since: float) -> int:
        return sum(1 for at in self.write_times(True) if at >= since)

    def mqtt_session(self) -> int:
        return int((self.monitor.latest.get("status") or {}).get("session", 0))

    async def back_again(self, session: int) -> None:
        """The restarted supervisor ready on MQTT (a new session, not the retained status of
        the killed one), its start-up switching done."""
        await wait_until(lambda: self.mqtt_session() > session
                         and self.monitor.latest["status"].get("state") == "ready",
                         STEP_TIMEOUT_S, "the supervisor back")
        await settled(self.van)

    async def in_session(self) -> dict[str, int]:
        """A recorded session runs: every node output away from its safe state."""
        node = self.node
        if self.monitor.value("room/session/active") is not True:
            await self.command("room/session", on=True, recording=True)
        await wait_until(lambda: node.outputs()["door_sign"] == 1
                         and node.outputs()["recording_light"] == 1
                         and node.outputs()["calm_light"] != SAFE_STATES["calm_light"],
                         STEP_TIMEOUT_S, "the session's outputs")
        return node.outputs()

    async def lease_rounds(self) -> None:
        rounds, node = self.args.lease_rounds, self.node
        lease_s = self.room().lease_s
        log(f"lease: {rounds} rounds with the supervisor killed (lease {lease_s:g} s)")
        await self.command("lighting/scene", scene="work")
        from_kill: list[float] = []
        from_write: list[float] = []
        back: list[float] = []
        expiries0 = node.register("lease_expiries")
        for n in range(rounds):
            await self.in_session()
            sup = self.van.supervisor
            assert await sup.stop(signal.SIGKILL) == -signal.SIGKILL
            killed = time.monotonic()  # the node's clock
            await wait_until(node.at_safe_states, lease_s + STEP_TIMEOUT_S, "safe states")
            fell = next(at for at, pins in node.output_changes
                        if at >= killed and pins == SAFE_STATES)
            from_kill.append(fell - killed)
            # a write still on the wire at the kill reaches the node after it, and renews
            written = self.last_write(fell)
            if written is not None:
                from_write.append(fell - written)
            log(f"lease {n + 1}/{rounds}: safe {fell - killed:.3f} s after the kill, "
                f"{'?' if written is None else f'{fell - written:.3f}'} s after the last "
                "write (any write renews the lease)")
            session = self.mqtt_session()
            t0 = time.monotonic()
            sup.start()
            await self.back_again(session)
            await wait_until(lambda: node.outputs()["door_sign"] == 1, STEP_TIMEOUT_S,
                             "the door sign back")
            back.append(time.monotonic() - t0)
            await self.restart_panic()
        self.results["lease"] = {
            "lease_s": lease_s, "kill_to_safe_s": summary(from_kill),
            "last_write_to_safe_s": summary(from_write),
            "start_to_door_sign_back_s": summary(back),
            "samples_kill_to_safe_s": [round(s, 4) for s in from_kill],
            "node_lease_expiries": node.register("lease_expiries") - expiries0,
        }

    async def restart_panic(self) -> None:
        """A panic a restart raised by itself (no press): counted, and acknowledged."""
        mon = self.monitor
        # the room has turned many times once the new supervisor renewed the lease twice
        since = time.monotonic()
        await wait_until(lambda: self.lease_writes(since) >= 2, STEP_TIMEOUT_S * 2,
                         "the lease renewed twice by the new supervisor")
        if mon.value("room/panic/active") is True or self.alarm().get("active"):
            await wait_until(lambda: self.alarm().get("active"), STEP_TIMEOUT_S, "its alarm")
            detail = str(self.alarm().get("detail", ""))
            source = detail.split("(")[1].split(")")[0] if "(" in detail else detail
            self.unexpected[source] += 1
            log(f"a panic nobody pressed after the restart: {detail}")
            await self.ack()

    # -- 4. the bus -------------------------------------------------------------------------

    async def bus_load(self) -> None:
        window = self.args.window
        line = self.van.sim.lines[BUS]
        node = self.node
        log(f"RS-485 utilisation over {window:g} s, nothing pressed")
        t0_node = time.monotonic()
        first = await line.stats()
        await asyncio.sleep(window)  # the measuring window itself
        last = await line.stats()
        t1_node = time.monotonic()
        self.check_alive()
        exchanges = [x for x in node.exchanges if t0_node <= x.at <= t1_node]
        node_chars = sum(len(x.request) + len(x.answer) for x in exchanges)
        span = last.elapsed_s - first.elapsed_s
        self.results["bus"] = {
            "window_s": span,
            "utilisation": last.utilisation_since(first),
            "frames_per_s": (last.frames - first.frames) / span,
            "node_exchanges_per_s": len(exchanges) / (t1_node - t0_node),
            "node_utilisation": node_chars * line.character_s / (t1_node - t0_node),
            "baudrate": line.baudrate,
        }

    def log_findings(self) -> dict[str, dict[str, int]]:
        """Warnings and errors the supervisor logged, by event."""
        sup = self.van.supervisor
        by_level: dict[str, Counter[str]] = {}
        if not sup.log_path.exists():
            return {}
        for line in sup.log_lines():
            level = str(line.get("level", "?"))
            if level in ("warning", "error", "critical", "exception"):
                by_level.setdefault(level, Counter())[str(line.get("event"))] += 1
        return {level: dict(c) for level, c in by_level.items()}


async def guarded(name: str, res: dict[str, Any],
                  part: Callable[[], Awaitable[None]]) -> None:
    """Run one part; a failure is recorded with its reason and the next part goes on."""
    started = time.perf_counter()
    try:
        await part()
    except Exception as exc:
        res.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
        log(f"{name} FAILED: {res['errors'][name]}")
    res.setdefault("part_s", {})[name] = time.perf_counter() - started


async def main(args: argparse.Namespace) -> dict[str, Any]:
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        os.environ.pop(key, None)
    started = time.perf_counter()
    res: dict[str, Any] = {}
    # short path: Unix socket paths are limited to 107 bytes
    run_dir = Path(tempfile.mkdtemp(prefix="mcw-pb-"))
    async with AsyncExitStack() as stack:
        # each part is stopped by its own callback, whatever failed before it
        stack.callback(shutil.rmtree, run_dir, ignore_errors=True)
        broker, env, sim = await start_demo_van(stack, run_dir)
        monitor = TimedMonitor(broker.port)
        stack.push_async_callback(monitor.stop)
        await monitor.start()
        supervisor = SupervisorProcess(env, run_dir / "supervisor.log")
        van = Van(broker, sim, supervisor, monitor, run_dir)
        bench = PanicBench(args, van, monitor)

        def findings() -> None:  # after the supervisor stopped
            res["log_findings"] = bench.log_findings()
            if supervisor.log_path.exists():
                res["log_tail"] = supervisor.log_path.read_text(
                    errors="replace").splitlines()[-20:]

        stack.callback(findings)
        stack.push_async_callback(supervisor.stop)
        supervisor.start()
        await settled(van)
        await wait_until(lambda: monitor.value("room/panic/delivery") == "none"
                         and (monitor.latest.get("device/room_node/status") or {})
                         .get("state") == "online", STEP_TIMEOUT_S, "the room ready")
        log(f"broker :{broker.port}, {sim.describe()}")
        await guarded("bus", res, bench.bus_load)
        await guarded("gpio", res, bench.gpio_presses)
        await guarded("node", res, bench.node_presses)
        await guarded("lease", res, bench.lease_rounds)
        res.update(bench.results)
        res["unexpected_panics"] = dict(bench.unexpected)
        res["gpio_debounce_ms"] = next(line.debounce_ms for line in sim.config.gpio.line
                                       if line.name == "panic_crew")
    res["host"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                   "loadavg": os.getloadavg(), "machine": platform.machine(),
                   "bench_runtime_s": time.perf_counter() - started}
    return res


# ---- output ------------------------------------------------------------------------------


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def table(res: dict[str, Any]) -> str:
    figures = Figures()
    row = figures.row
    for key, label, target in (
        ("gpio", "GPIO panic_crew edge -> alarm at the subscriber", "gpio_p99_s"),
        ("node", "room node desk button (9600 Bd, 0.15 s poll) -> alarm at the subscriber",
         "node_p99_s"),
    ):
        s = res.get(key)
        if s and s.get("n"):
            row(f"{label} (ms p50 / p99 / max, n={s['n']})",
                f"{ms(s['p50'])} / {ms(s['p99'])} / {ms(s['max'])}",
                f"p99 <= {TARGETS[target] * 1000:g} ms", s["p99"] <= TARGETS[target])
            if s.get("other_source"):
                row("  raised from another source than the one pressed",
                    str(sum(s["other_source"].values())), "0", False)
    lease = res.get("lease")
    if lease:
        lease_s = lease["lease_s"]
        k, w, b = (lease["kill_to_safe_s"], lease["last_write_to_safe_s"],
                   lease["start_to_door_sign_back_s"])
        # the node notices its lease ran out at its next 5 ms loop turn
        slack_s = SAMPLE_MS / 1000
        row(f"supervisor killed -> node outputs safe (s, min / max, n={k['n']})",
            f"{k['min']:.3f} / {k['max']:.3f}",
            f"<= lease {lease_s:g} s (+{SAMPLE_MS} ms node loop)", k["max"] <= lease_s + slack_s)
        if w.get("n"):
            row(f"  last write to the node (renews it) -> outputs safe (s, min / max, "
                f"n={w['n']})",
                f"{w['min']:.3f} / {w['max']:.3f}", f"= lease {lease_s:g} s")
        row(f"  supervisor started -> door sign back (s, min / max, n={b['n']})",
            f"{b['min']:.3f} / {b['max']:.3f}", "")
    bus = res.get("bus")
    if bus:
        row(f"RS-485 {bus['baudrate']} Bd utilisation, idle van ({bus['window_s']:.0f} s window,"
            " %)", f"{bus['utilisation'] * 100:.1f}", "")
        row("  of it the room node (% of wire time) / its exchanges per s",
            f"{bus['node_utilisation'] * 100:.1f} / {bus['node_exchanges_per_s']:.1f}", "")
        row("  transmissions per s, either way", f"{bus['frames_per_s']:.1f}", "")
    if res.get("unexpected_panics"):
        row("panics raised by a restart, nobody pressing (by source)",
            ", ".join(f"{s} x{n}" for s, n in res["unexpected_panics"].items()), "0", False)
    for name, error in (res.get("errors") or {}).items():
        row(f"{name} FAILED", error[:70])
    if not figures.rows:
        return "(no figures)"
    return figures.render("Press figures include the input's debounce (GPIO "
                          f"{res.get('gpio_debounce_ms', '?')} ms in config/demo.toml, the "
                          "node's loop 30 ms) and, for the node,\nits "
                          "poll period; each press is acknowledged (room/panic_ack) and its "
                          "alarm cleared before the next.")


def report(res: dict[str, Any]) -> None:
    print(report_head("panic benchmark (demo van, simulated)", res["host"]))
    print(table(res))
    extra = finding_lines("supervisor log", res.get("log_findings") or {})
    if res.get("errors"):
        extra += ["--- last lines of the supervisor log ---", *res.get("log_tail", [])]
    if extra:
        print()
        print("\n".join(extra))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--presses", type=int, default=200,
                   help="presses timed per button (default 200)")
    p.add_argument("--lease-rounds", type=int, default=3,
                   help="times the supervisor is killed for the lease figure (default 3)")
    p.add_argument("--window", type=float, default=60.0,
                   help="seconds of the bus utilisation window (default 60)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if args.presses < 1 or args.lease_rounds < 1 or args.window <= 0:
        p.error("--presses and --lease-rounds must be >= 1, --window > 0")
    return args


def cli() -> int:
    args = parse_args()
    res = asyncio.run(main(args))
    report(res)
    save_figures(args.json, res)
    return 1 if res.get("errors") else 0


if __name__ == "__main__":
    sys.exit(cli())
