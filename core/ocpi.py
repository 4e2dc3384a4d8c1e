"""OCPI 2.2.1 on the wire, as every part speaks it (the pull of another operator's
``locations``, the receiver of their pushes in the API, the simulated OCPI server): the
response envelope, the ``Authorization: Token`` header and an EVSE's status in a Location.

Only the Locations module's status is read: a charging point is matched by its ``evse_id``
(eMI3), else by its ``uid`` (many CPOs use the EVSE id as the uid).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.charging import EvseStatus
from core.status import rfc3339

__all__ = [
    "CLIENT_ERROR",
    "INVALID_PARAMETERS",
    "SUCCESS",
    "UNKNOWN_LOCATION",
    "EvseUpdate",
    "OcpiError",
    "authorization",
    "envelope",
    "evse_update",
    "location_updates",
    "parse_time",
    "token_matches",
    "unwrap",
]

# OCPI status codes (2.2.1, transport and format, "Status codes").
SUCCESS = 1000
CLIENT_ERROR = 2000
INVALID_PARAMETERS = 2001
UNKNOWN_LOCATION = 2003


class OcpiError(ValueError):
    """An OCPI message that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class EvseUpdate:
    """What an OCPI EVSE object says of one point: its id, status (None: a PATCH without
    one) and ``last_updated``."""

    evse_id: str
    status: EvseStatus | None
    last_updated: datetime


def envelope(data: Any, now: datetime, status_code: int = SUCCESS,
             message: str = "Success") -> dict[str, Any]:
    """The OCPI response envelope around ``data``."""
    body: dict[str, Any] = {"status_code": status_code, "status_message": message,
                            "timestamp": rfc3339(now.astimezone(UTC))}
    if data is not None:
        body["data"] = data
    return body


def authorization(token: str) -> str:
    """The ``Authorization`` header value for ``token``: OCPI 2.2.1 sends it base64-encoded."""
    return "Token " + base64.b64encode(token.encode()).decode("ascii")


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (base64 as 2.2.1 asks, or plain as
    2.1.1 peers send it); compared in constant time."""
    if not header or not token:
        return False
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "token" or not credential:
        return False
    credential = credential.strip()
    candidates = [credential.encode()]
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(credential, validate=True))
    expected = token.encode()
    # Both compared every time: how long it takes says nothing about which one matched.
    matches = [hmac.compare_digest(candidate, expected) for candidate in candidates]
    return any(matches)


def parse_time(value: Any, field: str = "last_updated") -> datetime:
    """An OCPI DateTime (RFC 3339; OCPI says UTC, a missing zone is taken as UTC)."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise OcpiError(f"{field} is not an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise OcpiError(f"{field} is not an RFC 3339 time: {value[:40]!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def unwrap(body: Any) -> Any:
    """The ``data`` of an OCPI response envelope; OcpiError if it is not one, or says failure."""
    if not isinstance(body, dict) or not isinstance(body.get("status_code"), int) \
            or isinstance(body.get("status_code"), bool):
        raise OcpiError("not an OCPI response envelope (no integer status_code)")
    if body["status_code"] != SUCCESS:
        message = str(body.get("status_message", ""))[:200]
        raise OcpiError(f"OCPI status_code {body['status_code']}: {message}")
    return body.get("data")


def evse_update(evse: Any, uid: str | None = None, *, partial: bool = False) -> EvseUpdate:
    """An OCPI EVSE object as an update (``partial``: a PATCH, status may be absent; ``uid``:
    from the URL when the body has none)."""
    if not isinstance(evse, dict):
        raise OcpiError("an EVSE is not a JSON object")
    evse_id = evse.get("evse_id") or evse.get("uid") or uid
    if not isinstance(evse_id, str) or not 1 <= len(evse_id) <= 48:
        raise OcpiError("an EVSE has no evse_id or uid (a string of 1-48 characters)")
    status: EvseStatus | None = None
    if "status" in evse or not partial:
        try:
            status = EvseStatus(str(evse.get("status")))
        except ValueError:
            raise OcpiError(f"EVSE {evse_id[:48]!r}: status is not an OCPI EVSE status") from None
    return EvseUpdate(evse_id, status, parse_time(evse.get("last_updated")))


def location_updates(location: Any, *, partial: bool = False) -> list[EvseUpdate]:
    """The updates of every EVSE of an OCPI Location object (a PATCH may have none)."""
    if not isinstance(location, dict):
        raise OcpiError("a Location is not a JSON object")
    evses = location.get("evses", None if partial else [])
    if evses is None:
        return []
    if not isinstance(evses, list):
        raise OcpiError("a Location's evses is not a list")
    return [evse_update(evse, partial=False) for evse in evses]
