"""The garage counters of the city simulator: entry/exit counters as a barrier controller has.

Each lot counted by a counter sends ``parkleit/v1/{city}/lots/{lot_id}/counter`` with
cumulative ``entries`` and ``exits`` (from a random offset, wrapping at the lot's
``counter_modulus``) at the end of each minute with traffic and at least every 5 minutes.
Their faults: missed entries (counter_drift), restarts from zero (counter_reset) and from
another value (counter_restart).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from core.city import City, Lot

from ._faults import Delivery, FaultDice
from ._formats import MINUTE_MS, dumps, iso_ms
from .demand import Minute

__all__ = ["COUNTER_KEEPALIVE_MS", "CounterDevice", "Counters"]

COUNTER_KEEPALIVE_MS = 5 * MINUTE_MS


@dataclass(slots=True)
class CounterDevice:
    """One lot's counter: what it has counted and when it sent last."""

    lot: Lot
    index: int  # into City.lots
    entries: int
    exits: int
    last_sent: int
    next_reset: int | None = None
    next_restart: int | None = None


class Counters:
    """Every counter of ``city``, from the lots' occupancy at ``start_ms`` (``occupied``, one
    number per lot of the city)."""

    def __init__(self, city: City, occupied: Sequence[int], start_ms: int, *,
                 rng: random.Random, dice: FaultDice, delivery: Delivery,
                 stats: Counter[str]) -> None:
        self.city = city
        self.dice = dice
        self.delivery = delivery
        self.stats = stats
        self.devices: list[CounterDevice] = []
        config = dice.config
        for index, (lot, now) in enumerate(zip(city.lots, occupied, strict=True)):
            if lot.counting != "counter":
                continue
            # A random reading, but one that does not wrap before ingest has seen it once.
            room = lot.counter_modulus - 2 * lot.capacity - 1
            offset = rng.randrange(room) if room > 0 else 0
            counter = CounterDevice(lot, index, offset + now, offset,
                                    start_ms - rng.randrange(COUNTER_KEEPALIVE_MS))
            if config.counter_reset:
                counter.next_reset = start_ms + dice.gap("counter_reset")
            if config.counter_restart:
                counter.next_restart = start_ms + dice.gap("counter_restart")
            self.devices.append(counter)

    def minute(self, minute: Minute, t1: int) -> None:
        """Count a simulated minute that ends at ``t1``; send what is due."""
        for counter in self.devices:
            self._count(counter, minute, t1)

    def _count(self, counter: CounterDevice, minute: Minute, t1: int) -> None:
        dice, config = self.dice, self.dice.config
        if counter.next_reset is not None and counter.next_reset < t1:
            counter.entries = counter.exits = 0
            counter.next_reset = t1 + dice.gap("counter_reset")
            self.stats["counter_resets"] += 1
        if counter.next_restart is not None and counter.next_restart < t1:
            rng, modulus = dice.rng("counter_restart"), counter.lot.counter_modulus
            counter.entries, counter.exits = rng.randrange(modulus), rng.randrange(modulus)
            counter.next_restart = t1 + dice.gap("counter_restart")
            self.stats["counter_restarts"] += 1
        entries = minute.entries[counter.index]
        exits = minute.exits[counter.index]
        if config.counter_drift and entries:
            rng = dice.rng("counter_drift")
            missed = sum(rng.random() < config.counter_drift for _ in range(entries))
            entries -= missed
            self.stats["counter_missed_entries"] += missed
        counter.entries += entries
        counter.exits += exits
        if entries or exits or t1 - counter.last_sent >= COUNTER_KEEPALIVE_MS:
            counter.last_sent = t1
            modulus = counter.lot.counter_modulus
            body = {"entries": counter.entries % modulus, "exits": counter.exits % modulus,
                    "ts": iso_ms(t1)}
            self.delivery.emit(t1, f"parkleit/v1/{self.city.id}/lots/{counter.lot.id}/counter",
                               dumps(body), "counter")
