"""The outputs' self-test (``diag/self_test``) on the core without transports: the event that
announces a run comes before any output is switched, with its total and, bounded, the outputs
in the order they are tested. Outputs are GPIO lines; time is virtual."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from virtual_core import Lines, VirtualCore

from supervisor.core.outputs import OutputDef
from supervisor.core.points import PointDef
from supervisor.core.self_test import MAX_ANNOUNCED, register_self_test
from supervisor.core.subsystem import Clock
from supervisor.registry import load_config

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"


class SwitchedLines(Lines):
    """GPIO outputs that remember every switching, so a test knows what came when."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.log = log

    def set_output(self, name: str, active: bool) -> None:
        self.log.append(("switch", name))
        super().set_output(name, active)


def rig(tmp_path: Path, outputs: int) -> tuple[VirtualCore, list[tuple[str, Any]]]:
    """A core with ``outputs`` test outputs on GPIO lines and the self-test registered; the
    log of its self-test events and switchings, in their order."""
    log: list[tuple[str, Any]] = []
    core = VirtualCore(load_config(DEMO), tmp_path / "db.sqlite", _no_bus_write,
                       Clock(lambda: 1000.0, lambda: 1000.0), SwitchedLines(log))
    for n in range(outputs):  # lines beside the config's: their io/ points declared here
        core.van.points.define(PointDef(f"io/line_{n:03d}", "bool"))
        core.port.declare(OutputDef(f"test/out_{n:03d}", False, line=f"line_{n:03d}"))
    core.van.event_added.add(
        lambda e: log.append(("event", e)) if e.get("kind") == "self_test" else None)
    register_self_test(core.van, core.port)
    return core, log


async def _no_bus_write(device: str, register: str, value: object) -> None:
    raise AssertionError(f"no bus output in this test: {device} {register}")


async def self_test(core: VirtualCore, only: str) -> dict[str, object]:
    result = await core.van.router.submit(
        "diag/self_test", json.dumps({"id": f"st-{only}", "args": {"only": only}}),
        "technician", "test")
    return result.as_dict()


async def test_the_start_event_comes_first_with_the_total_and_the_outputs_in_order(
        tmp_path: Path) -> None:
    core, log = rig(tmp_path, 3)
    result = await self_test(core, "test/*")
    assert (result["status"], result["message"]) == ("done", "3 ok, 0 failed, 0 skipped")
    kind, start = log[0]
    assert kind == "event" and start["what"] == "started", log[0]
    assert start["total"] == 3
    assert start["outputs"] == ["test/out_000", "test/out_001", "test/out_002"]
    outcomes = [e["output"] for kind, e in log[1:] if kind == "event"]
    assert outcomes == start["outputs"]  # one outcome each, in the announced order
    assert [e for kind, e in log[1:] if kind == "event" and "what" in e] == []  # one start


async def test_the_start_event_names_a_bounded_number_of_outputs_and_counts_them_all(
        tmp_path: Path) -> None:
    core, log = rig(tmp_path, MAX_ANNOUNCED + 10)
    result = await self_test(core, "test/*")
    assert result["status"] == "done", result
    start = log[0][1]
    assert start["total"] == MAX_ANNOUNCED + 10
    assert start["outputs"] == [f"test/out_{n:03d}" for n in range(MAX_ANNOUNCED)]
    assert len([e for kind, e in log if kind == "event" and "output" in e]) == \
        MAX_ANNOUNCED + 10


async def test_a_refused_self_test_announces_nothing(tmp_path: Path) -> None:
    core, log = rig(tmp_path, 2)
    result = await self_test(core, "nothing/*")
    assert (result["status"], result["code"]) == ("rejected", "no_output")
    assert log == []
