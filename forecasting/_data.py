"""Load a long occupancy CSV (``lot_id,time,free,capacity``) into a regular 15-minute panel."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["COLUMNS", "STEP", "DataError", "Panel", "load_csv", "panel_from_frame"]

logger = logging.getLogger(__name__)

COLUMNS = ("lot_id", "time", "free", "capacity")
STEP = timedelta(minutes=15)
STEP_MINUTES = 15
SLOTS_PER_WEEK = 7 * 24 * 60 // STEP_MINUTES

# RFC 3339 demands an offset: Z or +HH:MM (also accepted: +HHMM).
_OFFSET = r"(?:[Zz]|[+-]\d{2}:?\d{2})\s*$"


class DataError(Exception):
    """The input cannot be used; the message is one line and says why."""


@dataclass(frozen=True)
class Panel:
    """Free spaces of every lot on one shared regular 15-minute UTC grid; NaN where missing.

    ``free[i, t]`` is lot ``lot_ids[i]`` at ``start + t * STEP``. ``timezone`` names the local
    time used for calendar features (weekday and time of day).
    """

    lot_ids: tuple[str, ...]
    capacity: NDArray[np.float64]
    start: datetime
    free: NDArray[np.float64]
    timezone: str = "Europe/Berlin"
    cleaning: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def n_steps(self) -> int:
        """Number of grid points."""
        return int(self.free.shape[1])

    def time_at(self, position: int) -> datetime:
        """The UTC time of a grid position."""
        return self.start + position * STEP

    def position(self, moment: datetime) -> int:
        """The first grid position at or after ``moment`` (may lie outside the grid)."""
        return -int((self.start - moment) // STEP)

    def rate(self) -> NDArray[np.float64]:
        """Free spaces as a fraction of capacity, same shape as ``free``."""
        return self.free / self.capacity[:, None]

    def week_slots(self, n_steps: int | None = None) -> NDArray[np.int64]:
        """For grid positions 0..n_steps-1 (default: the whole grid) the local 15-minute slot
        of the week (0 = Monday 00:00)."""
        zone = ZoneInfo(self.timezone)
        count = self.n_steps if n_steps is None else n_steps
        times = pd.date_range(self.start, periods=count, freq=STEP).tz_convert(zone)
        minutes = times.day_of_week * 1440 + times.hour * 60 + times.minute
        return np.asarray(minutes // STEP_MINUTES, dtype=np.int64)

    def head(self, stop: int) -> Panel:
        """The panel up to (not including) grid position ``stop``."""
        return Panel(self.lot_ids, self.capacity, self.start, self.free[:, :stop],
                     self.timezone, self.cleaning)


def load_csv(path: Path, *, timezone: str = "Europe/Berlin") -> Panel:
    """Read and clean a long CSV; raise DataError with a one-line reason if it is unusable."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, IsADirectoryError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV: {reason}") from None
    try:
        return panel_from_frame(frame, timezone=timezone)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def panel_from_frame(frame: pd.DataFrame, *, timezone: str = "Europe/Berlin") -> Panel:
    """Clean string columns ``lot_id,time,free,capacity`` into a Panel: rows without a free
    count or a positive capacity dropped, free clipped to [0, capacity], readings snapped to
    the grid (the latest of several wins); ``Panel.cleaning`` counts what was done."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(f"unknown time zone {timezone!r}") from None
    clean = _parsed(frame)
    report = {"rows": len(clean)}
    usable = np.isfinite(clean["free"]) & np.isfinite(clean["capacity"]) & (clean["capacity"] > 0)
    report["dropped_missing_or_bad_capacity"] = int((~usable).sum())
    clean = clean[usable]
    if clean.empty:
        raise DataError("no row has both free and a positive capacity")
    report["clipped_negative"] = int((clean["free"] < 0).sum())
    report["clipped_above_capacity"] = int((clean["free"] > clean["capacity"]).sum())
    clean = clean.assign(free=clean["free"].clip(lower=0.0, upper=clean["capacity"]))

    # Snap to the nearest grid point; of several readings for one point keep the latest.
    clean = clean.assign(slot=clean["time"].dt.round(STEP)).sort_values(
        ["lot_id", "slot", "time"], kind="stable")
    duplicated = clean.duplicated(["lot_id", "slot"], keep="last")
    report["merged_duplicates"] = int(duplicated.sum())
    clean = clean[~duplicated]

    lot_ids = tuple(sorted(clean["lot_id"].unique()))
    # The latest capacity of a lot is the one its current free count refers to.
    capacity = clean.groupby("lot_id")["capacity"].last().reindex(list(lot_ids))
    start = clean["slot"].min()
    steps = int((clean["slot"].max() - start) // STEP) + 1
    free = np.full((len(lot_ids), steps), np.nan)
    rows = pd.Categorical(clean["lot_id"], categories=list(lot_ids)).codes
    columns = ((clean["slot"] - start) // STEP).to_numpy(dtype=np.int64)
    # Rate against the lot's latest capacity, so a capacity change keeps the rate right.
    lot_capacity = capacity.to_numpy(dtype=np.float64)[rows]
    row_free, row_capacity = clean["free"].to_numpy(), clean["capacity"].to_numpy()
    free[rows, columns] = np.where(row_capacity == lot_capacity, row_free,
                                   row_free / row_capacity * lot_capacity)
    logger.debug("cleaning: %s", report)
    return Panel(lot_ids, capacity.to_numpy(dtype=np.float64), start.to_pydatetime(), free,
                 timezone, report)


def _parsed(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``frame`` parsed (times in UTC, numbers as floats, NaN where empty);
    DataError naming the line of the first value that cannot be."""
    frame = frame.rename(columns=lambda name: str(name).strip().lower())
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; need {','.join(COLUMNS)} "
                        f"(found {','.join(map(str, frame.columns)) or 'none'})")
    if frame.empty:
        raise DataError("no data rows")
    frame = frame.loc[:, list(COLUMNS)].astype(str).apply(lambda column: column.str.strip())
    line = pd.Series(np.arange(len(frame)) + 2, index=frame.index)  # header is line 1

    text = frame["time"]
    naive = ~text.str.contains(_OFFSET, regex=True)
    if naive.any():
        first = naive.idxmax()
        raise DataError(f"line {line[first]}: time {text[first]!r} has no UTC offset "
                        "(RFC 3339 needs Z or +HH:MM)")
    times = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    if times.isna().any():
        first = times.isna().idxmax()
        raise DataError(f"line {line[first]}: cannot parse time {text[first]!r}")

    numbers = {}
    for name in ("free", "capacity"):
        values = pd.to_numeric(frame[name], errors="coerce")
        bad = values.isna() & (frame[name] != "")
        if bad.any():
            first = bad.idxmax()
            raise DataError(f"line {line[first]}: {name} {frame[name][first]!r} is not a number")
        numbers[name] = values.astype(float)
    lots = frame["lot_id"]
    if (lots == "").any():
        raise DataError(f"line {line[(lots == '').idxmax()]}: empty lot_id")

    clean = pd.DataFrame({"lot_id": lots, "time": times, "free": numbers["free"],
                          "capacity": numbers["capacity"]})
    counts = clean.groupby("lot_id", sort=True).size()
    if (counts < 2).any():
        lot = counts.index[(counts < 2).argmax()]
        raise DataError(f"lot {lot!r} has {counts[lot]} row; need at least 2")
    return clean
