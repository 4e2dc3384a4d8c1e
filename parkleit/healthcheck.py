"""Container health checks (docker-compose.yml): ``python -m parkleit.healthcheck CHECK``.

- ``http URL``: the URL answers 200 (a service's ``/metrics`` or ``/healthz``).
- ``tcp PORT``: something accepts connections on 127.0.0.1:PORT (a server with no URL of
  its own to ask, the simulated OCPI platform).
- ``mqtt``: the broker of ``PARKLEIT_MQTT_URL`` accepts this process's credentials (for
  processes with nothing else to ask, the simulators).
- ``mqtt-status NAME``: the retained ``parkleit/v1/{city}/services/{NAME}`` says ``online``; the
  service's last will turns it ``offline`` when the service dies or loses the broker. The city:
  ``PARKLEIT_CITY``, or the first of ``PARKLEIT_CITIES`` (a service of every city).

Exit 0 healthy, 1 unhealthy, 2 bad usage or config; one line on stderr says why.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from core.city import CityConfigError, load_city
from core.mqtt import mqtt_client
from core.settings import Settings, SettingsError, get_settings

__all__ = ["build_parser", "check_http", "check_mqtt", "check_service_status", "check_tcp",
           "main"]

DEFAULT_TIMEOUT_S = 5.0


def check_http(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> str | None:
    """None when ``url`` answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{url} does not answer: {reason}"
    return None if status == 200 else f"{url} answered {status}"


def check_tcp(port: int, timeout: float = DEFAULT_TIMEOUT_S) -> str | None:
    """None when 127.0.0.1:``port`` accepts a connection, else why not."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
    except OSError as exc:
        return f"nothing accepts connections on 127.0.0.1:{port}: {exc.strerror or exc}"
    return None


class _Probe:
    """A short-lived MQTT client: connect, optionally read one retained topic, disconnect."""

    def __init__(self, settings: Settings, topic: str | None) -> None:
        self.topic = topic
        self.answered = threading.Event()
        self.refusal: str | None = None
        self.payload: bytes | None = None
        target = settings.mqtt
        self.target = target
        client = mqtt_client(settings, f"parkleit-health-{secrets.token_hex(4)}")
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _props: Any) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
            self.answered.set()
        elif self.topic is None:
            self.answered.set()
        else:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: Any) -> None:
        if message.topic == self.topic:
            self.payload = bytes(message.payload)
            self.answered.set()

    def run(self, timeout: float) -> str | None:
        """Why the probe failed, or None (then ``payload`` holds the topic's message)."""
        where = f"{self.target.host}:{self.target.port}"
        try:
            self.client.connect(self.target.host, self.target.port, keepalive=max(5, int(timeout)))
        except OSError as exc:
            return f"MQTT broker at {where} does not answer: {exc.strerror or exc}"
        self.client.loop_start()
        try:
            if not self.answered.wait(timeout):
                if self.topic is None or not self.client.is_connected():
                    return f"no answer from the MQTT broker at {where} within {timeout:g} s"
                return f"no retained message on {self.topic} within {timeout:g} s"
            if self.refusal is not None:
                return f"MQTT broker at {where} refused the connection: {self.refusal}"
            return None
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def check_mqtt(settings: Settings, timeout: float = DEFAULT_TIMEOUT_S) -> str | None:
    """None when the broker accepts the credentials of ``settings``, else why not."""
    return _Probe(settings, None).run(timeout)


def check_service_status(settings: Settings, city_id: str, name: str,
                         timeout: float = DEFAULT_TIMEOUT_S) -> str | None:
    """None when service ``name`` of ``city_id`` is ``online`` on the broker, else why not."""
    topic = f"parkleit/v1/{city_id}/services/{name}"
    probe = _Probe(settings, topic)
    problem = probe.run(timeout)
    if problem is not None:
        return problem
    status = (probe.payload or b"").decode("utf-8", "replace")
    return None if status == "online" else f"{topic} is {status[:40]!r}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the checks."""
    parser = argparse.ArgumentParser(prog="python -m parkleit.healthcheck",
                                     description="Exit 0 healthy, 1 unhealthy, 2 bad usage.")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds to wait (default {DEFAULT_TIMEOUT_S:g})")
    checks = parser.add_subparsers(dest="check", required=True, metavar="CHECK")
    http = checks.add_parser("http", help="the URL answers 200")
    http.add_argument("url")
    tcp = checks.add_parser("tcp", help="something accepts connections on 127.0.0.1:PORT")
    tcp.add_argument("port", type=int)
    checks.add_parser("mqtt", help="the broker accepts PARKLEIT_MQTT_URL's credentials")
    status = checks.add_parser("mqtt-status", help="the service's retained status is online")
    status.add_argument("name", help="service name, e.g. forecast")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one check; the exit code says healthy (0), unhealthy (1) or bad usage (2)."""
    args = build_parser().parse_args(argv)
    try:
        if args.check == "http":
            problem = check_http(args.url, args.timeout)
        elif args.check == "tcp":
            problem = check_tcp(args.port, args.timeout)
        else:
            settings = get_settings()
            if args.check == "mqtt":
                problem = check_mqtt(settings, args.timeout)
            else:
                # A service of every city (ocpp) publishes its status in each: the first's.
                city_id = load_city(settings.city_refs[0]).id
                problem = check_service_status(settings, city_id, args.name, args.timeout)
    except (SettingsError, CityConfigError) as exc:
        sys.stderr.write(f"healthcheck: {exc}\n")
        return 2
    if problem is not None:
        sys.stderr.write(f"unhealthy: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
