"""The operator console's JSON (``/v1/console/...``): people log in with a name and password
and act through a session cookie (the API keys stay for machines).

- Login sets ``parkleit_session`` (HttpOnly, SameSite=Strict, path ``/v1/console``, Secure when
  the request came over HTTPS, also through a proxy of ``API_FORWARDED_ALLOW_IPS``) and answers
  the CSRF token every write must carry in ``X-CSRF-Token``. Attempts take a token of the
  address's and of the user name's bucket (429 when either is empty) and are logged, never
  with the password. A wrong password, an unknown or a disabled user: the same 401, in the same
  time (an unknown name is hashed against a decoy).
- No session (or an ended one) 401; a role below the route's 403; a write without the session's
  CSRF token 403. Roles: planner reads (and enters events), operator also acts on lots, admin
  as operator.
- Closing and opening a lot is the admin routes' code (``api._lotadmin``), audited with the
  person's name; so are correcting a counter lot's count and limiting its capacity. A sign's
  mode (``api._signmode``) is an override with its mode. The audit is read here (paged JSON or
  CSV).
- Alarms are raised and cleared by ingest's evaluator (``ingest/alarms.sql``); here they are
  read (planner) and acknowledged with a comment (operator), audited like a lot's closing. An
  acknowledged alarm stays open until its cause is gone.
- Events (``api._events``): planners enter, list and delete them; their closed and reserved
  lots are closed while they are on; the forecaster takes them as the config's events.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Body,
    Depends,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    Security,
)
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from api import _console as console
from api import _events as events
from api import _lotadmin as lotadmin
from api import _reports as reports
from api import _signmode as signmode
from api._http import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    bad_parameter,
    inline_schema,
    pagination_links,
    problem_responses,
)
from api._input import SafeText
from api._lotadmin import (
    AdminLot,
    CapacityLimit,
    CloseLot,
    CorrectCount,
    CorrectedLot,
    LimitedLot,
    Operator,
)
from api._ratelimit import TokenBuckets, retry_after
from api.deps import CitiesDep, Conn, Now, SettingsDep
from core.alarms import ALARM_KINDS, AlarmKind, Severity
from core.city import ID_PATTERN
from core.db import queries
from core.settings import Settings

__all__ = ["COOKIE", "router"]

logger = logging.getLogger(__name__)

COOKIE = "parkleit_session"
COOKIE_PATH = "/v1/console"
CSV_MEDIA_TYPE = "text/csv"


_PROBLEM = {PROBLEM_MEDIA_TYPE: {"schema": inline_schema(Problem)}}
_NO_SESSION: dict[int | str, dict[str, Any]] = {401: {
    "description": "No session: not logged in, or the session ended (idle, expired, logged "
    "out, its user disabled)", "content": _PROBLEM}}
_FORBIDDEN: dict[int | str, dict[str, Any]] = {403: {
    "description": "The user's role may not do this, or (a write) the X-CSRF-Token is not "
    "the session's", "content": _PROBLEM}}

_COOKIE = APIKeyCookie(name=COOKIE, scheme_name="consoleSession", auto_error=False,
                       description="The console's session (POST /v1/console/login sets it)")
_LOGIN = "/v1/console/login"


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _live_session(request: Request) -> console.ConsoleUser:
    """The person of the request's live session, else 401."""
    token = request.cookies.get(COOKIE)
    settings: Settings = request.app.state.settings
    user = None
    if token:
        pool: AsyncConnectionPool[AsyncConnection[Any]] = request.app.state.pool
        async with pool.connection() as conn:
            user = await console.session_user(conn, token, settings.clock.now(),
                                              settings.CONSOLE_IDLE_TIMEOUT_S)
    if user is None:
        raise HTTPException(401, "log in first: no session, or it has ended")
    return user


class _SessionFirst(APIRoute):
    """A console route but login: the session is checked before FastAPI reads and parses the
    body (it does that before any dependency), so a request without a live session gets its
    401 whatever it sends, and no one without a session makes the API parse anything."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.path == _LOGIN:
            return handler

        async def session_first(request: Request) -> Response:
            request.state.console_user = await _live_session(request)
            return await handler(request)

        return session_first


router = APIRouter(prefix="/v1/console", tags=["console"], route_class=_SessionFirst,
                   responses=problem_responses(422, 503))


async def _session(request: Request,
                   _token: Annotated[str | None, Security(_COOKIE)]) -> console.ConsoleUser:
    """The person ``_SessionFirst`` found (the cookie parameter documents the scheme)."""
    user: console.ConsoleUser = request.state.console_user
    return user


Session = Annotated[console.ConsoleUser, Depends(_session)]
CsrfToken = Annotated[str | None, Header(alias="X-CSRF-Token", description=(
    "The session's CSRF token (from login or GET /v1/console/me); every write needs it"))]


def _reader(role: console.Role) -> Callable[..., Coroutine[Any, Any, console.ConsoleUser]]:
    async def check(user: Session) -> console.ConsoleUser:
        if not console.role_allows(user.role, role):
            raise HTTPException(403, f"this needs the role {role}; {user.name} is {user.role}")
        return user
    return check


def _writer(role: console.Role) -> Callable[..., Coroutine[Any, Any, console.ConsoleUser]]:
    async def check(user: Session, csrf: CsrfToken = None) -> console.ConsoleUser:
        if not csrf or not hmac.compare_digest(csrf.encode(), user.csrf_token.encode()):
            raise HTTPException(403, "a write needs the session's token in X-CSRF-Token")
        if not console.role_allows(user.role, role):
            raise HTTPException(403, f"this needs the role {role}; {user.name} is {user.role}")
        return user
    return check


Planner = Annotated[console.ConsoleUser, Depends(_reader("planner"))]
OperatorWrite = Annotated[console.ConsoleUser, Depends(_writer("operator"))]
AnyWrite = Annotated[console.ConsoleUser, Depends(_writer("planner"))]
AdminRead = Annotated[console.ConsoleUser, Depends(_reader("admin"))]
AdminWrite = Annotated[console.ConsoleUser, Depends(_writer("admin"))]
LotId = Annotated[str, Path(pattern=ID_PATTERN, description="The lot's id.")]
SignId = Annotated[str, Path(pattern=ID_PATTERN, description="The sign's id.")]


# -- login, logout, me ----------------------------------------------------------------------------


class Login(BaseModel):
    """A person's name and password."""

    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, SafeText(min_length=1, max_length=40)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class Me(BaseModel):
    """The person of a session, and the token its writes carry in X-CSRF-Token."""

    user: str
    role: console.Role
    csrf_token: str


@router.post("/login", operation_id="consoleLogin", response_model=Me,
             summary="Log in to the console (sets the session cookie)",
             responses={**problem_responses(429),
                        401: {"description": "Wrong user name or password (or the user is "
                              "disabled): one answer for all", "content": _PROBLEM}})
async def login(request: Request, response: Response, body: Login, conn: Conn, now: Now,
                settings: SettingsDep) -> Me:
    """Start a session for ``username`` if ``password`` is theirs."""
    client = _client(request)
    buckets: TokenBuckets = request.app.state.console_logins  # api._app's lifespan
    wait = max(await buckets.take(f"address:{client}"),
               await buckets.take(f"user:{body.username}"))
    if wait:
        logger.warning("console login for %r from %s refused: too many attempts",
                       body.username, client)
        raise HTTPException(429, "too many login attempts; wait and try again",
                            headers={"Retry-After": retry_after(wait)})
    session = await console.log_in(conn, body.username, body.password, now,
                                   settings.CONSOLE_IDLE_TIMEOUT_S,
                                   settings.CONSOLE_SESSION_MAX_S)
    if session is None:
        logger.warning("console login for %r from %s refused: wrong name or password",
                       body.username, client)
        raise HTTPException(401, "wrong user name or password")
    user, token = session
    logger.info("console login: %s (%s) from %s", user.name, user.role, client)
    response.set_cookie(COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    response.headers["Cache-Control"] = "no-store"
    return Me(user=user.name, role=user.role, csrf_token=user.csrf_token)


@router.post("/logout", operation_id="consoleLogout", status_code=204,
             summary="End the session", responses={**_NO_SESSION, **_FORBIDDEN})
async def logout(request: Request, user: AnyWrite, conn: Conn) -> Response:
    """End this session and remove its cookie."""
    await console.end_session(conn, request.cookies[COOKIE])
    logger.info("console logout: %s from %s", user.name, _client(request))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


@router.get("/me", operation_id="consoleMe", response_model=Me,
            summary="The person of this session and its CSRF token",
            responses={**_NO_SESSION, **_FORBIDDEN})
async def me(response: Response, user: Planner) -> Me:
    """Who is logged in (the page asks after a reload: the cookie is HttpOnly)."""
    response.headers["Cache-Control"] = "no-store"
    return Me(user=user.name, role=user.role, csrf_token=user.csrf_token)


# -- lots ---------------------------------------------------------------------------------------


def _operator(request: Request, user: console.ConsoleUser) -> Operator:
    return Operator(user.name, _client(request), person=True)


_WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {**_NO_SESSION, **_FORBIDDEN,
                                                    **problem_responses(404)}


@router.post("/lots/{lot_id}/close", operation_id="consoleCloseLot", response_model=AdminLot,
             summary="Close a lot (operator): closed everywhere until opened or `until`",
             responses=_WRITE_PROBLEMS)
async def close_lot(request: Request, lot_id: LotId, body: CloseLot, user: OperatorWrite,
                    conn: Conn, now: Now, cities: CitiesDep) -> AdminLot:
    """Close ``lot_id`` for every consumer (API, stream, signs, DATEX II, MQTT), audited with
    the person's name."""
    return await lotadmin.close_lot(conn, cities, lot_id, body, _operator(request, user), now)


@router.post("/lots/{lot_id}/open", operation_id="consoleOpenLot", response_model=AdminLot,
             summary="End an operator's closure of a lot (operator)", responses=_WRITE_PROBLEMS)
async def open_lot(request: Request, lot_id: LotId, user: OperatorWrite, conn: Conn, now: Now,
                   cities: CitiesDep) -> AdminLot:
    """End the closure of ``lot_id`` (if any), audited with the person's name."""
    return await lotadmin.open_lot(conn, cities, lot_id, _operator(request, user), now)


# -- alarms -------------------------------------------------------------------------------------


class Alarm(BaseModel):
    """An alarm: what is wrong where, since when, whether its cause is gone (cleared) and
    whether a person has acknowledged it (acknowledged is not cleared)."""

    id: int
    city: str
    kind: str = Field(description="What is wrong: " + ", ".join(ALARM_KINDS))
    severity: Severity
    target: str = Field(description="The sensor, gateway, lot, garage counter "
                        "(`{lot_id}/counter`) or sign it concerns")
    since: datetime = Field(description="When the cause began (when known), else when it was "
                            "raised")
    cleared_at: datetime | None = Field(description="When its cause was gone (null: open)")
    detail: dict[str, Any] = Field(description="What the evaluator saw (last reading, "
                                   "battery, last ack, ...)")
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    ack_comment: str | None


class AlarmList(BaseModel):
    """Alarms, open before cleared, critical before warning, the newest first."""

    alarms: list[Alarm]


class AckAlarm(BaseModel):
    """A person's acknowledgement of an alarm."""

    model_config = ConfigDict(extra="forbid")
    comment: Annotated[str, SafeText(min_length=1, max_length=500)]


AlarmId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The alarm's id.")]
_ACK_FIELDS = ("acknowledged_by", "acknowledged_at", "ack_comment", "cleared_at")


@router.get("/alarms", operation_id="consoleAlarms", response_model=AlarmList,
            summary="The alarms, open ones by default, filterable (planner)",
            responses={**_NO_SESSION, **_FORBIDDEN})
async def alarms(response: Response, _user: Planner, conn: Conn,
                 city: Annotated[str | None, Query(pattern=ID_PATTERN,
                                                   description="Only this city's")] = None,
                 kind: Annotated[AlarmKind | None, Query(description="Only this kind")] = None,
                 severity: Annotated[Severity | None, Query(
                     description="Only this severity")] = None,
                 state: Annotated[Literal["open", "all"], Query(
                     description="open (default): not cleared; all: cleared ones too")] = "open",
                 limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> AlarmList:
    """The alarms ingest raised (and cleared), with their acknowledgements."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(queries("api", "console")["alarms"], {
            "all": state == "all", "city": city, "kind": kind, "severity": severity,
            "limit": limit})
        rows = await cur.fetchall()
    response.headers["Cache-Control"] = "no-store"
    return AlarmList(alarms=[Alarm(**row) for row in rows])


@router.post("/alarms/{alarm_id}/ack", operation_id="consoleAckAlarm", response_model=Alarm,
             summary="Acknowledge an alarm with a comment (operator); it stays open until its "
             "cause is gone", responses=_WRITE_PROBLEMS)
async def ack_alarm(request: Request, alarm_id: AlarmId, body: AckAlarm, user: OperatorWrite,
                    conn: Conn, now: Now) -> Alarm:
    """Acknowledge ``alarm_id`` (again: the newer acknowledgement replaces the older),
    audited with the person's name, before and after."""
    q = queries("api", "console")
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q["lock_alarm"], {"id": alarm_id})
        before = await cur.fetchone()
        if before is None:
            raise HTTPException(404, f"no alarm {alarm_id}")
        await cur.execute(q["ack_alarm"], {"id": alarm_id, "user": user.name, "now": now,
                                           "comment": body.comment})
        after = await cur.fetchone()
        assert after is not None  # the row is locked
        acked = Alarm(**after)
        await lotadmin.audit(
            conn, _operator(request, user), "ack_alarm", acked.target,
            {"alarm_id": acked.id, "kind": acked.kind, "comment": body.comment}, now,
            Alarm(**before).model_dump(mode="json", include=set(_ACK_FIELDS)),
            acked.model_dump(mode="json", include=set(_ACK_FIELDS)))
    return acked


@router.post("/lots/{lot_id}/count", operation_id="consoleCorrectCount",
             response_model=CorrectedLot,
             summary="Set a counter lot's count now (operator): ingest counts on from it",
             responses=_WRITE_PROBLEMS)
async def correct_count(request: Request, lot_id: LotId, body: CorrectCount,
                        user: OperatorWrite, conn: Conn, now: Now,
                        cities: CitiesDep) -> CorrectedLot:
    """Set the number of cars parked in ``lot_id`` now (0 to its capacity), flagged
    ``manual_correction``; everyone has it at once, audited with before and after."""
    return await lotadmin.correct_count(conn, cities, lot_id, body, _operator(request, user),
                                        now)


@router.post("/lots/{lot_id}/capacity", operation_id="consoleLimitCapacity",
             response_model=LimitedLot,
             summary="Reduce a counter lot's capacity until a time (operator)",
             responses=_WRITE_PROBLEMS)
async def limit_capacity(request: Request, lot_id: LotId, body: CapacityLimit,
                         user: OperatorWrite, conn: Conn, now: Now,
                         cities: CitiesDep) -> LimitedLot:
    """Count ``lot_id``'s free spaces against ``capacity`` until ``until`` (a level closed for
    works): /v1/lots, DATEX II, the stream and the signs show it; audited."""
    return await lotadmin.limit_capacity(conn, cities, lot_id, body, _operator(request, user),
                                         now)


@router.delete("/lots/{lot_id}/capacity", operation_id="consoleEndCapacityLimit",
               response_model=LimitedLot,
               summary="End a lot's capacity limit before its time (operator)",
               responses=_WRITE_PROBLEMS)
async def end_capacity(request: Request, lot_id: LotId, user: OperatorWrite, conn: Conn,
                       now: Now, cities: CitiesDep) -> LimitedLot:
    """Give ``lot_id`` its configured capacity again (if it was limited); audited."""
    return await lotadmin.end_capacity(conn, cities, lot_id, _operator(request, user), now)


# -- signs --------------------------------------------------------------------------------------


@router.get("/signs", operation_id="consoleSigns", response_model=list[signmode.SignModeView],
            summary="Every sign: its mode as asked and what it really shows (planner)",
            responses={**_NO_SESSION, **_FORBIDDEN})
async def signs(response: Response, _user: Planner, conn: Conn, now: Now,
                cities: CitiesDep) -> list[signmode.SignModeView]:
    """Per sign the mode in force (``auto`` without one), its end, and the content the sign
    last acknowledged (signage's ``sign_state``) beside it."""
    response.headers["Cache-Control"] = "no-store"
    return await signmode.list_sign_modes(conn, cities, now)


@router.put("/signs/{sign_id}/mode", operation_id="consoleSetSignMode",
            response_model=signmode.SignModeView,
            summary="Put a sign into a mode (operator); auto clears it",
            responses=_WRITE_PROBLEMS)
async def set_sign_mode(request: Request, sign_id: SignId,
                        body: Annotated[signmode.SetSignMode, Body()], user: OperatorWrite,
                        conn: Conn, now: Now, cities: CitiesDep) -> signmode.SignModeView:
    """Show ``mode`` on ``sign_id`` until changed or ``until`` (then auto by itself); the
    signage service pushes it at once. A text that does not fit the sign is a 422."""
    return await signmode.set_sign_mode(conn, cities, sign_id, body,
                                        _operator(request, user), now)


# -- audit --------------------------------------------------------------------------------------


class AuditEntry(BaseModel):
    """One action of a person (console) or a machine (API key)."""

    time: datetime
    actor_kind: Literal["user", "key"]
    actor: str
    client: str | None
    action: str
    target: str | None
    detail: Any
    before: Any
    after: Any


class AuditPage(BaseModel):
    """A page of the audit, newest first."""

    total: int
    offset: int
    limit: int
    entries: list[AuditEntry]


_CSV_COLUMNS = tuple(AuditEntry.model_fields)


def _csv(entries: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for entry in entries:
        writer.writerow([
            entry["time"].isoformat().replace("+00:00", "Z") if name == "time"
            else "" if entry[name] is None
            else json.dumps(entry[name], ensure_ascii=False, sort_keys=True)
            if name in ("detail", "before", "after") else entry[name]
            for name in _CSV_COLUMNS])
    return out.getvalue()


# -- people (admin) -----------------------------------------------------------------------------


class Person(BaseModel):
    """A person of the console (never their password or its hash)."""

    name: str
    role: console.Role
    disabled: bool
    created: datetime


class People(BaseModel):
    """Every person of the console, by name."""

    users: list[Person]


class NewPerson(BaseModel):
    """A person to add: name, role and a first password (at least 12 characters; it is
    stored only as a scrypt hash and never logged or audited)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(pattern=console.USER_NAME.pattern, max_length=40)]
    role: console.Role
    password: Annotated[str, SafeText(min_length=console.MIN_PASSWORD, max_length=200)]


UserName = Annotated[str, Path(pattern=console.USER_NAME.pattern, description="The person.")]


@router.get("/users", operation_id="consoleUsers", response_model=People,
            summary="Every person of the console (admin)",
            responses={**_NO_SESSION, **_FORBIDDEN})
async def users(response: Response, _user: AdminRead, conn: Conn) -> People:
    """The console's people, their roles and whether they are disabled."""
    response.headers["Cache-Control"] = "no-store"
    return People(users=[Person(**row) for row in await console.list_users_async(conn)])


@router.post("/users", operation_id="consoleAddUser", response_model=Person, status_code=201,
             summary="Add a person (admin)", responses={
                 **_WRITE_PROBLEMS, 409: {"description": "The name is taken",
                                          "content": _PROBLEM}})
async def add_person(request: Request, body: NewPerson, user: AdminWrite, conn: Conn,
                     now: Now) -> Person:
    """Add a person who may log in at once; audited (name and role, never the password)."""
    async with conn.transaction():
        try:
            await console.add_user_async(conn, body.name, body.role, body.password, now)
        except console.ConsoleUserError as exc:
            raise HTTPException(409, str(exc)) from None
        added = Person(name=body.name, role=body.role, disabled=False, created=now)
        await lotadmin.audit(conn, _operator(request, user), "add_user", body.name,
                             {"role": body.role}, now, None,
                             added.model_dump(mode="json", exclude={"created"}))
    return added


@router.post("/users/{name}/disable", operation_id="consoleDisableUser", response_model=Person,
             summary="Disable a person (admin): their sessions end at once",
             responses={**_WRITE_PROBLEMS, 404: {"description": "No such person",
                                                 "content": _PROBLEM}})
async def disable_person(request: Request, name: UserName, user: AdminWrite, conn: Conn,
                         now: Now) -> Person:
    """Disable ``name`` (not oneself: the last admin could lock everyone out); audited."""
    if name == user.name:
        raise HTTPException(422, "you cannot disable yourself")
    async with conn.transaction():
        before = await console.person(conn, name)
        if before is None:
            raise HTTPException(404, f"there is no user {name!r}")
        await console.disable_user_async(conn, name)
        after = Person(**{**before, "disabled": True})
        await lotadmin.audit(conn, _operator(request, user), "disable_user", name, {}, now,
                             Person(**before).model_dump(mode="json", exclude={"created"}),
                             after.model_dump(mode="json", exclude={"created"}))
    return after


@router.get("/audit", operation_id="consoleAudit", response_model=AuditPage,
            summary="The audit of every admin and console action, newest first (planner)",
            responses={**_NO_SESSION, **_FORBIDDEN, 200: {
                "description": "A page of the audit (JSON), or with `format=csv` RFC 4180 CSV "
                "with a header row: " + ", ".join(_CSV_COLUMNS) + " (detail, before and after "
                "as JSON text)",
                "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}}}})
async def audit(request: Request, _user: Planner, conn: Conn,
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                format: Annotated[Literal["json", "csv"], Query(
                    description="json (default) or csv")] = "json") -> Any:
    """A page of the audit (``Link`` header: first, prev, next)."""
    q = queries("api", "console")
    cursor = await conn.execute(q["audit_count"])
    row = await cursor.fetchone()
    total = int(row[0]) if row else 0
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q["audit_page"], {"offset": offset, "limit": limit})
        entries = await cur.fetchall()
    headers = {"Link": pagination_links(request, offset=offset, limit=limit, total=total),
               "Cache-Control": "no-store"}
    if format == "csv":
        return Response(_csv(entries), media_type=CSV_MEDIA_TYPE, headers={
            **headers, "Content-Disposition": 'attachment; filename="parkleit-audit.csv"'})
    page = AuditPage(total=total, offset=offset, limit=limit,
                     entries=[AuditEntry(**entry) for entry in entries])
    return Response(page.model_dump_json(), media_type="application/json", headers=headers)


# -- reports ------------------------------------------------------------------------------------

ReportCity = Annotated[str, Path(pattern=ID_PATTERN, description="The city's id.")]
ReportMonth = Annotated[str, Path(pattern=reports.MONTH_PATTERN, description=(
    "The month, YYYY-MM, in the city's time zone; the month under way is reported up to now"))]


@router.get("/reports/{city}/{month}", operation_id="consoleMonthlyReport",
            response_model=reports.MonthlyReport,
            summary="A city's monthly report: occupancy, data quality, signs, forecast error "
            "(planner)",
            responses={**_NO_SESSION, **_FORBIDDEN, **problem_responses(404), 200: {
                "description": "The report (JSON), or with `format=csv` one RFC 4180 CSV, a "
                "row per figure: " + ", ".join(reports.CSV_COLUMNS),
                "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}}}})
async def monthly_report(city: ReportCity, month: ReportMonth, _user: Planner, conn: Conn,
                         now: Now, cities: CitiesDep,
                         format: Annotated[Literal["json", "csv"], Query(
                             description="json (default) or csv")] = "json") -> Any:
    """The monthly report of ``city`` for ``month`` (422 for a month not begun yet)."""
    known = cities.get(city)
    if known is None:
        raise HTTPException(404, f"no city {city!r} here")
    try:
        period = reports.period_of(month, known.tz, now)
    except reports.MonthNotBegun as exc:
        bad_parameter("month", str(exc), location="path")
    report = await reports.monthly_report(conn, known, period, now)
    headers = {"Cache-Control": "no-store"}
    if format == "csv":
        return Response(reports.report_csv(report), media_type=CSV_MEDIA_TYPE, headers={
            **headers, "Content-Disposition":
            f'attachment; filename="parkleit-report-{city}-{month}.csv"'})
    return Response(report.model_dump_json(), media_type="application/json", headers=headers)


# -- events -------------------------------------------------------------------------------------


EventId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The console event's id.")]


@router.get("/events", operation_id="consoleEvents", response_model=events.EventList,
            summary="Events on now and upcoming: the console's and the city config's "
            "(read-only) (planner)", responses={**_NO_SESSION, **_FORBIDDEN})
async def list_events(response: Response, _user: Planner, conn: Conn, now: Now,
                      cities: CitiesDep,
                      city: Annotated[str | None, Query(pattern=ID_PATTERN,
                                                        description="Only this city's")] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> events.EventList:
    """The console's events not over yet and each config event's next occurrence, soonest
    first, with the sign lines that route to their alternative while it is on."""
    response.headers["Cache-Control"] = "no-store"
    return await events.list_events(conn, cities, now, city, limit)


@router.post("/events", operation_id="consoleCreateEvent", response_model=events.EventView,
             status_code=201,
             summary="Enter an event (planner): its window, lots with its demand, lots closed "
             "or reserved while it is on", responses=_WRITE_PROBLEMS)
async def create_event(request: Request, body: events.NewEvent, user: AnyWrite, conn: Conn,
                       now: Now, cities: CitiesDep) -> events.EventView:
    """Store the event (the forecaster takes it as the config's events); its closed and
    reserved lots are closed to the public from its start to its end; audited. An end not
    after the start, or in the past, is a 422."""
    return await events.create_event(conn, cities, body, _operator(request, user), now)


@router.delete("/events/{event_id}", operation_id="consoleDeleteEvent",
               response_model=events.EventView,
               summary="Delete a console event (planner); its lots open if it was on",
               responses=_WRITE_PROBLEMS)
async def delete_event(request: Request, event_id: EventId, user: AnyWrite, conn: Conn,
                       now: Now, cities: CitiesDep) -> events.EventView:
    """Remove ``event_id`` (the config's events are changed in the config), audited with what
    it was."""
    return await events.delete_event(conn, cities, event_id, _operator(request, user), now)
