"""Simulated ``mqtt`` signs: the contract of ``signage/_mqtt_driver.py`` on the broker.

Each ``MqttSignSimulator`` is one sign with its own connection, as a sign in the field has:
it takes content from ``{topic}/content`` and answers on ``{topic}/ack`` (QoS 1, not retained);
``_json_sign.JsonSignModel`` has the rules. A paused sign takes messages and answers nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from typing import Any

from core.channels import sign_topics
from core.settings import Settings
from simulators._json_sign import JsonSignModel
from simulators._mqtt import mqtt_client

__all__ = ["MqttSignSimulator"]

logger = logging.getLogger(__name__)


class MqttSignSimulator:
    """One simulated sign on the broker, at the topic base ``topic``."""

    def __init__(self, model: JsonSignModel, topic: str, settings: Settings) -> None:
        self.model = model
        self.topic = topic
        self.settings = settings
        self.content_topic, self.ack_topic = sign_topics(topic)
        self._client: Any = None

    @property
    def address(self) -> str:
        """The sign's address as a city config writes it."""
        return self.topic

    async def start(self, timeout_s: float = 5.0) -> None:
        """Connect and subscribe; returns once the broker has confirmed the subscription."""
        subscribed = threading.Event()
        client = await asyncio.to_thread(
            mqtt_client, self.settings, f"sign-{self.model.name[:40]}-{secrets.token_hex(3)}")
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: subscribed.set()
        # Again on every reconnect: the broker has forgotten the subscription by then.
        client.on_connect = lambda c, *_: c.subscribe(self.content_topic, qos=1)
        client.subscribe(self.content_topic, qos=1)
        self._client = client
        if not await asyncio.to_thread(subscribed.wait, timeout_s):
            await self.stop()
            raise TimeoutError(f"sign {self.model.name}: no SUBACK within {timeout_s:g} s")
        logger.info("MQTT sign %s listens on %s", self.model.name, self.content_topic)

    async def stop(self) -> None:
        """Disconnect; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    def _on_message(self, client: Any, _userdata: object, message: Any) -> None:
        if self.model.paused:
            return
        _status, ack = self.model.take(message.payload)
        client.publish(self.ack_topic, json.dumps(ack, ensure_ascii=False), qos=1)
