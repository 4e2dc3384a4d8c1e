"""What the parts of the city simulator share: its clock unit, its message and its wire formats.

Simulated time is whole milliseconds since the epoch (``MINUTE_MS`` a minute); a device's
output is a ``SimMessage``; times are written as RFC 3339 text (to the second, the millisecond
or the nanosecond), bodies as compact JSON, raw frames and keys as base64.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

__all__ = ["MINUTE_MS", "SimMessage", "b64", "dumps", "iso_ms", "iso_ns", "iso_s", "moment"]

MINUTE_MS = 60_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SimMessage(NamedTuple):
    """One MQTT message: published at simulated ``time``; ``kind`` is native, counter, ttn,
    chirpstack or chirpstack_status; ``faults`` says what faults did to it: malformed, late,
    duplicate (the repeat; the original carries no mark)."""

    time: datetime
    topic: str
    payload: bytes
    kind: str
    faults: tuple[str, ...] = ()


def moment(ms: int) -> datetime:
    """The simulated millisecond ``ms`` as an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def iso_s(when: datetime) -> str:
    """RFC 3339 in UTC to the second."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(ms: int) -> str:
    """RFC 3339 in UTC to the millisecond."""
    return f"{moment(ms):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def iso_ns(ms: int, sub_ms_ns: int) -> str:
    """RFC 3339 with nanoseconds, as network servers write it; ``sub_ms_ns`` < 1_000_000."""
    return f"{moment(ms):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}{sub_ms_ns:06d}Z"


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode()


def dumps(body: Any) -> bytes:
    """Compact JSON, as devices and network servers send it."""
    return json.dumps(body, separators=(",", ":")).encode()
