"""Forecast accuracy and speed: the gradient-boosting model next to its baselines.

``python -m benchmarks.forecast [--json] [--birmingham PATH] [--skip-birmingham]
[--zeitz-weeks 8] [--train-lots 40] [--train-days 90] [--seed 1] [--oracle-reps 21]
[--threads N]``

What it measures, all in one run:

1. **Birmingham** (real data, UCI 482): ``forecasting.birmingham`` converts the CSV (default
   ``../shared/data/birmingham/dataset.csv`` next to the project; absent: said, and skipped),
   and ``evaluate`` trains on everything before the test week 2016-12-13..19 (the protocol of
   its SOURCE.md, whose persistence and profile + last deviation figures are printed next to
   ours). The feed is half-hourly, so the horizons are 30, 60 and 120 minutes.
2. **Zeitz** (data no model was developed on): ``--zeitz-weeks`` weeks of the city simulator
   (``simulators.history.history_rows``: the rows ``parkleit simulate history`` stores, with
   its holidays and events), ending on Sunday 2026-11-22 so every run sees the same weeks;
   the last week is the test week; horizons 15, 30, 60 and 120 minutes. Next to the baselines
   stands the **oracle** (``SimulationOracle``, ``--oracle-reps`` futures per origin): the
   median of forks of the simulation from its true state, which knows every parked car, the
   day's demand and the true arrival rates. No forecaster from occupancy data can know that
   much, so ``oracle/profile`` is the floor under ``model/profile`` on this data.
3. **Speed** on ``--train-lots`` lots × ``--train-days`` days at 15 minutes (copies of the
   simulated city with other seeds until there are enough lots): ``train_s`` is the wall time
   of ``GradientBoostingForecaster().fit``; ``predict_s`` the time to forecast every lot from
   the latest origin at every horizon, with the 10-90 % interval and P(free space) (the
   median of three runs). The reference is the profile + last anomaly baseline on the same
   panel.

Timing: scikit-learn's gradient boosting runs OpenMP threads (one per core by default). On a
machine whose cores other processes keep busy they stall each other at every split (a fit was
measured 70 times slower than with one thread); ``--threads N`` limits the OpenMP and BLAS
threads (``threadpoolctl``) for the whole run. The report gives the threads used, the number
of cores and the load average before and after, so a time can be read against them.

Accuracy is the MAE of the free rate (mean over lots of per-lot MAE, as SOURCE.md's figures);
the ratio to the target is model / profile + last anomaly at each horizon. MAE in free spaces
is reported too. It reports; it does not judge: the exit code is 0 whether or not the targets
are met, 1 when the benchmark itself failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info, threadpool_limits  # type: ignore[import-untyped]

from benchmarks import _common as common
from benchmarks._common import BenchError, fmt
from core.city import City, load_city
from forecasting import (
    DataError,
    Forecaster,
    GradientBoostingForecaster,
    Panel,
    ProfileAnomaly,
    baselines,
    evaluate,
    load_csv,
    panel_from_frame,
    test_start,
)
from forecasting.birmingham import TIMEZONE as BIRMINGHAM_TIMEZONE
from forecasting.birmingham import convert
from parkleit.process import ROOT
from simulators.demand import CitySimulation
from simulators.history import history_rows

__all__ = ["BenchError", "SimulationOracle", "birmingham_panel", "main", "run",
           "simulated_frame", "simulated_lots", "table"]

logger = logging.getLogger("benchmarks.forecast")

DEFAULT_BIRMINGHAM = ROOT.parent / "shared" / "data" / "birmingham" / "dataset.csv"
BIRMINGHAM_TEST_START = date(2016, 12, 13)
BIRMINGHAM_HORIZONS = (30, 60, 120)  # a half-hourly feed: 15 minutes has ~50 scorable points
# SOURCE.md: mean over 28 lots of per-lot MAE of the occupancy rate, test week 2016-12-13..19.
BIRMINGHAM_REFERENCE = {
    "persistence": {"30": 0.0331, "60": 0.0652, "120": 0.1309},
    "profile_anomaly": {"30": 0.0137, "60": 0.0228, "120": 0.0373},
}
ZEITZ_CITY = "zeitz"
# Monday 00:00 local: the simulated weeks end with Sunday 2026-11-22.
ZEITZ_END = datetime(2026, 11, 23, tzinfo=ZoneInfo("Europe/Berlin"))
HORIZONS = (15, 30, 60, 120)
TEST_DAYS = 7
MAX_ITER = GradientBoostingForecaster().max_iter
STEP_MIN = 15
PREDICT_REPEATS = 3

TARGET_RATIO = 0.85
TARGET_COVERAGE = (0.75, 0.85)
TARGET_TRAIN_S = 60.0
TARGET_PREDICT_S = 1.0

_MODELS = ("persistence", "seasonal_naive", "profile_anomaly", "model", "oracle")
ORACLE_REPS = 21


# --------------------------------------------------------------------------- the data


def simulated_frame(city: City, *, end: datetime, days: float, seed: int,
                    suffix: str = "") -> pd.DataFrame:
    """``days`` of the simulated ``city`` before ``end``, every 15 minutes, as the long
    ``lot_id,time,free,capacity`` frame (lot ids get ``suffix``)."""
    columns: dict[str, list[Any]] = {"lot_id": [], "time": [], "free": [], "capacity": []}
    for row in history_rows(city, end - timedelta(days=days), end, seed=seed,
                            every_min=STEP_MIN):
        columns["lot_id"].append(row.lot_id + suffix)
        columns["time"].append(row.time.isoformat())
        columns["free"].append(row.free)
        columns["capacity"].append(row.capacity)
    return pd.DataFrame(columns)


def simulated_lots(city: City, *, lots: int, end: datetime, days: float,
                   seed: int) -> pd.DataFrame:
    """``lots`` lots for ``days`` before ``end``: the city simulated with seed ``seed``, then
    again with ``seed + 1``, ... (ids ``<lot>~1``, ``<lot>~2``, ...) until there are enough."""
    if lots < 1:
        raise ValueError(f"lots must be >= 1: {lots}")
    frames: list[pd.DataFrame] = []
    wanted: list[str] = []
    copy = 0
    while len(wanted) < lots:
        suffix = f"~{copy}" if copy else ""
        frames.append(simulated_frame(city, end=end, days=days, seed=seed + copy,
                                      suffix=suffix))
        wanted += [lot.id + suffix for lot in city.lots][:lots - len(wanted)]
        copy += 1
    frame = pd.concat(frames, ignore_index=True)
    return frame[frame["lot_id"].isin(wanted)].reset_index(drop=True)


class SimulationOracle(Forecaster):
    """The floor under every forecaster of the simulated city: at each origin, the median of
    ``reps`` futures of the simulation itself, forked from its true state (every parked car
    and how long it has stayed, today's demand factor, the true arrival rates and events;
    ``CitySimulation.fork``). A forecaster sees only the occupancy, so none can beat this
    but by luck; its MAE shows how much of an error is the city's own randomness.

    ``fit`` runs the simulation (``city`` from ``start`` with ``seed``: the simulation the
    panel came from) and forks it at every origin from the end of the training panel to
    ``end`` for ``horizons``, on ``workers`` processes; ``predict`` reads those forecasts.
    """

    def __init__(self, city: City, start: datetime, end: datetime, seed: int,
                 reps: int = ORACLE_REPS, horizons: tuple[int, ...] = HORIZONS,
                 workers: int = 2) -> None:
        self.city, self.start, self.end, self.seed = city, start, end, seed
        self.reps, self.horizons, self.workers = reps, horizons, workers

    def fit(self, history: Panel) -> SimulationOracle:
        """Fork the simulation at every origin after ``history`` and keep the medians."""
        super().fit(history)
        self.first_ = history.n_steps
        times = [history.time_at(position) for position in
                 range(self.first_, history.position(self.end))]
        order = [next(i for i, lot in enumerate(self.city.lots) if lot.id == lot_id)
                 for lot_id in history.lot_ids]
        parts = [times[worker::self.workers] for worker in range(self.workers)]
        context = multiprocessing.get_context("spawn")
        with context.Pool(self.workers) as pool:
            results = pool.starmap(_oracle_medians, [
                (self.city, self.start, self.seed, part, self.horizons, self.reps,
                 self.seed * 1000 + worker) for worker, part in enumerate(parts)])
        occupied = np.empty((len(times), len(self.horizons), len(self.city.lots)))
        for worker, result in enumerate(results):
            occupied[worker::self.workers] = result
        free = self.capacity_[None, None, :] - occupied[:, :, order]
        self.forecasts_ = {horizon: np.round(free[:, index, :]).T
                           for index, horizon in enumerate(self.horizons)}
        return self

    def predict(self, panel: Panel, origins: Any, horizon: int) -> np.ndarray[Any, Any]:
        """The fitted medians at ``origins`` (NaN where none was made)."""
        positions, _ = self._check(panel, origins, horizon)
        table = self.forecasts_[horizon]
        columns = positions - self.first_
        made = (columns >= 0) & (columns < table.shape[1])
        result = np.full((table.shape[0], positions.size), np.nan)
        result[:, made] = table[:, columns[made]]
        return result


def _oracle_medians(city: City, start: datetime, seed: int, times: list[datetime],
                    horizons: tuple[int, ...], reps: int, fork_seed: int) -> np.ndarray[Any, Any]:
    """Per time of ``times``: the median occupancy per lot (city order) ``horizons`` minutes
    later over ``reps`` forks of the simulation; (len(times), len(horizons), lots)."""
    simulation = CitySimulation(city, start, seed=seed)
    rng = np.random.default_rng(fork_seed)
    wanted = {horizon: index for index, horizon in enumerate(horizons)}
    out = np.empty((len(times), len(horizons), len(city.lots)))
    futures = np.empty((reps, len(horizons), len(city.lots)))
    for row, moment in enumerate(times):
        # A sample at `moment` is the occupancy after its minute: fork once it has run.
        while simulation.now <= moment:
            simulation.step()
        for rep in range(reps):
            twin = simulation.fork(int(rng.integers(2**62)))
            for minute in range(1, max(horizons) + 1):
                occupied = twin.step().occupied
                if minute in wanted:
                    futures[rep, wanted[minute]] = occupied
        out[row] = np.median(futures, axis=0)
    return out


def birmingham_panel(source: Path, workdir: Path) -> Panel:
    """The Birmingham CSV converted and loaded; BenchError unless its test week starts on
    2016-12-13 local (the protocol of SOURCE.md)."""
    target = workdir / "birmingham-long.csv"
    try:
        convert(source, target)
        panel = load_csv(target, timezone=BIRMINGHAM_TIMEZONE)
    except DataError as exc:
        raise BenchError(f"Birmingham data unusable: {exc}") from None
    begin = test_start(panel, TEST_DAYS).astimezone(ZoneInfo(BIRMINGHAM_TIMEZONE))
    if (begin.date(), begin.time().hour, begin.time().minute) != (BIRMINGHAM_TEST_START, 0, 0):
        raise BenchError(f"Birmingham test week would start {begin.isoformat()}, not "
                         f"{BIRMINGHAM_TEST_START} 00:00 local: not the data of SOURCE.md")
    return panel


# --------------------------------------------------------------------------- measuring


def _evaluate(name: str, panel: Panel, horizons: Sequence[int], max_iter: int,
              city: City | None = None,
              oracle: SimulationOracle | None = None) -> tuple[dict[str, Any], float]:
    """Evaluate on ``panel``; with ``city`` the model knows its school holidays and events, as
    ``parkleit forecast train`` does."""
    logger.info("%s: evaluating %d lots, %d steps", name, len(panel.lot_ids), panel.n_steps)
    model = GradientBoostingForecaster(max_iter=max_iter) if city is None else (
        GradientBoostingForecaster(max_iter=max_iter, subdiv=city.city.state,
                                   events=city.events))
    models: dict[str, Forecaster] = {**baselines(), "model": model}
    if oracle is not None:
        models["oracle"] = oracle
    began = time.perf_counter()
    try:
        report = evaluate(panel, test_days=TEST_DAYS, horizons=horizons, models=models)
    except DataError as exc:
        raise BenchError(f"{name}: {exc}") from None
    elapsed = time.perf_counter() - began
    logger.info("%s: evaluated in %.1f s", name, elapsed)
    return report, elapsed


def ratios(report: dict[str, Any], name: str = "model") -> dict[str, float | None]:
    """``name``'s MAE of the rate / profile + last anomaly MAE of the rate, per horizon."""
    out: dict[str, float | None] = {}
    for horizon, entry in report["horizons"].items():
        model = entry.get(name, {}).get("mae_rate")
        profile = entry.get("profile_anomaly", {}).get("mae_rate")
        out[horizon] = round(model / profile, 4) if model is not None and profile else None
    return out


def _met(report: dict[str, Any], ratio: dict[str, float | None]) -> dict[str, bool]:
    coverages = [entry.get("model", {}).get("coverage_80")
                 for entry in report["horizons"].values()]
    low, high = TARGET_COVERAGE
    return {
        "ratio": all(r is not None and r <= TARGET_RATIO for r in ratio.values()),
        "coverage_80": all(c is not None and low <= c <= high for c in coverages),
    }


def measure_speed(panel: Panel, horizons: Sequence[int], max_iter: int) -> dict[str, Any]:
    """Fit and latest-origin forecast times of the model, next to the profile baseline's."""
    logger.info("speed: fitting on %d lots × %d steps", len(panel.lot_ids), panel.n_steps)
    began = time.perf_counter()
    model = GradientBoostingForecaster(max_iter=max_iter).fit(panel)
    train_s = time.perf_counter() - began
    latest = [panel.n_steps - 1]

    def predict_all() -> float:
        began = time.perf_counter()
        for horizon in horizons:
            point = model.predict(panel, latest, horizon)
            low, high = model.predict_interval(panel, latest, horizon)
            probability = model.prob_space(panel, latest, horizon)
            if not (np.isfinite(point).all() and np.isfinite(low).all()
                    and np.isfinite(high).all() and np.isfinite(probability).all()):
                raise BenchError(f"the model's {horizon}-minute forecast is not finite")
        return time.perf_counter() - began

    runs = [predict_all() for _ in range(PREDICT_REPEATS)]
    began = time.perf_counter()
    baseline = ProfileAnomaly().fit(panel)
    baseline_fit_s = time.perf_counter() - began
    began = time.perf_counter()
    for horizon in horizons:
        baseline.predict(panel, latest, horizon)
    baseline_predict_s = time.perf_counter() - began
    logger.info("speed: fit %.1f s, predict %.3f s", train_s, statistics.median(runs))
    return {
        "train_s": round(train_s, 3),
        "predict_s": round(statistics.median(runs), 4),
        "predict_s_runs": [round(run, 4) for run in runs],
        "reference": {"profile_anomaly_fit_s": round(baseline_fit_s, 4),
                      "profile_anomaly_predict_s": round(baseline_predict_s, 4)},
        "train_examples": int(model.n_train_examples_),
    }


def _openmp_threads() -> int | None:
    found = [int(pool["num_threads"]) for pool in threadpool_info()
             if pool.get("user_api") == "openmp"]
    return max(found) if found else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every data set and the speed figures, as the JSON object ``--json`` prints."""
    load_before = os.getloadavg()
    if args.threads:
        with threadpool_limits(limits=args.threads):
            result = _run(args)
    else:
        result = _run(args)
    result["max_iter"] = args.max_iter
    result["machine"] = {"cpus": os.cpu_count(), "threads": args.threads or None,
                         "openmp_threads": result.pop("openmp_threads"),
                         "load_before": [round(v, 2) for v in load_before],
                         "load_after": [round(v, 2) for v in os.getloadavg()]}
    return result


def _run(args: argparse.Namespace) -> dict[str, Any]:
    datasets: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    evaluate_s: dict[str, float] = {}
    if args.skip_birmingham:
        skipped["birmingham"] = "--skip-birmingham"
    elif not args.birmingham.is_file():
        skipped["birmingham"] = f"no data at {args.birmingham}"
        logger.warning("Birmingham skipped: no data at %s", args.birmingham)
    else:
        with tempfile.TemporaryDirectory(prefix="parkleit-bench-") as workdir:
            panel = birmingham_panel(args.birmingham, Path(workdir))
        datasets["birmingham"], evaluate_s["birmingham"] = _evaluate(
            "birmingham", panel, BIRMINGHAM_HORIZONS, args.max_iter)

    city = load_city(ZEITZ_CITY)
    logger.info("zeitz: simulating %d weeks up to %s", args.zeitz_weeks, ZEITZ_END.isoformat())
    start = ZEITZ_END - timedelta(days=7 * args.zeitz_weeks)
    frame = simulated_frame(city, end=ZEITZ_END, days=7 * args.zeitz_weeks, seed=args.seed)
    panel = panel_from_frame(frame, timezone=city.city.timezone)
    oracle = (SimulationOracle(city, start, ZEITZ_END, args.seed, reps=args.oracle_reps)
              if args.oracle_reps else None)
    datasets["zeitz"], evaluate_s["zeitz"] = _evaluate("zeitz", panel, HORIZONS,
                                                       args.max_iter, city, oracle)

    logger.info("speed: simulating %d lots × %d days", args.train_lots, args.train_days)
    frame = simulated_lots(city, lots=args.train_lots, end=ZEITZ_END, days=args.train_days,
                           seed=args.seed)
    train_panel = panel_from_frame(frame, timezone=city.city.timezone)
    speed = measure_speed(train_panel, HORIZONS, args.max_iter)

    ratio = {name: ratios(report) for name, report in datasets.items()}
    floor = {name: ratios(report, "oracle") for name, report in datasets.items()
             if any("oracle" in entry for entry in report["horizons"].values())}
    met: dict[str, Any] = {name: _met(report, ratio[name]) for name, report in datasets.items()}
    met["train_s"] = speed["train_s"] < TARGET_TRAIN_S
    met["predict_s"] = speed["predict_s"] < TARGET_PREDICT_S
    return {
        "datasets": datasets,
        "ratios": ratio,
        "oracle_ratios": floor,
        "evaluate_s": {name: round(seconds, 2) for name, seconds in evaluate_s.items()},
        "skipped_datasets": skipped,
        "reference": {"birmingham_source_md": BIRMINGHAM_REFERENCE},
        "train_s": speed["train_s"],
        "predict_s": speed["predict_s"],
        "speed": {**speed, "lots": len(train_panel.lot_ids), "days": args.train_days,
                  "steps": train_panel.n_steps, "step_min": STEP_MIN,
                  "horizons": list(HORIZONS)},
        "openmp_threads": _openmp_threads(),
        "simulation": {"city": ZEITZ_CITY, "weeks": args.zeitz_weeks,
                       "end": ZEITZ_END.isoformat(), "seed": args.seed},
        "targets": {"ratio_max": TARGET_RATIO, "coverage_80": list(TARGET_COVERAGE),
                    "train_s_max": TARGET_TRAIN_S, "predict_s_max": TARGET_PREDICT_S,
                    "met": met},
    }


# --------------------------------------------------------------------------- output


def _rows(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(head[i]), *(len(row[i]) for row in rows)) for i in range(len(head))]
    lines = ["  ".join(f"{cell:>{width}}" for cell, width in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(f"{cell:>{width}}" for cell, width in zip(row, widths, strict=True))
              .rstrip() for row in rows]
    return lines


def _dataset_table(name: str, report: dict[str, Any], ratio: dict[str, float | None],
                   seconds: float, reference: dict[str, dict[str, float]] | None,
                   floor: dict[str, float | None] | None) -> list[str]:
    horizons = report["horizons"]
    models = _MODELS if floor else _MODELS[:-1]
    scored = max((entry["lots_scored"] for entry in horizons.values()), default=0)
    out = [f"{name}: {report['lots']} lots ({scored} scored); train {report['train']['start']}"
           f" .. {report['train']['end']}, test {report['test']['start']} .. "
           f"{report['test']['end']}; evaluated in {seconds:.1f} s"]
    for model, reason in report.get("skipped", {}).items():
        out.append(f"  {model} not evaluated: {reason}")
    low, high = TARGET_COVERAGE
    head = ["horizon", "points", "persistence"]
    if reference:
        head.append("(SOURCE.md)")
    head += ["seasonal naive", "profile+anomaly"]
    if reference:
        head.append("(SOURCE.md)")
    head += ["model", "model/profile", f"≤ {TARGET_RATIO}", "coverage_80",
             f"{low}–{high}"]
    if floor:
        head += ["oracle", "oracle/profile"]
    rows = []
    for horizon, entry in horizons.items():
        rate = {m: entry.get(m, {}).get("mae_rate") for m in _MODELS}
        coverage = entry.get("model", {}).get("coverage_80")
        row = [f"{horizon} min", f"{entry['points']:,}", fmt(rate["persistence"], 4)]
        if reference:
            row.append(fmt(reference["persistence"].get(horizon), 4))
        row += [fmt(rate["seasonal_naive"], 4), fmt(rate["profile_anomaly"], 4)]
        if reference:
            row.append(fmt(reference["profile_anomaly"].get(horizon), 4))
        share = ratio.get(horizon)
        row += [fmt(rate["model"], 4), fmt(share, 3),
                common.met(None if share is None else share <= TARGET_RATIO),
                fmt(coverage, 3),
                common.met(None if coverage is None else low <= coverage <= high)]
        if floor:
            row += [fmt(rate["oracle"], 4), fmt(floor.get(horizon), 3)]
        rows.append(row)
    out += ["", "MAE of the free rate (mean of per-lot MAE):", *_rows(head, rows)]
    head = ["horizon", "persistence", "seasonal naive", "profile+anomaly", "model",
            "oracle"][:len(models) + 1]
    rows = [[f"{horizon} min", *(fmt(entry.get(m, {}).get("mae"), 2) for m in models)]
            for horizon, entry in horizons.items()]
    out += ["", "MAE in free spaces (pooled over points):", *_rows(head, rows)]
    if floor:
        out.append("(oracle: the median of forks of the simulation from its true state at each "
                   "origin, every parked car and today's demand known: the floor no forecaster "
                   "from occupancy data gets below)")
    return out


def table(result: dict[str, Any]) -> str:
    """The human-readable report: each figure next to its target and its reference."""
    out = ["parkleit forecast benchmark", ""]
    for name, reason in result["skipped_datasets"].items():
        out += [f"{name}: skipped ({reason})", ""]
    for name, report in result["datasets"].items():
        reference = BIRMINGHAM_REFERENCE if name == "birmingham" else None
        out += _dataset_table(name, report, result["ratios"][name], result["evaluate_s"][name],
                              reference, result["oracle_ratios"].get(name))
        if name == "zeitz":
            sim = result["simulation"]
            out.append(f"(simulated: {sim['weeks']} weeks of {sim['city']} up to {sim['end']},"
                       f" seed {sim['seed']}; the last week is the test week)")
        if reference:
            out.append("(SOURCE.md: mean over 28 lots of per-lot rate MAE, same test week; "
                       "profile+anomaly there is weekday×slot profile + last deviation)")
        out.append("")
    speed, done = result["speed"], result["targets"]["met"]
    out.append(f"speed: {speed['lots']} lots × {speed['days']} days at {speed['step_min']} "
               f"minutes (simulated {result['simulation']['city']}, copies with other seeds); "
               f"{speed['train_examples']:,} training examples")
    head = ["figure", "measured", "target", "met", "reference: profile+anomaly"]
    rows = [
        ["fit (s)", fmt(speed["train_s"], 2), f"< {TARGET_TRAIN_S:.0f}",
         common.met(done["train_s"]), fmt(speed["reference"]["profile_anomaly_fit_s"], 3)],
        ["predict all lots × horizons (s)", fmt(speed["predict_s"], 3),
         f"< {TARGET_PREDICT_S:.0f}", common.met(done["predict_s"]),
         fmt(speed["reference"]["profile_anomaly_predict_s"], 3)],
    ]
    out += _rows(head, rows)
    machine = result["machine"]
    out.append(f"(predict: latest origin, horizons {', '.join(map(str, speed['horizons']))} "
               "min, point + 10-90 % interval + P(free space); median of "
               f"{', '.join(fmt(run, 3) for run in speed['predict_s_runs'])} s)")
    threads = machine["threads"] or "library default"
    out.append(f"machine: {machine['cpus']} cores, OpenMP threads {machine['openmp_threads']} "
               f"(--threads: {threads}); load average (1/5/15 min) before "
               f"{'/'.join(fmt(v, 2) for v in machine['load_before'])}, after "
               f"{'/'.join(fmt(v, 2) for v in machine['load_after'])}")
    return "\n".join(out)


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = common.bench_parser("forecast", "Forecast accuracy (Birmingham, simulated Zeitz) "
                                 "and training/prediction time, next to the baselines.")
    parser.add_argument("--birmingham", type=Path, default=None, metavar="PATH",
                        help="the Birmingham dataset.csv (default: ../shared/data/birmingham/"
                        "dataset.csv next to the project; skipped if absent)")
    parser.add_argument("--skip-birmingham", action="store_true")
    parser.add_argument("--zeitz-weeks", type=int, default=8,
                        help="simulated weeks of Zeitz (the last one is the test week)")
    parser.add_argument("--train-lots", type=int, default=40, help="lots of the speed panel")
    parser.add_argument("--train-days", type=int, default=90, help="days of the speed panel")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulation")
    parser.add_argument("--max-iter", type=int, default=MAX_ITER,
                        help=f"boosting iterations of the model (default {MAX_ITER}, as the "
                        "service trains it; fewer only for a quick smoke run, whose figures "
                        "then are not the model's)")
    parser.add_argument("--oracle-reps", type=int, default=ORACLE_REPS,
                        help=f"futures per origin of the simulation oracle on Zeitz (default "
                        f"{ORACLE_REPS}; 0: no oracle)")
    parser.add_argument("--threads", type=int, default=1,
                        help="limit OpenMP/BLAS threads to N (default 1, as the forecast "
                        "service; 0: the libraries' own, one per core)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.zeitz_weeks < 2 or args.train_lots < 1 or args.train_days < 2
            or args.threads < 0 or args.max_iter < 1 or args.oracle_reps < 0):
        parser.error("--zeitz-weeks must be >= 2, --train-lots >= 1, --train-days >= 2, "
                     "--threads >= 0, --max-iter >= 1, --oracle-reps >= 0")
    if args.birmingham is None:
        args.birmingham = DEFAULT_BIRMINGHAM
    elif not args.skip_birmingham and not args.birmingham.is_file():
        parser.error(f"--birmingham {args.birmingham}: no such file")
    return common.run_main(lambda: run(args), as_json=args.json,
                           to_json=lambda result: result, table=table, log=logger)


if __name__ == "__main__":
    sys.exit(main())
