"""``parkleit simulate city``: every lot, bay and counter of a city over MQTT, as sensors send it.

``run_city`` publishes a ``CityFeed`` with QoS 1, paced (``Pacer``) so that simulated time runs
``speed`` times faster than real time but never ahead of the wall clock, and writes the ground
truth CSV as it goes. This module is the simulator's public face: its names are the ones to
import. The parts: ``_feed`` (the minute by minute feed, bay sensors and truth), ``_lorawan``
(gateways and the TTN v3 / ChirpStack v4 uplinks), ``_counters`` (garage counters),
``_faults`` (the faults and their dice) and ``_formats`` (time and wire formats).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TextIO

from core.city import City
from core.settings import Settings

from ._chargers import CHARGER_TRUTH_HEADER
from ._faults import DEFAULT_RATES, FAULT_NAMES, CitySimError, FaultConfig
from ._feed import TRUTH_HEADER, CityFeed, SimMinute, TruthRow, city_messages, truth_line
from ._formats import SimMessage, iso_s
from ._lorawan import Gateway
from ._mqtt import ACK_TIMEOUT_S, MAX_OUTSTANDING, RoutedPublisher, mqtt_client

__all__ = [
    "DEFAULT_RATES",
    "FAULT_NAMES",
    "TRUTH_HEADER",
    "CityFeed",
    "CityReport",
    "CitySimError",
    "FaultConfig",
    "Gateway",
    "SimMessage",
    "SimMinute",
    "TruthRow",
    "city_messages",
    "run_city",
    "truth_line",
]

logger = logging.getLogger(__name__)

STOP_RETRY_S = 2.0  # when stopped: how long messages that reached no subscriber are retried


@dataclass(frozen=True, slots=True)
class CityReport:
    """What ``run_city`` did. ``faults`` counts fault effects (messages or episodes);
    ``unacknowledged`` of the published messages the broker never took; ``republished`` how
    often a message was published again because it had reached no subscriber (ingest
    re-subscribing after a broker restart), ``unrouted`` those given up so."""

    start: datetime
    end: datetime  # simulated time reached
    published: int
    by_kind: dict[str, int]
    faults: dict[str, int]
    truth_rows: int
    elapsed_s: float
    unacknowledged: int = 0
    stopped: bool = False  # by stop_event (SIGINT/SIGTERM) before the end
    republished: int = 0
    unrouted: int = 0

    def per_hour(self) -> float:
        """Messages per simulated hour."""
        hours = (self.end - self.start).total_seconds() / 3600
        return self.published / hours if hours > 0 else 0.0


class Pacer:
    """Waits until a simulated moment may be published: simulated time runs ``speed`` times
    faster than real time from the first call (0 = as fast as possible), and never ahead of
    the wall clock. ``clock`` (epoch seconds) and ``sleep`` (returns True to stop) are
    replaceable for tests."""

    def __init__(self, speed: float, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], bool] | None = None) -> None:
        self.speed = speed
        self.clock = clock
        self._stop = threading.Event()
        self.sleep = sleep or self._stop.wait
        self._anchor: tuple[float, float] | None = None  # (simulated s, clock s)

    def wait_until(self, moment: datetime) -> bool:
        """Sleep until ``moment`` is due; False if asked to stop meanwhile."""
        target = moment.timestamp()
        if self._anchor is None:
            self._anchor = (target, self.clock())
        while True:
            now = self.clock()
            delay = target - now  # never ahead of the wall clock
            if self.speed > 0:
                delay = max(delay, self._anchor[1] + (target - self._anchor[0]) / self.speed - now)
            if delay <= 0.0005:
                return True
            if self.sleep(min(delay, 1.0)):
                return False


def run_city(settings: Settings, city: City, *, start: datetime, speed: float,
             duration_s: float, seed: int, faults: FaultConfig, truth_path: Path | None,
             stop_event: threading.Event | None = None, heartbeat_min: float = 10.0,
             pacer: Pacer | None = None,
             publish: Callable[[SimMessage], None] | None = None) -> CityReport:
    """Publish a city simulation (QoS 1) until ``duration_s`` of simulated time (0 = until
    ``stop_event``), writing the ground truth CSV to ``truth_path`` as it goes.

    ``publish`` replaces the MQTT client (tests); ``pacer`` the wall clock. A message whose
    PUBACK says it reached no subscriber is published again (``RoutedPublisher``): Mosquitto
    2.0 forgets shared subscriptions in a restart, until ingest has subscribed again.
    """
    _check_start(settings, start, speed)
    feed = CityFeed(city, start, seed=seed, faults=faults, heartbeat_min=heartbeat_min,
                    duration_s=duration_s)
    stop = stop_event or threading.Event()
    began = time.monotonic()
    broker: _Broker | None = None
    sleep: Callable[[float], bool] = stop.wait
    if publish is None:
        broker = _Broker(settings, f"parkleit-city-{city.id}-{seed}-{random.getrandbits(24):x}",
                         stop)
        publish, sleep = broker.send, broker.nap
    pacer = pacer or Pacer(speed, clock=settings.clock.timestamp, sleep=sleep)
    logger.info("simulating %s from %s at speed %g (%s; faults: %s)", city.id,
                iso_s(feed.start), speed,
                f"{duration_s:g} s of simulated time" if duration_s else "until stopped",
                ", ".join(faults.enabled()) or "none")
    with contextlib.ExitStack() as closing:
        if broker is not None:
            closing.callback(broker.close)
        truth = closing.enter_context(_TruthFile(
            truth_path, feed.truth_at_start, chargers=bool(feed.chargers.points)))
        played = _play(feed, pacer, stop, publish, broker, truth)
        if broker is not None:
            broker.finish(played.published, played.stopped)
    unacknowledged, republished, unrouted = broker.give_up() if broker else (0, 0, 0)
    fault_counts = {key: value for key, value in sorted(feed.stats.items())
                    if not key.startswith("generated_")}
    return CityReport(feed.start, played.reached, played.published,
                      dict(sorted(played.by_kind.items())), fault_counts, truth.rows,
                      time.monotonic() - began, unacknowledged, played.stopped, republished,
                      unrouted)


def _check_start(settings: Settings, start: datetime, speed: float) -> None:
    if speed < 0:
        raise CitySimError("speed must be >= 0")
    if start.tzinfo is None:
        raise CitySimError("start must be timezone-aware")
    now = settings.clock.now()
    if start > now + timedelta(seconds=1):
        raise CitySimError("start is in the future: simulated time may not run ahead of the "
                           "wall clock (ingest refuses readings from the future)")
    if start < now - timedelta(days=29):
        logger.warning("start is more than 29 days ago: ingest refuses readings older than "
                       "30 days")


@dataclass(slots=True)
class _Played:
    """How far ``_play`` got."""

    reached: datetime  # simulated time
    published: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    stopped: bool = False


def _play(feed: CityFeed, pacer: Pacer, stop: threading.Event,
          send: Callable[[SimMessage], None], broker: _Broker | None,
          truth: _TruthFile) -> _Played:
    """Send the feed's messages when the pacer says they are due, minute by minute, and each
    minute's truth once it is over; until the feed ends or ``stop`` is set."""
    played = _Played(feed.start)
    for minute in feed:
        for message in minute.messages:
            if stop.is_set() or not pacer.wait_until(message.time):
                played.stopped = True
                return played
            send(message)
            played.published += 1
            played.by_kind[message.kind] += 1
            if broker is not None:
                broker.sent()
        if minute.truth and not pacer.wait_until(minute.end):
            played.stopped = True
            return played
        played.reached = minute.end
        truth.write(minute.truth)
        truth.write_chargers(minute.chargers)
        if stop.is_set():
            played.stopped = True
            return played
    return played


class _TruthFile:
    """The ground truth CSV: its header and ``first`` rows at once, then rows as they come
    (nothing at all without a path); ``rows`` counts the rows written. With ``chargers``, the
    charging points' truth beside it in ``{stem}-chargers.csv`` (a car on the bay, charging)."""

    def __init__(self, path: Path | None, first: Sequence[TruthRow], *,
                 chargers: bool = False) -> None:
        self.rows = 0
        self._file: TextIO | None = None
        self._chargers: TextIO | None = None
        if path is not None:
            self._file = path.open("w", encoding="utf-8", newline="")
            self._file.write(TRUTH_HEADER + "\n")
            self.write(first)
            if chargers:
                self._chargers = path.with_name(f"{path.stem}-chargers.csv").open(
                    "w", encoding="utf-8", newline="")
                self._chargers.write(CHARGER_TRUTH_HEADER + "\n")

    def write_chargers(self, lines: Sequence[str]) -> None:
        """Append the charging points' truth ``lines``."""
        if self._chargers is not None and lines:
            self._chargers.writelines(line + "\n" for line in lines)
            self._chargers.flush()

    def write(self, rows: Sequence[TruthRow]) -> None:
        """Append ``rows`` and flush them."""
        if self._file is not None and rows:
            self._file.writelines(truth_line(row) + "\n" for row in rows)
            self.rows += len(rows)
            self._file.flush()

    def __enter__(self) -> _TruthFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._file is not None:
            self._file.close()
        if self._chargers is not None:
            self._chargers.close()


class _Broker:
    """``run_city``'s MQTT client: QoS 1, and what reached no subscriber published again."""

    def __init__(self, settings: Settings, client_id: str, stop: threading.Event) -> None:
        self.client = mqtt_client(settings, client_id)
        self.router = RoutedPublisher(self.client)
        self.stop = stop

    def send(self, message: SimMessage) -> None:
        """Publish one message."""
        self.router.publish(message.topic, message.payload)

    def nap(self, seconds: float) -> bool:
        """The pacer's sleep: retries fall due while it waits for the next message."""
        self.router.settle()
        return self.stop.wait(min(seconds, 0.25))

    def sent(self) -> None:
        """After each message: settle, and wait when too many are still unacknowledged."""
        self.router.settle()
        if self.router.outstanding > MAX_OUTSTANDING:
            self.router.wait(MAX_OUTSTANDING, ACK_TIMEOUT_S)

    def finish(self, published: int, stopped: bool) -> None:
        """Wait for every PUBACK; when stopped, retry what reached no subscriber only briefly."""
        router = self.router
        if not (router.wait(0, ACK_TIMEOUT_S, retry=not stopped)
                and router.wait(0, STOP_RETRY_S if stopped else ACK_TIMEOUT_S)):
            logger.warning("the broker acknowledged %d of %d messages within %.0f s",
                           published - router.unacknowledged, published, ACK_TIMEOUT_S)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()

    def give_up(self) -> tuple[int, int, int]:
        """Stop retrying; unacknowledged, republished and unrouted messages (logged)."""
        router = self.router
        router.give_up()
        if router.refused:
            logger.warning("the broker refused %d messages", router.refused)
        if router.republished:
            logger.info("published %d times again what had reached no subscriber (ingest "
                        "not subscribed yet, e.g. after a broker restart)", router.republished)
        if router.unrouted:
            logger.warning("%d messages reached no subscriber and were given up",
                           router.unrouted)
        return router.unacknowledged, router.republished, router.unrouted
