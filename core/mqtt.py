"""MQTT for every part: the one client factory (``mqtt_client``) and the retained
``online``/``offline`` status every service publishes, with a last will."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.channels import service_topic
from core.settings import Settings

__all__ = ["FATAL_CONNECT", "ServiceStatus", "mqtt_client"]

logger = logging.getLogger(__name__)

# Refusals that retrying cannot fix.
FATAL_CONNECT = frozenset({"Bad user name or password", "Not authorized",
                           "Client identifier not valid", "Banned"})


def mqtt_client(settings: Settings, client_id: str, *, reconnect_max_s: float = 30.0,
                will: str | None = None, **options: Any) -> mqtt.Client:
    """A paho client for the broker of ``settings`` (protocol, account, TLS), not connected.

    ``will``: a topic that gets ``offline`` (retained) should the connection die; ``options``
    go to ``paho.mqtt.client.Client`` (``clean_session``, ``manual_ack``).
    """
    target = settings.mqtt
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if target.v5 else mqtt.MQTTv311, **options)
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        ca = settings.MQTT_CA_FILE
        client.tls_set(ca_certs=str(ca) if ca else None)
    if will is not None:
        client.will_set(will, "offline", qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=int(reconnect_max_s))
    return client


class ServiceStatus:
    """Keeps ``parkleit/v1/{city}/services/{name}`` at ``online`` (retained) while connected.

    The broker publishes the last will ``offline`` when the process dies or loses the link;
    ``close()`` publishes it on a clean exit. paho reconnects in the background; the status is
    published again on every connect. ``on_fatal`` hears a refusal retrying cannot fix.
    """

    def __init__(self, settings: Settings, city_id: str, name: str, client_id: str,
                 on_fatal: Callable[[str], None] | None = None) -> None:
        self.topic = service_topic(city_id, name)
        self._target = settings.mqtt
        self._on_fatal = on_fatal
        client = mqtt_client(settings, client_id, will=self.topic)
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
