"""What the publishing simulators share: a client, and counting the broker's PUBACKs."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.settings import Settings

__all__ = ["PubAcks", "mqtt_client"]


class PubAcks:
    """PUBACKs counted by paho's network thread.

    Waiting on each ``MQTTMessageInfo`` does not survive a reconnect: a message published
    while the connection is down carries ``MQTT_ERR_NO_CONN`` and ``wait_for_publish``
    raises, although paho keeps it and sends it (like every unacknowledged QoS 1 message)
    again once it has reconnected. So count the acknowledgements instead.
    """

    def __init__(self) -> None:
        self.acked = 0
        self.refused = 0
        self.changed = threading.Condition()

    def on_publish(self, _client: mqtt.Client, _userdata: object, _mid: int, reason: object,
                   _properties: object) -> None:
        with self.changed:
            self.acked += 1
            if getattr(reason, "is_failure", False):
                self.refused += 1
            self.changed.notify_all()

    def wait(self, outstanding: int, published: int, timeout: float) -> bool:
        """Wait until at most ``outstanding`` of ``published`` are unacknowledged."""
        with self.changed:
            return self.changed.wait_for(lambda: published - self.acked <= outstanding,
                                         timeout)


def mqtt_client(settings: Settings, client_id: str) -> mqtt.Client:
    """A connected publishing client (network loop running) for simulators and tests."""
    target = settings.mqtt
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if target.v5 else mqtt.MQTTv311)
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set(ca_certs=str(settings.MQTT_CA_FILE) if settings.MQTT_CA_FILE else None)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(1, 10)
    client.connect(target.host, target.port, keepalive=30)
    client.loop_start()
    return client
