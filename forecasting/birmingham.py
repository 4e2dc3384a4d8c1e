"""Convert the Birmingham car-park CSV (UCI 482) to the long ``lot_id,time,free,capacity`` CSV.

Usage: ``python -m forecasting.birmingham IN.csv OUT.csv``. Free spaces are capacity minus
occupancy, kept raw (negative or above capacity where the feed says so; cleaning happens when
the long CSV is loaded); local wall-clock times (Europe/London) get their UTC offset.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from forecasting._data import DataError

__all__ = ["convert", "main"]

_COLUMNS = ("SystemCodeNumber", "Capacity", "Occupancy", "LastUpdated")
TIMEZONE = "Europe/London"


def convert(source: Path, target: Path) -> int:
    """Write the long CSV for ``source`` to ``target``; return the number of rows written."""
    try:
        frame = pd.read_csv(source, dtype=str)
    except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise DataError(f"{source}: cannot read: {type(exc).__name__}") from None
    missing = [name for name in _COLUMNS if name not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}")
    local = pd.to_datetime(frame["LastUpdated"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    if local.isna().any():
        first = local.isna().idxmax()
        raise DataError(f"{source}: line {first + 2}: cannot parse "
                        f"{frame['LastUpdated'][first]!r}")
    # Readings are 08:00-16:30, far from the night-time DST switches; any ambiguous or
    # non-existent wall-clock time would become NaT and is dropped rather than guessed.
    zoned = local.dt.tz_localize(TIMEZONE, ambiguous="NaT", nonexistent="NaT")
    capacity = pd.to_numeric(frame["Capacity"], errors="coerce")
    occupied = pd.to_numeric(frame["Occupancy"], errors="coerce")
    keep = zoned.notna() & capacity.notna() & occupied.notna()
    out = pd.DataFrame({
        "lot_id": frame["SystemCodeNumber"][keep].str.strip(),
        "time": [moment.isoformat() for moment in zoned[keep]],
        "free": (capacity - occupied)[keep].astype(int),
        "capacity": capacity[keep].astype(int),
    })
    out.to_csv(target, index=False)
    return len(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``IN OUT``; exit 2 with a one-line reason on bad input."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        sys.stderr.write("usage: python -m forecasting.birmingham IN.csv OUT.csv\n")
        return 2
    try:
        rows = convert(Path(args[0]), Path(args[1]))
    except DataError as exc:
        sys.stderr.write(f"birmingham: {exc}\n")
        return 2
    sys.stdout.write(f"wrote {rows} rows to {args[1]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
