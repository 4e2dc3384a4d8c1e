"""``parkleit simulate signs``: NTCIP 1203 signs that speak SNMP (v1/v2c) on a UDP port.

Each simulated sign is a character-matrix sign (``lines_per_page`` lines of
``chars_per_line`` cells, 7x5-pixel characters) with:

- a changeable message table and its status state machine (notUsed, modifying, validating,
  valid, error; requests modifyReq, validateReq, notUsedReq), validation a moment after
  validateReq (MULTI syntax: known tags, their values, brackets, characters, graphics, line
  width, lines and pages), the message CRC of NTCIP 1203;
- activation (dmsActivateMessage) checked like a sign does: control mode (local refuses),
  memory type, message number, status, CRC, priority; refusals answer genErr and set
  dmsActivateMsgError;
- fallbacks: when the activation's duration runs out it shows dmsEndDurationMessage, and when
  no SNMP request arrives for dmsTimeCommLoss minutes it shows dmsCommunicationsLossMessage;
- ``shown()``: the text it shows now, one string per line (arrows as ``←`` ``→`` ``↑``).

``minute_s`` is how long a sign minute lasts, so that tests see durations and comm loss in
seconds. ``paused`` makes the sign drop every request unanswered (a cut cable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.error import PySnmpError
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi import error as smi_error

from core.city import City
from signage import ntcip
from signage.ntcip import (
    ActivateError,
    ControlMode,
    MemoryType,
    MessageColumn,
    MessageId,
    MessageStatus,
    MultiSyntaxError,
    Oid,
    SourceMode,
    ValidateError,
)
from simulators._serving import serving, tick_every, until_stopped

__all__ = ["DEFAULT_GRAPHICS", "MultiError", "NtcipSignSimulator", "render_multi",
           "run_ntcip_signs"]

logger = logging.getLogger(__name__)

DEFAULT_GRAPHICS: Mapping[int, str] = {1: "←", 2: "→", 3: "↑"}
CHAR_HEIGHT_PX, CHAR_WIDTH_PX = 7, 5

# Supported tags: name -> what may follow it inside the brackets (lower case).
_TAGS = {
    "/fl": r"",
    "nl": r"\d?",
    "np": r"",
    "jl": r"[2-5]?",
    "jp": r"[2-4]?",
    "pt": r"(\d{1,3})?(o\d{1,3})?",
    "fo": r"(\d{1,3}(,[0-9a-f]{4})?)?",
    "fl": r"(t\d{1,2}(o\d{1,2})?|o\d{1,2}(t\d{1,2})?)?",
    "cf": r"(\d{1,3}(,\d{1,3},\d{1,3})?)?",
    "g": r"\d{1,3}(,\d{1,3},\d{1,3}(,[0-9a-f]{4})?)?",
}


class MultiError(Exception):
    """A MULTI string the sign cannot show: the dmsMultiSyntaxError code and its offset."""

    def __init__(self, code: MultiSyntaxError, position: int) -> None:
        super().__init__(f"{code.name} at offset {position}")
        self.code = code
        self.position = position


def render_multi(
    multi: str,
    *,
    lines_per_page: int,
    chars_per_line: int,
    max_pages: int,
    graphics: Mapping[int, str] = DEFAULT_GRAPHICS,
) -> tuple[tuple[str, ...], ...]:
    """The pages of lines ``multi`` shows on this sign; MultiError (code, offset) if it can't."""
    layout = _Layout(lines_per_page, chars_per_line, max_pages, graphics)
    position = 0
    while position < len(multi):
        char = multi[position]
        if multi.startswith(("[[", "]]"), position):
            layout.cell(char, position)
            position += 2
            continue
        if char == "]":
            raise MultiError(MultiSyntaxError.OTHER, position)
        if char != "[":
            if not " " <= char <= "~":
                raise MultiError(MultiSyntaxError.CHARACTER_NOT_DEFINED, position)
            layout.cell(char, position)
            position += 1
            continue
        name, value, end = _tag(multi, position)
        layout.tag(name, value, position)
        position = end + 1
    if multi:
        layout.end_page()
    return tuple(layout.pages)


def _tag(multi: str, position: int) -> tuple[str, str, int]:
    """The supported tag opening at ``position``: its name, what follows the name, and the
    offset of its closing bracket."""
    end = multi.find("]", position)
    if end < 0:
        raise MultiError(MultiSyntaxError.UNSUPPORTED_TAG, position)
    body = multi[position + 1: end].lower()
    name = next((tag for tag in _TAGS if body.startswith(tag)), None)
    if name is None:
        raise MultiError(MultiSyntaxError.UNSUPPORTED_TAG, position)
    value = body[len(name):]
    if not re.fullmatch(_TAGS[name], value):
        raise MultiError(MultiSyntaxError.UNSUPPORTED_TAG_VALUE, position)
    return name, value, end


class _Layout:
    """The pages of a MULTI string as it is read: the finished pages and lines, and the left,
    centre and right parts (justification 2, 3, 4) of the line being built."""

    def __init__(self, lines_per_page: int, chars_per_line: int, max_pages: int,
                 graphics: Mapping[int, str]) -> None:
        self.lines_per_page, self.chars_per_line = lines_per_page, chars_per_line
        self.max_pages, self.graphics = max_pages, graphics
        self.pages: list[tuple[str, ...]] = []
        self.lines: list[str] = []
        self.segments = {2: "", 3: "", 4: ""}
        self.justification = 2

    def cell(self, char: str, position: int) -> None:
        if sum(map(len, self.segments.values())) >= self.chars_per_line:
            raise MultiError(MultiSyntaxError.TEXT_TOO_BIG, position)
        self.segments[self.justification] += char

    def end_line(self) -> None:
        left, centre, right = self.segments[2], self.segments[3], self.segments[4]
        self.lines.append(
            left + centre.center(self.chars_per_line - len(left) - len(right)) + right)
        self.segments = {2: "", 3: "", 4: ""}

    def end_page(self) -> None:
        self.end_line()
        self.pages.append(tuple(self.lines))
        self.lines = []

    def tag(self, name: str, value: str, position: int) -> None:
        """What the tag ``name`` (with ``value``) at ``position`` does to the layout (the
        other supported tags change nothing the simulated sign shows)."""
        if name == "nl":
            self.end_line()
            if len(self.lines) >= self.lines_per_page:
                raise MultiError(MultiSyntaxError.TEXT_TOO_BIG, position)
        elif name == "np":
            self.end_page()
            if len(self.pages) >= self.max_pages:
                raise MultiError(MultiSyntaxError.TOO_MANY_PAGES, position)
        elif name == "jl":
            wanted = 2 if value in ("", "5") else int(value)  # full justification: as left
            if any(self.segments[later] for later in range(wanted + 1, 5)):
                raise MultiError(MultiSyntaxError.TAG_CONFLICT, position)
            self.justification = wanted
        elif name == "g":
            number = int(value.split(",")[0])
            if number not in self.graphics:
                raise MultiError(MultiSyntaxError.GRAPHIC_NOT_DEFINED, position)
            self.cell(self.graphics[number], position)


class Refused(Exception):
    """A SET the sign turns down: the SNMP error status and the index of the varbind."""

    def __init__(self, status: str, index: int) -> None:
        super().__init__(f"{status} at varbind {index}")
        self.status = status
        self.index = index


def _integer(value: int | bytes, index: int, low: int, high: int) -> int:
    if not isinstance(value, int):
        raise Refused("wrongType", index)
    if not low <= value <= high:
        raise Refused("wrongValue", index)
    return value


def _octets(value: int | bytes, index: int, shortest: int, longest: int) -> bytes:
    if not isinstance(value, bytes):
        raise Refused("wrongType", index)
    if not shortest <= len(value) <= longest:
        raise Refused("wrongLength", index)
    return value


@dataclass
class _Message:
    multi: bytes = b""
    owner: bytes = b""
    beacon: int = 0
    pixel_service: int = 0
    priority: int = 1
    status: MessageStatus = MessageStatus.NOT_USED
    crc: int = 0


_COLUMN_FIELDS = {
    MessageColumn.MULTI_STRING: "multi",
    MessageColumn.OWNER: "owner",
    MessageColumn.CRC: "crc",
    MessageColumn.BEACON: "beacon",
    MessageColumn.PIXEL_SERVICE: "pixel_service",
    MessageColumn.RUN_TIME_PRIORITY: "priority",
    MessageColumn.STATUS: "status",
}
_ROW_LIMITS: Mapping[MessageColumn, tuple[type, int, int]] = {
    MessageColumn.OWNER: (bytes, 0, 127),
    MessageColumn.BEACON: (int, 0, 1),
    MessageColumn.PIXEL_SERVICE: (int, 0, 1),
    MessageColumn.RUN_TIME_PRIORITY: (int, 1, 255),
}
_MESSAGE_IDS = (ntcip.DMS_SHORT_POWER_RECOVERY_MESSAGE, ntcip.DMS_LONG_POWER_RECOVERY_MESSAGE,
                ntcip.DMS_COMMUNICATIONS_LOSS_MESSAGE, ntcip.DMS_END_DURATION_MESSAGE)


class SignModel:
    """The sign's objects and state machine, with no SNMP in it: ``get``, ``set``, ``tick``."""

    def __init__(
        self,
        name: str,
        *,
        lines_per_page: int = 3,
        chars_per_line: int = 24,
        max_pages: int = 4,
        changeable_messages: int = 8,
        max_multi_length: int = 1024,
        graphics: Mapping[int, str] = DEFAULT_GRAPHICS,
        minute_s: float = 60.0,
        validate_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[tuple[str, ...], SourceMode], None] | None = None,
    ) -> None:
        self.name = name
        # Called with the lines and their source whenever what the sign shows changes (the
        # signage benchmark times changes with it).
        self.on_change = on_change
        self.lines_per_page = lines_per_page
        self.chars_per_line = chars_per_line
        self.max_pages = max_pages
        self.max_multi_length = max_multi_length
        self.graphics = graphics
        self.minute_s = minute_s
        self.validate_s = validate_s
        self.clock = clock
        self.control_mode = ControlMode.CENTRAL
        self.source_mode = SourceMode.OTHER
        self.messages = {number: _Message() for number in range(1, changeable_messages + 1)}
        self.displayed = _Message()
        self.pages: tuple[tuple[str, ...], ...] = ()
        self.table_source = ntcip.BLANK
        self.activation = ntcip.Activation(ntcip.INDEFINITE, 255, ntcip.BLANK, "127.0.0.1")
        self.scalars: dict[Oid, int | bytes] = {
            **{oid: ntcip.BLANK.encode() for oid in _MESSAGE_IDS},
            ntcip.DMS_TIME_COMM_LOSS: 0,  # 0: comm-loss fallback off until the central sets it
            ntcip.DMS_VALIDATE_MESSAGE_ERROR: ValidateError.NONE,
            ntcip.DMS_ACTIVATE_MSG_ERROR: ActivateError.NONE,
            ntcip.DMS_MULTI_SYNTAX_ERROR: MultiSyntaxError.NONE,
            ntcip.DMS_MULTI_SYNTAX_ERROR_POSITION: 0,
        }
        self._validating: dict[int, float] = {}  # message number -> when validation is done
        self._ends_at: float | None = None
        self._last_contact = clock()
        self._comm_lost = False

    # -- what the sign shows

    def shown(self) -> tuple[str, ...]:
        """The lines the sign shows now, all pages in order, trailing blanks cut."""
        self.tick()
        return self._lines()

    def _lines(self) -> tuple[str, ...]:
        return tuple(line.rstrip() for page in self.pages for line in page)

    def _show(self, message: _Message, source: SourceMode, message_id: MessageId) -> None:
        before = (self.pages, self.source_mode)
        self.displayed = replace(message)  # the current buffer is a copy: rows change later
        self.pages = self._render(message.multi) if message.multi else ()
        self.source_mode = source
        self.table_source = message_id
        if (self.pages, self.source_mode) != before:  # keep-alive re-activations say nothing
            logger.info("sign %s shows %s (%s)", self.name,
                        " | ".join(self._lines()) or "nothing", source.name)
            if self.on_change is not None:
                self.on_change(self._lines(), source)

    def _render(self, multi: bytes) -> tuple[tuple[str, ...], ...]:
        return render_multi(multi.decode("latin-1"), lines_per_page=self.lines_per_page,
                            chars_per_line=self.chars_per_line, max_pages=self.max_pages,
                            graphics=self.graphics)

    def _show_stored(self, message_id: MessageId, source: SourceMode) -> None:
        """A fallback activation by the sign itself: blank unless the row is valid and matches."""
        message = self.messages.get(message_id.number)
        if (message_id.memory_type == MemoryType.CHANGEABLE and message is not None
                and message.status == MessageStatus.VALID and message.crc == message_id.crc):
            self._show(message, source, message_id)
        else:
            self._show(_Message(), source, ntcip.BLANK)
        self._ends_at = None
        self.activation = ntcip.Activation(ntcip.INDEFINITE, 255, self.table_source,
                                           "127.0.0.1")

    # -- timers

    def contact(self) -> None:
        """A request from the central arrived: the comm-loss timer starts again."""
        self.tick()
        self._last_contact = self.clock()
        self._comm_lost = False

    def tick(self) -> None:
        """Finish validations and run the end-of-duration and comm-loss fallbacks when due."""
        now = self.clock()
        for number, done_at in list(self._validating.items()):
            if now >= done_at:
                del self._validating[number]
                self._validate(number)
        if self._ends_at is not None and now >= self._ends_at:
            self._show_stored(self._message_id(ntcip.DMS_END_DURATION_MESSAGE),
                              SourceMode.END_DURATION)
        comm_loss_min = int(self.scalars[ntcip.DMS_TIME_COMM_LOSS])
        if (comm_loss_min and not self._comm_lost
                and now - self._last_contact >= comm_loss_min * self.minute_s):
            self._comm_lost = True
            self._show_stored(self._message_id(ntcip.DMS_COMMUNICATIONS_LOSS_MESSAGE),
                              SourceMode.COMM_LOSS)

    def _message_id(self, oid: Oid) -> MessageId:
        value = self.scalars[oid]
        assert isinstance(value, bytes)
        return MessageId.decode(value)

    def _validate(self, number: int) -> None:
        message = self.messages[number]
        try:
            self._render(message.multi)
        except MultiError as exc:
            message.status = MessageStatus.ERROR
            self._syntax_result(ValidateError.SYNTAX_MULTI, exc.code, exc.position)
            return
        message.crc = ntcip.message_crc(message.multi, message.beacon, message.pixel_service)
        message.status = MessageStatus.VALID
        self._syntax_result(ValidateError.NONE, MultiSyntaxError.NONE, 0)

    def _syntax_result(self, validate: ValidateError, syntax: MultiSyntaxError,
                       position: int) -> None:
        self.scalars[ntcip.DMS_VALIDATE_MESSAGE_ERROR] = validate
        self.scalars[ntcip.DMS_MULTI_SYNTAX_ERROR] = syntax
        self.scalars[ntcip.DMS_MULTI_SYNTAX_ERROR_POSITION] = position

    # -- GET

    def _computed(self) -> dict[Oid, int | bytes]:
        remaining = (ntcip.INDEFINITE if self._ends_at is None else
                     max(0, math.ceil((self._ends_at - self.clock()) / self.minute_s)))
        return {
            ntcip.VMS_CHARACTER_HEIGHT_PIXELS: CHAR_HEIGHT_PX,
            ntcip.VMS_CHARACTER_WIDTH_PIXELS: CHAR_WIDTH_PX,
            ntcip.VMS_SIGN_HEIGHT_PIXELS: CHAR_HEIGHT_PX * self.lines_per_page,
            ntcip.VMS_SIGN_WIDTH_PIXELS: CHAR_WIDTH_PX * self.chars_per_line,
            ntcip.DMS_MAX_NUMBER_PAGES: self.max_pages,
            ntcip.DMS_MAX_MULTI_STRING_LENGTH: self.max_multi_length,
            ntcip.DMS_MAX_CHANGEABLE_MSG: len(self.messages),
            ntcip.DMS_CONTROL_MODE: self.control_mode,
            ntcip.DMS_ACTIVATE_MESSAGE: self.activation.encode(),
            ntcip.DMS_MESSAGE_TIME_REMAINING: remaining,
            ntcip.DMS_MSG_TABLE_SOURCE: self.table_source.encode(),
            ntcip.DMS_MSG_SOURCE_MODE: self.source_mode,
        }

    def _rows(self) -> Iterator[tuple[MemoryType, int, _Message]]:
        yield from ((MemoryType.CHANGEABLE, number, message)
                    for number, message in self.messages.items())
        yield MemoryType.CURRENT_BUFFER, 1, self.displayed

    def objects(self) -> dict[Oid, int | bytes]:
        """Every object the sign has, with its value now (for GET and walks)."""
        self.tick()
        objects: dict[Oid, int | bytes] = {**self.scalars, **self._computed()}
        for memory_type, number, message in self._rows():
            for column, field in _COLUMN_FIELDS.items():
                objects[ntcip.message_oid(column, memory_type, number)] = getattr(message, field)
        return objects

    def get(self, oid: Oid) -> int | bytes | None:
        """The value of one object, None if the sign has no such object."""
        return self.objects().get(oid)

    # -- SET: every varbind is checked before any is applied, as SNMP requires

    def set(self, bindings: Sequence[tuple[Oid, int | bytes]]) -> None:
        """Apply a SET PDU; Refused(status, index) turns all of it down."""
        self.tick()
        commits = [self._check(oid, value, index) for index, (oid, value) in enumerate(bindings)]
        for commit in commits:
            commit()

    def _check(self, oid: Oid, value: int | bytes, index: int) -> Callable[[], None]:
        if oid in _MESSAGE_IDS:
            code = _octets(value, index, 5, 5)
            return lambda: self.scalars.__setitem__(oid, code)
        if oid == ntcip.DMS_TIME_COMM_LOSS:
            minutes = _integer(value, index, 0, 65535)
            return lambda: self.scalars.__setitem__(oid, minutes)
        if oid == ntcip.DMS_CONTROL_MODE:
            mode = ControlMode(_integer(value, index, ControlMode.CENTRAL,
                                        ControlMode.CENTRAL_OVERRIDE))
            if self.control_mode == ControlMode.LOCAL:  # the switch in the cabinet wins
                raise Refused("genErr", index)
            return lambda: setattr(self, "control_mode", mode)
        if oid == ntcip.DMS_ACTIVATE_MESSAGE:
            code = _octets(value, index, 12, 12)
            return self._check_activation(ntcip.Activation.decode(code), index)
        return self._check_row(oid, value, index)

    def _check_row(self, oid: Oid, value: int | bytes, index: int) -> Callable[[], None]:
        if oid[:-3] != ntcip.MESSAGE_ENTRY or oid[-3] not in _COLUMN_FIELDS:
            raise Refused("notWritable", index)
        column, memory_type, number = MessageColumn(oid[-3]), oid[-2], oid[-1]
        if memory_type != MemoryType.CHANGEABLE or number not in self.messages:
            raise Refused("notWritable", index)
        message = self.messages[number]
        if column == MessageColumn.STATUS:
            request = _integer(value, index, MessageStatus.MODIFY_REQ,
                               MessageStatus.NOT_USED_REQ)
            return self._check_status(number, MessageStatus(request), index)
        if column == MessageColumn.CRC:
            raise Refused("notWritable", index)
        if column == MessageColumn.MULTI_STRING:
            checked: int | bytes = _octets(value, index, 0, self.max_multi_length)
        else:
            kind, low, high = _ROW_LIMITS[column]
            checked = (_octets if kind is bytes else _integer)(value, index, low, high)
        if message.status != MessageStatus.MODIFYING:
            raise Refused("inconsistentValue", index)
        return lambda: setattr(message, _COLUMN_FIELDS[column], checked)

    def _check_status(self, number: int, request: MessageStatus,
                      index: int) -> Callable[[], None]:
        status = self.messages[number].status
        if request == MessageStatus.MODIFY_REQ:
            if status == MessageStatus.VALIDATING:
                raise Refused("inconsistentValue", index)
            return lambda: self._set_status(number, MessageStatus.MODIFYING)
        if request == MessageStatus.VALIDATE_REQ:
            if status != MessageStatus.MODIFYING:
                raise Refused("inconsistentValue", index)

            def validate() -> None:
                self._set_status(number, MessageStatus.VALIDATING)
                self._validating[number] = self.clock() + self.validate_s
            return validate
        return lambda: self.messages.__setitem__(number, _Message())

    def _set_status(self, number: int, status: MessageStatus) -> None:
        self.messages[number].status = status

    def _check_activation(self, code: ntcip.Activation, index: int) -> Callable[[], None]:
        message_id = code.message
        message = self.messages.get(message_id.number)
        error = ActivateError.NONE
        if self.control_mode == ControlMode.LOCAL:
            error = ActivateError.LOCAL_MODE
        elif message_id.memory_type == MemoryType.BLANK:
            message = _Message()
        elif message_id.memory_type != MemoryType.CHANGEABLE:
            error = ActivateError.MESSAGE_MEMORY_TYPE
        elif message is None:
            error = ActivateError.MESSAGE_NUMBER
        elif message.status != MessageStatus.VALID:
            error = ActivateError.MESSAGE_STATUS
        elif message.crc != message_id.crc:
            error = ActivateError.MESSAGE_CRC
        elif (self._ends_at is not None or self.source_mode == SourceMode.CENTRAL) and (
                code.priority < self.displayed.priority):
            error = ActivateError.PRIORITY
        # The error object tells the central why, whether or not the SET goes through.
        self.scalars[ntcip.DMS_ACTIVATE_MSG_ERROR] = error
        if error != ActivateError.NONE:
            logger.info("sign %s refuses an activation: %s", self.name, error.name)
            raise Refused("genErr", index)
        assert message is not None

        def activate() -> None:
            self._show(message, SourceMode.CENTRAL,
                       ntcip.BLANK if message_id.memory_type == MemoryType.BLANK else message_id)
            self.activation = code
            self._ends_at = (None if code.duration_min == ntcip.INDEFINITE
                             else self.clock() + code.duration_min * self.minute_s)
        return activate


_ERRORS: Mapping[str, type[smi_error.MibOperationError]] = {
    "wrongType": smi_error.WrongTypeError,
    "wrongLength": smi_error.WrongLengthError,
    "wrongValue": smi_error.WrongValueError,
    "inconsistentValue": smi_error.InconsistentValueError,
    "notWritable": smi_error.NotWritableError,
    "genErr": smi_error.GenError,
}


def _to_snmp(value: int | bytes) -> Any:
    return rfc1902.OctetString(value) if isinstance(value, bytes) else rfc1902.Integer(value)


def _from_snmp(value: Any) -> int | bytes | None:
    if value.tagSet == rfc1902.Integer.tagSet:
        return int(value)
    if value.tagSet == rfc1902.OctetString.tagSet:
        return bytes(value.asOctets())
    return None


class _Instrumentation:
    """What pysnmp's command responders call (its MIB instrumentation interface), on a model."""

    def __init__(self, simulator: NtcipSignSimulator) -> None:
        self.simulator = simulator

    def _receive(self) -> SignModel:
        if self.simulator.paused:
            # Not an SMI error: pysnmp then drops the request without answering.
            raise PySnmpError("sign paused")
        self.simulator.model.contact()
        return self.simulator.model

    def read_variables(self, *var_binds: tuple[Any, Any], **_context: Any) -> list[Any]:
        objects = self._receive().objects()
        return [(name, _to_snmp(objects[tuple(name)]) if tuple(name) in objects
                 else rfc1905.noSuchInstance) for name, _ in var_binds]

    def read_next_variables(self, *var_binds: tuple[Any, Any], **_context: Any) -> list[Any]:
        objects = self._receive().objects()
        ordered = sorted(objects)
        answer = []
        for name, _ in var_binds:
            following = next((oid for oid in ordered if oid > tuple(name)), None)
            answer.append((name, rfc1905.endOfMibView) if following is None else
                          (rfc1902.ObjectName(following), _to_snmp(objects[following])))
        return answer

    def write_variables(self, *var_binds: tuple[Any, Any], **_context: Any) -> list[Any]:
        model = self._receive()
        bindings = []
        for index, (name, value) in enumerate(var_binds):
            plain = _from_snmp(value)
            if plain is None:
                raise smi_error.WrongTypeError(name=name, idx=index)
            bindings.append((tuple(name), plain))
        try:
            model.set(bindings)
        except Refused as exc:
            raise _ERRORS[exc.status](name=var_binds[exc.index][0], idx=exc.index) from None
        return list(var_binds)


class NtcipSignSimulator:
    """One simulated NTCIP 1203 sign serving SNMP v1/v2c on ``host:port`` (0: any free port)."""

    def __init__(self, model: SignModel, *, host: str = "127.0.0.1", port: int = 0,
                 community: str = "public") -> None:
        self.model = model
        self.host = host
        self.port = port
        self.community = community
        self.paused = False
        self._engine: Any = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """The sign's address as a city config writes it."""
        return f"udp://{self.community}@{self.host}:{self.port}"

    def shown(self) -> tuple[str, ...]:
        """The lines the sign shows now."""
        return self.model.shown()

    async def start(self) -> None:
        """Listen on the port and run the sign's timers."""
        engine = SnmpEngine()
        carrier = udp.UdpAsyncioTransport()
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: carrier, local_addr=(self.host, self.port))
        self.port = transport.get_extra_info("sockname")[1]
        config.add_transport(engine, udp.DOMAIN_NAME, carrier)
        config.add_v1_system(engine, "central", self.community)
        snmp_context = context.SnmpContext(engine)
        snmp_context.unregister_context_name(b"")
        snmp_context.register_context_name(b"", _Instrumentation(self))
        for responder in (cmdrsp.GetCommandResponder, cmdrsp.NextCommandResponder,
                          cmdrsp.BulkCommandResponder, cmdrsp.SetCommandResponder):
            responder(engine, snmp_context)
        self._engine = engine
        self.model.contact()
        self._ticker = asyncio.create_task(tick_every(self.model.minute_s, [self.model]),
                                           name=f"ntcip-sign-{self.model.name}")
        logger.info("NTCIP sign %s listens on udp://%s:%d", self.model.name, self.host,
                    self.port)

    @property
    def ticker(self) -> asyncio.Task[None] | None:
        """The timer task (None when stopped); its end means the sign has stopped working."""
        return self._ticker

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None


async def run_ntcip_signs(
    city: City,
    stop: asyncio.Event,
    *,
    minute_s: float = 60.0,
    lines_per_page: int = 3,
    chars_per_line: int = 24,
) -> None:
    """Serve every ntcip1203 sign of ``city`` on its address until ``stop`` is set."""
    simulators = []
    for sign in city.signs:
        if sign.driver != "ntcip1203":
            continue
        address = ntcip.parse_address(sign.address)
        model = SignModel(sign.id, lines_per_page=lines_per_page,
                          chars_per_line=chars_per_line, minute_s=minute_s)
        simulators.append(NtcipSignSimulator(model, host=address.host, port=address.port,
                                             community=address.community or "public"))
    async with serving(simulators):
        logger.info("%d NTCIP signs of %s running", len(simulators), city.id)
        await until_stopped(stop, [simulator.ticker for simulator in simulators
                                   if simulator.ticker])
