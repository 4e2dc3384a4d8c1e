"""DATEX II v3.7 AFIR publications of a city's charging points (the AFIR extension
``aegi``/``afac``, as the German Mobilithek AFIR recharging profile uses it): the static
EnergyInfrastructureTablePublication and the dynamic EnergyInfrastructureStatusPublication.

Sites are the lots the stations stand on (id: the lot id), stations the charging stations
(id: the OCPP charge point id, with the BNetzA id as external identifier where the config has
one: the profile asks for it), refill points the EVSEs (id: the eMI3 EVSE id). Only the points
of stations the city operates itself are published unless ``all_operators``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime

from core import datex2
from core.charging import EvseState, EvseStatus
from core.city import ChargingStation, City, Connector, Evse, Lot
from core.datex2 import child, content_version, multilingual, utc_time

__all__ = [
    "REFILL_POINT_STATUS",
    "energy_status_publication",
    "energy_table_publication",
    "published_stations",
]

# OCPI EVSE status -> RefillPointStatusEnum, one to one.
REFILL_POINT_STATUS: dict[EvseStatus, str] = {
    EvseStatus.AVAILABLE: "available",
    EvseStatus.BLOCKED: "blocked",
    EvseStatus.CHARGING: "charging",
    EvseStatus.INOPERATIVE: "inoperative",
    EvseStatus.OUTOFORDER: "outOfOrder",
    EvseStatus.PLANNED: "planned",
    EvseStatus.REMOVED: "removed",
    EvseStatus.RESERVED: "reserved",
    EvseStatus.UNKNOWN: "unknown",
}
# OCPI ConnectorType -> ConnectorTypeEnum; the others are "other" with their OCPI name.
_CONNECTOR_TYPE = {
    "CHADEMO": "chademo", "IEC_60309_2_single_16": "iec60309x2single16",
    "IEC_60309_2_three_16": "iec60309x2three16", "IEC_60309_2_three_32": "iec60309x2three32",
    "IEC_60309_2_three_64": "iec60309x2three64", "IEC_62196_T1": "iec62196T1",
    "IEC_62196_T1_COMBO": "iec62196T1COMBO", "IEC_62196_T2": "iec62196T2",
    "IEC_62196_T2_COMBO": "iec62196T2COMBO", "IEC_62196_T3A": "iec62196T3A",
    "IEC_62196_T3C": "iec62196T3C", "PANTOGRAPH_BOTTOM_UP": "pantographBottomUp",
    "PANTOGRAPH_TOP_DOWN": "pantographTopDown", "TESLA_R": "teslaR", "TESLA_S": "teslaS",
    **{f"DOMESTIC_{letter}": f"domestic{letter}Type" for letter in "ABCDEFGHIJKLMNO"},
}
_SITE_TYPE = {"garage": "inBuilding", "surface": "openSpace", "on_street": "onstreet"}
_CITY_OPERATOR = "Stadt {name}"
BNETZA_IDENTIFIER = "BNetzA-Ladesäulenregister"


def published_stations(city: City, *, all_operators: bool = False
                       ) -> list[ChargingStation]:
    """The stations of ``city`` in its AFIR publications: the city's own, or every one."""
    return [station for station in city.chargers if all_operators or station.city_operated]


def _sites(city: City, stations: Sequence[ChargingStation]
           ) -> Iterator[tuple[Lot, list[ChargingStation]]]:
    """The site lots of ``stations`` in the config's lot order, each with its stations."""
    for lot in city.lots:
        on_lot = [station for station in stations if station.lot == lot.id]
        if on_lot:
            yield lot, on_lot


def energy_table_publication(cities: Sequence[City], now: datetime, *,
                             all_operators: bool = False) -> bytes:
    """The EnergyInfrastructureTablePublication of the published charging points of
    ``cities`` (a table ``{city}-charging`` per city with any): sites, stations, refill points
    with their connectors and power, and the parking spaces each point serves. Versions are
    hashes of the published data, so they change exactly when a record does."""
    root = datex2.payload("aegi:EnergyInfrastructureTablePublication", cities, now)
    datex2.header_information(root, "aegi:headerInformation", cities)
    for city in cities:
        _table(root, city, all_operators=all_operators)
    return datex2.to_bytes(root)


def energy_status_publication(cities: Sequence[City], states: Mapping[str, EvseState],
                              now: datetime, *, all_operators: bool = False,
                              occupied: Collection[str] = ()) -> bytes:
    """The EnergyInfrastructureStatusPublication of the published charging points of
    ``cities`` at ``now``: per refill point its status (``REFILL_POINT_STATUS``) and when it
    was last reported; a point with no state in ``states`` (keyed by EVSE id) is unknown, an
    available one whose bay is occupied (EVSE ids ``occupied``) is ``occupied``."""
    scratch = ET.Element("scratch")
    tables = [table for city in cities
              if (table := _table(scratch, city, all_operators=all_operators)) is not None]
    versions = {element.get("id", ""): element.get("version", "")
                for element in scratch.iter() if element.get("version") is not None}
    root = datex2.payload("aegi:EnergyInfrastructureStatusPublication", cities, now)
    for table in tables:
        child(root, "aegi:tableReference", targetClass="aegi:EnergyInfrastructureTable",
              id=table.get("id", ""), version=table.get("version", ""))
    datex2.header_information(root, "aegi:headerInformation", cities)
    for city in cities:
        for lot, stations in _sites(city, published_stations(city,
                                                              all_operators=all_operators)):
            site = child(root, "aegi:energyInfrastructureSiteStatus")
            _reference(site, lot.id, versions)
            for station in stations:
                station_status = child(site, "aegi:energyInfrastructureStationStatus")
                _reference(station_status, station.id, versions)
                known = [states[e.evse_id].updated for e in station.evses if e.evse_id in states]
                if known:
                    child(station_status, "afac:lastUpdated", utc_time(max(known)))
                for evse in station.evses:
                    state = states.get(evse.evse_id)
                    point = child(station_status, "aegi:refillPointStatus",
                                  xsi_type="aegi:ElectricChargingPointStatus")
                    _reference(point, evse.evse_id, versions)
                    if state is not None:
                        child(point, "afac:lastUpdated", utc_time(state.updated))
                    status = EvseStatus.UNKNOWN if state is None else state.status
                    word = REFILL_POINT_STATUS[status]
                    if status is EvseStatus.AVAILABLE and evse.evse_id in occupied:
                        word = "occupied"  # a car on its bay, not (yet) blocked
                    child(point, "aegi:status", word)
    return datex2.to_bytes(root)


def _reference(parent: ET.Element, ident: str, versions: Mapping[str, str]) -> None:
    child(parent, "afac:reference", targetClass="afac:FacilityObject", id=ident,
          version=versions[ident])


def _table(parent: ET.Element, city: City, *, all_operators: bool) -> ET.Element | None:
    stations = published_stations(city, all_operators=all_operators)
    if not stations:
        return None
    table = child(parent, "aegi:energyInfrastructureTable", id=f"{city.id}-charging",
                  version="")
    child(table, "aegi:tableName", f"Ladeinfrastruktur {city.city.name}")
    sites = [_site(table, city, lot, on_lot) for lot, on_lot in _sites(city, stations)]
    return datex2.versioned(table, sites)


def _site(table: ET.Element, city: City, lot: Lot,
          stations: Sequence[ChargingStation]) -> ET.Element:
    site = child(table, "aegi:energyInfrastructureSite", id=lot.id, version="")
    multilingual(site, "afac:name", lot.name)
    _location(site, lot.latitude, lot.longitude, lot.address)
    # A site of several operators' stations names none of them; the stations do.
    operators = {station.operator for station in stations}
    if len(operators) == 1:
        _operator(site, city, stations[0])
    child(site, "aegi:typeOfSite", _SITE_TYPE[lot.kind])
    for station in stations:
        _station(site, city, lot, station)
    return site


def _station(site: ET.Element, city: City, lot: Lot, station: ChargingStation) -> None:
    element = child(site, "aegi:energyInfrastructureStation", id=station.id, version="")
    multilingual(element, "afac:name", station.name)
    if station.bnetza_id is not None:
        identifier = child(element, "afac:externalIdentifier")
        child(identifier, "afac:identifier", station.bnetza_id)
        child(identifier, "afac:otherTypeOfIdentifier", BNETZA_IDENTIFIER)
    latitude, longitude = city.station_position(station)
    _location(element, latitude, longitude, lot.address)
    _operator(element, city, station)
    child(element, "aegi:totalMaximumPower", _watts(sum(
        _max_power_kw(evse) for evse in station.evses)))
    child(element, "aegi:numberOfRefillPoints", str(len(station.evses)))
    for evse in station.evses:
        _refill_point(element, evse)
    _version(element)


def _refill_point(station: ET.Element, evse: Evse) -> None:
    point = child(station, "aegi:refillPoint", xsi_type="aegi:ElectricChargingPoint",
                  id=evse.evse_id, version="")
    if evse.tariff is not None:
        multilingual(point, "afac:additionalInformation", f"Tarif: {evse.tariff}")
    if evse.bays:
        spaces = child(point, "afac:dedicatedParkingSpaces", id=f"{evse.evse_id}/parking",
                       version="")
        child(spaces, "aegi:numberOfSpaces", str(len(evse.bays)))
        spaces.set("version", content_version([spaces]))
    child(point, "aegi:deliveryUnit", "kWh")
    current = {"DC" if c.power_type == "DC" else "AC" for c in evse.connectors}
    child(point, "aegi:currentType", "dc" if current == {"DC"} else "ac")
    child(point, "aegi:numberOfConnectors", str(len(evse.connectors)))
    child(point, "aegi:availableChargingPower", _watts(_max_power_kw(evse)))
    for connector in evse.connectors:
        _connector(point, connector)
    _version(point)


def _connector(point: ET.Element, connector: Connector) -> None:
    element = child(point, "aegi:connector")
    kind = _CONNECTOR_TYPE.get(connector.standard)
    child(element, "aegi:connectorType", kind or "other")
    if kind is None:
        child(element, "aegi:otherConnector", connector.standard)
    if connector.format == "SOCKET":
        child(element, "aegi:connectorFormat", "socket")
    else:  # a fixed cable: mode 3 on AC; DC (mode 4) has no value of its own
        child(element, "aegi:connectorFormat",
              "otherCable" if connector.power_type == "DC" else "cableMode3")
    child(element, "aegi:maxPowerAtSocket", _watts(connector.max_power_kw))


def _location(parent: ET.Element, latitude: float, longitude: float, address: str) -> None:
    location = child(parent, "afac:locationReference", xsi_type="loc:PointLocation")
    if address:
        facility = child(child(location, "loc:_locationReferenceExtension"),
                         "locx:facilityLocation")
        line = child(child(facility, "locx:address"), "locx:addressLine", order="1")
        child(line, "locx:type", "generalTextLine")
        multilingual(line, "locx:text", address)
    point = child(child(location, "loc:pointByCoordinates"), "loc:pointCoordinates")
    child(point, "loc:latitude", str(latitude))
    child(point, "loc:longitude", str(longitude))


def _operator(parent: ET.Element, city: City, station: ChargingStation) -> None:
    name = (_CITY_OPERATOR.format(name=city.city.name) if station.city_operated
            else station.operator)
    operator = child(parent, "afac:operator", xsi_type="afac:AnOrganisation")
    multilingual(operator, "afac:name", name)


def _max_power_kw(evse: Evse) -> float:
    """A point charges one vehicle at a time: its power is its strongest connector's."""
    return max(connector.max_power_kw for connector in evse.connectors)


def _watts(kilowatts: float) -> str:
    return f"{kilowatts * 1000:g}"


def _version(element: ET.Element) -> ET.Element:
    """Version ``element`` by its content (its children's versions included)."""
    element.set("version", content_version([element]))
    return element
