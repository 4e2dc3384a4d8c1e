"""The ingest service: MQTT in, batches to the database, acks after commit, status out.

Threads and backpressure: paho's network thread only appends messages to a bounded queue;
the main thread decodes and writes them in batches, acks after commit, and publishes lot
status. In-flight messages are bounded by the MQTT v5 Receive Maximum we announce, because
nothing is acked before it is committed; should a broker ignore that, the queue bound is
the second rule: when the queue is full the network thread waits (counted as
``queue_full``), which stops reading from the socket, and the broker holds the rest.

Besides the sensors, every worker follows its city's retained service status topics (not
shared, QoS 0: each worker holds them all, nothing to acknowledge): the services that say
``offline`` are alarms at the next evaluation (``ingest/_alarms.py``).

Every worker refreshes the lots' status at its stale check (row-locked transactions: a lot's
closure or reduced capacity ends once, whichever worker sees it first), but only the leader
among the city's workers (``core.leader.Leadership``, service ``alarms``) evaluates the alarms:
one evaluation per interval from one view of the services' status topics, not N evaluations
from N views that could undo each other.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from psycopg_pool import ConnectionPool, PoolTimeout

from core.channels import charger_state_topic, lot_status_topic, service_topic, service_topics
from core.charging import EvseState
from core.city import City
from core.db import open_pool
from core.leader import Leadership, leader_gauge
from core.mqtt import mqtt_client
from core.registry import sync_registry
from core.runtime import Backoff, Lifecycle, serve_metrics
from core.settings import Settings
from core.status import LotStatus

from ._alarms import AlarmWebhook, evaluate_alarms
from ._writer import BatchResult, Message, Writer, prepare_connection

__all__ = ["SHARE_GROUP", "IngestService"]

logger = logging.getLogger(__name__)

SHARE_GROUP = "$share/ingest/"
SESSION_EXPIRY_S = 7 * 24 * 3600
_FATAL_CONNECT = {"Bad user name or password", "Not authorized", "Client identifier not valid",
                  "Banned"}
_TRANSIENT_DB = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


@dataclass(frozen=True, slots=True)
class _Inbound:
    message: Message
    mid: int
    qos: int
    generation: int


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("parkleit_ingest_messages_received",
                                "MQTT messages received", registry=r)
        self.written = Counter("parkleit_ingest_messages_written",
                               "Messages committed to the database and acknowledged", registry=r)
        self.dead = Counter("parkleit_ingest_dead_letters",
                            "Messages stored in dead_letters", registry=r)
        self.rows = Counter("parkleit_ingest_rows_written", "New rows written", ["table"],
                            registry=r)
        self.superseded = Counter("parkleit_ingest_counter_superseded",
                                  "Counter readings not newer than the lot's last one (kept "
                                  "out of lot_occupancy by design)", registry=r)
        self.counter_jumps = Counter("parkleit_ingest_counter_jumps",
                                     "Counter readings no lot could have seen: re-baselined, "
                                     "the count kept (also in dead_letters)", registry=r)
        self.db_errors = Counter("parkleit_ingest_database_errors",
                                 "Failed batch transactions", registry=r)
        self.queue_full = Counter("parkleit_ingest_queue_full",
                                  "Times the network thread waited for a full queue", registry=r)
        self.queue_depth = Gauge("parkleit_ingest_queue_depth", "Messages waiting to be written",
                                 registry=r)
        self.lag = Histogram("parkleit_ingest_lag_seconds",
                             "From receiving a message to committing it", registry=r,
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.data_lag = Gauge("parkleit_ingest_data_lag_seconds",
                              "Age of the newest reading at its commit", registry=r)
        self.alarms = Counter("parkleit_ingest_alarms", "Alarms raised or cleared",
                              ["event"], registry=r)
        self.webhook_failures = Counter("parkleit_ingest_alarm_webhook_failures",
                                        "Alarm webhook POSTs that failed (not repeated)",
                                        registry=r)
        self.connected = Gauge("parkleit_ingest_broker_connected", "1 while connected to MQTT",
                               registry=r)
        self.leader = leader_gauge(r)


class IngestService(Lifecycle):
    """One ingest worker; ``run()`` blocks until ``stop()`` (or SIGTERM via the CLI)."""

    def __init__(self, settings: Settings, city: City) -> None:
        self.settings = settings
        self._clock = settings.clock
        self.city = city
        self.writer = Writer(city, dead_letter_max_bytes=settings.DEAD_LETTER_MAX_BYTES)
        self.metrics = _Metrics()
        self._stop = threading.Event()
        self._drain_deadline = float("inf")
        self._queue: queue.Queue[_Inbound] = queue.Queue(
            maxsize=settings.INGEST_RECEIVE_MAXIMUM + settings.INGEST_BATCH_SIZE)
        self._generation = 0
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self.client_id = settings.INGEST_CLIENT_ID or f"parkleit-ingest-{city.id}"
        self.service_topic = service_topic(city.id, self.client_id)
        self._service_prefix = service_topic(city.id, "")
        self._services: dict[str, str] = {}  # name -> its retained status; under _lock
        self.webhook = (AlarmWebhook(settings.ALARM_WEBHOOK_URL, settings.ALARM_WEBHOOK_TIMEOUT_S)
                        if settings.ALARM_WEBHOOK_URL else None)
        # The alarms' evaluator runs in one worker of the city at a time.
        self.leadership = Leadership(settings, "alarms", city.id,
                                     f"{socket.gethostname()}-{os.getpid()}", self._led)
        self.metrics.leader.labels("alarms", city.id).set(0)

    # -- lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the service to drain and exit; safe to call more than once, from any thread."""
        if not self._stop.is_set():
            self._drain_deadline = time.monotonic() + self.settings.SHUTDOWN_TIMEOUT_S
            self._stop.set()

    def _led(self, leading: bool) -> None:
        """Leadership of the alarms' evaluation taken or lost (the leadership's thread)."""
        self.metrics.leader.labels("alarms", self.city.id).set(int(leading))

    def _past_drain_deadline(self) -> bool:
        return self._stop.is_set() and time.monotonic() > self._drain_deadline

    def run(self) -> int:
        """Connect, ingest until stopped, drain, disconnect. Returns the exit code."""
        pool = open_pool(self.settings.DATABASE_URL, min_size=1, max_size=2,
                         name="ingest", configure=prepare_connection)
        leadership = None
        stop_metrics = serve_metrics(0, self.metrics.registry)  # none yet
        try:
            with pool.connection() as conn:
                sync_registry(conn, self.city)
            # After the registry check: a config that stops the start takes nothing first.
            leadership = self.leadership.start_thread(self._stop)
            stop_metrics = serve_metrics(self.settings.INGEST_METRICS_PORT,
                                         self.metrics.registry)
            self._client = self._connect()
            self._loop(pool)
            return self.exit_code
        finally:
            self._stop.set()
            self._disconnect()
            if leadership is not None:
                leadership.join(10)
            pool.close(timeout=2)
            if self.webhook is not None:
                self.webhook.close()
            stop_metrics()

    def _loop(self, pool: ConnectionPool) -> None:
        settings = self.settings
        next_refresh = time.monotonic() + settings.INGEST_STALE_CHECK_S
        draining = False
        while True:
            if self._stop.is_set() and not draining:
                draining = True
                if settings.INGEST_LEAVE_ON_STOP:
                    self._leave()
                logger.info("stopping: draining %d queued messages", self._queue.qsize())
            if draining and (self._queue.empty() or self._past_drain_deadline()):
                return
            batch = self._collect(drain=draining)
            if batch:
                self._write_until_done(pool, batch)
            if not self._stop.is_set() and time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + settings.INGEST_STALE_CHECK_S
                self._refresh(pool)

    def _collect(self, *, drain: bool) -> list[_Inbound]:
        batch: list[_Inbound] = []
        try:
            batch.append(self._queue.get(timeout=0.05 if drain else 0.2))
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self.settings.INGEST_BATCH_WAIT_MS / 1000
        while len(batch) < self.settings.INGEST_BATCH_SIZE:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0
                             else self._queue.get_nowait())
            except queue.Empty:
                break
        self.metrics.queue_depth.set(self._queue.qsize())
        return batch

    def _write_until_done(self, pool: ConnectionPool, batch: list[_Inbound]) -> None:
        """Write a batch, retrying through database outages; nothing is acked before commit."""
        retry = Backoff(0.5, 30.0, jitter=0.1)
        messages = [item.message for item in batch]
        while True:
            try:
                try:
                    with pool.connection(timeout=5) as conn:
                        result = self.writer.write(conn, messages, self._clock.now())
                except _TRANSIENT_DB:
                    raise
                except (psycopg.Error, ValueError) as exc:
                    # Something in the batch the database (or the driver) refuses: find it,
                    # keep the rest. UnicodeEncodeError is a ValueError.
                    self.metrics.db_errors.inc()
                    logger.error("batch refused by the database (%s); writing one by one",
                                 type(exc).__name__)
                    result = self._write_singly(pool, messages)
                break
            except _TRANSIENT_DB as exc:
                self.metrics.db_errors.inc()
                pause = retry.next()
                logger.warning("database unavailable (%s); retrying %d messages in %.1f s",
                               type(exc).__name__, len(batch), pause)
            if self._past_drain_deadline():
                logger.error("gave up on %d unacknowledged messages at shutdown; the broker "
                             "will redeliver them", len(batch))
                return
            if self._stop.is_set():
                time.sleep(min(pause, 1.0))  # stopping: keep trying until the deadline
            else:
                self._stop.wait(pause)
        self._after_commit(batch, result)

    def _write_singly(self, pool: ConnectionPool, messages: list[Message]) -> BatchResult:
        total = BatchResult()
        for message in messages:
            with pool.connection(timeout=5) as conn:
                try:
                    result = self.writer.write(conn, [message], self._clock.now())
                except _TRANSIENT_DB:
                    raise
                except (psycopg.Error, ValueError) as exc:
                    result = self.writer.reject(conn, message,
                                                f"database refused: {type(exc).__name__}")
            total.messages += result.messages
            total.dead_letters += result.dead_letters
            total.bay_events += result.bay_events
            total.health_rows += result.health_rows
            total.superseded += result.superseded
            total.counter_jumps += result.counter_jumps
            total.changed.extend(result.changed)
            total.evses_changed.extend(result.evses_changed)
        return total

    def _after_commit(self, batch: list[_Inbound], result: BatchResult) -> None:
        now = self._clock.now()
        client = self._client
        with self._lock:
            generation = self._generation
        assert client is not None
        for item in batch:
            if item.qos > 0 and item.generation == generation:
                client.ack(item.mid, item.qos)
            self.metrics.lag.observe((now - item.message.received).total_seconds())
        m = self.metrics
        m.written.inc(len(batch) - result.dead_letters)
        m.dead.inc(result.dead_letters)
        m.superseded.inc(result.superseded)
        m.counter_jumps.inc(result.counter_jumps)
        m.rows.labels("bay_events").inc(result.bay_events)
        m.rows.labels("sensor_health").inc(result.health_rows)
        if result.newest is not None:
            m.data_lag.set(max(0.0, (now - result.newest).total_seconds()))
        self._publish(result.changed)
        self._publish_evses(result.evses_changed)

    def _refresh(self, pool: ConnectionPool) -> None:
        """The stale check: every lot's status for now, then the alarms for now."""
        try:
            with pool.connection(timeout=5) as conn:
                changed = self.writer.refresh(conn, self._clock.now())
                points = self.writer.refresh_points(conn, self._clock.now())
        except psycopg.Error as exc:
            logger.warning("status refresh failed: %s", type(exc).__name__)
            return
        self._publish(changed)
        self._publish_evses(points)
        self._evaluate_alarms(pool)

    def _evaluate_alarms(self, pool: ConnectionPool) -> None:
        if not self.leadership.leading():
            return  # another worker evaluates (or none yet: it will within the lease)
        with self._lock:
            offline = [name for name, status in self._services.items() if status == "offline"]
        try:
            with pool.connection(timeout=5) as conn:
                changes = evaluate_alarms(conn, self.city.id, self._clock.now(),
                                          offline_services=offline)
        except psycopg.Error as exc:  # PoolTimeout is one too
            logger.warning("alarm evaluation failed: %s", type(exc).__name__)
            return
        for change in changes:
            self.metrics.alarms.labels(change.event).inc()
        if changes and self.webhook is not None and not self.webhook.send(self.city.id,
                                                                          changes):
            self.metrics.webhook_failures.inc()

    def _publish(self, statuses: list[LotStatus]) -> None:
        assert self._client is not None
        for status in statuses:
            self._client.publish(lot_status_topic(self.city.id, status.lot_id),
                                 status.to_json(), qos=1, retain=True)

    def _publish_evses(self, states: list[EvseState]) -> None:
        assert self._client is not None
        for state in states:
            self._client.publish(charger_state_topic(self.city.id, state.evse_id),
                                 state.to_json(), qos=1, retain=True)

    def _service_status(self, name: str, payload: bytes) -> None:
        """A service's retained status (an empty payload: its topic was cleared)."""
        status = payload.decode("utf-8", "replace").strip()[:20]
        with self._lock:
            if status:
                self._services[name] = status
            else:
                self._services.pop(name, None)

    # -- MQTT -------------------------------------------------------------------------------

    def _connect(self) -> mqtt.Client:
        target = self.settings.mqtt
        # Reconnects soon: a broker that restarted has lost our shared subscription (Mosquitto
        # 2.0 does not persist those) until we reconnect and subscribe again.
        client = mqtt_client(self.settings, self.client_id, reconnect_max_s=5,
                             will=self.service_topic, manual_ack=True,
                             clean_session=None if target.v5 else False)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if target.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            props.ReceiveMaximum = self.settings.INGEST_RECEIVE_MAXIMUM
            client.connect_async(target.host, target.port, keepalive=30, clean_start=False,
                                 properties=props)
        else:
            logger.warning("MQTT 3.1.1: no shared subscription, so run one ingest worker only")
            client.connect_async(target.host, target.port, keepalive=30)
        client.loop_start()
        return client

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if client.is_connected():
            client.publish(self.service_topic, "offline", qos=1, retain=True).wait_for_publish(2)
            props = None
            if self.settings.INGEST_LEAVE_ON_STOP and self.settings.mqtt.v5:
                props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = 0  # the broker drops the session: nothing parks
            client.disconnect(properties=props)
        client.loop_stop()

    def _shared_filters(self) -> list[tuple[str, int]]:
        """The sensor topics, in the shared subscription where MQTT 5 has one (QoS 1)."""
        share = SHARE_GROUP if self.settings.mqtt.v5 else ""
        return [(share + f, 1) for f in self.writer.decoder.subscriptions()]

    def _leave(self) -> None:
        """Unsubscribe from the shared subscription: the broker sends this worker's share to
        the others from now on; what it holds is drained and acknowledged after commit."""
        client = self._client
        if client is None or not client.is_connected():
            return
        client.unsubscribe([topic for topic, _ in self._shared_filters()])
        logger.info("leaving the shared subscription: unsubscribed, draining what is held")

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason: Any, _props: Any) -> None:
        if reason.is_failure:
            logger.error("MQTT broker refused the connection: %s", reason)
            if str(reason) in _FATAL_CONNECT:
                self.fatal(f"MQTT broker refused the connection: {reason}")
            return
        with self._lock:
            self._generation += 1
        filters = [*self._shared_filters(), (service_topics(self.city.id), 0)]
        client.subscribe(filters)
        client.publish(self.service_topic, "online", qos=1, retain=True)
        self.metrics.connected.set(1)
        logger.info("connected to MQTT; subscribed to %d topic filters", len(filters))

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason: Any, _props: Any) -> None:
        self.metrics.connected.set(0)
        if not self._stop.is_set():
            logger.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any,
                    msg: mqtt.MQTTMessage) -> None:
        if self._stop.is_set():
            return  # not acked: the broker redelivers it to whoever takes over
        # MQTT forbids invalid UTF-8 and NUL in topics, but a broken client may send them.
        topic = bytes(msg._topic).decode("utf-8", "replace").replace("\x00", "\ufffd")
        if topic.startswith(self._service_prefix):  # QoS 0: nothing to acknowledge
            self._service_status(topic.removeprefix(self._service_prefix), bytes(msg.payload))
            return
        self.metrics.received.inc()
        item = _Inbound(Message(topic, bytes(msg.payload), self._clock.now()),
                        msg.mid, msg.qos, self._generation)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.metrics.queue_full.inc()
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.5)
                    return
                except queue.Full:
                    continue
