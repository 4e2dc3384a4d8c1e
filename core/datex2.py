"""DATEX II v3.7 XML: what every publication shares (the ``d2:payload`` envelope, its
header, versioned tables) and XML writing.

Publications build on :func:`payload` with :func:`child`; element names are written
``"prefix:name"`` with the prefixes of :data:`NAMESPACES`. Times are UTC with an offset.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from core.city import City

__all__ = [
    "NAMESPACES",
    "child",
    "content_version",
    "header_information",
    "multilingual",
    "payload",
    "publisher_id",
    "to_bytes",
    "utc_time",
    "versioned",
]

NAMESPACES = {
    "d2": "http://datex2.eu/schema/3/d2Payload",
    "com": "http://datex2.eu/schema/3/common",
    "loc": "http://datex2.eu/schema/3/locationReferencing",
    "locx": "http://datex2.eu/schema/3/locationExtension",
    "fac": "http://datex2.eu/schema/3/facilities",
    "prk": "http://datex2.eu/schema/3/parking",
    "vms": "http://datex2.eu/schema/3/vms",
    "afac": "http://datex2.eu/schema/3/afirFacilities",
    "aegi": "http://datex2.eu/schema/3/afirEnergyInfrastructure",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
_XSI_TYPE = f"{{{NAMESPACES['xsi']}}}type"
# Characters XML 1.0 cannot hold at all; ElementTree would write them and break the document.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MAX_STRING = 1024  # com:String and MultilingualString values


def _qualified(name: str) -> str:
    prefix, _, local = name.partition(":")
    return f"{{{NAMESPACES[prefix]}}}{local}"


def child(parent: ET.Element, name: str, text: str | None = None, /, *,
          xsi_type: str | None = None, **attributes: str) -> ET.Element:
    """Append ``name`` (``"vms:vmsStatus"``) with optional text, xsi:type and attributes."""
    # Text loses what XML 1.0 cannot hold, and is cut to the 1024 characters of com:String,
    # so free text (a sign's error message) cannot make the document invalid.
    element = ET.SubElement(parent, _qualified(name), attributes)
    if xsi_type is not None:
        _set_type(element, xsi_type)
    if text is not None:
        text = _NOT_XML.sub("", text)
        element.text = text if len(text) <= _MAX_STRING else text[:_MAX_STRING - 1] + "…"
    return element


def _set_type(element: ET.Element, xsi_type: str) -> None:
    prefix, _, local = xsi_type.partition(":")
    # A QName value makes ElementTree declare its namespace and write the prefix it declared,
    # so xsi:type="vms:…" stays resolvable; typeshed types attribute values as str only.
    element.set(_XSI_TYPE, cast(str, ET.QName(NAMESPACES[prefix], local)))


def utc_time(moment: datetime) -> str:
    """``moment`` (timezone-aware) as ISO 8601 in UTC with offset, to the second."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("DATEX II times need a timezone-aware datetime")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def payload(publication_type: str, cities: Sequence[City], now: datetime, *,
            creator: str | None = None, country: str = "DE", lang: str = "de") -> ET.Element:
    """A ``d2:payload`` of ``publication_type`` about ``cities`` with publicationTime and
    publicationCreator (``creator``, default :func:`publisher_id`)."""
    root = ET.Element(_qualified("d2:payload"), {"lang": lang, "modelBaseVersion": "3"})
    _set_type(root, publication_type)
    child(root, "com:publicationTime", utc_time(now))
    publication_creator = child(root, "com:publicationCreator")
    child(publication_creator, "com:country", country)
    child(publication_creator, "com:nationalIdentifier", creator or publisher_id(cities))
    return root


def publisher_id(cities: Iterable[City]) -> str:
    """The publicationCreator's nationalIdentifier of a publication of ``cities``."""
    return "parkleit-" + "-".join(city.id for city in cities)


def header_information(parent: ET.Element, name: str, cities: Iterable[City]) -> ET.Element:
    """Append a HeaderInformation ``name``: test data when any of ``cities`` is illustrative
    (its records are not real ones; consumers must not take them as such)."""
    header = child(parent, name)
    test = any(city.city.illustrative for city in cities)
    child(header, "com:informationStatus", "test" if test else "real")
    return header


def multilingual(parent: ET.Element, name: str, text: str, lang: str = "de") -> ET.Element:
    """Append a MultilingualString ``name`` holding ``text`` in one language."""
    element = child(parent, name)
    child(child(element, "com:values"), "com:value", text, lang=lang)
    return element


def content_version(parts: Iterable[str | ET.Element]) -> str:
    """A version string that changes exactly when ``parts`` (texts or elements) change."""
    digest = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else _serialise(part).decode()
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def versioned(table: ET.Element, elements: Iterable[ET.Element]) -> ET.Element:
    """Version each of ``elements`` (records with an ``id``) by its content, and ``table`` by
    their ids and versions: a version changes exactly when its record does."""
    elements = list(elements)
    for element in elements:
        element.set("version", content_version([element]))
    table.set("version", content_version(
        f"{element.get('id')}={element.get('version')}" for element in elements))
    return table


def to_bytes(root: ET.Element) -> bytes:
    """The document as indented UTF-8 with the XML declaration."""
    ET.indent(root)
    return _serialise(root, declaration=True)


def _serialise(element: ET.Element, *, declaration: bool = False) -> bytes:
    # Registered prefixes (idempotent) make the output readable and the same whatever else
    # registered, so versions hashed from it stay stable.
    for prefix, uri in NAMESPACES.items():
        ET.register_namespace(prefix, uri)
    document: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=declaration)
    return document
