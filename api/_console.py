"""The people of the operator console and their sessions.

People are added, listed and disabled by ``parkleit users`` (with the schema owner's
``DATABASE_URL``; the API's role only reads them). A password is stored as its scrypt hash
(``api._keys.hash_key``: n=2**14, r=8, p=1, a 16-byte salt, ``scrypt$n$r$p$salt$hash``), the
same hash as the admin keys: the standard library has it, and no second scheme is to be kept.
A session is a random token in an HttpOnly cookie; the database holds only its SHA-256, so the
table logs no one in. A session ends after ``CONSOLE_IDLE_TIMEOUT_S`` without a request, after
``CONSOLE_SESSION_MAX_S`` in any case, at its logout, and at once when its person is disabled
(every check joins the person's row). Neither passwords nor tokens are ever logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api._keys import decoy_hash, hash_key, hash_matches
from core.db import queries

__all__ = ["MIN_PASSWORD", "ROLES", "ConsoleUser", "ConsoleUserError", "Role", "add_user",
           "add_user_async", "disable_user", "disable_user_async", "end_session", "list_users",
           "list_users_async", "log_in", "person", "role_allows", "session_user"]

Role = Literal["planner", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)  # each may do what the ones before it may
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
MIN_PASSWORD = 12


class ConsoleUserError(Exception):
    """A person cannot be added or changed; the message is one line."""


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """The person of a live session, and the CSRF token its writes carry."""

    name: str
    role: Role
    csrf_token: str


def role_allows(role: str, needed: Role) -> bool:
    """Whether ``role`` may do what ``needed`` may (planner < operator < admin)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def _q() -> dict[str, str]:
    return queries("api", "console")


# -- people (the CLI) ---------------------------------------------------------------------------


def _new_user(name: str, role: str, password: str, now: datetime) -> dict[str, Any]:
    """The row of a new person; ConsoleUserError for a bad name, role or password."""
    if not USER_NAME.match(name):
        raise ConsoleUserError(f"user name {name!r}: 1-40 of a-z, 0-9, _ . and -, starting "
                               "alphanumeric")
    if role not in ROLES:
        raise ConsoleUserError(f"role {role!r}: one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise ConsoleUserError(f"the password must have at least {MIN_PASSWORD} characters")
    return {"name": name, "role": role, "password_hash": hash_key(password), "created": now}


def _taken(name: str) -> ConsoleUserError:
    return ConsoleUserError(f"there is a user {name!r} already")


def _no_user(name: str) -> ConsoleUserError:
    return ConsoleUserError(f"there is no user {name!r}")


def add_user(conn: psycopg.Connection[Any], name: str, role: str, password: str,
             now: datetime) -> None:
    """Add a person; ConsoleUserError for a bad name, role or password or a taken name."""
    try:
        conn.execute(_q()["add_user"], _new_user(name, role, password, now))
    except psycopg.errors.UniqueViolation:
        raise _taken(name) from None


def list_users(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every person: name, role, disabled, created."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_q()["list_users"]).fetchall()


def disable_user(conn: psycopg.Connection[Any], name: str) -> None:
    """Disable a person and end their sessions; ConsoleUserError if there is no such person."""
    with conn.transaction():
        if conn.execute(_q()["disable_user"], {"name": name}).rowcount == 0:
            raise _no_user(name)
        conn.execute(_q()["end_sessions_of"], {"name": name})


# -- people (the console's admins) ----------------------------------------------------------------


async def add_user_async(conn: AsyncConnection[Any], name: str, role: str, password: str,
                         now: datetime) -> None:
    """``add_user`` on the API's connection (inside the caller's transaction)."""
    row = await asyncio.to_thread(_new_user, name, role, password, now)  # scrypt: not here
    try:
        async with conn.transaction():
            await conn.execute(_q()["add_user"], row)
    except psycopg.errors.UniqueViolation:
        raise _taken(name) from None


async def disable_user_async(conn: AsyncConnection[Any], name: str) -> None:
    """``disable_user`` on the API's connection (inside the caller's transaction)."""
    if (await conn.execute(_q()["disable_user"], {"name": name})).rowcount == 0:
        raise _no_user(name)
    await conn.execute(_q()["end_sessions_of"], {"name": name})


async def person(conn: AsyncConnection[Any], name: str) -> dict[str, Any] | None:
    """The person ``name`` (locked until the caller's transaction ends), or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_q()["person"], {"name": name})
        return await cur.fetchone()


async def list_users_async(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """``list_users`` on the API's connection."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_q()["list_users"])
        return await cur.fetchall()


# -- sessions (the API) -------------------------------------------------------------------------


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def log_in(conn: AsyncConnection[Any], name: str, password: str, now: datetime,
                 idle_s: int, lifetime_s: int) -> tuple[ConsoleUser, str] | None:
    """(the person, the session's token) if ``password`` is ``name``'s and they are not
    disabled; else None. An unknown name is checked against a decoy hash: it answers in the
    time a known one does."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_q()["login_user"], {"name": name})
        row = await cur.fetchone()
    stored = decoy_hash() if row is None else row["password_hash"]
    matched = await asyncio.to_thread(hash_matches, password, stored)
    if row is None or not matched or row["disabled"]:
        return None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    async with conn.transaction():
        await conn.execute(_q()["drop_old_sessions"], {"now": now, "idle_s": idle_s})
        await conn.execute(_q()["add_session"], {
            "token_hash": _token_hash(token), "name": row["name"], "csrf_token": csrf,
            "now": now, "expires": now + timedelta(seconds=lifetime_s)})
    return ConsoleUser(row["name"], row["role"], csrf), token


async def session_user(conn: AsyncConnection[Any], token: str, now: datetime,
                       idle_s: int) -> ConsoleUser | None:
    """The person of the live session ``token`` (its idle time starting again), else None."""
    cursor = await conn.execute(_q()["touch_session"], {
        "token_hash": _token_hash(token), "now": now, "idle_s": idle_s})
    row = await cursor.fetchone()
    return None if row is None else ConsoleUser(*row)


async def end_session(conn: AsyncConnection[Any], token: str) -> None:
    """End the session ``token`` (its logout)."""
    await conn.execute(_q()["end_session"], {"token_hash": _token_hash(token)})
