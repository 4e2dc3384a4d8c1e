"""The names every part shares: PostgreSQL NOTIFY channels and MQTT topics.

A NOTIFY is sent inside the transaction that made the change, so a listener hears it only once
the change is committed (and never hears of one rolled back).
"""

from __future__ import annotations

__all__ = [
    "CONFIG",
    "EVSE_STATE",
    "FORECASTS",
    "LOTS_CHANGED",
    "LOT_STATE",
    "SIGN_CONTENT",
    "SIGN_OVERRIDE",
    "charger_state_topic",
    "charger_status_topic",
    "charger_status_topics",
    "lot_status_topic",
    "service_topic",
    "service_topics",
    "sign_topics",
]

# A lot's announced status (core.status.LotStatus.notification): ingest, the admin API.
LOT_STATE = "parkleit_lot_state"
# Some stored lot state changed, announced or not (quality, flags, a bay of a kind): ingest,
# once per transaction; the payload is the city id.
LOTS_CHANGED = "parkleit_lots_changed"
# A city's forecasts were written: the forecaster; the payload is the city id.
FORECASTS = "parkleit_forecasts"
# What a sign confirmed showing (one sign_log row as JSON): signage.
SIGN_CONTENT = "parkleit_sign_content"
# An operator set or cleared a sign's override; the payload is the sign id: the admin API.
SIGN_OVERRIDE = "parkleit_sign_override"
# A charging point's state changed (core.charging.EvseState.notification): whoever stores
# EVSE readings (core.charging.store_readings: the reported state), and ingest for a point
# whose bays it heard or whose state read with its bays changed (the effective state). The
# live stream reads the points it names again (api._hub), so either kind of payload will do.
EVSE_STATE = "parkleit_evse_state"
# The city configs were changed by an admin reload; the payload is the city id: the admin API.
CONFIG = "parkleit_config"


def lot_status_topic(city_id: str, lot_id: str) -> str:
    """The retained MQTT status topic of a lot (``core.status.LotStatus.to_json``)."""
    return f"parkleit/v1/{city_id}/lots/{lot_id}/status"


def charger_status_topic(city_id: str, evse_id: str) -> str:
    """The MQTT topic a gateway publishes a charging point's status on (ingest reads it).

    EVSE ids contain ``*``: a legal character in a topic level (only + and # are wildcards)."""
    return f"parkleit/v1/{city_id}/chargers/{evse_id}/status"


def charger_status_topics(city_id: str) -> str:
    """The MQTT filter of every charging point's status topic of a city."""
    return charger_status_topic(city_id, "+")


def charger_state_topic(city_id: str, evse_id: str) -> str:
    """The retained MQTT topic of a charging point's state (``core.charging.EvseState``)."""
    return f"parkleit/v1/{city_id}/chargers/{evse_id}/state"


def service_topic(city_id: str, name: str) -> str:
    """The retained ``online``/``offline`` topic of a service of a city."""
    return f"parkleit/v1/{city_id}/services/{name}"


def service_topics(city_id: str) -> str:
    """The MQTT filter of every service topic of a city (``service_topic``)."""
    return service_topic(city_id, "+")


def sign_topics(address: str) -> tuple[str, str]:
    """The content and acknowledgement topics of an MQTT sign whose address is ``address``."""
    base = address.strip().rstrip("/")
    if not base or "+" in base or "#" in base or base.startswith("$"):
        raise ValueError(f"{address!r} is not a topic base (no wildcards, no $ topics)")
    return f"{base}/content", f"{base}/ack"
