"""``/docs``: Swagger UI from this site (npm ``swagger-ui-dist``), not from a CDN, under a
Content-Security-Policy without 'unsafe-inline' that lets it work: checked in the HTML and in a
real headless Chromium, which reports every request and every violation of the policy."""

from __future__ import annotations

import re
from base64 import b64encode
from hashlib import sha256
from pathlib import Path

import pytest
from _browser import SWAGGER_UI, chromium, policy_page
from _helpers import api_server, wait_for
from fastapi.testclient import TestClient

from core.settings import Settings


def _directives(policy: str) -> dict[str, list[str]]:
    return {name: sources for name, *sources in (part.split() for part in policy.split(";"))}


def test_the_docs_page_loads_swagger_ui_from_this_site(api_client: TestClient) -> None:
    docs = api_client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    page = docs.text
    # Every URL the page names is a path on this site: no CDN, no favicon from elsewhere.
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", page)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in urls
    assert "/static/vendor/swagger-ui/swagger-ui.css" in urls
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "//" not in re.sub(r"<!--.*?-->", "", page, flags=re.DOTALL).replace("://", "")
    policy = _directives(docs.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["connect-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    # Of inline scripts exactly the page's own start-up script, by its hash.
    inline = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert len(inline) == 1
    digest = b64encode(sha256(inline[0].encode()).digest()).decode()
    assert policy["script-src"] == ["'self'", f"'sha256-{digest}'"]
    assert "'unsafe-inline'" not in docs.headers["content-security-policy"]
    assert api_client.get("/redoc").status_code == 404  # ReDoc would come from a CDN


def test_swagger_ui_is_served_from_npm(api_client: TestClient) -> None:
    if not SWAGGER_UI.exists():
        pytest.skip("the pages' npm packages are not installed (make setup)")
    for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "text/css")):
        answer = api_client.get(f"/static/vendor/swagger-ui/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"], name
        assert answer.content == (SWAGGER_UI / name).read_bytes()


@pytest.mark.browser
def test_swagger_ui_works_under_its_policy(settings: Settings, tmp_path: Path) -> None:
    with chromium(SWAGGER_UI) as browser, api_server(settings, tmp_path / "api.log") as api:
        page, errors = policy_page(browser)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{api.url}/docs")
        page.wait_for_selector("#operations-operations-getHealth")
        operations = page.locator(".opblock").count()
        # Try it out: Swagger UI sends the request itself (connect-src 'self').
        page.click("#operations-operations-getHealth .opblock-summary")
        page.click("#operations-operations-getHealth .try-out__btn")
        page.click("#operations-operations-getHealth .execute")
        page.wait_for_selector("#operations-operations-getHealth .live-responses-table")
        status = page.locator("#operations-operations-getHealth .live-responses-table "
                              "tbody .response-col_status").first.inner_text()
        # An injected inline script is what the policy is for.
        page.evaluate("document.body.insertAdjacentHTML('beforeend',"
                      " '<img src=\"/nothing\" onerror=\"window.pwned = 1\">')")
        violations = wait_for(lambda: page.evaluate("window.violations"), timeout=10)
        pwned = page.evaluate("window.pwned")
    assert operations >= 20 and status.strip() == "200", (operations, status)
    # The only violation is the injected handler's: Swagger UI itself needs nothing more.
    assert [violation.split(" ")[0] for violation in violations] == ["script-src-attr"]
    assert pwned is None and errors == []
    assert {url.split("/")[2] for url in requests if "://" in url} == {f"127.0.0.1:{api.port}"}
    assert not [url for url in requests if "cdn" in url]
