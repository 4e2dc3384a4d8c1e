"""One charge point's connection to the central system: the ``ocpp`` package's ChargePoint (1.6
and 2.0.1) with our handlers, and the one rule for bad input.

Every call the station sends is answered: a payload the schema refuses gets the package's
CallError (FormatViolation, TypeConstraintViolation, ProtocolError, ...), an action without a
handler NotImplemented/NotSupported, a connector or EVSE the station does not have
PropertyConstraintViolation, text that is no OCPP message at all a CallError too (unique id
"-1" where none can be read) - and each of them a ``dead_letters`` row (topic
``ocpp/{charge_point_id}``). The connection stays up: one station's garbage never touches
another's link.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ocpp.exceptions import OCPPError, PropertyConstraintViolationError
from ocpp.messages import CallError, MessageType, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import RegistrationStatus
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from ocpp.v201.enums import RegistrationStatusEnumType

from charging._status import OCPP16_STATUS, OCPP201_STATUS
from core.charging import EvseReading, EvseStatus
from core.city import ChargingStation, City, Evse

__all__ = ["SUBPROTOCOLS", "Hub", "StationLink", "central_for"]

logger = logging.getLogger(__name__)

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")  # the server's preference when a station offers both
# A station's own timestamp is believed within this window before the receipt (a station
# that was offline sends its queued messages late); outside it (a clock reset to 1970, a clock
# running ahead) the time of receipt is used, so newest-wins never locks a point's state.
TRUST_STATION_CLOCK = timedelta(hours=24)


class Hub(Protocol):
    """What a station's connection needs of the service."""

    heartbeat_s: int

    def now(self) -> datetime: ...

    async def store(self, city: City, readings: list[EvseReading]) -> None: ...

    async def dead_letter(self, station_id: str, raw: str | bytes, reason: str) -> None: ...


@dataclass
class StationLink:
    """What the central system knows of one connected station."""

    city: City
    station: ChargingStation
    booted: bool = False
    last_seen: datetime | None = None
    power_kw: dict[int, float] = field(default_factory=dict)  # last power by EVSE number
    # The time and status of the last reading stored, by EVSE number.
    last: dict[int, tuple[datetime, EvseStatus]] = field(default_factory=dict)


def _evse(link: StationLink, number: int) -> Evse | None:
    return next((evse for evse in link.station.evses if evse.number == number), None)


def _unique_id(raw: str | bytes) -> str:
    """The message id of a message that cannot be unpacked, if one can be read ("-1" else,
    as OCPP-J says for an unreadable message)."""
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "-1"
    if isinstance(message, list) and len(message) > 1 and isinstance(message[1], str):
        return message[1][:36]
    return "-1"


class _Central:
    """What both versions share: routing with dead letters, timestamps, storing a status."""

    id: str
    hub: Hub
    link: StationLink
    _raw: str | bytes = ""

    if TYPE_CHECKING:  # the ocpp ChargePoint's
        async def _send(self, message: str) -> None: ...

        async def _handle_call(self, msg: Any) -> None: ...

    async def route_message(self, raw_msg: str | bytes) -> None:
        """The package's routing, plus a CallError for unparseable text and a dead letter for
        every refusal (its own routing logs and drops what it cannot unpack)."""
        self.link.last_seen = self.hub.now()
        try:
            msg = unpack(raw_msg)
        except OCPPError as error:
            await self.hub.dead_letter(self.id, raw_msg, f"{error.code}: {_cause(error)}")
            await self._send(CallError(_unique_id(raw_msg), error.code, error.description,
                                       {"cause": _cause(error)}).to_json())
            return
        if msg.message_type_id != MessageType.Call:
            # The central system sends no calls, so no answer is awaited.
            await self.hub.dead_letter(self.id, raw_msg, "an answer to no call of ours")
            return
        self._raw = raw_msg
        try:
            await self._handle_call(msg)
        except OCPPError as error:  # schema violations, unknown actions
            logger.info("%s: %s refused: %s %s", self.id, msg.action, error.code,
                        _cause(error))
            await self.hub.dead_letter(self.id, raw_msg, f"{msg.action}: {error.code}: "
                                       f"{_cause(error)}")
            await self._send(msg.create_call_error(error).to_json())

    async def _refuse(self, reason: str) -> OCPPError:
        """A dead letter for the call being handled; the CallError to raise."""
        await self.hub.dead_letter(self.id, self._raw, reason)
        logger.info("%s: refused: %s", self.id, reason)
        return PropertyConstraintViolationError(description=reason)

    def _time(self, reported: str | None) -> datetime:
        now = self.hub.now()
        if reported:
            try:
                moment = datetime.fromisoformat(reported.replace("z", "Z"))
            except ValueError:
                return now
            if moment.tzinfo is not None and now - TRUST_STATION_CLOCK <= moment <= now:
                return moment
        return now

    async def _status(self, evse: Evse, status: EvseStatus, reported: str | None) -> None:
        ts = self._time(reported)
        last = self.link.last.get(evse.number)
        if last is not None and ts <= last[0] and status != last[1]:
            # A new status no later than the last (timestamps in whole seconds): it came
            # after it on this link, so it is newer - by a microsecond, which also keeps the
            # (point, time) key of evse_status apart. The same status at the same time is a
            # repeat of an unanswered call and stays one row.
            ts = last[0] + timedelta(microseconds=1)
        self.link.last[evse.number] = (max(ts, last[0]) if last else ts, status)
        await self.hub.store(self.link.city, [EvseReading(
            evse_id=evse.evse_id, status=status, ts=ts, source="ocpp")])

    def _booted(self, vendor: str, model: str) -> None:
        self.link.booted = True
        logger.info("%s booted (%s %s, %s)", self.id, vendor, model,
                    self.link.station.name)

    def _power(self, number: int, meter_values: list[dict[str, Any]]) -> None:
        """Keep the last active power import of the EVSE, in kW (accepted, not stored)."""
        for meter_value in meter_values:
            for sample in meter_value.get("sampled_value", []):
                measurand = sample.get("measurand", "Energy.Active.Import.Register")
                if measurand != "Power.Active.Import" or sample.get("phase"):
                    continue
                try:
                    value = float(sample["value"])
                except (KeyError, TypeError, ValueError):
                    continue
                unit = (sample.get("unit") or sample.get("unit_of_measure", {}).get("unit")
                        or "W")
                self.link.power_kw[number] = value if unit == "kW" else value / 1000


def _on(action: str) -> Callable[[_Handler], _Handler]:
    """The package's ``on`` (a handler of ``action``), typed."""
    decorator: Callable[[_Handler], _Handler] = on(action)
    return decorator


def _cause(error: OCPPError) -> str:
    details = error.details if isinstance(error.details, dict) else {}
    return str(details.get("cause") or error.description)[:300]


class Central16(_Central, ChargePoint16):  # type: ignore[misc]  # untyped package
    """An OCPP 1.6J station."""

    def __init__(self, station_id: str, connection: Any, hub: Hub, link: StationLink) -> None:
        super().__init__(station_id, connection)
        self.hub, self.link = hub, link

    @_on(Action16.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str,
                **_: Any) -> result16.BootNotification:
        self._booted(charge_point_vendor, charge_point_model)
        return result16.BootNotification(current_time=_rfc3339(self.hub.now()),
                                         interval=self.hub.heartbeat_s,
                                         status=RegistrationStatus.accepted)

    @_on(Action16.heartbeat)
    def on_heartbeat(self) -> result16.Heartbeat:
        return result16.Heartbeat(current_time=_rfc3339(self.hub.now()))

    @_on(Action16.status_notification)
    async def on_status(self, connector_id: int, error_code: str, status: str,
                        timestamp: str | None = None, **_: Any) -> result16.StatusNotification:
        if connector_id == 0:
            # The main controller's status: each connector reports its own, so this one
            # says nothing of a point's availability.
            logger.info("%s: charge point %s (%s)", self.id, status, error_code)
            return result16.StatusNotification()
        evse = _evse(self.link, connector_id)
        if evse is None:
            raise await self._refuse(f"StatusNotification: connector {connector_id} is not "
                                     f"one of station {self.id}'s")
        await self._status(evse, OCPP16_STATUS[status], timestamp)
        return result16.StatusNotification()

    @_on(Action16.meter_values)
    async def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]],
                              **_: Any) -> result16.MeterValues:
        if connector_id != 0:
            if _evse(self.link, connector_id) is None:
                raise await self._refuse(f"MeterValues: connector {connector_id} is not one "
                                         f"of station {self.id}'s")
            self._power(connector_id, meter_value)
        return result16.MeterValues()


class Central201(_Central, ChargePoint201):  # type: ignore[misc]
    """An OCPP 2.0.1 station."""

    def __init__(self, station_id: str, connection: Any, hub: Hub, link: StationLink) -> None:
        super().__init__(station_id, connection)
        self.hub, self.link = hub, link

    @_on(Action201.boot_notification)
    def on_boot(self, charging_station: dict[str, Any], reason: str,
                **_: Any) -> result201.BootNotification:
        self._booted(charging_station.get("vendor_name", "?"),
                     charging_station.get("model", "?"))
        return result201.BootNotification(current_time=_rfc3339(self.hub.now()),
                                          interval=self.hub.heartbeat_s,
                                          status=RegistrationStatusEnumType.accepted)

    @_on(Action201.heartbeat)
    def on_heartbeat(self, **_: Any) -> result201.Heartbeat:
        return result201.Heartbeat(current_time=_rfc3339(self.hub.now()))

    async def _connector(self, action: str, evse_id: int, connector_id: int | None) -> Evse:
        evse = _evse(self.link, evse_id)
        if evse is None:
            raise await self._refuse(f"{action}: EVSE {evse_id} is not one of station "
                                     f"{self.id}'s")
        if connector_id is not None and not 1 <= connector_id <= max(1, len(evse.connectors)):
            raise await self._refuse(f"{action}: EVSE {evse_id} of station {self.id} has no "
                                     f"connector {connector_id}")
        return evse

    @_on(Action201.status_notification)
    async def on_status(self, timestamp: str, connector_status: str, evse_id: int,
                        connector_id: int, **_: Any) -> result201.StatusNotification:
        evse = await self._connector("StatusNotification", evse_id, connector_id)
        await self._status(evse, OCPP201_STATUS[connector_status], timestamp)
        return result201.StatusNotification()

    @_on(Action201.meter_values)
    async def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]],
                              **_: Any) -> result201.MeterValues:
        if evse_id != 0:  # 0: the whole station's main meter
            await self._connector("MeterValues", evse_id, None)
            self._power(evse_id, meter_value)
        return result201.MeterValues()

    @_on(Action201.transaction_event)
    async def on_transaction_event(self, event_type: str, timestamp: str, trigger_reason: str,
                                   seq_no: int, transaction_info: dict[str, Any],
                                   evse: dict[str, Any] | None = None,
                                   meter_value: list[dict[str, Any]] | None = None,
                                   **_: Any) -> result201.TransactionEvent:
        # The point's availability comes with StatusNotification; a transaction adds its
        # power (and, where the station names it, checks the EVSE is one of its own).
        if evse is not None:
            await self._connector("TransactionEvent", evse["id"], evse.get("connector_id"))
            if meter_value:
                self._power(evse["id"], meter_value)
        return result201.TransactionEvent()


def central_for(subprotocol: str | None) -> type[Central16] | type[Central201]:
    """The ChargePoint class of a negotiated subprotocol."""
    return Central16 if subprotocol == "ocpp1.6" else Central201


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
