"""The van broker's bridge notifications as the supervisor reads them (mqtt_bridge.bridge_note):
anyone able to publish under the van's prefix could send garbage there."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from testsupport import FUZZ

from supervisor.interfaces.mqtt_bridge import BRIDGE_NAME, bridge_note


def test_up_down_and_garbage() -> None:
    assert bridge_note("bridge/hq", b"1") == ("comms/bridge/hq", True)
    assert bridge_note("bridge/hq", b"0\n") == ("comms/bridge/hq", False)
    assert bridge_note("bridge/hq", b"yes") == ("comms/bridge/hq", None)
    for topic in ("bridge/", "bridge/../x", "bridge/HQ", "bridge/a/b", "state/bridge/hq",
                  "bridge/" + "x" * 33):
        assert bridge_note(topic, b"1") is None, topic


@settings(FUZZ)
@given(suffix=st.text(max_size=80), payload=st.binary(max_size=64))
def test_any_topic_and_payload_give_a_bridge_point_or_nothing(suffix: str,
                                                               payload: bytes) -> None:
    note = bridge_note(suffix, payload)
    if note is None:
        return
    point, up = note
    name = point.removeprefix("comms/bridge/")
    assert suffix == f"bridge/{name}" and BRIDGE_NAME.fullmatch(name)
    assert up is (True if payload.strip() == b"1" else False if payload.strip() == b"0"
                  else None)
