"""Lot-state rules: counter arithmetic, data quality and re-zeroing. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.city import Lot

from ._decode import CounterReading

__all__ = [
    "CounterState", "apply_counter", "counter_delta", "lot_quality", "rezero_due",
]


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
    clamped: bool = False  # the newest reading gave a count outside [0, capacity]


def apply_counter(state: CounterState, reading: CounterReading, lot: Lot) -> CounterState | None:
    """The lot's state after ``reading``, or None when the reading is not newer.

    Cumulative counters make older readings redundant: the newest one already includes
    everything an older one counted, so an out-of-order or redelivered reading changes nothing.
    """
    if state.time is not None and reading.time <= state.time:
        return None
    if reading.occupied is not None:
        return replace(state, occupied=_clamp(reading.occupied, lot.capacity), time=reading.time,
                       clamped=not 0 <= reading.occupied <= lot.capacity)
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
                        reading.time, clamped=not 0 <= occupied <= lot.capacity)


def _clamp(occupied: int, capacity: int) -> int:
    return min(max(occupied, 0), capacity)


def lot_quality(lot: Lot, *, stale: bool, fresh_bays: int = 0, stuck_bays: int = 0,
                clamped: bool = False, drift: int | None = None) -> tuple[float, list[str]]:
    """A 0..1 score of how far the lot's count can be trusted, and the reasons.

    Bay-counted: the share of bays whose sensor was heard recently and is not stuck. Counter-
    counted: 1, less for a reading that had to be clamped and for the drift the counter had
    accumulated by its last re-zeroing. Stale data scores 0.
    """
    if stale:
        return 0.0, ["stale"]
    flags: list[str] = []
    if lot.counting == "bays":
        silent = max(0, lot.capacity - fresh_bays)
        if stuck_bays:
            flags.append(f"stuck_sensors:{stuck_bays}")
        if silent:
            flags.append(f"silent_sensors:{silent}")
        score = max(0, fresh_bays - stuck_bays) / lot.capacity if lot.capacity else 0.0
    else:
        score = 1.0
        if clamped:
            flags.append("clamped")
            score -= 0.3
        if drift:
            flags.append(f"drift:{drift}")
            score -= min(0.7, abs(drift) / max(lot.capacity, 1))
    return round(min(1.0, max(0.0, score)), 3), flags


def rezero_due(lot: Lot, rezeroed_on: date | None, now: datetime, tz: ZoneInfo) -> bool:
    """Whether a counter lot known to be empty at ``lot.empty_at`` is to be re-zeroed now.

    Once a day, within the hour after ``empty_at``: a counter that misses cars drifts, and
    the hour the lot is known to be empty is when the true count is known (zero).
    """
    if lot.empty_at is None or lot.counting != "counter":
        return False
    local = now.astimezone(tz)
    start = datetime.combine(local.date(), lot.empty_at, tz)
    return rezeroed_on != local.date() and start <= local < start + timedelta(hours=1)
