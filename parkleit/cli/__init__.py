"""The ``parkleit`` command line, one module per command group. Exit codes: 0 ok, 1 runtime
failure, 2 bad usage or config (with a one-line reason)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from core.city import CityConfigError

from . import db, forecast, ocpp, services, simulate, users
from ._common import UsageError

__all__ = ["UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="parkleit",
        description="parkleit, a parking guidance system. Exit codes: 0 ok, 1 runtime "
        "failure, 2 bad usage or config (with a one-line reason).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (db, services, ocpp, simulate, forecast, users):
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parkleit`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.handler(args)
    except (UsageError, CityConfigError) as exc:  # the latter: ids taken by another city
        print(f"parkleit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
