"""`make demo` (scripts/demo.sh): each demo owns its run directory, a second demo never takes
over a running one's, a dead one's leftovers are cleaned, and stopping a demo — even killing
it outright — stops exactly what it started."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from testsupport import free_port, require_tool, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scripts" / "demo.sh"


def processes_of(run_dir: Path) -> set[int]:
    """Every process started for the demo living in ``run_dir`` (by its environment)."""
    mark = f"MCW_RUN_DIR={run_dir}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
            except OSError:
                continue  # gone meanwhile, or not ours to read
    return found


class Demo:
    def __init__(self, run_dir: Path | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCW_")}
        env.update(MCW_MQTT_PORT=str(free_port()), MCW_GX_PORT=str(free_port()),
                   MCW_ROUTER_PORT=str(free_port()), MCW_PANEL_PORT=str(free_port()),
                   MCW_LOG_LEVEL="info")
        if run_dir is not None:
            env["MCW_RUN_DIR"] = str(run_dir)
        self.out = Path(os.environ.get("TMPDIR", "/tmp")) / f"demo-{os.getpid()}-{id(self)}.out"
        with self.out.open("w") as out:
            self.proc = subprocess.Popen(["bash", str(DEMO)], cwd=ROOT, env=env,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.run_dir = run_dir

    def output(self) -> str:
        return self.out.read_text()

    async def running(self) -> Path:
        """Wait until the supervisor is up; the demo's run directory."""
        await wait_until(lambda: "Ctrl-C stops everything" in self.output()
                         or self.proc.poll() is not None, timeout=60, what="demo started")
        assert self.proc.poll() is None, self.output()
        line = next(ln for ln in self.output().splitlines() if "Logs in" in ln)
        self.run_dir = Path(line.split("Logs in ", 1)[1].rstrip("/."))
        log = self.run_dir / "supervisor.log"
        await wait_until(lambda: log.exists() and "supervisor_ready" in log.read_text(),
                         timeout=60, what="supervisor ready")
        return self.run_dir


@pytest.fixture
def demos() -> Iterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:  # whatever happened: every demo and everything it started stops
        stop_process(demo.proc)
        if demo.run_dir is not None:
            for pid in processes_of(demo.run_dir):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        demo.out.unlink(missing_ok=True)
    for run_dir in {d.run_dir for d in started if d.run_dir is not None}:
        shutil.rmtree(run_dir, ignore_errors=True)


async def test_two_demos_run_side_by_side_and_each_stops_what_it_started(
    demos: list[Demo],
) -> None:
    require_tool("mosquitto")
    first, second = Demo(), Demo()
    demos += [first, second]
    one, two = await first.running(), await second.running()
    assert one != two  # each its own run directory
    ours = processes_of(one)
    assert len(ours) >= 3  # broker, simulator, supervisor (and the simulator's RS-485 line)

    # a third demo told to use the first one's directory refuses to touch it
    third = Demo(one)
    demos.append(third)
    assert third.proc.wait(30) == 1
    assert "belongs to a demo that still runs" in third.output()

    # the first demo is killed outright (no trap runs): its reaper stops what it started
    first.proc.kill()
    first.proc.wait(10)
    await wait_until(lambda: not processes_of(one), timeout=30, what="the first demo's children")
    assert processes_of(two), "the second demo must not be touched"

    # a new demo in the dead one's directory cleans its leftovers and runs
    again = Demo(one)
    demos.append(again)
    assert await again.running() == one
    assert "cleaning what a dead demo" in again.output()

    # SIGTERM: an orderly stop of exactly this demo
    for demo in (again, second):
        await stop_demo(demo)


async def stop_demo(demo: Demo) -> None:
    run_dir = demo.run_dir
    assert run_dir is not None
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(60) in (0, 143)  # 143: ended by the signal, after its clean-up
    await wait_until(lambda: not processes_of(run_dir), timeout=30, what="stopped")
    assert "stopped" in demo.output()
