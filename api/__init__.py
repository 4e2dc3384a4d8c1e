"""The public HTTP API: open data, DATEX II, live stream, admin; the web map and dashboard."""

from api._app import create_app
from api._history import history_range, points_query
from api._keys import KeyFileError, add_key
from api._server import ApiServer, http_protocol

__all__ = ["ApiServer", "KeyFileError", "add_key", "create_app", "history_range", "http_protocol",
           "points_query"]
