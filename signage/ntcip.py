"""NTCIP 1203 (dynamic message signs) as pure functions: OIDs, enumerations, the message CRC,
the activation and message-id blocks, sign addresses, and MULTI text built from sign content.

Shared by the SNMP driver and the sign simulator; nothing here does I/O. Object numbers,
enumerations and encodings follow ``notes/PROTOCOLS.md`` section 1 (NTCIP 1203 v2 / 8004).
"""

from __future__ import annotations

import ipaddress
import math
import struct
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from signage._content import Arrow, LineContent, SignContent

__all__ = [
    "ARROW_GRAPHICS",
    "BLANK",
    "DEFAULT_PORT",
    "DMS",
    "DMS_ACTIVATE_MESSAGE",
    "DMS_ACTIVATE_MSG_ERROR",
    "DMS_COMMUNICATIONS_LOSS_MESSAGE",
    "DMS_CONTROL_MODE",
    "DMS_END_DURATION_MESSAGE",
    "DMS_LONG_POWER_RECOVERY_MESSAGE",
    "DMS_MAX_CHANGEABLE_MSG",
    "DMS_MAX_MULTI_STRING_LENGTH",
    "DMS_MAX_NUMBER_PAGES",
    "DMS_MESSAGE_TIME_REMAINING",
    "DMS_MSG_SOURCE_MODE",
    "DMS_MSG_TABLE_SOURCE",
    "DMS_MULTI_SYNTAX_ERROR",
    "DMS_MULTI_SYNTAX_ERROR_POSITION",
    "DMS_SHORT_POWER_RECOVERY_MESSAGE",
    "DMS_TIME_COMM_LOSS",
    "DMS_VALIDATE_MESSAGE_ERROR",
    "INDEFINITE",
    "MESSAGE_ENTRY",
    "OID_NAMES",
    "VMS_CHARACTER_HEIGHT_PIXELS",
    "VMS_CHARACTER_WIDTH_PIXELS",
    "VMS_SIGN_HEIGHT_PIXELS",
    "VMS_SIGN_WIDTH_PIXELS",
    "ActivateError",
    "Activation",
    "ControlMode",
    "MemoryType",
    "MessageColumn",
    "MessageId",
    "MessageStatus",
    "MultiSyntaxError",
    "Oid",
    "SignAddress",
    "SourceMode",
    "ValidateError",
    "crc16_x25",
    "escape_multi",
    "message_crc",
    "message_oid",
    "multi_from_content",
    "oid_name",
    "parse_address",
    "to_sign_charset",
]

Oid = tuple[int, ...]

DEFAULT_PORT = 161
DMS: Oid = (1, 3, 6, 1, 4, 1, 1206, 4, 2, 3)  # nema.devices.dms

# Scalars, with their instance ``.0``.
VMS_CHARACTER_HEIGHT_PIXELS: Oid = (*DMS, 2, 1, 0)
VMS_CHARACTER_WIDTH_PIXELS: Oid = (*DMS, 2, 2, 0)
VMS_SIGN_HEIGHT_PIXELS: Oid = (*DMS, 2, 3, 0)
VMS_SIGN_WIDTH_PIXELS: Oid = (*DMS, 2, 4, 0)
DMS_MAX_NUMBER_PAGES: Oid = (*DMS, 4, 15, 0)
DMS_MAX_MULTI_STRING_LENGTH: Oid = (*DMS, 4, 16, 0)
DMS_MAX_CHANGEABLE_MSG: Oid = (*DMS, 5, 3, 0)
DMS_VALIDATE_MESSAGE_ERROR: Oid = (*DMS, 5, 9, 0)
DMS_CONTROL_MODE: Oid = (*DMS, 6, 1, 0)
DMS_ACTIVATE_MESSAGE: Oid = (*DMS, 6, 3, 0)
DMS_MESSAGE_TIME_REMAINING: Oid = (*DMS, 6, 4, 0)
DMS_MSG_TABLE_SOURCE: Oid = (*DMS, 6, 5, 0)
DMS_MSG_SOURCE_MODE: Oid = (*DMS, 6, 7, 0)
DMS_SHORT_POWER_RECOVERY_MESSAGE: Oid = (*DMS, 6, 8, 0)
DMS_LONG_POWER_RECOVERY_MESSAGE: Oid = (*DMS, 6, 9, 0)
DMS_COMMUNICATIONS_LOSS_MESSAGE: Oid = (*DMS, 6, 12, 0)
DMS_TIME_COMM_LOSS: Oid = (*DMS, 6, 13, 0)
DMS_END_DURATION_MESSAGE: Oid = (*DMS, 6, 15, 0)
DMS_ACTIVATE_MSG_ERROR: Oid = (*DMS, 6, 17, 0)
DMS_MULTI_SYNTAX_ERROR: Oid = (*DMS, 6, 18, 0)
DMS_MULTI_SYNTAX_ERROR_POSITION: Oid = (*DMS, 6, 19, 0)

MESSAGE_ENTRY: Oid = (*DMS, 5, 8, 1)  # dmsMessageEntry: .{column}.{memory type}.{number}


class MessageColumn(IntEnum):
    """Columns of dmsMessageTable (index: memory type, message number)."""

    MULTI_STRING = 3
    OWNER = 4
    CRC = 5
    BEACON = 6
    PIXEL_SERVICE = 7
    RUN_TIME_PRIORITY = 8
    STATUS = 9


class MemoryType(IntEnum):
    """dmsMessageMemoryType."""

    OTHER = 1
    PERMANENT = 2
    CHANGEABLE = 3
    VOLATILE = 4
    CURRENT_BUFFER = 5
    SCHEDULE = 6
    BLANK = 7


class MessageStatus(IntEnum):
    """dmsMessageStatus: states 1-5, requests 6-8."""

    NOT_USED = 1
    MODIFYING = 2
    VALIDATING = 3
    VALID = 4
    ERROR = 5
    MODIFY_REQ = 6
    VALIDATE_REQ = 7
    NOT_USED_REQ = 8


class ControlMode(IntEnum):
    """dmsControlMode."""

    OTHER = 1
    LOCAL = 2
    EXTERNAL = 3
    CENTRAL = 4
    CENTRAL_OVERRIDE = 5
    SIMULATION = 6


class SourceMode(IntEnum):
    """dmsMsgSourceMode: who put the current message up (commLoss / endDuration = fallback)."""

    OTHER = 1
    LOCAL = 2
    EXTERNAL = 3
    CENTRAL = 8
    TIMEBASED_SCHEDULER = 9
    POWER_RECOVERY = 10
    RESET = 11
    COMM_LOSS = 12
    POWER_LOSS = 13
    END_DURATION = 14


class ActivateError(IntEnum):
    """dmsActivateMsgError."""

    OTHER = 1
    NONE = 2
    PRIORITY = 3
    MESSAGE_STATUS = 4
    MESSAGE_MEMORY_TYPE = 5
    MESSAGE_NUMBER = 6
    MESSAGE_CRC = 7
    SYNTAX_MULTI = 8
    LOCAL_MODE = 9
    CENTRAL_MODE = 10
    CENTRAL_OVERRIDE_MODE = 11


class ValidateError(IntEnum):
    """dmsValidateMessageError."""

    OTHER = 1
    NONE = 2
    BEACONS = 3
    PIXEL_SERVICE = 4
    SYNTAX_MULTI = 5


class MultiSyntaxError(IntEnum):
    """dmsMultiSyntaxError."""

    OTHER = 1
    NONE = 2
    UNSUPPORTED_TAG = 3
    UNSUPPORTED_TAG_VALUE = 4
    TEXT_TOO_BIG = 5
    FONT_NOT_DEFINED = 6
    CHARACTER_NOT_DEFINED = 7
    FIELD_DEVICE_NOT_EXIST = 8
    FIELD_DEVICE_ERROR = 9
    FLASH_REGION_ERROR = 10
    TAG_CONFLICT = 11
    TOO_MANY_PAGES = 12
    FONT_VERSION_ID = 13
    GRAPHIC_ID = 14
    GRAPHIC_NOT_DEFINED = 15


def message_oid(column: MessageColumn, memory_type: MemoryType, number: int) -> Oid:
    """The OID of one cell of dmsMessageTable."""
    return (*MESSAGE_ENTRY, column, memory_type, number)


OID_NAMES: Mapping[Oid, str] = {
    VMS_CHARACTER_HEIGHT_PIXELS: "vmsCharacterHeightPixels",
    VMS_CHARACTER_WIDTH_PIXELS: "vmsCharacterWidthPixels",
    VMS_SIGN_HEIGHT_PIXELS: "vmsSignHeightPixels",
    VMS_SIGN_WIDTH_PIXELS: "vmsSignWidthPixels",
    DMS_MAX_NUMBER_PAGES: "dmsMaxNumberPages",
    DMS_MAX_MULTI_STRING_LENGTH: "dmsMaxMultiStringLength",
    DMS_MAX_CHANGEABLE_MSG: "dmsMaxChangeableMsg",
    DMS_VALIDATE_MESSAGE_ERROR: "dmsValidateMessageError",
    DMS_CONTROL_MODE: "dmsControlMode",
    DMS_ACTIVATE_MESSAGE: "dmsActivateMessage",
    DMS_MESSAGE_TIME_REMAINING: "dmsMessageTimeRemaining",
    DMS_MSG_TABLE_SOURCE: "dmsMsgTableSource",
    DMS_MSG_SOURCE_MODE: "dmsMsgSourceMode",
    DMS_SHORT_POWER_RECOVERY_MESSAGE: "dmsShortPowerRecoveryMessage",
    DMS_LONG_POWER_RECOVERY_MESSAGE: "dmsLongPowerRecoveryMessage",
    DMS_COMMUNICATIONS_LOSS_MESSAGE: "dmsCommunicationsLossMessage",
    DMS_TIME_COMM_LOSS: "dmsTimeCommLoss",
    DMS_END_DURATION_MESSAGE: "dmsEndDurationMessage",
    DMS_ACTIVATE_MSG_ERROR: "dmsActivateMsgError",
    DMS_MULTI_SYNTAX_ERROR: "dmsMultiSyntaxError",
    DMS_MULTI_SYNTAX_ERROR_POSITION: "dmsMultiSyntaxErrorPosition",
}
_COLUMN_NAMES = {
    MessageColumn.MULTI_STRING: "dmsMessageMultiString",
    MessageColumn.OWNER: "dmsMessageOwner",
    MessageColumn.CRC: "dmsMessageCRC",
    MessageColumn.BEACON: "dmsMessageBeacon",
    MessageColumn.PIXEL_SERVICE: "dmsMessagePixelService",
    MessageColumn.RUN_TIME_PRIORITY: "dmsMessageRunTimePriority",
    MessageColumn.STATUS: "dmsMessageStatus",
}


def oid_name(oid: Oid) -> str:
    """The NTCIP name of an OID for errors and logs (``dmsMessageStatus.3.1``), else dotted."""
    if oid in OID_NAMES:
        return OID_NAMES[oid]
    entry = len(MESSAGE_ENTRY)
    if oid[:entry] == MESSAGE_ENTRY and len(oid) == entry + 3 and oid[entry] in _COLUMN_NAMES:
        return f"{_COLUMN_NAMES[MessageColumn(oid[entry])]}.{oid[entry + 1]}.{oid[entry + 2]}"
    return ".".join(map(str, oid))


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (IBM-SDLC): reflected poly 0x1021, init and xorout 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def message_crc(multi: bytes, beacon: int = 0, pixel_service: int = 0) -> int:
    """dmsMessageCRC: CRC-16/X-25 over MULTI, beacon and pixel-service bytes, byte-swapped."""
    crc = crc16_x25(multi + bytes((beacon, pixel_service)))
    # The sign reports the CRC with its bytes swapped (this reproduces the NTCIP 8004 vector).
    return ((crc & 0xFF) << 8) | (crc >> 8)


@dataclass(frozen=True)
class MessageId:
    """MessageIDCode: memory type, message number, CRC (5 bytes); names a stored message."""

    memory_type: int
    number: int
    crc: int

    def encode(self) -> bytes:
        """The 5-byte big-endian block."""
        return struct.pack(">BHH", self.memory_type, self.number, self.crc)

    @classmethod
    def decode(cls, data: bytes) -> MessageId:
        """Parse a 5-byte block; ValueError if it has another length."""
        if len(data) != 5:
            raise ValueError(f"MessageIDCode has 5 bytes, got {len(data)}")
        return cls(*struct.unpack(">BHH", data))


BLANK = MessageId(MemoryType.BLANK, 1, 0)
INDEFINITE = 65535  # duration and time remaining: no end


@dataclass(frozen=True)
class Activation:
    """MessageActivationCode: what dmsActivateMessage is set to (12 bytes)."""

    duration_min: int
    priority: int
    message: MessageId
    source: str = "0.0.0.0"

    def encode(self) -> bytes:
        """The 12-byte big-endian block."""
        return (
            struct.pack(">HB", self.duration_min, self.priority)
            + self.message.encode()
            + ipaddress.IPv4Address(self.source).packed
        )

    @classmethod
    def decode(cls, data: bytes) -> Activation:
        """Parse a 12-byte block; ValueError if it has another length."""
        if len(data) != 12:
            raise ValueError(f"MessageActivationCode has 12 bytes, got {len(data)}")
        duration, priority = struct.unpack(">HB", data[:3])
        return cls(duration, priority, MessageId.decode(data[3:8]),
                   str(ipaddress.IPv4Address(data[8:])))


class SignAddress(NamedTuple):
    """Where a sign's SNMP agent listens, and the community if the address names one."""

    host: str
    port: int
    community: str | None


def parse_address(address: str) -> SignAddress:
    """``udp://[community@]host[:port]`` (port 161 if none); ValueError if it is not that."""
    parts = urlsplit(address)
    if parts.scheme != "udp" or not parts.hostname:
        raise ValueError(f"not udp://[community@]host[:port]: {address!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ValueError(f"bad port in {address!r}: {exc}") from None
    community = unquote(parts.username) if parts.username else None
    return SignAddress(parts.hostname, port, community)


# Arrows are graphics of the sign (dmsGraphicTable numbers 1-3), placed inline at the start
# of the line; a sign without graphics can map them to characters instead (e.g. "<", ">").
ARROW_GRAPHICS: Mapping[Arrow, str] = {
    "left": "[g1]", "right": "[g2]", "straight": "[g3]", "none": "",
}

_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue",
                         "ß": "ss", "ẞ": "SS", "–": "-", "—": "-", "„": '"', "“": '"',
                         "”": '"', "‚": "'", "‘": "'", "’": "'"})


def to_sign_charset(text: str) -> str:
    """Printable ASCII for a sign font: umlauts and ß spelled out, accents dropped, else ``?``."""
    # Fonts of NTCIP signs (and IRIS) cover 0x20-0x7E only; [hc] would need the sign's code.
    spelled = unicodedata.normalize("NFKD", text.translate(_GERMAN))
    out = []
    for char in spelled:
        if unicodedata.combining(char):
            continue
        out.append(char if " " <= char <= "~" else " " if char.isspace() else "?")
    return "".join(out)


def escape_multi(text: str) -> str:
    """Text as a MULTI span: brackets doubled so that they are not read as tags."""
    return text.replace("[", "[[").replace("]", "]]")


def _line_multi(line: LineContent, chars_per_line: int, arrows: Mapping[Arrow, str]) -> str:
    arrow = arrows.get(line.arrow, "")
    # An arrow takes one cell and a space; label and count keep at least one space between
    # them. The count matters more than the label, so the label is what gets shortened.
    cells = chars_per_line - (2 if arrow else 0)
    text = to_sign_charset(line.text).strip()[: max(cells, 0)]
    room = cells - (len(text) + 1 if text else 0)
    label = to_sign_charset(line.label).strip()[: max(room, 0)].rstrip()
    left = f"{arrow} {escape_multi(label)}" if arrow and label else arrow + escape_multi(label)
    return f"[jl2]{left}" + (f"[jl4]{escape_multi(text)}" if text else "")


def multi_from_content(
    content: SignContent,
    *,
    lines_per_page: int,
    chars_per_line: int,
    arrows: Mapping[Arrow, str] = ARROW_GRAPHICS,
) -> str:
    """MULTI for ``content``: one ``[jl2]arrow label[jl4]text`` line each, ``[np]`` per page."""
    if lines_per_page < 1 or chars_per_line < 1:
        raise ValueError("a sign has at least one line of one character")
    lines = [_line_multi(line, chars_per_line, arrows) for line in content.lines]
    pages = math.ceil(len(lines) / lines_per_page)
    return "[np]".join(
        "[nl]".join(lines[page * lines_per_page: (page + 1) * lines_per_page])
        for page in range(pages)
    )
