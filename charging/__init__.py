"""Charging points: the OCPP central system the city's own chargers connect to."""

from charging._central import SUBPROTOCOLS
from charging._credentials import CredentialError, Credentials, add_station, hash_password
from charging._service import OcppService, ocpp_problem
from charging._status import OCPP16_STATUS, OCPP201_STATUS

__all__ = [
    "OCPP16_STATUS",
    "OCPP201_STATUS",
    "SUBPROTOCOLS",
    "CredentialError",
    "Credentials",
    "OcppService",
    "add_station",
    "hash_password",
    "ocpp_problem",
]
