"""``parkleit users``: the people of the operator console (``/console``).

A password is read from the terminal (twice, not echoed) or, when stdin is not a terminal, as
the first line of stdin: never from the command line, where other users see it (``ps``) and the
shell keeps it.
"""

from __future__ import annotations

import argparse
import getpass
import sys

import psycopg

from ._common import Commands, UsageError, require_table, settings


def register(commands: Commands) -> None:
    users = commands.add_parser("users", help="people of the operator console")
    users_commands = users.add_subparsers(dest="users_command", required=True,
                                          metavar="USERS_COMMAND")
    add = users_commands.add_parser(
        "add", help="add a person; the password from the terminal, or stdin's first line")
    add.add_argument("name", help="user name (1-40 of a-z, 0-9, _ . -)")
    add.add_argument("--role", required=True, metavar="ROLE",
                     help="planner (reads), operator (also acts on lots) or admin (as operator)")
    add.set_defaults(handler=_add)
    listing = users_commands.add_parser("list", help="every person, role and state")
    listing.set_defaults(handler=_list)
    disable = users_commands.add_parser(
        "disable", help="disable a person (their sessions end at once)")
    disable.add_argument("name")
    disable.set_defaults(handler=_disable)


def _password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise UsageError("the passwords differ")
    return password


def _connect() -> psycopg.Connection[tuple[object, ...]]:
    config = settings()
    require_table(config.DATABASE_URL, "console_users", "console users table")
    return psycopg.connect(config.DATABASE_URL, autocommit=True)


def _add(args: argparse.Namespace) -> int:
    from api import CONSOLE_ROLES, ConsoleUserError, add_user  # the API: only when it runs

    if args.role not in CONSOLE_ROLES:
        raise UsageError(f"--role must be one of {', '.join(CONSOLE_ROLES)}")
    password = _password()
    with _connect() as conn:
        try:
            add_user(conn, args.name, args.role, password, settings().clock.now())
        except ConsoleUserError as exc:
            raise UsageError(str(exc)) from None
    print(f"added {args.name} ({args.role})")
    return 0


def _list(_args: argparse.Namespace) -> int:
    from api import list_users

    with _connect() as conn:
        users = list_users(conn)
    for user in users:
        state = "disabled" if user["disabled"] else "active"
        print(f"{user['name']}\t{user['role']}\t{state}\t{user['created'].isoformat()}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    from api import ConsoleUserError, disable_user

    with _connect() as conn:
        try:
            disable_user(conn, args.name)
        except ConsoleUserError as exc:
            raise UsageError(str(exc)) from None
    print(f"disabled {args.name}; their sessions have ended")
    return 0
