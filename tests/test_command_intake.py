"""Hostile command payloads: each gets one clear result (with its id when it can be read),
nothing is applied, nothing raises. Examples from the hostile test report, then properties
over arbitrary input (hypothesis, with the budget of testsupport.FUZZ)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testsupport import FUZZ

from supervisor.core.commands import ActionSpec, ArgSpec, CommandRouter, Result
from supervisor.core.storage import Storage
from supervisor.core.van_state import dumps

STATUSES = {"done", "rejected", "failed", "expired", "duplicate"}


class Rig:
    def __init__(self, db: Path) -> None:
        self.applied: list[dict[str, Any]] = []
        self.router = CommandRouter(Storage(db), wall=lambda: 1_800_000_000.0)

        async def switch(args: dict[str, Any]) -> str:
            self.applied.append(args)
            return "ok"

        self.router.register(ActionSpec("power/circuit", switch, frozenset({"crew"}), {
            "circuit": ArgSpec("enum", enum=("fridge",)), "on": ArgSpec("bool"),
            "level": ArgSpec("number", required=False, min=0, max=100),
            "note": ArgSpec("string", required=False)}))


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path / "db.sqlite")


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(("payload", "cid", "code"), [
    (b'{"id":"d1","args":{"circuit":"fridge","on":true,"x":' + deep(2000).encode() + b"}}",
     None, "too_deep"),
    (b'{"id":"d2","args":{"circuit":"fridge","on":true,"level":[[[[[1]]]]]}}', "d2",
     "too_deep"),
    (b'{"id":"n1","args":{"circuit":"fridge","on":true,"level":' + b"9" * 400 + b"}}",
     "n1", "bad_number"),
    (b'{"id":"n2","args":{"circuit":"fridge","on":true},"expires":' + b"9" * 400 + b"}",
     "n2", "bad_number"),
    (b'{"id":"n3","args":{"circuit":"fridge","on":true},"expires":NaN}', "n3", "bad_number"),
    (b'{"id":"n4","args":{"circuit":"fridge","on":true,"level":1e999}}', "n4", "bad_number"),
    (b'{"id":"\\ud800","args":{"circuit":"fridge","on":true}}', None, "bad_text"),
    (b'{"id":"s1","args":{"circuit":"fridge","on":true,"note":"\\udc00"}}', "s1", "bad_text"),
    (b'{"id":"s2","args":{"circuit":"fridge","on":true,"note":"\xed\xa0\x80"}}', None,
     "bad_text"),
    (b'{"id":"s3","args":{"circuit":"fridge","on":true,"note":"' + b"x" * 300 + b'"}}', "s3",
     "too_long"),
    (b'{"id":"big","args":{"circuit":"fridge","on":true,"note":"' + b"x" * 5000 + b'"}}',
     "big", "too_large"),
    (b'{"id":"u1","args":{"circuit":"fridge","on":true},"what":1}', "u1", "bad_request"),
    (b'{"id":"","args":{}}', None, "bad_id"),
    (b"\x00\xff", None, "bad_text"),
])
async def test_hostile_payloads_are_refused_with_their_id(
    rig: Rig, payload: bytes, cid: str | None, code: str,
) -> None:
    result = await rig.router.submit("power/circuit", payload, "crew", "mqtt")
    assert (result.id, result.status, result.code) == (cid, "rejected", code)
    assert rig.applied == []
    dumps(result.as_dict())  # the answer itself can be sent


async def test_a_normal_command_still_passes(rig: Rig) -> None:
    payload = json.dumps({"id": "ok-1", "args": {"circuit": "fridge", "on": True,
                                                  "level": 12.5, "note": "zażółć"}})
    result = await rig.router.submit("power/circuit", payload, "crew", "mqtt")
    assert result.status == "done"
    assert rig.applied == [{"circuit": "fridge", "on": True, "level": 12.5, "note": "zażółć"}]


def check_answer(result: Result, rig: Rig, applied_before: int) -> None:
    assert result.status in STATUSES
    assert len(dumps(result.as_dict())) < 2048  # a bounded answer, always sendable
    if result.status == "done":
        assert len(rig.applied) == applied_before + 1
        args = rig.applied[-1]
        assert args["circuit"] == "fridge" and isinstance(args["on"], bool)
    else:
        assert len(rig.applied) == applied_before


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20)


@FUZZ
@given(payload=st.binary(max_size=600))
async def test_any_bytes_get_one_answer(rig: Rig, payload: bytes) -> None:
    before = len(rig.applied)
    check_answer(await rig.router.submit("power/circuit", payload, "crew", "mqtt"), rig, before)


@FUZZ
@given(cid=st.text(max_size=80), args=json_values, expires=json_values,
       extra=st.dictionaries(st.sampled_from(["x", "args", "id"]), json_values, max_size=2))
async def test_any_json_command_gets_one_answer(
    rig: Rig, cid: str, args: object, expires: object, extra: dict[str, object],
) -> None:
    body = {"id": cid, "args": args, "expires": expires, **extra}
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    before = len(rig.applied)
    result = await rig.router.submit("power/circuit", payload, "crew", "mqtt")
    check_answer(result, rig, before)
    if readable(body.get("id")):
        assert result.id == body["id"]


def readable(cid: object) -> bool:
    """An id the answer must carry: 1-64 characters of UTF-8 text without NUL."""
    if not isinstance(cid, str) or not 0 < len(cid) <= 64 or "\0" in cid:
        return False
    try:
        cid.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@FUZZ
@given(action=st.text(max_size=200), role=st.sampled_from(["crew", "hq", "x" * 300, ""]))
async def test_any_action_and_role_get_one_answer(rig: Rig, action: str, role: str) -> None:
    before = len(rig.applied)
    payload = b'{"id":"a1","args":{"circuit":"fridge","on":true}}'
    result = await rig.router.submit(action, payload, role, "mqtt")
    if action != "power/circuit" or role != "crew":
        assert result.status == "rejected"
    check_answer(result, rig, before)
