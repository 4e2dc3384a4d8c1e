"""Helpers shared by tests: the suite's clock, service processes and commands, polling,
benchmark runs, MQTT watching and the documents the API answers with."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec

import httpx
import paho.mqtt.client as mqtt
import pytest
import xmlschema
from paho.mqtt.enums import CallbackAPIVersion

from core.clock import Clock
from core.settings import Settings
from parkleit.embedded import free_port as free_port  # the tests' one way to find a port
from parkleit.process import ROOT as ROOT
from parkleit.process import ParkleitProcess

P = ParamSpec("P")
CLOCK_VARIABLE = "PARKLEIT_CLOCK_OFFSET_S"
BIRMINGHAM = ROOT.parent / "shared" / "data" / "birmingham" / "dataset.csv"

# The suite's clock (conftest.py sets it at the start of the run, from ``--clock``): every test
# and every process it starts reads the time from it.
SUITE_CLOCK = Clock()


def utc_now() -> datetime:
    """The current moment by the suite's clock."""
    return SUITE_CLOCK.now()


def base_env() -> dict[str, str]:
    """This process's environment without parkleit settings, but with the suite's clock."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKLEIT_")}
    env[CLOCK_VARIABLE] = str(SUITE_CLOCK.offset.total_seconds())
    return env


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a ``parkleit`` subprocess running with ``settings``."""
    env = base_env()
    env.update({
        CLOCK_VARIABLE: str(settings.CLOCK_OFFSET_S),
        "PARKLEIT_DATABASE_URL": settings.DATABASE_URL,
        "PARKLEIT_MQTT_URL": settings.MQTT_URL,
        "PARKLEIT_CITY": settings.CITY,
        "PARKLEIT_INGEST_CLIENT_ID": settings.INGEST_CLIENT_ID,
        "PARKLEIT_INGEST_METRICS_PORT": str(settings.INGEST_METRICS_PORT),
        "PARKLEIT_INGEST_STALE_CHECK_S": "1",
        "PARKLEIT_OCPP_METRICS_PORT": "0",  # a test that reads them names a free port
        "PARKLEIT_OCPI_METRICS_PORT": "0",
        # A new signage leader acts two checks after it took the lock: half a second here.
        "PARKLEIT_LEADER_CHECK_S": "0.25",
        "PARKLEIT_LEADER_LEASE_S": "2",
    })
    env.update(extra)
    return env


class ServiceProcess(ParkleitProcess):
    """A ``parkleit`` subcommand run as a real process (so it can be killed with -9), its
    output in a log file."""

    log: Path

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        super().__init__(args, env, log)


def start_ingest(spawn: Callable[..., ServiceProcess], settings: Settings, *args: str,
                 name: str = "ingest", **extra: str) -> ServiceProcess:
    """``parkleit ingest`` (with ``args``) on ``settings`` and the ``extra`` variables,
    started by the ``spawn`` fixture; returned once it is connected to the broker."""
    process = spawn(["ingest", *args], service_env(settings, **extra), name=name)
    process.wait_log("connected to MQTT")
    return process


def run_parkleit(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m parkleit`` with ``args`` run to its end, in this process's environment
    without parkleit settings but with ``env``; its output captured."""
    return subprocess.run([sys.executable, "-m", "parkleit", *args], cwd=ROOT,
                          env={**base_env(), **env}, capture_output=True, text=True, timeout=60)


def assert_bad_usage(args: list[str], reason: str, **env: str) -> None:
    """``parkleit`` with ``args`` (and ``env``) refuses them as bad usage or config: exit
    code 2, ``reason`` in what it says, and no traceback."""
    result = run_parkleit(*args, **env)
    assert result.returncode == 2, result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.stderr


def answers_ok(url: str) -> bool:
    """Whether ``url`` answers 200 within a second (a server is up)."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class ApiServer:
    """A ``parkleit api`` process answering on a loopback port."""

    port: int
    process: ServiceProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def api_server(settings: Settings, log: Path, **extra: str) -> Iterator[ApiServer]:
    """``parkleit api`` with ``settings`` (and ``extra`` variables) on a free port, once its
    ``/healthz`` answers; stopped on leaving."""
    port = free_port()
    process = ServiceProcess(["api", "--port", str(port)], service_env(settings, **extra),
                             log).start()
    server = ApiServer(port, process)
    try:
        wait_for(lambda: answers_ok(f"{server.url}/healthz"), timeout=30)
        yield server
    finally:
        process.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(interval)


def synchronous(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """An ``async def`` test run to its end in an event loop of its own (pytest sees the
    test's own parameters, so fixtures and parametrization work as for any test)."""
    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))
    return run


async def waited(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition`` holds, polled in the event loop; fails the test after
    ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def bench_report(main: Callable[[list[str]], int], args: list[str],
                 **env: str) -> dict[str, Any]:
    """A benchmark's JSON report: its ``main`` run with ``--json``, ``args`` and the
    environment variables ``env``, which must succeed."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        for name, value in env.items():
            patch.setenv(name, value)
        code = main(["--json", *args])
    assert code == 0
    parsed: dict[str, Any] = json.loads(out.getvalue())
    return parsed


def positive(value: Any) -> bool:
    """Whether a benchmark's figure is a finite number above zero."""
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


class Watcher:
    """Collects the messages of some topic filters (retained ones included)."""

    def __init__(self, settings: Settings, *filters: str) -> None:
        self.messages: dict[str, list[bytes]] = {}
        self.retained: set[str] = set()  # topics of retained copies sent on subscribing
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect(settings.mqtt.host, settings.mqtt.port)
        for topic_filter in filters:
            self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.setdefault(msg.topic, []).append(bytes(msg.payload))
            if msg.retain:
                self.retained.add(msg.topic)

    def last(self, topic: str) -> Any:
        """The newest payload on ``topic``: parsed JSON, else text; None before any."""
        with self._lock:
            payloads = self.messages.get(topic)
        if not payloads:
            return None
        return json.loads(payloads[-1]) if payloads[-1][:1] == b"{" else payloads[-1].decode()

    def topics(self) -> list[str]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


PROBLEM = "application/problem+json"


def problem(answer: Any, status: int) -> dict[str, Any]:
    """The problem+json body of ``answer`` (an httpx or TestClient response), which must have
    ``status``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    return body


XML = "application/xml; charset=utf-8"
DATEX2_SCHEMAS = ROOT.parent / "shared" / "schemas" / "datex2-v3.7"
DATEX2_ENTRY = "DATEXII_3_D2Payload.xsd"  # d2:payload; imports every namespace


def datex2_schema(directory: Path = DATEX2_SCHEMAS) -> xmlschema.XMLSchema:
    """The official DATEX II v3.7 schemas (beside the project in ../shared, as CI has them);
    a test fails saying so where they are missing."""
    if not (directory / DATEX2_ENTRY).is_file():
        pytest.fail(f"DATEX II v3.7 schemas not found: {directory / DATEX2_ENTRY} is missing "
                    "(the tests need ../shared beside the project, as CI has it)", pytrace=False)
    return xmlschema.XMLSchema(directory / DATEX2_ENTRY)


def datex2_document(client: Any, schema: xmlschema.XMLSchema, path: str) -> bytes:
    """The DATEX II document the API (an httpx or TestClient client) serves at ``path``:
    answered 200 as XML, and valid by ``schema``."""
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XML
    document: bytes = response.content
    schema.validate(document)
    return document
