"""The NTCIP 1203 sign driver: SNMP (v2c, or v1) to a dynamic message sign with pysnmp.

A push writes the MULTI text into changeable message 1 (modifyReq, one SET with the row,
validateReq, wait for valid, compare the CRC) and activates it for a limited duration; the next
push re-activates it (the keep-alive) and writes the row again only when the text changed.
Once per sign (and again after any failure, as the sign may have restarted) the driver reads
the sign's character matrix, stores the fallback message ("--" for every line) in changeable
message 2 and makes it the comm-loss, end-of-duration and power-recovery message, so that a
sign whose central has gone quiet stops showing stale counts on its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
    set_cmd,
)
from pysnmp.proto import rfc1902, rfc1905

from core.city import Sign
from signage import ntcip
from signage._content import Ack, Arrow, LineContent, SignContent, SignError
from signage.ntcip import (
    ActivateError,
    MemoryType,
    MessageColumn,
    MessageId,
    MessageStatus,
    MultiSyntaxError,
    Oid,
    ValidateError,
)

__all__ = ["NtcipDriver"]

logger = logging.getLogger(__name__)

MESSAGE_NUMBER = 1  # changeable message with what the central shows
FALLBACK_NUMBER = 2  # changeable message the sign falls back to on its own
RUN_TIME_PRIORITY = 128
ACTIVATE_PRIORITY = 255  # as IRIS: the central's message always wins over the sign's own
_MISSING = (rfc1905.NoSuchObject.tagSet, rfc1905.NoSuchInstance.tagSet,
            rfc1905.EndOfMibView.tagSet)
# Activation refusals that mean the stored row is no longer what we wrote: write it again.
_ROW_GONE = {ActivateError.MESSAGE_STATUS, ActivateError.MESSAGE_NUMBER,
             ActivateError.MESSAGE_CRC, ActivateError.MESSAGE_MEMORY_TYPE}


def _ntcip_name(value: int, enum: type[IntEnum]) -> str:
    """``ActivateError.LOCAL_MODE`` -> ``localMode`` (NTCIP spelling); unknown -> the number."""
    try:
        first, *rest = enum(value).name.lower().split("_")
    except ValueError:
        return f"{enum.__name__} {value}"
    return first + "".join(word.capitalize() for word in rest)


@dataclass
class _Session:
    """What the driver knows about one sign between pushes; forgotten after any failure."""

    target: Any
    auth: Any
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    lines_per_page: int = 0
    chars_per_line: int = 0
    prepared: bool = False
    stored: tuple[bytes, int] | None = None  # MULTI and CRC of message 1 as last validated

    def forget(self) -> None:
        self.prepared = False
        self.stored = None


class NtcipDriver:
    """NTCIP 1203 signs over SNMP; one engine for all signs, one push per sign at a time."""

    def __init__(
        self,
        *,
        community: str = "public",
        version: Literal["1", "2c"] = "2c",
        timeout_s: float = 1.0,
        retries: int = 1,
        push_timeout_s: float = 10.0,
        duration_min: int | None = None,
        comm_loss_min: int | None = None,
        fallback_text: str = "--",
        owner: str = "parkleit",
        lines_per_page: int = 3,
        chars_per_line: int = 24,
        arrows: Mapping[Arrow, str] = ntcip.ARROW_GRAPHICS,
    ) -> None:
        self.community = community
        self.version = version
        self.timeout_s = timeout_s
        self.retries = retries
        self.push_timeout_s = push_timeout_s
        self.duration_min = duration_min
        self.comm_loss_min = comm_loss_min
        self.fallback_text = fallback_text
        self.owner = owner
        self.lines_per_page = lines_per_page
        self.chars_per_line = chars_per_line
        self.arrows = arrows
        self._engine: Any = None
        self._sessions: dict[str, _Session] = {}

    async def push(self, sign: Sign, content: SignContent) -> Ack:
        """Write, validate and activate ``content`` on ``sign``; SignError says why not."""
        try:
            async with asyncio.timeout(self.push_timeout_s):
                session = await self._session(sign)
                async with session.lock:
                    try:
                        return await self._push(sign, session, content)
                    except BaseException:
                        session.forget()
                        raise
        except TimeoutError:
            raise SignError(
                f"sign {sign.id}: no answer within {self.push_timeout_s:g} s") from None

    async def close(self) -> None:
        """Close the SNMP engine; idempotent."""
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None
        self._sessions.clear()

    def _timing(self, sign: Sign) -> tuple[int, int]:
        """Minutes of comm loss before the sign falls back, and of each activation."""
        # By default the sign falls back once its data would count as stale anyway; the
        # activation lasts a minute longer, so a dead service shows as comm loss first.
        comm_loss = (self.comm_loss_min if self.comm_loss_min is not None
                     else max(1, math.ceil(sign.stale_after_s / 60)))
        duration = self.duration_min if self.duration_min is not None else comm_loss + 1
        return comm_loss, duration

    async def _session(self, sign: Sign) -> _Session:
        session = self._sessions.get(sign.id)
        if session is None:
            try:
                address = ntcip.parse_address(sign.address)
            except ValueError as exc:
                raise SignError(f"sign {sign.id}: {exc}") from None
            if self._engine is None:
                self._engine = SnmpEngine()
            try:
                target = await UdpTransportTarget.create(
                    (address.host, address.port), timeout=self.timeout_s, retries=self.retries)
            except PySnmpError as exc:  # the host name does not resolve
                raise SignError(f"sign {sign.id}: {exc}") from None
            auth = CommunityData(address.community or self.community,
                                 mpModel=0 if self.version == "1" else 1)
            session = self._sessions.setdefault(sign.id, _Session(target, auth))
        return session

    async def _push(self, sign: Sign, session: _Session, content: SignContent) -> Ack:
        comm_loss, duration = self._timing(sign)
        if not session.prepared:
            await self._prepare(sign, session, comm_loss)
        multi = self._multi(session, content)
        reused = session.stored is not None and session.stored[0] == multi
        if not reused:
            session.stored = (multi, await self._store(sign, session, MESSAGE_NUMBER, multi))
        assert session.stored is not None
        refusal = await self._activate(sign, session, session.stored[1], duration)
        if refusal in _ROW_GONE and reused:
            session.stored = (multi, await self._store(sign, session, MESSAGE_NUMBER, multi))
            refusal = await self._activate(sign, session, session.stored[1], duration)
        if refusal is not None:
            raise SignError(await self._activation_reason(sign, session, refusal))
        logger.debug("sign %s: message %d activated for %d min", sign.id, MESSAGE_NUMBER,
                     duration)
        return Ack(f"message {MemoryType.CHANGEABLE}.{MESSAGE_NUMBER} crc "
                   f"{session.stored[1]:#06x} for {duration} min")

    def _multi(self, session: _Session, content: SignContent) -> bytes:
        multi = ntcip.multi_from_content(content, lines_per_page=session.lines_per_page,
                                         chars_per_line=session.chars_per_line,
                                         arrows=self.arrows)
        return multi.encode("ascii")

    async def _prepare(self, sign: Sign, session: _Session, comm_loss: int) -> None:
        """Read the sign's character matrix, store the fallback message and the timers."""
        height, char_height, width, char_width = await self._get(
            sign, session, ntcip.VMS_SIGN_HEIGHT_PIXELS, ntcip.VMS_CHARACTER_HEIGHT_PIXELS,
            ntcip.VMS_SIGN_WIDTH_PIXELS, ntcip.VMS_CHARACTER_WIDTH_PIXELS)
        # A full-matrix sign reports character size 0: then the configured layout applies.
        session.lines_per_page = height // char_height if char_height > 0 else 0
        session.chars_per_line = width // char_width if char_width > 0 else 0
        session.lines_per_page = session.lines_per_page or self.lines_per_page
        session.chars_per_line = session.chars_per_line or self.chars_per_line
        fallback = SignContent(sign.id, tuple(
            LineContent(line.label, line.arrow, self.fallback_text) for line in sign.lines))
        crc = await self._store(sign, session, FALLBACK_NUMBER, self._multi(session, fallback))
        fallback_id = MessageId(MemoryType.CHANGEABLE, FALLBACK_NUMBER, crc).encode()
        await self._set_all(
            sign, session, "fallback settings",
            (ntcip.DMS_TIME_COMM_LOSS, comm_loss),
            (ntcip.DMS_COMMUNICATIONS_LOSS_MESSAGE, fallback_id),
            (ntcip.DMS_END_DURATION_MESSAGE, fallback_id),
            (ntcip.DMS_SHORT_POWER_RECOVERY_MESSAGE, fallback_id),
            (ntcip.DMS_LONG_POWER_RECOVERY_MESSAGE, fallback_id),
        )
        session.prepared = True

    async def _store(self, sign: Sign, session: _Session, number: int, multi: bytes) -> int:
        """Write and validate one changeable message; its CRC, checked against ours."""
        def cell(column: MessageColumn) -> Oid:
            return ntcip.message_oid(column, MemoryType.CHANGEABLE, number)

        status_oid = cell(MessageColumn.STATUS)
        await self._set_all(sign, session, "modifyReq", (status_oid, MessageStatus.MODIFY_REQ))
        (status,) = await self._get(sign, session, status_oid)
        self._expect_status(sign, number, status, MessageStatus.MODIFYING, "modifyReq")
        await self._set_all(
            sign, session, f"message {number}",
            (cell(MessageColumn.MULTI_STRING), multi),
            (cell(MessageColumn.OWNER), self.owner.encode("ascii", "replace")),
            (cell(MessageColumn.BEACON), 0),
            (cell(MessageColumn.PIXEL_SERVICE), 0),
            (cell(MessageColumn.RUN_TIME_PRIORITY), RUN_TIME_PRIORITY),
        )
        if await self._set(sign, session, (status_oid, MessageStatus.VALIDATE_REQ)):
            raise SignError(await self._validation_reason(sign, session, number))
        while True:  # the sign may take a moment; push_timeout_s bounds the wait
            status, crc = await self._get(sign, session, status_oid, cell(MessageColumn.CRC))
            if status != MessageStatus.VALIDATING:
                break
            await asyncio.sleep(0.05)
        if status == MessageStatus.ERROR:
            raise SignError(await self._validation_reason(sign, session, number))
        self._expect_status(sign, number, status, MessageStatus.VALID, "validateReq")
        expected = ntcip.message_crc(multi)
        if crc != expected:
            raise SignError(f"sign {sign.id}: message {number} has CRC {crc:#06x}, "
                            f"{expected:#06x} expected")
        return expected

    @staticmethod
    def _expect_status(sign: Sign, number: int, status: int, wanted: MessageStatus,
                       after: str) -> None:
        if status != wanted:
            raise SignError(f"sign {sign.id}: message {number} is "
                            f"{_ntcip_name(status, MessageStatus)} after {after}")

    async def _activate(self, sign: Sign, session: _Session, crc: int,
                        duration: int) -> ActivateError | None:
        """Activate message 1; None if the sign took it, else its dmsActivateMsgError."""
        code = ntcip.Activation(duration, ACTIVATE_PRIORITY,
                                MessageId(MemoryType.CHANGEABLE, MESSAGE_NUMBER, crc))
        if not await self._set(sign, session, (ntcip.DMS_ACTIVATE_MESSAGE, code.encode())):
            return None
        (error,) = await self._get(sign, session, ntcip.DMS_ACTIVATE_MSG_ERROR)
        return ActivateError(error) if error in ActivateError._value2member_map_ else (
            ActivateError.OTHER)

    async def _activation_reason(self, sign: Sign, session: _Session,
                                 error: ActivateError) -> str:
        reason = f"sign {sign.id} refused the activation: {_ntcip_name(error, ActivateError)}"
        if error == ActivateError.SYNTAX_MULTI:
            reason += ", " + await self._syntax_reason(sign, session)
        return reason

    async def _validation_reason(self, sign: Sign, session: _Session, number: int) -> str:
        (error,) = await self._get(sign, session, ntcip.DMS_VALIDATE_MESSAGE_ERROR)
        reason = f"sign {sign.id} refused message {number}: "
        if error == ValidateError.SYNTAX_MULTI:
            return reason + await self._syntax_reason(sign, session)
        return reason + _ntcip_name(error, ValidateError)

    async def _syntax_reason(self, sign: Sign, session: _Session) -> str:
        code, position = await self._get(sign, session, ntcip.DMS_MULTI_SYNTAX_ERROR,
                                         ntcip.DMS_MULTI_SYNTAX_ERROR_POSITION)
        return f"MULTI {_ntcip_name(code, MultiSyntaxError)} at offset {position}"

    # -- SNMP

    async def _get(self, sign: Sign, session: _Session, *oids: Oid) -> list[int]:
        """One GET PDU of integer objects (all the driver reads)."""
        indication, status, index, var_binds = await get_cmd(
            self._engine, session.auth, session.target, ContextData(),
            *(ObjectType(ObjectIdentity(oid)) for oid in oids), lookupMib=False)
        if indication:
            raise SignError(f"sign {sign.id}: {indication}")
        if status:
            raise SignError(f"sign {sign.id}: GET {self._at(oids, index)} answered "
                            f"{status.prettyPrint()}")
        values: list[int] = []
        for name, value in var_binds:
            if value.tagSet in _MISSING:
                raise SignError(f"sign {sign.id} has no {ntcip.oid_name(tuple(name))}")
            if hasattr(value, "asOctets"):
                raise SignError(f"sign {sign.id}: {ntcip.oid_name(tuple(name))} is not a number")
            values.append(int(value))
        return values

    async def _set(self, sign: Sign, session: _Session,
                   *bindings: tuple[Oid, int | bytes]) -> str | None:
        """One SET PDU; None if the sign took it, else the SNMP error status (``genErr``)."""
        indication, status, _index, _var_binds = await set_cmd(
            self._engine, session.auth, session.target, ContextData(),
            *(ObjectType(ObjectIdentity(oid), rfc1902.OctetString(value)
                         if isinstance(value, bytes) else rfc1902.Integer(value))
              for oid, value in bindings), lookupMib=False)
        if indication:
            raise SignError(f"sign {sign.id}: {indication}")
        return str(status.prettyPrint()) if status else None

    async def _set_all(self, sign: Sign, session: _Session, what: str,
                       *bindings: tuple[Oid, int | bytes]) -> None:
        error = await self._set(sign, session, *bindings)
        if error:
            raise SignError(f"sign {sign.id} refused the SET of {what}: {error}")

    @staticmethod
    def _at(oids: tuple[Oid, ...], index: Any) -> str:
        position = int(index) - 1
        return ntcip.oid_name(oids[position]) if 0 <= position < len(oids) else "?"
