"""Home Assistant's MQTT discovery from the real supervisor, switched on in the vehicle
config: the entities' configs are on the broker, and published again when Home Assistant
announces itself (its birth message), so they never stay unavailable after HA restarts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import suppress

import aiomqtt
import pytest

from conftest import Van, start_van
from harness import wait_until

SOC = "homeassistant/sensor/mcw_demo/point-power-battery-soc/config"


@pytest.fixture
async def van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    edit = lambda text: text + "\n[home_assistant]\nenabled = true\n"  # noqa: E731
    async with start_van(monkeypatch, {}, config_edit=edit) as v:
        yield v


async def test_discovery_is_on_the_broker_and_sent_again_when_home_assistant_is_back(
        van: Van) -> None:
    seen: list[tuple[str, bytes, bool]] = []
    async with aiomqtt.Client("127.0.0.1", van.broker.port) as ha:
        await ha.subscribe("homeassistant/#", qos=1)

        async def collect() -> None:
            async for message in ha.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                seen.append((message.topic.value, payload, message.retain))

        task = asyncio.create_task(collect())
        try:
            await wait_until(lambda: any(t == SOC for t, _, _ in seen), what="the SoC sensor")
            config = json.loads(next(p for t, p, _ in seen if t == SOC))
            assert config["unit_of_measurement"] == "%"
            assert config["state_topic"] == "mcw/v1/demo/state/power/battery/soc"
            assert config["device"]["identifiers"] == ["mcw_demo"]
            before = sum(1 for t, _, _ in seen if t == SOC)
            await ha.publish("homeassistant/status", b"online", qos=1)  # HA's birth
            await wait_until(lambda: sum(1 for t, _, _ in seen if t == SOC) > before,
                             what="the configs again after HA's birth")
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
