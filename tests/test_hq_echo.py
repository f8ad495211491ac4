"""HQ's echo (supervisor/interfaces/hq_echo.py) reads what any client may publish on a van's
ping topic: only a real ping number is answered, anything else is ignored without error."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from testsupport import FUZZ

from supervisor.interfaces.hq_echo import MAX_PAYLOAD, ping_number


def test_a_ping_state_gives_its_number() -> None:
    assert ping_number(b'{"v": 17, "q": "good", "ts": 1796251906.2}') == 17


def test_anything_else_is_no_ping() -> None:
    for payload in (b"", b"17", b"null", b"[]", b'{"v": "17"}', b'{"v": true}', b'{"v": 0}',
                    b'{"v": -3}', b'{"v": 1.5}', b'{"v": 9007199254740993}', b"\xff\xfe",
                    b'{"v": 1}' + b" " * MAX_PAYLOAD):
        assert ping_number(payload) is None, payload


@settings(FUZZ)
@given(payload=st.binary(max_size=2 * MAX_PAYLOAD))
def test_any_bytes_are_a_ping_number_or_nothing(payload: bytes) -> None:
    seq = ping_number(payload)
    assert seq is None or (isinstance(seq, int) and 0 < seq < 2**53)


@settings(FUZZ)
@given(value=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                          lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=8))
def test_any_json_is_a_ping_number_or_nothing(value: object) -> None:
    payload = json.dumps({"v": value}).encode()
    seq = ping_number(payload)
    if seq is not None:
        assert seq == value and type(value) is int
