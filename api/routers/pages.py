"""The web pages (driver map ``/``, demo-room kiosk ``/kiosk``, planner dashboard
``/dashboard``) and their static files; the JSON the dashboard reads is in
``api.routers.dashboard``.

A page is ``static/page.html`` (the document and its head, written once) around the page's
``<body>`` (``static/map.html``, ...), with its script, its libraries' stylesheets, its
language and its configuration filled in on the server: no build step."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api._reports import MONTH_PATTERN
from api.deps import CitiesDep, CityDep, Now, SettingsDep
from api.routers.dashboard import TARGET
from core.city import ID_PATTERN, Cities, City
from core.settings import Settings

__all__ = ["router"]

STATIC = Path(__file__).resolve().parent.parent / "static"
# Browser libraries come from npm (``make setup`` runs ``npm ci`` in api/static) and are served
# straight from node_modules: nothing vendored into git, no build step.
_VENDOR = {"leaflet": "leaflet/dist", "uplot": "uplot/dist", "swagger-ui": "swagger-ui-dist"}


@dataclass(frozen=True, slots=True)
class _Page:
    """A page: the file of its ``<body>``, its module in ``static/js`` and the stylesheets
    of the libraries it uses (under ``static/vendor``)."""

    body: str
    script: str
    styles: tuple[str, ...]


_PAGES = {
    "map": _Page("map.html", "map-page.js", ("leaflet/leaflet.css",)),
    "kiosk": _Page("kiosk.html", "kiosk.js", ("leaflet/leaflet.css", "uplot/uPlot.min.css")),
    "dashboard": _Page("dashboard.html", "dashboard.js", ("uplot/uPlot.min.css",)),
    "console": _Page("console.html", "console.js", ()),
    "report": _Page("report.html", "report.js", ()),
}


class _Files(StaticFiles):
    """Static files whose directory may not exist yet: the API starts before ``npm ci`` has
    run, and the pages then show the lot list without map and charts. A missing library is
    a 404, not a 500."""

    async def check_config(self) -> None:
        if self.directory is not None and not Path(self.directory).is_dir():
            raise HTTPException(404, "not installed (make setup runs npm ci in api/static)")


router = APIRouter()
for _name, _path in _VENDOR.items():
    router.mount(f"/static/vendor/{_name}",
                 _Files(directory=STATIC / "node_modules" / _path, check_dir=False))
router.mount("/static", _Files(directory=STATIC, check_dir=False), name="static")


# -- pages ------------------------------------------------------------------------------------

@cache
def _template(name: str) -> str:
    """The document of page ``name``, its language and configuration still to fill in."""
    page = _PAGES[name]
    styles = "".join(f'  <link rel="stylesheet" href="static/vendor/{style}">\n'
                     for style in page.styles)
    return ((STATIC / "page.html").read_text(encoding="utf-8")
            .replace("{{styles}}\n", styles).replace("{{script}}", page.script)
            .replace("{{body}}\n", (STATIC / page.body).read_text(encoding="utf-8")))


def _page(page: Literal["map", "kiosk", "dashboard", "console", "report"], request: Request,
          lang: str, cities: Cities, city: City, settings: Settings, now: datetime,
          root: str = "", month: str | None = None) -> HTMLResponse:
    """A page with its ``lang`` attribute and configuration filled in on the server, so the
    first paint is already in the right language and no extra request is needed."""
    language = "en" if lang == "en" else "de"
    config = {
        "page": page, "lang": language,
        "city": {"id": city.id, "name": city.city.name, "timezone": city.city.timezone,
                 "illustrative": city.city.illustrative},
        "cities": [{"id": other.id, "name": other.city.name} for other in cities],
        "tiles": {"url": settings.API_TILE_URL, "attribution": settings.API_TILE_ATTRIBUTION},
        "horizons": list(settings.FORECAST_HORIZONS), "target": TARGET,
        "rotate_s": _rotate_seconds(request.query_params.get("rotate")),
        "now": now.isoformat().replace("+00:00", "Z"),
    }
    if month:
        config["month"] = month
    # "<" escaped: the JSON sits in a <script> element, where "</script>" would end it.
    payload = json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")
    html = _template(page).replace("{{lang}}", language).replace("{{config}}", payload)
    if root:  # a page below the site's root: its static files are up there (no <base>: the
        # policy's base-uri is 'none')
        html = html.replace('="static/', f'="{root}static/')
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


def _rotate_seconds(text: str | None) -> float:
    """Kiosk views change every 20 s, or every ``?rotate=`` seconds (1-600)."""
    try:
        value = float(text) if text else 20.0
    except ValueError:
        return 20.0
    # "nan" is a float too, and would be NaN in the page's JSON, which no browser parses.
    return 20.0 if math.isnan(value) else min(max(value, 1.0), 600.0)


Lang = Annotated[str, Query(max_length=8, description="de (default) or en")]


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def map_page(request: Request, cities: CitiesDep, city: CityDep, settings: SettingsDep,
                   now: Now, lang: Lang = "de") -> HTMLResponse:
    return _page("map", request, lang, cities, city, settings, now)


@router.get("/kiosk", response_class=HTMLResponse, include_in_schema=False)
async def kiosk_page(request: Request, cities: CitiesDep, city: CityDep, settings: SettingsDep,
                     now: Now, lang: Lang = "de") -> HTMLResponse:
    return _page("kiosk", request, lang, cities, city, settings, now)


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_page(request: Request, cities: CitiesDep, city: CityDep,
                         settings: SettingsDep, now: Now, lang: Lang = "de") -> HTMLResponse:
    return _page("dashboard", request, lang, cities, city, settings, now)


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
async def console_page(request: Request, cities: CitiesDep, city: CityDep,
                       settings: SettingsDep, now: Now, lang: Lang = "de") -> HTMLResponse:
    return _page("console", request, lang, cities, city, settings, now)


# -- the console's monthly report (printable: the browser's "print to PDF" is its PDF) --------

ReportMonth = Annotated[str, PathParam(pattern=MONTH_PATTERN, description="YYYY-MM")]


@router.get("/console/reports", include_in_schema=False)
async def report_form(city: CityDep, month: Annotated[str, Query(pattern=MONTH_PATTERN)]
                      ) -> RedirectResponse:
    """The console's report form (a plain GET form) to the report's own address."""
    return RedirectResponse(f"reports/{city.id}/{month}", status_code=303)


@router.get("/console/reports/{city_id}/{month}", response_class=HTMLResponse,
            include_in_schema=False)
async def report_page(request: Request, cities: CitiesDep, settings: SettingsDep, now: Now,
                      city_id: Annotated[str, PathParam(pattern=ID_PATTERN)],
                      month: ReportMonth, lang: Lang = "de") -> HTMLResponse:
    """A city's monthly report to read and print (A4); its figures come from
    ``/v1/console/reports/{city}/{month}`` with the console's session."""
    city = cities.get(city_id)
    if city is None:
        raise HTTPException(404, f"no city {city_id!r} here")
    return _page("report", request, lang, cities, city, settings, now, root="../../../",
                 month=month)
