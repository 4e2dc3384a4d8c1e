"""DATEX II v3.7 parking publications of a city's lots (``notes/PROTOCOLS.md`` 3.3, 3.4): the
static ParkingTablePublication and the dynamic ParkingStatusPublication."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime

from api._models import Lot as LotView
from core import datex2
from core.city import City, Lot
from core.datex2 import child, multilingual, utc_time
from core.status import Published

__all__ = ["parking_status_publication", "parking_table_publication"]

# layout (None: no value of LayoutEnum fits) and Characteristics.structureType per lot kind
_KIND = {
    "garage": ("building", "offStreetStructure"),
    "surface": ("openSpace", "offStreetSurface"),
    "on_street": (None, "onStreet"),
}
_PLACE_STATUS = {
    "open": "spacesAvailable",
    "almost_full": "almostFull",
    "full": "full",
    "unknown": "unknown",
    "closed": None,  # ParkingPlaceStatusEnum has no closed; fac:openingStatus says it
}


def parking_table_publication(cities: Sequence[City], now: datetime, *,
                              creator: str | None = None) -> bytes:
    """The ParkingTablePublication of the lots of ``cities`` (a table per city): where each
    is and what it offers.

    One table ``{city}-lots`` with one ``prk:Place`` per lot (id = lot id, layer 1): its name,
    a point with the address, opening hours (``fac:OpenAllHours`` for 24/7, otherwise the
    OpenStreetMap rule as text: a structured specification would need a start date nobody
    knows), its capacity as supply, layout and structure type by kind, and the occupancy at
    which it counts as almost full and full. Disabled and EV charging spaces are
    ``prk:SpecificArea`` children (layer 2, id ``{lot}/disabled``, ``{lot}/ev``) with their own
    supply and the users they are assigned to. Versions are hashes of the published static
    data, so they change exactly when a lot's record does.
    """
    root = datex2.payload("prk:ParkingTablePublication", cities, now, creator=creator)
    datex2.header_information(root, "prk:headerInformation", cities)
    for city in cities:
        _parking_table(root, city, now)
    return datex2.to_bytes(root)


def parking_status_publication(cities: Sequence[City], views: Mapping[str, LotView],
                               now: datetime, *, creator: str | None = None) -> bytes:
    """The ParkingStatusPublication of the lots of ``cities`` at ``now``, from their ``views``
    (``api._live``, keyed by lot id: what every output publishes of a lot).

    Per lot a ``prk:PlaceStatus`` with its opening status, vacant and occupied spaces,
    occupancy and place status. A lot without a current count is status unknown with the fault
    ``noParkingInformationAvailable`` and no numbers; a closed lot has no place status and no
    numbers.

    A lot's EV charging spaces (the table's ``prk:SpecificArea`` ``{lot}/ev``) get a
    ``prk:ParkingStatusInformation`` of their own where the lot's view knows how many are free
    (``ev.free`` of /v1/lots: its free charging points where every EV space has one, read with
    their bays): ``numberOfVacantSpaces``, and ``numberOfSpacesOverride`` where the view counts
    more spaces (``ev.capacity``) than the table's supply (``City.ev_spaces``).
    """
    # A lot without a view is published as unknown; views of other lots are ignored.
    # The references must carry the versions the table publication gives; build it aside.
    scratch = ET.Element("scratch")
    tables = [_parking_table(scratch, city, now) for city in cities]
    versions = {element.get("id", ""): element.get("version", "")
                for element in scratch.iterfind("*/prk:hierarchyElementGeneral",
                                                datex2.NAMESPACES)}
    root = datex2.payload("prk:ParkingStatusPublication", cities, now, creator=creator)
    for table in tables:
        child(root, "prk:parkingTableReference", targetClass="prk:ParkingTable",
              id=table.get("id", ""), version=table.get("version", ""))
    datex2.header_information(root, "prk:headerInformation", cities)
    for owner, lot in ((city, lot) for city in cities for lot in city.lots):
        view = views.get(lot.id)
        current = Published("unknown", None, None, None) if view is None else Published(
            view.status, view.free, view.occupied, view.updated if view.free is not None
            else None)
        info = child(root, "prk:parkingStatusInformation", xsi_type="prk:PlaceStatus")
        child(info, "fac:reference", targetClass="fac:FacilityObject", id=lot.id,
              version=versions[lot.id])
        if current.updated is not None:
            child(info, "fac:lastUpdated", utc_time(current.updated))
        child(info, "fac:openingStatus",
              "closed" if current.status == "closed" else "open")
        if current.status == "unknown":
            child(info, "prk:parkingFault", "noParkingInformationAvailable")
        if current.free is not None and current.occupied is not None:
            occupancy = child(info, "prk:occupancy")
            child(occupancy, "prk:numberOfVacantSpaces", str(current.free))
            child(occupancy, "prk:numberOfOccupiedSpaces", str(current.occupied))
            # The capacity in force (an operator's temporary limit), as the API shows it.
            capacity = lot.capacity if view is None else view.capacity
            if capacity:
                child(occupancy, "prk:occupancy", _number(100 * current.occupied / capacity))
        place_status = _PLACE_STATUS[current.status]
        if place_status is not None:
            child(info, "prk:status", place_status)
        area = f"{lot.id}/ev"
        if view is not None and view.ev.free is not None and area in versions:
            _ev_status(root, lot, owner.ev_spaces(lot.id), view, versions[area])
    return datex2.to_bytes(root)


def _ev_status(root: ET.Element, lot: Lot, supply: int, view: LotView, version: str) -> None:
    """The occupancy of ``lot``'s EV charging spaces, the same figures as its view's ``ev``."""
    info = child(root, "prk:parkingStatusInformation", xsi_type="prk:ParkingStatusInformation")
    child(info, "fac:reference", targetClass="fac:FacilityObject", id=f"{lot.id}/ev",
          version=version)
    if view.updated is not None:
        child(info, "fac:lastUpdated", utc_time(view.updated))
    occupancy = child(info, "prk:occupancy")
    if view.ev.capacity != supply:
        child(occupancy, "prk:numberOfSpacesOverride", str(view.ev.capacity))
    child(occupancy, "prk:numberOfVacantSpaces", str(view.ev.free))


def _parking_table(parent: ET.Element, city: City, now: datetime) -> ET.Element:
    table = child(parent, "prk:parkingTable", id=f"{city.id}-lots", version="")
    multilingual(table, "prk:name", f"Parken in {city.city.name}")
    # versionTime is required; nothing records when the config last changed, so it is the
    # time the table was built (the versions say whether anything changed).
    child(table, "prk:versionTime", utc_time(now))
    elements: list[ET.Element] = []
    for lot in city.lots:
        elements.append(_place(table, lot))
        elements.extend(_special_areas(table, lot, city.ev_spaces(lot.id)))
    return datex2.versioned(table, elements)


def _place(table: ET.Element, lot: Lot) -> ET.Element:
    place = child(table, "prk:hierarchyElementGeneral", xsi_type="prk:Place", id=lot.id,
                  version="")
    multilingual(place, "fac:name", lot.name)
    if lot.opening_hours.strip() == "24/7":
        child(place, "fac:operatingHours", xsi_type="fac:OpenAllHours")
    else:
        multilingual(place, "fac:additionalInformation",
                     f"Öffnungszeiten (OpenStreetMap opening_hours): {lot.opening_hours}")
    _point(place, lot)
    child(place, "prk:layer", "1")
    child(place, "prk:type", "place")
    _supply(place, lot.capacity)
    layout, structure = _KIND[lot.kind]
    if layout is not None:
        child(place, "prk:layout", layout)
    common = child(place, "prk:commonComponents")
    child(child(common, "prk:characteristics"), "prk:structureType", structure)
    # The occupancy shares at which the lot's status turns almost full and full
    # (core.status.lot_status), so consumers can read the published status the way it is meant.
    thresholds = child(common, "prk:thresholdConfiguration")
    for parking_status, share in (("almostFull", lot.almost_full), ("full", lot.full_at)):
        configuration = child(thresholds, "prk:statusConfiguration")
        child(configuration, "prk:parkingStatus", parking_status)
        limits = child(configuration, "prk:thresholds", xsi_type="prk:OccupiedSpacesThresholds")
        child(limits, "prk:lowerThresholdInPercent", _number(100 * share))
    return place


def _point(place: ET.Element, lot: Lot) -> None:
    location = child(place, "fac:locationReference", xsi_type="loc:PointLocation")
    if lot.address:
        # The schema puts the extension of the abstract base first, before the point.
        facility = child(child(location, "loc:_locationReferenceExtension"),
                         "locx:facilityLocation")
        line = child(child(facility, "locx:address"), "locx:addressLine", order="1")
        child(line, "locx:type", "generalTextLine")
        multilingual(line, "locx:text", lot.address)
    point = child(child(location, "loc:pointByCoordinates"), "loc:pointCoordinates")
    child(point, "loc:latitude", str(lot.latitude))
    child(point, "loc:longitude", str(lot.longitude))


def _supply(element: ET.Element, spaces: int) -> None:
    supply = child(element, "prk:supply")
    child(supply, "prk:quantity", str(spaces))
    child(supply, "prk:viewType", "spaceView")


def _special_areas(table: ET.Element, lot: Lot, ev_spaces: int) -> list[ET.Element]:
    areas: list[ET.Element] = []
    for suffix, spaces, label in (("disabled", lot.disabled_spaces, "Behindertenparkplätze"),
                                  ("ev", ev_spaces, "Ladeplätze für Elektroautos")):
        if not spaces:
            continue
        area = child(table, "prk:hierarchyElementGeneral", xsi_type="prk:SpecificArea",
                     id=f"{lot.id}/{suffix}", version="")
        multilingual(area, "fac:name", f"{lot.name}: {label}")
        child(area, "prk:layer", "2")
        child(area, "prk:type", "identifiedArea")
        child(area, "prk:parentId", targetClass="fac:FacilityObject", id=lot.id)
        _supply(area, spaces)
        assignment = child(child(area, "prk:additionalCharacteristics"), "prk:assignment")
        qualification = child(child(assignment, "prk:exclusivelyAssignedFor"),
                              "fac:qualification")
        if suffix == "ev":
            child(qualification, "fac:propulsionEnergyType", "battery")
        else:
            child(child(qualification, "fac:userQualification"), "fac:userGroup",
                  "personsWithDisabilities")
        areas.append(area)
    return areas


def _number(value: float) -> str:
    """A percentage to one decimal, without trailing zeros (90, 93.8)."""
    return f"{round(value, 1):g}"
