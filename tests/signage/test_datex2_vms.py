"""DATEX II v3.7 VMS publications (signage/_datex.py, core/datex2.py): valid against the official
schemas in ../shared/schemas/datex2-v3.7, and saying what the signs show. No services."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import xmlschema
from _helpers import datex2_schema

from core.city import City
from core.datex2 import NAMESPACES, utc_time
from signage import (
    LineContent,
    Observation,
    SignContent,
    SignReport,
    render,
    vms_publication,
    vms_table_publication,
)

NOW = datetime(2024, 7, 3, 10, 0, tzinfo=UTC)  # a Wednesday, 12:00 in Zeitz: all lots open
ACKED = NOW - timedelta(seconds=40)


@dataclass
class Shown:
    """One vmsControllerStatus read back."""

    working: str | None
    lines: list[str] | None
    time_last_set: str | None
    faults: list[tuple[str, str]]  # (vmsFault, description)


def _parse(document: bytes) -> tuple[ET.Element, dict[str, Shown]]:
    root = ET.fromstring(document)
    shown: dict[str, Shown] = {}
    for status in root.findall("vms:vmsControllerStatus", NAMESPACES):
        reference = status.find("vms:vmsControllerReference", NAMESPACES)
        assert reference is not None
        vms = status.find("vms:vmsStatus[@vmsIndex='1']/vms:vmsStatus", NAMESPACES)
        assert vms is not None
        message = vms.find("vms:vmsMessage[@messageIndex='1']/vms:vmsMessage", NAMESPACES)
        lines = None
        if message is not None:
            area = message.find("vms:displayAreaSettings[@displayAreaIndex='1']/"
                                "vms:displayAreaSettings", NAMESPACES)
            assert area is not None
            lines = [line.findtext("vms:textLine/vms:textLine", None, NAMESPACES) or ""
                     for line in area.findall("vms:textLine", NAMESPACES)]
            indices = [line.get("lineIndex") for line in area.findall("vms:textLine", NAMESPACES)]
            assert indices == [str(number) for number in range(1, len(lines) + 1)]
        faults = [(fault.findtext("vms:vmsFault", "", NAMESPACES),
                   fault.findtext("com:faultDescription/com:values/com:value", "", NAMESPACES))
                  for fault in vms.findall("vms:vmsFault", NAMESPACES)]
        shown[reference.get("id", "")] = Shown(
            vms.findtext("vms:workingStatus", None, NAMESPACES), lines,
            None if message is None else message.findtext("vms:timeLastSet", None, NAMESPACES),
            faults)
    return root, shown


def _rendered(city: City) -> dict[str, SignContent]:
    """What every Zeitz sign shows with 100 free spaces in every lot (all open at NOW)."""
    observations = {lot.id: Observation(min(100, lot.capacity), lot.capacity, "open",
                                        NOW - timedelta(seconds=60)) for lot in city.lots}
    return {sign.id: render(sign, city, observations, NOW)[0] for sign in city.signs}


def _expected_lines(content: SignContent) -> list[str]:
    return [f"{line.label} {line.text}".strip() for line in content.lines]


def test_every_sign_showing_content_is_published(datex2: xmlschema.XMLSchema,
                                                 zeitz: City) -> None:
    contents = _rendered(zeitz)
    reports = {sign_id: SignReport(content, ACKED, "working")
               for sign_id, content in contents.items()}
    document = vms_publication([zeitz], reports, NOW)
    datex2.validate(document)
    assert document.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root, shown = _parse(document)
    assert root.get(f"{{{NAMESPACES['xsi']}}}type") == "vms:VmsPublication"
    assert root.get("modelBaseVersion") == "3" and root.get("lang") == "de"
    assert root.findtext("com:publicationTime", None, NAMESPACES) == "2024-07-03T10:00:00+00:00"
    assert root.findtext("com:publicationCreator/com:country", None, NAMESPACES) == "DE"
    # Zeitz is illustrative: its signs must not be published as real.
    assert root.findtext("vms:headerInformation/com:informationStatus", None,
                         NAMESPACES) == "test"
    assert list(shown) == [sign.id for sign in zeitz.signs]
    for sign_id, content in contents.items():
        assert shown[sign_id] == Shown("working", _expected_lines(content),
                                       "2024-07-03T09:59:20+00:00", [])
    assert shown["zeitz-vms-b2-nord"].lines == ["Altmarkt 100", "P+R Bahnhof 100",
                                                "Zentrum 295"]


def test_a_failed_sign_is_not_working_with_its_fault(datex2: xmlschema.XMLSchema,
                                                      zeitz: City) -> None:
    contents = _rendered(zeitz)
    reports = {sign_id: SignReport(content, ACKED, "working")
               for sign_id, content in contents.items()}
    reports["zeitz-vms-b2-sued"] = SignReport(contents["zeitz-vms-b2-sued"], ACKED, "failed",
                                              "no answer within 2 s")
    document = vms_publication([zeitz], reports, NOW)
    datex2.validate(document)
    _, shown = _parse(document)
    failed = shown["zeitz-vms-b2-sued"]
    assert failed.working == "notWorking"
    assert failed.faults == [("outOfService", "no answer within 2 s")]
    # The last confirmed message stays, dated, as the best knowledge of what it shows.
    assert failed.lines == _expected_lines(contents["zeitz-vms-b2-sued"])
    assert all(other.working == "working" and not other.faults
               for sign_id, other in shown.items() if sign_id != "zeitz-vms-b2-sued")


def test_umlauts_and_eszett_survive(datex2: xmlschema.XMLSchema, zeitz: City) -> None:
    sign = zeitz.signs[0]
    content = SignContent(sign.id, (
        LineContent("Roßmarkt", "straight", "geschlossen"),
        LineContent("Schützenplatz", "left", "fast voll"),
        LineContent("Weißenfels Ü", "right", ""),
    ))
    reports = {sign.id: SignReport(content, ACKED, "failed", "Zeitüberschreitung: Größe\x07")}
    document = vms_publication([zeitz], reports, NOW)
    datex2.validate(document)
    assert "Roßmarkt geschlossen".encode() in document  # UTF-8, not character references
    _, shown = _parse(document)
    assert shown[sign.id].lines == ["Roßmarkt geschlossen", "Schützenplatz fast voll",
                                    "Weißenfels Ü"]
    # A control character (not allowed in XML) is dropped, not written.
    assert shown[sign.id].faults == [("outOfService", "Zeitüberschreitung: Größe")]


def test_signs_without_content_yet(datex2: xmlschema.XMLSchema, zeitz: City) -> None:
    first, second = zeitz.signs[0].id, zeitz.signs[1].id
    reports = {first: SignReport(None, None, "unknown"),
               second: SignReport(None, None, "working"),
               "not-a-sign-of-zeitz": SignReport(None, None, "failed")}
    document = vms_publication([zeitz], reports, NOW)
    datex2.validate(document)
    _, shown = _parse(document)
    assert list(shown) == [sign.id for sign in zeitz.signs]
    assert shown[first] == Shown(None, None, None, [])
    assert shown[second] == Shown("working", None, None, [])
    # Signs with no report at all: unknown, nothing claimed.
    assert shown[zeitz.signs[-1].id] == Shown(None, None, None, [])


def test_blank_and_long_texts_stay_valid(datex2: xmlschema.XMLSchema, zeitz: City) -> None:
    sign = zeitz.signs[0]
    blank = SignContent(sign.id, (LineContent("", "none", ""),))
    document = vms_publication(
        [zeitz], {sign.id: SignReport(blank, ACKED, "failed", "x" * 5000)}, NOW)
    datex2.validate(document)
    root, shown = _parse(document)
    assert shown[sign.id].lines == [""]
    assert root.findtext(".//vms:isBlank", None, NAMESPACES) == "true"
    assert len(shown[sign.id].faults[0][1]) == 1024


def test_table_publication_lists_every_sign_where_it_is(datex2: xmlschema.XMLSchema,
                                                        zeitz: City) -> None:
    document = vms_table_publication([zeitz], NOW)
    datex2.validate(document)
    root = ET.fromstring(document)
    assert root.get(f"{{{NAMESPACES['xsi']}}}type") == "vms:VmsTablePublication"
    table = root.find("vms:vmsControllerTable", NAMESPACES)
    assert table is not None and table.get("id") == "zeitz-signs"
    controllers = table.findall("vms:vmsController", NAMESPACES)
    assert [controller.get("id") for controller in controllers] == [s.id for s in zeitz.signs]
    for controller, sign in zip(controllers, zeitz.signs, strict=True):
        vms = controller.find("vms:vms[@vmsIndex='1']/vms:vms", NAMESPACES)
        assert vms is not None
        assert vms.findtext("vms:description/com:values/com:value", None,
                            NAMESPACES) == sign.name
        assert vms.findtext("vms:dedicatedUsage", None, NAMESPACES) == "parkingInformation"
        point = vms.find("vms:vmsLocation/loc:pointByCoordinates/loc:pointCoordinates",
                         NAMESPACES)
        assert point is not None
        assert float(point.findtext("loc:latitude", "", NAMESPACES)) == sign.latitude
        assert float(point.findtext("loc:longitude", "", NAMESPACES)) == sign.longitude
        area = "vms:vmsConfiguration/vms:displayArea[@displayAreaIndex='1']/vms:displayArea/"
        assert vms.findtext(area + "vms:maxNumberOfRows", None, NAMESPACES) == str(
            len(sign.lines))


def _versions(document: bytes) -> dict[str, str]:
    root = ET.fromstring(document)
    versions = {f"table:{element.get('id')}": element.get("version", "")
                for element in root.iter(f"{{{NAMESPACES['vms']}}}vmsControllerTable")}
    versions.update((element.get("id", ""), element.get("version", ""))
                    for element in root.iter(f"{{{NAMESPACES['vms']}}}vmsController"))
    return versions


def _referenced_versions(document: bytes) -> dict[str, str]:
    root = ET.fromstring(document)
    versions: dict[str, str] = {}
    for status in root.findall("vms:vmsControllerStatus", NAMESPACES):
        table = status.find("vms:vmsControllerTableReference", NAMESPACES)
        controller = status.find("vms:vmsControllerReference", NAMESPACES)
        assert table is not None and controller is not None
        assert table.get("targetClass") == "vms:VmsControllerTable"
        versions[f"table:{table.get('id')}"] = table.get("version", "")
        versions[controller.get("id", "")] = controller.get("version", "")
    return versions


def test_versions_stable_and_changing_only_with_the_record(zeitz: City) -> None:
    before = _versions(vms_table_publication([zeitz], NOW))
    assert before == _versions(vms_table_publication([zeitz], NOW + timedelta(hours=1)))
    # The status publication references exactly the table's versions.
    assert _referenced_versions(vms_publication([zeitz], {}, NOW)) == before
    moved = zeitz.signs[2].model_copy(update={"latitude": zeitz.signs[2].latitude + 0.001})
    changed_city = zeitz.model_copy(
        update={"signs": (*zeitz.signs[:2], moved, *zeitz.signs[3:])})
    after = _versions(vms_table_publication([changed_city], NOW))
    assert {key for key in before if before[key] != after[key]} == {
        "table:zeitz-signs", moved.id}


def test_times_are_utc_with_offset() -> None:
    berlin = datetime(2024, 7, 3, 12, 0, 30, 999_000, tzinfo=ZoneInfo("Europe/Berlin"))
    assert utc_time(berlin) == "2024-07-03T10:00:30+00:00"
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_time(datetime(2024, 7, 3, 12, 0))


def test_inconsistent_reports_are_refused(zeitz: City) -> None:
    sign, other = zeitz.signs[0], zeitz.signs[1]
    content = SignContent(other.id, (LineContent("Altmarkt", "left", "12"),))
    with pytest.raises(ValueError, match="both set or both None"):
        SignReport(content, None, "working")
    with pytest.raises(ValueError, match=f"the report for {sign.id} holds content of"):
        vms_publication([zeitz], {sign.id: SignReport(content, ACKED, "working")}, NOW)


def test_a_city_without_signs_is_refused(zeitz: City) -> None:
    signless = zeitz.model_copy(update={"signs": ()})
    with pytest.raises(ValueError, match="no signs to publish"):
        vms_table_publication([signless], NOW)
    with pytest.raises(ValueError, match="no signs to publish"):
        vms_publication([signless], {}, NOW)


def test_the_schema_rejects_a_broken_publication(datex2: xmlschema.XMLSchema,
                                                 zeitz: City) -> None:
    # Validation must be able to fail: drop a required reference from a valid document.
    root = ET.fromstring(vms_publication([zeitz], {}, NOW))
    status = root.find("vms:vmsControllerStatus", NAMESPACES)
    reference = root.find("vms:vmsControllerStatus/vms:vmsControllerReference", NAMESPACES)
    assert status is not None and reference is not None
    status.remove(reference)
    assert not datex2.is_valid(ET.tostring(root))


def test_missing_schemas_fail_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"DATEX II v3\.7 schemas not found"):
        datex2_schema(tmp_path)
