"""Browser-facing protection of every response: CORS for the open data (never for admin) and
security headers (a Content-Security-Policy for the web pages, nosniff, referrer, framing and
permissions policies everywhere); the decisions are ``install_security``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings

__all__ = ["ADMIN_PREFIX", "ERROR_HEADERS", "docs_policy", "install_security", "page_policy",
           "tile_source"]

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/v1/admin"
CONSOLE_PREFIX = "/v1/console"
_NO_CORS = (ADMIN_PREFIX, CONSOLE_PREFIX)
_DOC_PAGES = ("/docs",)
_EXPOSED = ["ETag", "Last-Modified", "Link", "Retry-After"]
# Features no page uses. A future "where am I" button needs geolocation=(self).
_PERMISSIONS = ("accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
                "microphone=(), payment=(), usb=()")
# Third parties (the tile host) learn the site, never the page or its query.
_REFERRER = "strict-origin-when-cross-origin"
_HSTS = "max-age=31536000"
_DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"
# For answers made outside the middleware (the 500 of an unexpected error).
ERROR_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": _DATA_POLICY,
                 "Referrer-Policy": _REFERRER}


def tile_source(template: str) -> str | None:
    """The CSP source of a tile URL template: its scheme, host and port, a placeholder label
    (``{s}.tile.example.org``) widened to ``*``; None without tiles or for an unusable one."""
    if not template:
        return None
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        logger.warning("API_TILE_URL %r is not an http(s) URL: the pages load no tiles",
                       template[:200])
        return None
    labels = parts.netloc.split(".")
    last = max((i for i, label in enumerate(labels) if "{" in label or "}" in label),
               default=-1)
    if last >= 0:
        # CSP wildcards only stand for the leftmost labels: *.example.org
        labels = ["*", *labels[last + 1:]]
        if len(labels) < 3:  # "*.org" would allow a whole top-level domain
            logger.warning("API_TILE_URL %r: host too vague for the page policy; no tiles",
                           template[:200])
            return None
    return f"{parts.scheme}://{'.'.join(labels)}"


def page_policy(settings: Settings) -> str:
    """The Content-Security-Policy of the web pages for ``settings``."""
    tiles = tile_source(settings.API_TILE_URL)
    # data: for Leaflet, which blanks a tile it drops with a data: GIF (images only: harmless).
    images = " ".join(["'self'", "data:", *([tiles] if tiles else [])])
    ancestors = " ".join(["'self'", *settings.API_FRAME_ANCESTORS])
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src {images}",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        f"frame-ancestors {ancestors}",
    ])


def docs_policy(script_hashes: Iterable[str]) -> str:
    """The Content-Security-Policy of ``/docs``: Swagger UI from this site, and of inline
    scripts only those of ``script_hashes`` (``'sha256-...'`` sources)."""
    return "; ".join([
        "default-src 'none'",
        " ".join(["script-src 'self'", *script_hashes]),
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class SecurityHeaders:
    """ASGI middleware: the headers of ``install_security``'s decisions on every HTTP
    response."""

    def __init__(self, app: ASGIApp, page_csp: str, frame_origins: Iterable[str]) -> None:
        self.app, self.page_csp = app, page_csp
        # X-Frame-Options knows no list; with other ancestors allowed, CSP alone decides.
        self.page_frames = None if tuple(frame_origins) else "SAMEORIGIN"

    def _headers(self, path: str, content_type: str) -> list[tuple[str, str]]:
        common = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", _REFERRER)]
        if not content_type.startswith("text/html"):
            return [*common, ("Content-Security-Policy", _DATA_POLICY)]
        if path in _DOC_PAGES or path.startswith(tuple(f"{page}/" for page in _DOC_PAGES)):
            return [*common, ("X-Frame-Options", "DENY"), ("Permissions-Policy", _PERMISSIONS)]
        page = [*common, ("Content-Security-Policy", self.page_csp),
                ("Permissions-Policy", _PERMISSIONS),
                ("Cross-Origin-Opener-Policy", "same-origin")]
        if self.page_frames:
            page.append(("X-Frame-Options", self.page_frames))
        return page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, https = scope["path"], scope.get("scheme") == "https"

        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                extra = self._headers(path, headers.get("content-type", ""))
                if https:
                    extra.append(("Strict-Transport-Security", _HSTS))
                for name, value in extra:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, add)


class _Cors:
    """Starlette's CORS for every route but the admin and console ones, which never answer it."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=list(origins),
                                   allow_methods=["GET", "HEAD"], expose_headers=_EXPOSED)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(
                scope["path"] == prefix or scope["path"].startswith(f"{prefix}/")
                for prefix in _NO_CORS):
            await self.app(scope, receive, send)
            return
        await self.cors(scope, receive, send)


def install_security(app: FastAPI, settings: Settings) -> None:
    """Add CORS and, outside it, the security headers to ``app`` (call after the other
    middleware: the last added is the outermost).

    Decisions, so they are made once:

    - CORS: the reads (GET/HEAD) answer the origins of ``API_CORS_ORIGINS`` (default ``*``: open
      data is there to be built on, and it carries no cookies or credentials). Routes under
      ``/v1/admin`` and ``/v1/console`` never answer CORS at all, whatever the setting: no
      ``Access-Control-*`` header, and a preflight gets the route's 405, so no web page elsewhere
      can make a browser send an admin or console request (the console's cookie is
      SameSite=Strict besides).
    - Web pages (``text/html``): scripts, styles, fonts and images from this site only (and
      ``data:`` images); map tiles from the host of ``API_TILE_URL`` only (none without tiles); no
      inline script or style, no eval; ``connect-src 'self'`` (the pages fetch ``/v1/...`` and the
      stream). Framing: this site and ``API_FRAME_ANCESTORS`` (e.g. the city's portal embedding the
      map); the kiosk runs full screen in its browser, not in a frame.
    - Everything else (JSON, XML, CSV, SVG, ...): ``default-src 'none'`` and no framing, so a
      response opened as a document can run nothing.
    - ``/docs`` is Swagger UI, served from this site (npm ``swagger-ui-dist``, like the pages'
      libraries): its route sets a policy of its own (``docs_policy``), scripts and styles from this
      site, its one inline start-up script by hash, images from this site and ``data:`` (Swagger
      UI's icons), requests to this site only; never framed. (No ReDoc: it would load from a CDN.)
    - HSTS only on requests that came over HTTPS (behind a proxy: ``X-Forwarded-Proto`` from a proxy
      in ``API_FORWARDED_ALLOW_IPS``); plain HTTP answers cannot set it anyway.

    A header a route set itself is kept.
    """
    app.add_middleware(_Cors, origins=settings.API_CORS_ORIGINS)
    app.add_middleware(SecurityHeaders, page_csp=page_policy(settings),
                       frame_origins=settings.API_FRAME_ANCESTORS)
