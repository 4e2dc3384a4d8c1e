"""What a client may send, checked at the edge: a time as RFC 3339 text in a range that
arithmetic on it cannot overflow, and text without control characters and of bounded length.

Each is a type for a route's parameters or request models, so a bad value is a 422 problem
naming the field before any route code, the database or a log sees it (PostgreSQL refuses NUL
in text and lone surrogates cannot be encoded: either was a 500). Ids are checked by the
registry's pattern (``core.city.ID_PATTERN``) and looked up before use.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

__all__ = ["EARLIEST", "LATEST", "TEXT_PATTERN", "Moment", "SafeText"]

# Wide enough for any history or forecast; narrow enough that no arithmetic a route does on a
# time (a window of days before it, its conversion to UTC, its bucket) leaves Python's years
# 1 to 9999: 0001-01-01T00:00:00Z and 9999-12-31T23:59:59-23:59 were 500s.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

# C0 and C1 controls (NUL, tab and newline among them: no field here takes several lines),
# the line and paragraph separators, and the bidirectional overrides and isolates (text that
# reads otherwise than it is stored, in the audit or on a sign).
_CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
TEXT_PATTERN = f"^[^{_CONTROLS}]*$"
_REFUSED = re.compile(f"[{_CONTROLS}]")
# Lone surrogates (JSON allows "\ud800"; no UTF-8 can carry one) pydantic's str refuses itself.


# RFC 3339 date-time (section 5.6), what JSON Schema's "date-time" format means. Pydantic alone
# also takes a number or numeric text as a Unix time ("0.5"), a date without a time, a space
# for the "T" and a time without an offset (refused later, less clearly).
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
                      r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")


def _rfc3339_text(value: object) -> object:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be a date and time in RFC 3339 with an offset, e.g. "
                         "2026-06-17T10:00:00+02:00 or 2026-06-17T08:00:00Z")
    return value


def _in_range(moment: datetime) -> datetime:
    # A comparison of aware times cannot overflow; the arithmetic after it no longer can.
    if not EARLIEST <= moment < LATEST:
        raise ValueError("must lie between 1970-01-01T00:00:00Z and 2200-01-01T00:00:00Z")
    return moment


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_range)]
"""A time from a client, in a query parameter or a JSON body: RFC 3339 text with an offset,
nothing else, from 1970 to before 2200 (UTC)."""


def _printable(text: str) -> str:
    refused = _REFUSED.search(text)
    if refused:
        raise ValueError(f"must not contain control characters (U+{ord(refused.group()):04X} "
                         f"at {refused.start()})")
    return text


class SafeText:
    """Pydantic metadata for text from a client: ``Annotated[str, SafeText(max_length=80)]``.

    At most ``max_length`` characters (a bound is required), at least ``min_length``, and none
    of the control characters of ``TEXT_PATTERN``, which the JSON schema states as well.
    """

    def __init__(self, *, max_length: int, min_length: int = 0) -> None:
        self.max_length, self.min_length = max_length, min_length

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # The length first, so an endless text is refused before it is searched.
        return core_schema.no_info_after_validator_function(_printable, core_schema.str_schema(
            min_length=self.min_length, max_length=self.max_length))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = TEXT_PATTERN
        return json_schema
