"""The retained ``online``/``offline`` status every service publishes, with a last will."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.settings import Settings

__all__ = ["FATAL_CONNECT", "ServiceStatus"]

logger = logging.getLogger(__name__)

# Refusals that retrying cannot fix.
FATAL_CONNECT = frozenset({"Bad user name or password", "Not authorized",
                           "Client identifier not valid", "Banned"})


class ServiceStatus:
    """Keeps ``parkleit/v1/{city}/services/{name}`` at ``online`` (retained) while connected.

    The broker publishes the last will ``offline`` when the process dies or loses the link;
    ``close()`` publishes it on a clean exit. paho reconnects in the background; the status is
    published again on every connect. ``on_fatal`` hears a refusal retrying cannot fix.
    """

    def __init__(self, settings: Settings, city_id: str, name: str, client_id: str,
                 on_fatal: Callable[[str], None] | None = None) -> None:
        self.topic = f"parkleit/v1/{city_id}/services/{name}"
        self._target = settings.mqtt
        self._on_fatal = on_fatal
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5 if self._target.v5 else mqtt.MQTTv311)
        if self._target.username:
            client.username_pw_set(self._target.username, self._target.password)
        if self._target.tls:
            ca = settings.MQTT_CA_FILE
            client.tls_set(ca_certs=str(ca) if ca else None)
        client.will_set(self.topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        self._client: mqtt.Client | None = client

    def start(self) -> ServiceStatus:
        """Connect in the background (a broker that is down is retried, not fatal)."""
        assert self._client is not None
        self._client.connect_async(self._target.host, self._target.port, keepalive=30)
        self._client.loop_start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Publish ``offline`` and disconnect; safe to call more than once."""
        client, self._client = self._client, None
        if client is None:
            return
        if client.is_connected():
            client.publish(self.topic, "offline", qos=1, retain=True).wait_for_publish(timeout)
            client.disconnect()
        client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _props: Any) -> None:
        if reason.is_failure:
            logger.error("MQTT broker refused the connection: %s", reason)
            if str(reason) in FATAL_CONNECT and self._on_fatal is not None:
                self._on_fatal(str(reason))
            return
        client.publish(self.topic, "online", qos=1, retain=True)
        logger.info("connected to MQTT; %s is online", self.topic)
