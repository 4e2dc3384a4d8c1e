"""What the publishing simulators share: counting the broker's PUBACKs."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

__all__ = ["PubAcks"]


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
