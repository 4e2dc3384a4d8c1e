"""Lot-state rules: counter arithmetic and the status a lot shows. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core.city import Lot, OpeningHours

from ._decode import CounterReading

__all__ = ["CounterState", "apply_counter", "counter_delta", "lot_status"]


def counter_delta(previous: int, current: int, modulus: int) -> int:
    """Increase of a cumulative counter from ``previous`` to ``current``.

    A counter that goes down either wrapped around (it was near its modulus and is now near
    zero) or was reset (it restarted from zero, so ``current`` counts since the reset).
    """
    if current >= previous:
        return current - previous
    if previous >= modulus * 3 // 4 and current < modulus // 4:
        return current + modulus - previous
    return current


@dataclass(frozen=True, slots=True)
class CounterState:
    """What ingest keeps per counter-counted lot between messages."""

    occupied: int | None
    entries: int | None
    exits: int | None
    time: datetime | None


def apply_counter(state: CounterState, reading: CounterReading, lot: Lot) -> CounterState | None:
    """The lot's state after ``reading``, or None when the reading is not newer.

    Cumulative counters make older readings redundant: the newest one already includes
    everything an older one counted, so an out-of-order or redelivered reading changes nothing.
    """
    if state.time is not None and reading.time <= state.time:
        return None
    if reading.occupied is not None:
        return replace(state, occupied=_clamp(reading.occupied, lot.capacity), time=reading.time)
    assert reading.entries is not None and reading.exits is not None
    if state.entries is None or state.exits is None:
        # First reading: counters installed at zero give the occupancy directly.
        occupied = state.occupied if state.occupied is not None else (
            reading.entries - reading.exits)
    elif reading.entries < state.entries and reading.exits < state.exits:
        # Both went down at once: the counting device restarted from zero (a wrap of both
        # in the same interval is far less likely), so the new values count since then.
        occupied = (state.occupied or 0) + reading.entries - reading.exits
    else:
        occupied = ((state.occupied or 0)
                    + counter_delta(state.entries, reading.entries, lot.counter_modulus)
                    - counter_delta(state.exits, reading.exits, lot.counter_modulus))
    return CounterState(_clamp(occupied, lot.capacity), reading.entries, reading.exits,
                        reading.time)


def _clamp(occupied: int, capacity: int) -> int:
    return min(max(occupied, 0), capacity)


def lot_status(
    lot: Lot,
    hours: OpeningHours,
    free: int | None,
    updated: datetime | None,
    now: datetime,
    tz: ZoneInfo,
) -> str:
    """``open``, ``almost_full``, ``full``, ``closed`` or ``unknown`` for a lot right now."""
    if not hours.is_open(now, tz):
        return "closed"
    if free is None or updated is None or now - updated > timedelta(seconds=lot.stale_after_s):
        return "unknown"
    if lot.capacity == 0:
        return "full"
    occupancy = 1 - free / lot.capacity
    if free <= 0 or occupancy >= lot.full_at:
        return "full"
    if occupancy >= lot.almost_full:
        return "almost_full"
    return "open"
