"""OCPP connector statuses onto the OCPI 2.2.1 EVSE status: the one mapping of the central
system (a charging point's status as drivers, the API and DATEX II see it)."""

from __future__ import annotations

from core.charging import EvseStatus

__all__ = ["OCPP16_STATUS", "OCPP201_STATUS"]

# OCPP 1.6 ChargePointStatus (StatusNotification.req, per connectorId) -> OCPI EvseStatus.
OCPP16_STATUS: dict[str, EvseStatus] = {
    "Available": EvseStatus.AVAILABLE,
    # A car is plugged in or a session is being authorised: the point is taken, not free.
    # OCPI has no "occupied"; CHARGING is its word for "in use".
    "Preparing": EvseStatus.CHARGING,
    "Charging": EvseStatus.CHARGING,
    # Connected but not drawing power (the EVSE or the car paused): still in use by that car.
    # Whether it is *blocked* (parked without charging) is the blocked rule's judgement, made
    # with the bay sensor over time, not the charger's.
    "SuspendedEVSE": EvseStatus.CHARGING,
    "SuspendedEV": EvseStatus.CHARGING,
    # The session has ended but the cable is still in or the car has not left: not free yet.
    "Finishing": EvseStatus.CHARGING,
    "Reserved": EvseStatus.RESERVED,
    # Taken out of service on purpose (by the operator or a schedule): not usable, not broken.
    "Unavailable": EvseStatus.INOPERATIVE,
    # An error the charger detected: broken until repaired.
    "Faulted": EvseStatus.OUTOFORDER,
}

# OCPP 2.0.1 ConnectorStatusEnumType (StatusNotificationRequest, per evseId/connectorId).
OCPP201_STATUS: dict[str, EvseStatus] = {
    "Available": EvseStatus.AVAILABLE,
    # 2.0.1 folds 1.6's Preparing/Charging/Suspended*/Finishing into one state: a car is there.
    "Occupied": EvseStatus.CHARGING,
    "Reserved": EvseStatus.RESERVED,
    "Unavailable": EvseStatus.INOPERATIVE,  # as in 1.6: out of service on purpose
    "Faulted": EvseStatus.OUTOFORDER,  # as in 1.6: broken
}
