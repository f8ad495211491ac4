"""Command validation: every bad command gets one clear rejection and nothing is applied."""

import json
from pathlib import Path
from typing import Any

import pytest

from supervisor.core.commands import ActionSpec, ArgSpec, CommandFailed, CommandRouter
from supervisor.core.storage import Storage


@pytest.fixture
def router(tmp_path: Path) -> tuple[CommandRouter, list[dict[str, Any]]]:
    applied: list[dict[str, Any]] = []
    now = [1_800_000_000.0]

    async def switch(args: dict[str, Any]) -> str:
        applied.append(args)
        if args["circuit"] == "broken":
            raise CommandFailed("not_confirmed", "relay did not switch")
        return "ok"

    r = CommandRouter(Storage(tmp_path / "db.sqlite"), wall=lambda: now[0])
    r.register(ActionSpec("power/circuit", switch, frozenset({"crew", "hq"}), {
        "circuit": ArgSpec("enum", enum=("fridge", "broken")),
        "on": ArgSpec("bool"),
        "level": ArgSpec("number", required=False, min=0, max=100),
    }))
    return r, applied


def cmd(cid: str | None = "c1", **body: Any) -> bytes:
    payload: dict[str, Any] = {"args": {"circuit": "fridge", "on": True}, **body}
    if cid is not None:
        payload["id"] = cid
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (cmd(None), "bad_id"),
        (cmd("x" * 65), "bad_id"),
        (cmd(args={"circuit": "fridge"}), "bad_args"),
        (cmd(args={"circuit": "fridge", "on": True, "extra": 1}), "bad_args"),
        (cmd(args={"circuit": "fridge", "on": "yes"}), "wrong_type"),
        (cmd(args={"circuit": "oven", "on": True}), "out_of_range"),
        (cmd(args={"circuit": "fridge", "on": True, "level": 101}), "out_of_range"),
        (cmd(args={"circuit": "fridge", "on": True, "level": True}), "wrong_type"),
        (cmd(expires="tomorrow"), "bad_expires"),
        (cmd(color="red"), "bad_request"),
    ],
)
async def test_malformed_commands_are_rejected_and_not_applied(
    router: tuple[CommandRouter, list[dict[str, Any]]], payload: bytes, code: str
) -> None:
    r, applied = router
    result = await r.submit("power/circuit", payload, "crew", "test")
    assert (result.status, result.code) == ("rejected", code)
    assert applied == []


async def test_id_is_echoed_in_rejection_when_readable(
    router: tuple[CommandRouter, list[dict[str, Any]]],
) -> None:
    r, _ = router
    result = await r.submit("power/circuit", cmd("abc", args={"on": 1}), "crew", "test")
    assert result.as_dict()["id"] == "abc"


async def test_unknown_action_and_forbidden_role(
    router: tuple[CommandRouter, list[dict[str, Any]]],
) -> None:
    r, applied = router
    assert (await r.submit("power/nope", cmd(), "crew", "t")).code == "unknown_action"
    assert (await r.submit("power/circuit", cmd(), "technician", "t")).code == "forbidden"
    assert applied == []


async def test_duplicate_id_not_applied_twice_even_after_restart(
    router: tuple[CommandRouter, list[dict[str, Any]]], tmp_path: Path
) -> None:
    r, applied = router
    assert (await r.submit("power/circuit", cmd("same"), "crew", "t")).status == "done"
    assert (await r.submit("power/circuit", cmd("same"), "crew", "t")).status == "duplicate"
    again = CommandRouter(Storage(tmp_path / "db.sqlite"))
    again.actions = r.actions
    assert (await again.submit("power/circuit", cmd("same"), "crew", "t")).status == "duplicate"
    assert len(applied) == 1


async def test_expired_command_is_not_applied(
    router: tuple[CommandRouter, list[dict[str, Any]]],
) -> None:
    r, applied = router
    late = await r.submit("power/circuit", cmd("e1", expires="2000-01-01T00:00:00Z"), "hq", "t")
    assert late.status == "expired"
    fresh = await r.submit("power/circuit", cmd("e2", expires=1_900_000_000.0), "hq", "t")
    assert fresh.status == "done"
    assert len(applied) == 1


async def test_failed_confirmation_is_reported(
    router: tuple[CommandRouter, list[dict[str, Any]]],
) -> None:
    r, _ = router
    result = await r.submit("power/circuit", cmd(args={"circuit": "broken", "on": True}),
                            "crew", "t")
    assert (result.status, result.code) == ("failed", "not_confirmed")


async def test_a_role_the_action_does_not_name_is_refused_until_granted(
    router: tuple[CommandRouter, list[dict[str, Any]]],
) -> None:
    r, applied = router
    result = await r.submit("power/circuit", cmd("t1"), "technician", "mqtt")
    assert (result.status, result.code) == ("rejected", "forbidden")
    assert applied == []
    assert r.grant({"technician": ("power/circuit",)}) is None
    assert (await r.submit("power/circuit", cmd("t2"), "technician", "mqtt")).status == "done"
    meta = next(a for a in r.meta() if a["id"] == "power/circuit")
    assert meta["roles"] == ["crew", "hq", "technician"]


def test_a_grant_of_an_unknown_action_is_named(
    router: tuple[CommandRouter, list[dict[str, Any]]],
) -> None:
    r, _ = router
    assert r.grant({"hq": ("power/circuit", "power/teleport")}) == "hq[1]: no action " \
        "'power/teleport'"


async def test_after_shutdown_began_every_command_is_refused(
    router: tuple[CommandRouter, list[dict[str, Any]]],
) -> None:
    r, applied = router
    r.close()
    result = await r.submit("power/circuit", cmd("s1"), "crew", "panel")
    assert (result.id, result.status, result.code) == ("s1", "rejected", "shutting_down")
    assert applied == []
