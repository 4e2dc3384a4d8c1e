"""MQTT for every part: the one client factory (``mqtt_client``) and the retained
``online``/``offline`` status every service publishes, with a last will."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.channels import service_topic
from core.settings import Settings

__all__ = ["FATAL_CONNECT", "ServiceStatus", "mqtt_client"]

logger = logging.getLogger(__name__)

ROLE_REFRESH_S = 30.0  # an instance's role is published again this often
ROLE_EXPIRY_S = 90  # and, over MQTT 5, expires this long after the last time

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
    """Keeps ``parkleit/v1/{city}/services/{name}`` at ``online`` (retained) while connected,
    and, for a service that runs in pairs, this instance's role.

    The broker publishes the last will ``offline`` when the process dies or loses the link;
    ``close()`` publishes it on a clean exit. paho reconnects in the background; the status is
    published again on every connect. ``on_fatal`` hears a refusal retrying cannot fix.

    Two instances of a service share the topic: each listens to it and answers another's
    ``offline`` (its last will, or its clean exit) with ``online``, so the topic says whether
    any instance runs. Each instance's role (``set_role``: ``{"status": "online", "role":
    "leader"|"standby", "term": n}``) is retained on ``{topic}/{client_id}``, refreshed every
    ``ROLE_REFRESH_S`` and, over MQTT 5, expiring ``ROLE_EXPIRY_S`` after the last refresh: a
    dead instance's role goes by itself; ``close()`` clears it.
    """

    def __init__(self, settings: Settings, city_id: str, name: str, client_id: str,
                 on_fatal: Callable[[str], None] | None = None) -> None:
        self.topic = service_topic(city_id, name)
        self.role_topic = f"{self.topic}/{client_id}"
        self._target = settings.mqtt
        self._on_fatal = on_fatal
        self._role: str | None = None  # this instance's role document, once set
        self._closing = threading.Event()
        client = mqtt_client(settings, client_id, will=self.topic)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self._client: mqtt.Client | None = client

    def start(self) -> ServiceStatus:
        """Connect in the background (a broker that is down is retried, not fatal)."""
        assert self._client is not None
        self._client.connect_async(self._target.host, self._target.port, keepalive=30)
        self._client.loop_start()
        threading.Thread(target=self._refresh, name="service-role", daemon=True).start()
        return self

    def set_role(self, leading: bool, term: int | None = None) -> None:
        """This instance leads (with its term) or stands by; published at once."""
        self._role = json.dumps({"status": "online", "role": "leader" if leading else "standby",
                                 "term": term})
        self._publish_role()

    def close(self, timeout: float = 2.0) -> None:
        """Clear the role, publish ``offline`` and disconnect; safe to call more than once."""
        self._closing.set()
        client, self._client = self._client, None
        if client is None:
            return
        if client.is_connected():
            if self._role is not None:
                client.publish(self.role_topic, b"", qos=1, retain=True)
            client.publish(self.topic, "offline", qos=1, retain=True).wait_for_publish(timeout)
            client.disconnect()
        client.loop_stop()

    def _refresh(self) -> None:
        while not self._closing.wait(ROLE_REFRESH_S):
            self._publish_role()

    def _publish_role(self) -> None:
        client = self._client
        if client is None or self._role is None or not client.is_connected():
            return
        properties = None
        if self._target.v5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = ROLE_EXPIRY_S
        client.publish(self.role_topic, self._role, qos=1, retain=True, properties=properties)

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topic and message.payload == b"offline" \
                and not self._closing.is_set():
            client.publish(self.topic, "online", qos=1, retain=True)  # another instance left

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _props: Any) -> None:
        if reason.is_failure:
            logger.error("MQTT broker refused the connection: %s", reason)
            if str(reason) in FATAL_CONNECT and self._on_fatal is not None:
                self._on_fatal(str(reason))
            return
        client.publish(self.topic, "online", qos=1, retain=True)
        client.subscribe(self.topic, qos=1)
        self._publish_role()
        logger.info("connected to MQTT; %s is online", self.topic)
