"""DATEX II v3.7 VMS publications of a city's signs (``notes/PROTOCOLS.md`` 2.4).

``vms_table_publication`` is the static part (VmsTablePublication): one table
``{city}-signs`` with one VmsController per sign (id = sign id), each with one vms
(vmsIndex 1) used for parking information, its location as a point and one text display area
(displayAreaIndex 1) of the sign's line count and width. ``vms_publication`` is the dynamic
part (VmsPublication): per sign, its working status, the message it last confirmed showing
(lineIndex 1..n, each line ``label text`` as on the sign) and a fault when it failed.

Arrows are not published: DATEX II pictograms fill display areas of their own, with nothing
that ties one to a text line. Versions are hashes of the published static data, so they
change exactly when a sign's record does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core import datex2
from core.city import City, Sign
from core.datex2 import child, multilingual, utc_time
from signage._content import SignContent

__all__ = ["SignHealth", "SignReport", "vms_publication", "vms_table_publication"]

SignHealth = Literal["working", "failed", "unknown"]
_WORKING_STATUS: dict[SignHealth, str | None] = {
    "working": "working",
    "failed": "notWorking",
    "unknown": None,  # nothing known: the element is left out rather than guessed
}


@dataclass(frozen=True, slots=True)
class SignReport:
    """What the signage service knows of one sign: the content it last confirmed showing and
    when (both None before its first ack), whether it works now, and why not (one line)."""

    content: SignContent | None
    acked_at: datetime | None
    status: SignHealth
    detail: str = ""

    def __post_init__(self) -> None:
        if (self.content is None) != (self.acked_at is None):
            raise ValueError("content and acked_at go together: both set or both None")


_NO_REPORT = SignReport(None, None, "unknown")


def vms_table_publication(cities: Sequence[City], now: datetime, *,
                          creator: str | None = None) -> bytes:
    """The VmsTablePublication of the signs of ``cities`` (a table per city with signs):
    where each is and what it can show."""
    root = _payload("vms:VmsTablePublication", cities, now, creator)
    for city in _with_signs(cities):
        _controller_table(root, city)
    return datex2.to_bytes(root)


def vms_publication(cities: Sequence[City], reports: Mapping[str, SignReport], now: datetime,
                    *, creator: str | None = None) -> bytes:
    """The VmsPublication of what every sign of ``cities`` shows; ``reports`` keyed by sign
    id."""
    # A sign without a report is published as unknown; reports of other signs are ignored.
    # The references must carry the versions the table publication gives; build it aside.
    signs_of = _with_signs(cities)
    root = _payload("vms:VmsPublication", cities, now, creator)
    for city in signs_of:
        _statuses(root, city, reports, now)
    return datex2.to_bytes(root)


def _statuses(root: ET.Element, city: City, reports: Mapping[str, SignReport],
              now: datetime) -> None:
    table = _controller_table(ET.Element("scratch"), city)
    versions = {controller.get("id", ""): controller.get("version", "") for controller in table}
    for sign in city.signs:
        report = reports.get(sign.id, _NO_REPORT)
        if report.content is not None and report.content.sign_id != sign.id:
            raise ValueError(f"the report for {sign.id} holds content of "
                             f"{report.content.sign_id}")
        status = child(root, "vms:vmsControllerStatus")
        child(status, "vms:vmsControllerTableReference", targetClass="vms:VmsControllerTable",
              id=table.get("id", ""), version=table.get("version", ""))
        child(status, "vms:vmsControllerReference", targetClass="vms:VmsController",
              id=sign.id, version=versions[sign.id])
        _vms_status(child(child(status, "vms:vmsStatus", vmsIndex="1"), "vms:vmsStatus"),
                    report, now)


def _with_signs(cities: Sequence[City]) -> list[City]:
    with_signs = [city for city in cities if city.signs]
    if not with_signs:
        # Both publications need at least one controller; an empty one would not validate.
        raise ValueError(f"no signs to publish in {', '.join(city.id for city in cities)}")
    return with_signs


def _payload(publication_type: str, cities: Sequence[City], now: datetime,
             creator: str | None) -> ET.Element:
    root = datex2.payload(publication_type, cities, now, creator=creator)
    datex2.header_information(root, "vms:headerInformation", cities)
    return root


def _controller_table(parent: ET.Element, city: City) -> ET.Element:
    table = child(parent, "vms:vmsControllerTable", id=f"{city.id}-signs", version="")
    for sign in city.signs:
        _controller(child(table, "vms:vmsController", id=sign.id, version=""), sign)
    return datex2.versioned(table, list(table))


def _controller(controller: ET.Element, sign: Sign) -> None:
    child(controller, "vms:numberOfVms", "1")
    vms = child(child(controller, "vms:vms", vmsIndex="1"), "vms:vms")
    multilingual(vms, "vms:description", sign.name)
    child(vms, "vms:dedicatedUsage", "parkingInformation")
    configuration = child(vms, "vms:vmsConfiguration")
    child(configuration, "vms:numberOfDisplayAreas", "1")
    area = child(child(configuration, "vms:displayArea", displayAreaIndex="1"),
                 "vms:displayArea", xsi_type="vms:TextDisplayArea")
    child(area, "vms:maxNumberOfCharacters", str(sign.display.line_width))
    child(area, "vms:maxNumberOfRows", str(len(sign.lines)))
    location = child(vms, "vms:vmsLocation", xsi_type="loc:PointLocation")
    point = child(child(location, "loc:pointByCoordinates"), "loc:pointCoordinates")
    child(point, "loc:latitude", str(sign.latitude))
    child(point, "loc:longitude", str(sign.longitude))


def _vms_status(status: ET.Element, report: SignReport, now: datetime) -> None:
    working = _WORKING_STATUS[report.status]
    if working is not None:
        child(status, "vms:workingStatus", working)
    if report.content is not None and report.acked_at is not None:
        # Kept for a failed or unknown sign too: it is the last thing known to be shown, and
        # timeLastSet says how old that knowledge is.
        message = child(child(status, "vms:vmsMessage", messageIndex="1"), "vms:vmsMessage")
        child(message, "vms:setBySystem", "true")
        child(message, "vms:timeLastSet", utc_time(report.acked_at))
        texts = [" ".join(part for part in (line.label, line.text) if part)
                 for line in report.content.lines]
        display = child(child(message, "vms:displayAreaSettings", displayAreaIndex="1"),
                        "vms:displayAreaSettings", xsi_type="vms:TextDisplay")
        child(display, "vms:isBlank", "false" if any(texts) else "true")
        for index, text in enumerate(texts, start=1):
            line = child(display, "vms:textLine", lineIndex=str(index))
            child(child(line, "vms:textLine"), "vms:textLine", text)
    if report.status == "failed":
        fault = child(status, "vms:vmsFault")
        if report.detail:
            multilingual(fault, "com:faultDescription", report.detail)
        # The service asserts the fault as of this publication.
        child(fault, "com:faultLastUpdateTime", utc_time(now))
        child(fault, "vms:vmsFault", "outOfService")
