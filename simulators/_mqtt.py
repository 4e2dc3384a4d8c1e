"""What the publishing simulators share: a client, how far the broker may fall behind, and
counting the broker's PUBACKs."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from core import mqtt as broker
from core.settings import Settings

__all__ = ["ACK_TIMEOUT_S", "MAX_OUTSTANDING", "NO_MATCHING_SUBSCRIBERS", "PubAcks",
           "RoutedPublisher", "mqtt_client"]

NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK reason: the broker took it, nobody gets it
# Backpressure: with more than MAX_OUTSTANDING messages unacknowledged a simulator stops
# publishing until the broker has caught up, waiting ACK_TIMEOUT_S at the most each time (and
# as long for the last PUBACKs at the end).
MAX_OUTSTANDING = 5000
ACK_TIMEOUT_S = 60.0


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
    client = broker.mqtt_client(settings, client_id, reconnect_max_s=10)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(target.host, target.port, keepalive=30)
    client.loop_start()
    return client


@dataclass(slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    first: float  # monotonic time of the first publish
    delay: float  # before the next attempt, should this one reach no subscriber


class RoutedPublisher:
    """QoS 1 publishing that books PUBACKs and publishes again what reached no subscriber.

    Mosquitto 2.0 does not persist shared subscriptions: after a broker restart, until ingest
    has reconnected and subscribed again, a message matches no one and its PUBACK says so
    (MQTT 5 reason 0x10). Such a message is published again after ``retry_min_s``, doubling
    up to ``retry_max_s``, until ``retry_for_s`` after its first publish; then it is given up
    (``unrouted``: with no subscriber at all nothing would ever take it). One publishing
    thread calls ``publish``, ``settle`` (often: it books PUBACKs and sends what is due),
    ``wait`` and ``give_up``; paho's network thread only hands PUBACKs over.
    """

    def __init__(self, client: mqtt.Client, *, retry_min_s: float = 0.25,
                 retry_max_s: float = 2.0, retry_for_s: float = 30.0) -> None:
        self.client = client
        self.retry_min_s, self.retry_max_s, self.retry_for_s = retry_min_s, retry_max_s, retry_for_s
        self.acked = 0  # taken by the broker and routed (MQTT 3.1.1: taken)
        self.refused = 0  # PUBACK with a failure reason (>= 0x80)
        self.republished = 0  # publishes again after "No matching subscribers"
        self.unrouted = 0  # given up: no subscriber took them
        self._changed = threading.Condition()
        self._acks: list[tuple[int, int]] = []  # (mid, reason code), from paho's thread
        self._pending: dict[int, _Outgoing] = {}  # mid -> message awaiting its PUBACK
        self._retry: list[tuple[float, int, _Outgoing]] = []  # heap of (due, order, message)
        self._order = itertools.count()
        client.on_publish = self._on_publish

    @property
    def outstanding(self) -> int:
        """Messages awaiting a PUBACK or a retry."""
        return len(self._pending) + len(self._retry)

    @property
    def unacknowledged(self) -> int:
        """Messages the broker has not taken (yet) or refused."""
        return len(self._pending) + self.refused

    def publish(self, topic: str, payload: bytes | str) -> None:
        """Publish with QoS 1 (paho queues it while the connection is down)."""
        data = payload.encode() if isinstance(payload, str) else payload
        self._send(_Outgoing(topic, data, time.monotonic(), self.retry_min_s))

    def _send(self, message: _Outgoing) -> None:
        # Not under self._changed: paho holds its own lock while it calls on_publish.
        info = self.client.publish(message.topic, message.payload, qos=1)
        self._pending[info.mid] = message

    def _on_publish(self, _client: mqtt.Client, _userdata: object, mid: int, reason: object,
                    _properties: object) -> None:
        with self._changed:
            self._acks.append((mid, int(getattr(reason, "value", 0))))
            self._changed.notify_all()

    def settle(self, *, retry: bool = True) -> None:
        """Book the PUBACKs received so far; with ``retry`` publish again what is due."""
        now = time.monotonic()
        with self._changed:
            acks, self._acks = self._acks, []
        for mid, code in acks:
            # Publishes are booked in this thread right after paho took them, so a PUBACK
            # settled here always finds its message; one that does not is a stray repeat.
            message = self._pending.pop(mid, None)
            if message is None:
                continue
            if code == NO_MATCHING_SUBSCRIBERS:
                if now - message.first >= self.retry_for_s:
                    self.unrouted += 1
                else:
                    heapq.heappush(self._retry, (now + message.delay, next(self._order),
                                                 message))
                    message.delay = min(message.delay * 2, self.retry_max_s)
            elif code >= 0x80:
                self.refused += 1
            else:
                self.acked += 1
        while retry and self._retry and self._retry[0][0] <= now:
            self.republished += 1
            self._send(heapq.heappop(self._retry)[2])

    def wait(self, outstanding: int, timeout: float, *, retry: bool = True) -> bool:
        """Settle until at most ``outstanding`` messages await a PUBACK (or, with ``retry``,
        a retry too); False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.settle(retry=retry)
            waiting = self.outstanding if retry else len(self._pending)
            if waiting <= outstanding:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                if not self._acks:
                    self._changed.wait(min(remaining, 0.05))

    def give_up(self) -> int:
        """Give up the messages still waiting for a retry; how many."""
        count = len(self._retry)
        self.unrouted += count
        self._retry.clear()
        return count
