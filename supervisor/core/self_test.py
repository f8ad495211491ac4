"""The outputs' self-test (``diag/self_test``, technician): each switchable output is switched
to the other state and back, each step confirmed by its read-back, and left as it was. It is
refused while a session runs in the consultation room or the van is driving. An output whose
lock is set (the heater's supply in its after-run) is skipped, as are those declared
``self_test=False`` and those that are not on/off switches. Every output's outcome is an event
(``self_test``), so the panel and ``mcwctl watch`` show the progress; the result sums it up.

Before it switches anything, one event announces the run: ``{"kind": "self_test", "what":
"started", "total": N, "outputs": [...]}``, N the outputs it goes through (each gets one
outcome event, skipped ones too) and ``outputs`` their ids in the order they are tested, the
first ``MAX_ANNOUNCED`` of them: the progress has its total and its pending outputs from the
start. An outcome event has ``output`` and no ``what``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from drivers.errors import WriteError
from supervisor.core.commands import ActionSpec, ArgSpec, CommandFailed
from supervisor.core.outputs import OutputDef, OutputPort
from supervisor.core.van_state import VanState

MAX_LISTED = 8  # outputs named in the result's message
# outputs named in the start event: a van has a few dozen; the event goes to SQLite, MQTT and
# HQ, so a config with hundreds must not make it huge (its total is always there)
MAX_ANNOUNCED = 64


def register_self_test(van: VanState, port: OutputPort) -> None:
    """Register ``diag/self_test`` for the outputs declared on ``port``."""

    async def self_test(args: dict[str, Any]) -> str:
        if van.points.good("room/session/active") is True:
            raise CommandFailed("session", "a session runs in the room", "rejected")
        if van.points.good("vehicle/driving") is True:
            raise CommandFailed("driving", "the van is driving", "rejected")
        only = str(args.get("only", "*"))
        chosen = [o for o in port.outputs.values() if fnmatchcase(o.id, only)]
        if not chosen:
            raise CommandFailed("no_output", f"no output matches {only!r}", "rejected")
        van.event({"kind": "self_test", "what": "started", "total": len(chosen),
                   "outputs": [out.id for out in chosen[:MAX_ANNOUNCED]]})
        outcomes = {out.id: await _check(van, port, out) for out in chosen}
        failed = [oid for oid, (result, _) in outcomes.items() if result == "failed"]
        passed = sum(1 for result, _ in outcomes.values() if result == "ok")
        summary = (f"{passed} ok, {len(failed)} failed, "
                   f"{len(outcomes) - passed - len(failed)} skipped")
        if failed:
            raise CommandFailed("self_test_failed", f"{summary}: {', '.join(failed[:MAX_LISTED])}")
        return summary

    van.router.register(ActionSpec(
        "diag/self_test", self_test, frozenset({"technician"}),
        {"only": ArgSpec("string", required=False,
                         description="outputs to test (a glob, e.g. power/circuit/*)")},
        "Technician: switch each output and back, confirmed by its read-back"))


async def _check(van: VanState, port: OutputPort, out: OutputDef) -> tuple[str, str]:
    """Test one output; its outcome (ok, failed, skipped) and why, also as an event."""
    before = port.actual(out.id)
    if not out.self_test:
        outcome = ("skipped", "not switched by a self-test")
    elif not isinstance(before, bool):
        outcome = ("skipped", "not an on/off output, or its state is not known now")
    elif port.locked(out.id):
        outcome = ("skipped", f"locked by {out.lock}")
    else:
        outcome = await _toggle(port, out.id, before)
    van.event({"kind": "self_test", "output": out.id, "result": outcome[0],
               "detail": outcome[1]})
    return outcome


async def _toggle(port: OutputPort, output_id: str, before: bool) -> tuple[str, str]:
    """Switch to ``not before`` and back; failed if either read-back disagrees."""
    problem = ""
    try:
        back = await _switch(port, output_id, not before)
        if back is not (not before):
            problem = f"switched {'on' if not before else 'off'}, reads {back}"
    except WriteError as exc:
        problem = f"switching: {exc}"
    try:
        restored = await _switch(port, output_id, before)
        if restored is not before:
            problem += f"; NOT RESTORED: reads {restored}"
    except WriteError as exc:
        problem += f"; NOT RESTORED: {exc}"
    return ("failed", problem.lstrip("; ")) if problem else ("ok", "switched and back")


async def _switch(port: OutputPort, output_id: str, value: bool) -> object:
    """Write and read back, once more after a lost frame (one timeout on a busy RS-485 line
    is the line, not the output)."""
    try:
        return await port.write(output_id, value)
    except WriteError as exc:
        if not exc.code.startswith("bus_"):
            raise
        return await port.write(output_id, value)
