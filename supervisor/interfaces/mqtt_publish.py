"""Publishing a batch of MQTT messages with one wait for the whole batch.

paho sends its queue in order, and a broker acknowledges QoS 1 messages in the order it
received them (MQTT 5.0, 4.6 Message ordering), so once a batch's last message is on the
socket (QoS 0) or acknowledged (QoS 1), all of it is. Awaiting only that one spares each
message aiomqtt's future, timer, semaphore and gather task: most of the supervisor's CPU per
message on a busy bus. A batch cut off by a lost connection raises like any publish; the
caller keeps what it had not seen through and sends it again on the next connection.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiomqtt
from paho.mqtt.enums import MQTTErrorCode

from drivers.lost_cancel import reraise_lost_cancel


async def publish_in_order(client: aiomqtt.Client, batch: Sequence[tuple[str, bytes]], qos: int,
                           retain: bool = False) -> None:
    """Publish ``batch`` ((topic, payload) pairs) in its order; return once the broker has it
    all (QoS 1) or it is all sent (QoS 0)."""
    if not batch:
        return
    paho = client._client  # aiomqtt keeps paho's client here (aiomqtt is pinned below 3)
    for topic, payload in batch[:-1]:
        info = paho.publish(topic, payload, qos, retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
    topic, payload = batch[-1]
    await client.publish(topic, payload, qos=qos, retain=retain)
    reraise_lost_cancel()
