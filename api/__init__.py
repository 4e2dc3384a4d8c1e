"""The public HTTP API: open data, DATEX II, live stream, admin; the web map and dashboard."""

from api._app import create_app

__all__ = ["create_app"]
