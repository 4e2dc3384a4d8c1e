"""A city's lots as ParkAPI (v1, ``GET /{city}``) serves them: the JSON OpenTripPlanner reads."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from api._models import Lot

__all__ = ["parkapi_lots"]

_LOT_TYPE = {"garage": "Parkhaus", "surface": "Parkplatz", "on_street": "Straßenrand"}
# ParkAPI knows open, closed and nodata; full and almost full lots are open with few spaces.
_STATE = {"open": "open", "almost_full": "open", "full": "open", "closed": "closed",
          "unknown": "nodata"}


def parkapi_lots(views: Iterable[Lot], now: datetime, *, data_source: str) -> dict[str, Any]:
    """The ParkAPI lots document of the lots' ``views`` (``api._live``) at ``now``.

    OpenTripPlanner's vehicle-parking updater with ``sourceType: "park-api"`` (``ParkAPIUpdater``,
    ``CarParkAPIUpdater``) takes the array ``lots`` and, per lot: ``id``; ``name``;
    ``coords.lat``/``coords.lng``; ``state`` (``closed`` closes the lot, any other value leaves it
    in operation; the key must be there); ``total`` and ``total:disabled`` as capacity; ``free`` and
    ``free:disabled`` as availability, each only when its key is present (a JSON null would be read
    as 0); ``opening_hours`` in OpenStreetMap syntax; ``url``, ``image_url``, ``notes``; and
    ``lot_type``, ``address``, ``forecast``, ``state`` as tags. So a lot without a current count has
    no ``free`` key and state ``nodata``; ``free:disabled`` is there where bay sensors count every
    disabled space of a counted lot, and left out where nobody measures it.

    The top level keeps ParkAPI's ``last_updated``, ``last_downloaded`` and ``data_source``; as in
    ParkAPI, times are UTC written without an offset (``2024-07-03T10:00:00``), since ParkAPI
    clients parse exactly that shape.
    """
    lots: list[dict[str, Any]] = []
    counted: list[datetime] = []
    for lot in views:
        entry: dict[str, Any] = {
            "id": lot.id,
            "name": lot.name,
            "lot_type": _LOT_TYPE[lot.kind],
            "address": lot.address,
            "coords": {"lat": lot.latitude, "lng": lot.longitude},
            "state": _STATE[lot.status],
            "total": lot.capacity,
            "total:disabled": lot.disabled.capacity,
            "opening_hours": lot.opening_hours,
            "forecast": False,  # ParkAPI's forecast means its /timespan endpoint; not served
        }
        if lot.free is not None and lot.updated is not None:
            entry["free"] = lot.free
            counted.append(lot.updated)
            if lot.disabled.free is not None:
                entry["free:disabled"] = lot.disabled.free
        lots.append(entry)
    return {
        "last_updated": _parkapi_time(max(counted)) if counted else None,
        "last_downloaded": _parkapi_time(now),
        "data_source": data_source,
        "lots": lots,
    }


def _parkapi_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
