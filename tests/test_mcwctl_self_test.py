"""``mcwctl self-test``'s progress from the self-test's events (diag_cli.SelfTestProgress): its
total and the outputs still to test come from the event that starts the run; what the broker
carries is untrusted, so odd totals are ignored and the list is bounded."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from testsupport import FUZZ

from supervisor.interfaces.diag_cli import MAX_PENDING, SelfTestProgress

OUTPUTS = ["power/circuit/water_pump", "power/circuit/fridge", "room/buzzer"]


def started(total: Any, outputs: Any) -> dict[str, Any]:
    return {"kind": "self_test", "what": "started", "total": total, "outputs": outputs}


def outcome(output: str, result: str = "ok") -> dict[str, Any]:
    return {"kind": "self_test", "output": output, "result": result, "detail": "switched and back"}


def shown(events: list[dict[str, Any]]) -> tuple[SelfTestProgress, str]:
    """The progress after ``events``, and what it printed (the bar's last state included)."""
    out = io.StringIO()
    progress = SelfTestProgress(Console(file=out, width=120, color_system=None,
                                        force_terminal=False, highlight=False))
    with progress:
        for event in events:
            progress.event(event)
    return progress, out.getvalue()


def task(progress: SelfTestProgress) -> Any:
    return progress.progress.tasks[0]


def test_the_total_and_the_outputs_to_test_come_from_the_start() -> None:
    progress, _ = shown([started(3, OUTPUTS)])
    assert task(progress).total == 3 and task(progress).completed == 0
    assert task(progress).description == "self-test: power/circuit/water_pump"  # being switched
    progress, text = shown([started(3, OUTPUTS), outcome(OUTPUTS[0]),
                            outcome(OUTPUTS[1], "failed")])
    assert (task(progress).total, task(progress).completed) == (3, 2)
    assert task(progress).description == "self-test: room/buzzer"
    assert "testing 3 outputs: power/circuit/water_pump, power/circuit/fridge, room/buzzer" \
        in text
    assert "ok: power/circuit/water_pump (switched and back)" in text
    assert "failed: power/circuit/fridge" in text
    assert text.rstrip().endswith("2/3")  # the bar's last state: 2 of 3


def test_it_says_when_every_output_has_its_outcome() -> None:
    """mcwctl waits a moment past the answer for outcomes still on their way until then."""
    progress = SelfTestProgress(Console(file=io.StringIO()))
    assert progress.event(outcome(OUTPUTS[0])) is False  # no total known: never complete
    progress = SelfTestProgress(Console(file=io.StringIO()))
    assert progress.event(started(2, OUTPUTS[:2])) is False
    assert progress.event(outcome(OUTPUTS[0])) is False
    assert progress.event({"kind": "power", "what": "shed"}) is False
    assert progress.event(outcome(OUTPUTS[1])) is True


def test_a_run_with_more_outputs_than_listed_says_how_many_more() -> None:
    progress, text = shown([started(70, OUTPUTS)])
    assert task(progress).total == 70
    assert "testing 70 outputs: " in text and "room/buzzer and 67 more" in text


@pytest.mark.parametrize("total", ["3", True, -1, 3.0, None, 10**20])
def test_a_total_that_is_not_a_count_is_not_taken(total: Any) -> None:
    progress, text = shown([started(total, OUTPUTS), outcome(OUTPUTS[0])])
    assert task(progress).total is None and task(progress).completed == 1
    assert "testing" not in text
    assert text.rstrip().endswith("1/?")


def test_the_outputs_listed_are_bounded_and_escaped() -> None:
    listed = [f"x/{n}\x1b[2J" for n in range(1000)]
    progress, text = shown([started(1000, listed)])
    assert len(progress.pending) == MAX_PENDING
    assert "\x1b" not in text and "x/0\\x1b[2J" in text
    progress, _ = shown([started(2, "power/circuit/fridge")])  # not a list
    assert progress.pending == [] and task(progress).description == "self-test"


def test_other_events_do_not_move_the_progress() -> None:
    progress, text = shown([started(3, OUTPUTS), {"kind": "power", "what": "shed"},
                            {"kind": "command", "output": "x"}])
    assert task(progress).completed == 0
    assert len(text.splitlines()) == 2  # the start's line and the bar: no outcome printed


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12)
EVENT = st.fixed_dictionaries(
    {"kind": st.sampled_from(["self_test", "command", "alarm"]) | JSONISH},
    optional={"what": st.just("started") | JSONISH, "total": JSONISH,
              "outputs": st.lists(JSONISH, max_size=80) | JSONISH, "output": JSONISH,
              "result": JSONISH, "detail": JSONISH})


@settings(FUZZ)
@given(events=st.lists(EVENT, max_size=8))
def test_any_events_from_the_broker_keep_the_progress_sane(events: list[dict[str, Any]]) -> None:
    """Whatever the broker carries as events: no error, nothing that drives the terminal
    printed, at most MAX_PENDING outputs waiting."""
    progress, text = shown(events)
    assert len(progress.pending) <= MAX_PENDING
    assert "\x1b" not in text and "\x07" not in text
