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

from ._mqtt import PubAcks, mqtt_client

__all__ = ["LoadError", "LoadReport", "run_load"]

logger = logging.getLogger(__name__)

MAX_OUTSTANDING = 5000
COUNTER_SHARE = 0.1
ACK_TIMEOUT_S = 60.0


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


def run_load(settings: Settings, city: City, *, rate: float, bays: int, duration: float,
             seed: int = 1, max_messages: int | None = None) -> LoadReport:
    """Publish until ``duration`` seconds (or ``max_messages``) have passed; 0 = unlimited."""
    rng = random.Random(seed)
    native = [bay.id for _, bay in city.bays() if bay.network == "native"]
    if bays > len(native):
        raise LoadError(f"city {city.id} has only {len(native)} native bays, not {bays}")
    chosen = native[:bays] if bays else native
    counters = [_Counter(lot, rng) for lot in city.lots if lot.counting == "counter"]
    if not chosen and not counters:
        raise LoadError(f"city {city.id} has no native bays and no counter lots")
    prefix = f"parkleit/v1/{city.id}"
    occupied = {bay: rng.random() < 0.5 for bay in chosen}
    seq = dict.fromkeys(chosen, 0)
    last: dict[str, datetime] = {}
    client = mqtt_client(settings, f"parkleit-load-{rng.randrange(1 << 30):x}")
    acks = PubAcks()
    client.on_publish = acks.on_publish
    published = bay_messages = counter_messages = 0
    start = time.monotonic()
    try:
        while (not duration or time.monotonic() - start < duration) and (
                max_messages is None or published < max_messages):
            now = settings.clock.now()
            if counters and (not chosen or rng.random() < COUNTER_SHARE):
                counter = rng.choice(counters)
                counter.step(rng)
                key = counter.lot.id
                topic = f"{prefix}/lots/{key}/counter"
                body: dict[str, object] = {"entries": counter.entries, "exits": counter.exits}
                counter_messages += 1
            else:
                key = rng.choice(chosen)
                if rng.random() < 0.3:
                    occupied[key] = not occupied[key]
                seq[key] += 1
                topic = f"{prefix}/bays/{key}"
                body = {"occupied": occupied[key], "seq": seq[key]}
                if seq[key] % 20 == 1:
                    body["battery_v"] = round(3.6 - rng.random() * 0.4, 3)
                bay_messages += 1
            # Strictly increasing per sensor, so every message is a distinct reading.
            moment = max(now, last.get(key, now - timedelta(seconds=1)) + timedelta(microseconds=1))
            last[key] = moment
            body["ts"] = moment.isoformat().replace("+00:00", "Z")
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
    return LoadReport(published, bay_messages, counter_messages, time.monotonic() - start,
                      unacknowledged)
