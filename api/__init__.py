"""The public HTTP API: open data, DATEX II, live stream, admin, the operator console; the web
map, dashboard and console pages."""

from api._app import create_app
from api._console import ROLES as CONSOLE_ROLES
from api._console import ConsoleUserError, add_user, disable_user, list_users
from api._history import history_range, points_query
from api._keys import KeyFileError, add_key
from api._server import ApiServer, http_protocol

__all__ = ["CONSOLE_ROLES", "ApiServer", "ConsoleUserError", "KeyFileError", "add_key",
           "add_user", "create_app", "disable_user", "history_range", "http_protocol",
           "list_users", "points_query"]
