"""The ``mqtt`` sign driver: the JSON content (``_json_sign.py``) published to the sign's topic.

A sign's ``address`` is its topic base, e.g. ``parkleit/v1/zeitz/signs/zeitz-vms-b91-weissenfels``;
the broker is the process's ``MQTT_URL``. Per push:

- the central publishes the content to ``{address}/content``, QoS 1, **not retained**: a
  retained content would greet a sign that reboots hours later with stale counts; the
  keep-alive pushes soon enough instead;
- the sign answers on ``{address}/ack`` (QoS 1, not retained) with the acknowledgement carrying
  the same ``seq``; ``"ok": false`` with a ``reason`` is a refusal, and no acknowledgement
  within ``timeout_s`` (waiting for the broker included) is a SignError too.

Plain topics and payloads, no MQTT 5 response-topic properties, so signs and brokers that speak
only MQTT 3.1.1 work as well.

One connection serves every mqtt sign. It assumes the link will drop: paho reconnects with
backoff, and each new connection subscribes again to the ack topic of every sign pushed to so
far. A push waits for its own acknowledgement only (matched by topic and ``seq``), so a silent
sign delays nobody else; a lost connection fails the pushes waiting on it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import paho.mqtt.client as mqtt

from core.channels import sign_topics
from core.city import Sign
from core.mqtt import mqtt_client
from core.settings import Settings, get_settings
from signage._content import Ack, SignContent, SignError
from signage._json_sign import Sequencer, content_message, read_ack

__all__ = ["MqttDriver"]

logger = logging.getLogger(__name__)

_LOST = "the connection to the MQTT broker was lost"
_T = TypeVar("_T")


class MqttDriver:
    """Signs on the broker: one connection for all of them, acknowledgements matched by seq."""

    def __init__(self, settings: Settings | None = None, *, timeout_s: float = 3.0,
                 duration_s: int | None = None, client_id: str | None = None) -> None:
        self.settings = settings  # None: the process's settings, read at the first push
        self.timeout_s = timeout_s
        self.duration_s = duration_s  # None: the sign's stale_after_s
        self.client_id = client_id
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._refused: str | None = None  # why the broker turned the last connection down
        self._sequence = Sequencer()
        self._locks: dict[str, asyncio.Lock] = {}
        self._ack_topics: set[str] = set()
        # Owned by the event loop; paho's thread only hands its callbacks over (_forward).
        self._subscriptions: dict[str, asyncio.Future[str | None]] = {}  # None: subscribed
        self._suback: dict[int, tuple[str, asyncio.Future[str | None]]] = {}
        self._acks: dict[tuple[str, int], asyncio.Future[bytes | None]] = {}  # None: lost

    async def push(self, sign: Sign, content: SignContent) -> Ack:
        """Publish ``content`` to ``sign``; SignError if it refuses or does not acknowledge."""
        try:
            content_topic, ack_topic = sign_topics(sign.address)
        except ValueError as exc:
            raise SignError(f"sign {sign.id}: {exc}") from None
        client = self._started()
        lock = self._locks.setdefault(sign.id, asyncio.Lock())
        waiting_for = "connection to the MQTT broker"
        try:
            async with asyncio.timeout(self.timeout_s), lock:
                await self._connected.wait()
                waiting_for = f"SUBACK from the broker for {ack_topic}"
                await self._subscribe(client, sign, ack_topic)
                waiting_for = "acknowledgement"
                seq = self._sequence.next(sign.id)
                message = content_message(sign, content, seq=seq,
                                          duration_s=self.duration_s or sign.stale_after_s)
                answer = await self._publish(client, sign, content_topic, ack_topic, seq,
                                             message)
        except TimeoutError:
            why = f" (the broker refused it: {self._refused})" if self._refused else ""
            raise SignError(f"sign {sign.id}: no {waiting_for} within {self.timeout_s:g} s"
                            f"{why}") from None
        return read_ack(sign, seq, answer)

    async def close(self) -> None:
        """Disconnect from the broker; idempotent."""
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._connected.clear()  # before: this is no loss to warn about
        self._connection_lost(client, "closed")

    # -- the connection (loop thread)

    def _started(self) -> Any:
        """The client, connecting in the background on first use."""
        if self._client is not None:
            return self._client
        settings = self.settings or get_settings()
        target = settings.mqtt
        self._loop = asyncio.get_running_loop()
        client = mqtt_client(settings, self.client_id or f"parkleit-signs-{secrets.token_hex(4)}")
        client.on_connect = lambda c, _u, _f, reason, _p: self._forward(
            c, self._connection_made, c, reason)
        client.on_disconnect = lambda c, _u, _f, reason, _p: self._forward(
            c, self._connection_lost, c, str(reason))
        client.on_subscribe = lambda c, _u, mid, reasons, _p: self._forward(
            c, self._subscribed, mid, reasons)
        client.on_message = lambda c, _u, message: self._forward(
            c, self._ack_arrived, message.topic, message.payload)
        # paho keeps trying (with the backoff above) while the broker is down.
        client.connect_async(target.host, target.port, keepalive=30)
        client.loop_start()
        self._client = client
        return client

    def _forward(self, client: Any, handler: Callable[..., None], *args: Any) -> None:
        """From paho's thread: run ``handler`` in the event loop, if ``client`` is still ours."""
        def run() -> None:
            if client is self._client:
                handler(*args)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                self._loop.call_soon_threadsafe(run)

    def _connection_made(self, client: Any, reason: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            logger.error("MQTT broker refused the sign connection: %s", reason)
            return
        self._refused = None
        logger.info("sign driver connected to MQTT")
        for topic in self._ack_topics:  # a new session has no subscriptions
            self._request_subscription(client, topic)
        self._connected.set()

    def _connection_lost(self, _client: Any, reason: str) -> None:
        if self._connected.is_set():
            logger.warning("sign driver lost MQTT: %s", reason)
        self._connected.clear()
        for subscription in self._subscriptions.values():
            _resolve(subscription, _LOST)
        for answer in self._acks.values():
            _resolve(answer, None)
        self._subscriptions.clear()
        self._suback.clear()

    # -- subscriptions and acknowledgements (loop thread)

    async def _subscribe(self, client: Any, sign: Sign, topic: str) -> None:
        self._ack_topics.add(topic)
        future = self._subscriptions.get(topic)
        if future is None:
            future = self._request_subscription(client, topic)
        problem = await asyncio.shield(future)  # other pushes may wait on it too
        if problem is not None:
            if self._subscriptions.get(topic) is future:
                del self._subscriptions[topic]  # try again at the next push
            raise SignError(f"sign {sign.id}: {problem}")

    def _request_subscription(self, client: Any, topic: str) -> asyncio.Future[str | None]:
        assert self._loop is not None
        future: asyncio.Future[str | None] = self._loop.create_future()
        self._subscriptions[topic] = future
        result, mid = client.subscribe(topic, qos=1)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            future.set_result(f"cannot subscribe to {topic}: {mqtt.error_string(result)}")
        else:
            self._suback[mid] = (topic, future)
        return future

    def _subscribed(self, mid: int, reasons: list[Any]) -> None:
        topic, future = self._suback.pop(mid, ("", None))
        if future is None:
            return
        refused = next((reason for reason in reasons if reason.is_failure), None)
        _resolve(future, None if refused is None else
                 f"the broker refused the subscription to {topic}: {refused}")

    async def _publish(self, client: Any, sign: Sign, topic: str, ack_topic: str, seq: int,
                       message: bytes) -> bytes:
        assert self._loop is not None
        key = (ack_topic, seq)
        answer: asyncio.Future[bytes | None] = self._loop.create_future()
        self._acks[key] = answer
        try:
            info = client.publish(topic, message, qos=1, retain=False)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise SignError(f"sign {sign.id}: cannot publish: {mqtt.error_string(info.rc)}")
            body = await answer
        finally:
            self._acks.pop(key, None)
        if body is None:
            raise SignError(f"sign {sign.id}: {_LOST}")
        return body

    def _ack_arrived(self, topic: str, payload: bytes) -> None:
        try:
            seq = json.loads(payload).get("seq")
        except (ValueError, AttributeError):
            seq = None
        future = self._acks.get((topic, seq)) if isinstance(seq, int) else None
        if future is None:  # late (its push timed out), foreign or garbled
            logger.debug("ignored an acknowledgement on %s: %.200r", topic, payload)
            return
        _resolve(future, payload)


def _resolve(future: asyncio.Future[_T], value: _T) -> None:
    if not future.done():
        future.set_result(value)
