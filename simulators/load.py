"""Load generator: realistic bay and counter messages at a fixed rate, QoS 1."""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.city import City, Lot
from core.settings import Settings

from ._mqtt import ACK_TIMEOUT_S, MAX_OUTSTANDING, PubAcks, mqtt_client

__all__ = ["LoadError", "LoadReport", "run_load"]

logger = logging.getLogger(__name__)

COUNTER_SHARE = 0.1


class LoadError(Exception):
    """The load cannot be generated as asked (one-line reason)."""


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What the generator published; ``unacknowledged`` of them the broker never took."""

    published: int
    bay_messages: int
    counter_messages: int
    elapsed_s: float
    unacknowledged: int = 0


class _Counter:
    def __init__(self, lot: Lot, rng: random.Random) -> None:
        self.lot = lot
        self.entries = rng.randrange(0, 1000)
        self.exits = self.entries - rng.randrange(0, max(1, lot.capacity // 2))
        self.exits = max(self.exits, 0)

    def step(self, rng: random.Random) -> None:
        occupied = self.entries - self.exits
        if occupied <= 0 or (occupied < self.lot.capacity and rng.random() < 0.5):
            self.entries += 1
        else:
            self.exits += 1


class _Messages:
    """The generator's messages: about COUNTER_SHARE of them a counter lot's cumulative counts,
    the rest a bay's state (changed three times in ten), each stamped later than its sensor's
    previous one; counted by kind."""

    def __init__(self, city: City, bays: int, rng: random.Random) -> None:
        native = [bay.id for _, bay in city.bays() if bay.network == "native"]
        if bays > len(native):
            raise LoadError(f"city {city.id} has only {len(native)} native bays, not {bays}")
        self.bays = native[:bays] if bays else native
        self.counters = [_Counter(lot, rng) for lot in city.lots if lot.counting == "counter"]
        if not self.bays and not self.counters:
            raise LoadError(f"city {city.id} has no native bays and no counter lots")
        self.rng, self.prefix = rng, f"parkleit/v1/{city.id}"
        self.occupied = {bay: rng.random() < 0.5 for bay in self.bays}
        self.seq = dict.fromkeys(self.bays, 0)
        self.last: dict[str, datetime] = {}
        self.bay_messages = self.counter_messages = 0

    def next(self, now: datetime) -> tuple[str, dict[str, object]]:
        """The topic and body of the next message, measured at ``now`` at the earliest."""
        rng = self.rng
        if self.counters and (not self.bays or rng.random() < COUNTER_SHARE):
            counter = rng.choice(self.counters)
            counter.step(rng)
            key = counter.lot.id
            topic = f"{self.prefix}/lots/{key}/counter"
            body: dict[str, object] = {"entries": counter.entries, "exits": counter.exits}
            self.counter_messages += 1
        else:
            key = rng.choice(self.bays)
            if rng.random() < 0.3:
                self.occupied[key] = not self.occupied[key]
            self.seq[key] += 1
            topic = f"{self.prefix}/bays/{key}"
            body = {"occupied": self.occupied[key], "seq": self.seq[key]}
            if self.seq[key] % 20 == 1:
                body["battery_v"] = round(3.6 - rng.random() * 0.4, 3)
            self.bay_messages += 1
        # Strictly increasing per sensor, so every message is a distinct reading.
        moment = max(now, self.last.get(key, now - timedelta(seconds=1))
                     + timedelta(microseconds=1))
        self.last[key] = moment
        body["ts"] = moment.isoformat().replace("+00:00", "Z")
        return topic, body


def run_load(settings: Settings, city: City, *, rate: float, bays: int, duration: float,
             seed: int = 1, max_messages: int | None = None) -> LoadReport:
    """Publish until ``duration`` seconds (or ``max_messages``) have passed; 0 = unlimited."""
    rng = random.Random(seed)
    messages = _Messages(city, bays, rng)
    client = mqtt_client(settings, f"parkleit-load-{rng.randrange(1 << 30):x}")
    acks = PubAcks()
    client.on_publish = acks.on_publish
    published = 0
    start = time.monotonic()
    try:
        while (not duration or time.monotonic() - start < duration) and (
                max_messages is None or published < max_messages):
            topic, body = messages.next(settings.clock.now())
            client.publish(topic, json.dumps(body), qos=1)
            published += 1
            if published - acks.acked > MAX_OUTSTANDING:
                acks.wait(MAX_OUTSTANDING, published, ACK_TIMEOUT_S)
            if rate:
                ahead = start + published / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        if not acks.wait(0, published, ACK_TIMEOUT_S):
            logger.warning("the broker acknowledged %d of %d messages within %.0f s",
                           acks.acked, published, ACK_TIMEOUT_S)
    finally:
        client.disconnect()
        client.loop_stop()
    unacknowledged = published - acks.acked + acks.refused
    if acks.refused:
        logger.warning("the broker refused %d messages", acks.refused)
    return LoadReport(published, messages.bay_messages, messages.counter_messages,
                      time.monotonic() - start, unacknowledged)
