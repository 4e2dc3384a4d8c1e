"""The time of day every part of parkleit reads: the wall clock, shifted where asked.

Everything that asks "what time is it" takes a ``Clock`` (services get it from their
settings, ``Settings.clock``; pure functions take ``now`` as a parameter), never
``datetime.now()`` directly (ruff's banned-api rule keeps it so). A clock shifted by
``PARKLEIT_CLOCK_OFFSET_S`` runs at real speed from another instant: the test suite runs at a
fixed instant whatever the day (``pytest --clock``), and a replay of another day sees that
day's opening hours and calendar. Every process of one installation must share the offset;
the database's own ``now()`` is not used for anything a clock decides.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["Clock"]


class Clock:
    """The wall clock plus a fixed ``offset``; timezone-aware UTC."""

    __slots__ = ("offset",)

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    @classmethod
    def starting_at(cls, moment: datetime) -> Clock:
        """A clock that shows ``moment`` now and runs on from there."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("a clock starts at a timezone-aware moment")
        return cls(moment - datetime.now(UTC))

    def now(self) -> datetime:
        """The current moment (UTC)."""
        return datetime.now(UTC) + self.offset

    def timestamp(self) -> float:
        """The current moment as seconds since the epoch."""
        return time.time() + self.offset.total_seconds()

    def __repr__(self) -> str:
        return f"Clock(offset={self.offset!r})"
