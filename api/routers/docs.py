"""``/docs``: Swagger UI of the OpenAPI document, served from this site.

Swagger UI comes from npm like the pages' other libraries (``swagger-ui-dist`` in
api/static/package.json, under ``/static/vendor/swagger-ui``), so no visitor's browser fetches
code from a CDN. The page is FastAPI's, pointed at those files; its one inline script (which
starts Swagger UI) is allowed by its hash in the page's own Content-Security-Policy
(``api._security.docs_policy``), so no other inline script can run there.
"""

from __future__ import annotations

import html
import re
from base64 import b64encode
from functools import cache
from hashlib import sha256

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from api._security import docs_policy

__all__ = ["router"]

_SWAGGER_UI = "/static/vendor/swagger-ui"

router = APIRouter(include_in_schema=False)


@cache
def _page(openapi_url: str, title: str) -> tuple[bytes, str]:
    """The page and its policy (the same for every request of an app)."""
    page = bytes(get_swagger_ui_html(
        openapi_url=openapi_url, title=f"{html.escape(title)} – API",
        swagger_js_url=f"{_SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{_SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
        # No badge image from validator.swagger.io: the page talks to this site only.
        swagger_ui_parameters={"validatorUrl": None}).body)
    inline = re.findall(rb"<script>(.*?)</script>", page, re.DOTALL)
    hashes = [f"'sha256-{b64encode(sha256(script).digest()).decode()}'" for script in inline]
    return page, docs_policy(hashes)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI of ``/openapi.json``."""
    page, policy = _page(request.app.openapi_url or "/openapi.json", request.app.title)
    return HTMLResponse(page, headers={"Content-Security-Policy": policy})
