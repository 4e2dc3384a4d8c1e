"""A sign's operator mode (the console): ``auto`` (the rules' content) or ``full``, ``closed``,
``blank``, ``test``, a fixed ``text`` (``signage.mode_content`` renders them), until cleared or
until ``until``.

A mode is an override (table ``sign_overrides``, its ``mode`` column): the signage service
hears ``parkleit_sign_override``, pushes the content at once and returns to the rendered content
by itself once ``until`` has passed. Changes of one sign take turns (an advisory lock), so two
operators changing it at once are both audited, each with what the other left as before, and
the last write wins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import HTTPException
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from api._http import bad_parameter
from api._input import Moment
from api._lotadmin import Operator, Reason, audit, future
from core import channels
from core.city import Cities
from core.db import queries
from signage import SignTextError, content_json, mode_content

__all__ = ["Mode", "SetSignMode", "SignModeView", "list_sign_modes", "set_sign_mode"]

Mode = Literal["auto", "full", "closed", "blank", "test", "text"]


class SetSignMode(BaseModel):
    """The mode a sign is to show, why, and until when."""

    model_config = ConfigDict(extra="forbid")
    mode: Mode = Field(description="auto: what the rules render (clears the mode); full, "
                       "closed: the sign's own words on every line; blank: nothing; test: a "
                       "test pattern; text: the fixed `text`")
    text: Annotated[str, Field(min_length=1, max_length=1000, description=(
        "The fixed message of the mode text: one line per sign line, separated by \\n; each "
        "fits the sign's width (ä, ö, ü, ß take two characters) and uses letters, digits, "
        "space and . , : ; ! ? - + / ( ) ' \" & % # * ="))] | None = None
    until: Moment | None = Field(None, description="When the sign returns to auto by itself "
                                 "(RFC 3339 with offset; default: until changed)")
    reason: Reason


class ShownLine(BaseModel):
    """One line: its label, arrow and text."""

    label: str
    arrow: str
    text: str


class SignModeView(BaseModel):
    """A sign's mode as asked, beside what the sign last acknowledged showing."""

    sign_id: str
    city: str
    name: str
    mode: Mode
    reason: str | None = None
    set_by: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    asked: list[ShownLine] | None = Field(None, description="The lines the mode asks for "
                                          "(None in auto: the rules render them)")
    shown: list[ShownLine] | None = Field(None, description="The lines the sign last "
                                          "acknowledged (None: it has acknowledged nothing)")
    shown_since: datetime | None = None
    last_ack: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


def _lines(content: dict[str, Any] | None) -> list[ShownLine] | None:
    return None if content is None else [ShownLine(**line) for line in content["lines"]]


def _view(row: dict[str, Any]) -> SignModeView:
    return SignModeView(
        sign_id=row["sign_id"], city=row["city"], name=row["name"], mode=row["mode"] or "auto",
        reason=row["reason"], set_by=row["set_by"], since=row["since"], until=row["until"],
        asked=_lines(row["asked"]), shown=_lines(row["shown"]), shown_since=row["shown_since"],
        last_ack=row["last_ack"], last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"])


async def list_sign_modes(conn: AsyncConnection[Any], cities: Cities, now: datetime,
                          sign_id: str | None = None) -> list[SignModeView]:
    """Every sign (or the one ``sign_id``) of the cities: mode asked and content shown."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(queries("api", "console")["sign_modes"], {
            "now": now, "cities": [city.id for city in cities]})
        rows = await cur.fetchall()
    return [_view(row) for row in rows if sign_id is None or row["sign_id"] == sign_id]


def _mode_json(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"mode": "auto"}
    return {"mode": row["mode"], "lines": row["content"]["lines"], "reason": row["reason"],
            "set_by": row["set_by"], "since": row["since"].isoformat(),
            "until": row["until"] and row["until"].isoformat()}


async def set_sign_mode(conn: AsyncConnection[Any], cities: Cities, sign_id: str,
                        body: SetSignMode, operator: Operator, now: datetime) -> SignModeView:
    """Put ``sign_id`` into ``body.mode`` (``auto`` clears it); audited with before and after."""
    try:
        sign = cities.sign(sign_id)[1]
    except KeyError:
        raise HTTPException(404, f"no sign {sign_id!r}") from None
    until = future(body.until, now)
    if body.mode == "auto" and until is not None:
        bad_parameter("until", "auto has no end: it is what a sign returns to", "body")
    if body.mode == "text" and body.text is None:
        bad_parameter("text", "the mode text needs the text to show", "body")
    content = None
    if body.mode != "auto":
        try:
            content = content_json(mode_content(sign, body.mode, body.text))
        except SignTextError as exc:
            bad_parameter("text", str(exc), "body")
    elif body.text is not None:
        bad_parameter("text", "a text goes only with the mode text, not auto", "body")
    admin, console = queries("api", "admin"), queries("api", "console")
    async with conn.transaction():
        cursor = await conn.execute(admin["sign_registered"], {"sign_id": sign_id})
        if await cursor.fetchone() is None:
            raise HTTPException(404, f"sign {sign_id!r} is not in the registry yet")
        await conn.execute(console["lock_sign_mode"], {"sign_id": sign_id})
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(console["sign_mode_of"], {"sign_id": sign_id, "now": now})
            before = _mode_json(await cur.fetchone())
        if content is None:
            await conn.execute(admin["clear_sign_override"], {"sign_id": sign_id})
            after: dict[str, Any] = {"mode": "auto"}
        else:
            await conn.execute(admin["set_sign_override"], {
                "sign_id": sign_id, "content": Jsonb(content), "reason": body.reason,
                "key_name": operator.name, "since": now, "until": until, "mode": body.mode})
            after = {"mode": body.mode, "lines": content["lines"], "reason": body.reason,
                     "set_by": operator.name, "since": now.isoformat(),
                     "until": until and until.isoformat()}
        await conn.execute(admin["notify"], {"channel": channels.SIGN_OVERRIDE,
                                             "payload": sign_id})
        await audit(conn, operator, "sign_mode", sign_id, {
            "mode": body.mode, "reason": body.reason, "until": until and until.isoformat()},
            now, before, after)
    return (await list_sign_modes(conn, cities, now, sign_id))[0]
