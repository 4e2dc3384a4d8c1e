"""Forecasting baselines and the gradient-boosting model: the estimator contract, no leakage,
data cleaning, evaluation."""

from __future__ import annotations

import copy
import functools
import json
import pickle
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _helpers import BIRMINGHAM
from sklearn.base import clone

from core.city import Event
from forecasting import (
    DataError,
    Forecaster,
    GradientBoostingForecaster,
    Panel,
    Persistence,
    ProfileAnomaly,
    SeasonalNaive,
    load_csv,
    panel_from_frame,
)
from forecasting._evaluate import evaluate
from forecasting._model import FEATURES
from forecasting.birmingham import convert
from parkleit.cli import main

START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
HORIZONS = (15, 30, 60, 120)

# A small model keeps the contract tests quick; the figures are the benchmark's business.
MODELS = [Persistence, SeasonalNaive, ProfileAnomaly,
          functools.partial(GradientBoostingForecaster, max_iter=30)]
MODEL_IDS = ["Persistence", "SeasonalNaive", "ProfileAnomaly", "GradientBoostingForecaster"]


def synthetic_panel(weeks: int = 5, seed: int = 7) -> Panel:
    """Three lots with a daily cycle, a weekday effect, noise and a gap."""
    rng = np.random.default_rng(seed)
    steps = weeks * 7 * 96
    t = np.arange(steps)
    day = np.sin(2 * np.pi * (t % 96) / 96)
    weekend = ((t // 96) % 7 >= 5).astype(float)
    capacity = np.array([100.0, 250.0, 40.0])
    rate = 0.6 - 0.3 * day[None, :] + 0.2 * weekend[None, :] + rng.normal(0, 0.05, (3, steps))
    free = np.clip(rate, 0, 1) * capacity[:, None]
    free[1, 500:700] = np.nan
    return Panel(("a", "b", "c"), capacity, START, free, "UTC")


def write_csv(path: Path, rows: list[tuple[str, str, object, object]],
              header: str = "lot_id,time,free,capacity") -> Path:
    path.write_text(header + "\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in rows))
    return path


def panel_to_csv(panel: Panel, path: Path) -> Path:
    lots, steps = np.nonzero(np.isfinite(panel.free))
    frame = pd.DataFrame({
        "lot_id": np.asarray(panel.lot_ids)[lots],
        "time": [panel.time_at(int(step)).isoformat() for step in steps],
        "free": np.round(panel.free[lots, steps]).astype(int),
        "capacity": panel.capacity[lots].astype(int),
    })
    frame.to_csv(path, index=False)
    return path


# --- the scikit-learn contract ---------------------------------------------------------------

@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_init_stores_parameters_only_and_fit_returns_self(cls: Callable[[], Forecaster]) -> None:
    model = cls()
    assert vars(model) == model.get_params()
    assert not [name for name in vars(model) if name.endswith("_")]
    panel = synthetic_panel()
    assert model.fit(panel.head(4 * 7 * 96)) is model
    assert [name for name in vars(model) if name.endswith("_")]
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    assert not hasattr(twin, "lot_ids_")


@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_predict_before_fit_fails(cls: Callable[[], Forecaster]) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        cls().predict(synthetic_panel(), [10], 15)


@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_same_data_same_forecast(cls: Callable[[], Forecaster]) -> None:
    panel = synthetic_panel()
    split = 4 * 7 * 96
    origins = np.arange(split, panel.n_steps - 8)
    first = cls().fit(panel.head(split)).predict(panel, origins, 120)
    second = cls().fit(synthetic_panel().head(split)).predict(panel, origins, 120)
    assert first.shape == (3, origins.size)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)


def test_horizon_must_be_a_multiple_of_the_grid() -> None:
    panel = synthetic_panel()
    with pytest.raises(ValueError, match="multiple of 15"):
        Persistence().fit(panel).predict(panel, [5], 20)


# --- no leakage ------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("horizon", HORIZONS)
def test_data_after_the_forecast_time_do_not_change_the_forecast(
        cls: Callable[[], Forecaster], horizon: int) -> None:
    panel = synthetic_panel()
    split = 4 * 7 * 96
    model = cls().fit(panel.head(split))
    rng = np.random.default_rng(3)
    for origin in (split, split + 37, split + 300):
        future = panel.free.copy()
        future[:, origin + 1:] = rng.uniform(0, 40, future[:, origin + 1:].shape)
        future[0, origin + 2:origin + 9] = np.nan
        perturbed = Panel(panel.lot_ids, panel.capacity, panel.start, future, panel.timezone)
        np.testing.assert_array_equal(model.predict(panel, [origin], horizon),
                                      model.predict(perturbed, [origin], horizon))
        # The check can fail: the observation at the forecast time itself does matter.
        present = future.copy()
        present[:, origin] = 0.0
        changed = Panel(panel.lot_ids, panel.capacity, panel.start, present, panel.timezone)
        if cls is not SeasonalNaive:
            assert not np.array_equal(model.predict(panel, [origin], horizon),
                                      model.predict(changed, [origin], horizon))


@pytest.fixture(scope="module")
def fitted_model() -> tuple[GradientBoostingForecaster, Panel, int]:
    panel = synthetic_panel()
    split = 4 * 7 * 96
    model = GradientBoostingForecaster(max_iter=60, random_state=5).fit(panel.head(split))
    return model, panel, split


def test_model_same_random_state_same_model(
        fitted_model: tuple[GradientBoostingForecaster, Panel, int]) -> None:
    model, panel, split = fitted_model
    twin = clone(model).fit(synthetic_panel().head(split))
    origins = np.arange(split, split + 200)
    for horizon in (15, 120):
        np.testing.assert_array_equal(model.predict(panel, origins, horizon),
                                      twin.predict(panel, origins, horizon))
        for ours, theirs in zip(model.predict_interval(panel, origins, horizon),
                                twin.predict_interval(panel, origins, horizon), strict=True):
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("horizon", HORIZONS)
def test_model_data_after_the_forecast_time_do_not_change_the_forecast(
        fitted_model: tuple[GradientBoostingForecaster, Panel, int], horizon: int) -> None:
    model, panel, split = fitted_model
    rng = np.random.default_rng(3)

    def outputs(source: Panel, origin: int) -> list[np.ndarray[Any, Any]]:
        return [model.predict(source, [origin], horizon),
                *model.predict_interval(source, [origin], horizon),
                model.prob_space(source, [origin], horizon)]

    for origin in (split, split + 37, split + 300):
        future = panel.free.copy()
        future[:, origin + 1:] = rng.uniform(0, 40, future[:, origin + 1:].shape)
        future[0, origin + 2:origin + 9] = np.nan
        perturbed = Panel(panel.lot_ids, panel.capacity, panel.start, future, panel.timezone)
        for ours, theirs in zip(outputs(panel, origin), outputs(perturbed, origin),
                                strict=True):
            np.testing.assert_array_equal(ours, theirs)
        present = future.copy()
        present[:, origin] = 0.0
        changed = Panel(panel.lot_ids, panel.capacity, panel.start, present, panel.timezone)
        assert not np.array_equal(model.predict(panel, [origin], horizon),
                                  model.predict(changed, [origin], horizon))


def test_model_training_uses_only_the_history(
        fitted_model: tuple[GradientBoostingForecaster, Panel, int]) -> None:
    model, panel, split = fitted_model
    noisy = panel.free.copy()
    noisy[:, split:] = 1.0
    refit = clone(model).fit(Panel(panel.lot_ids, panel.capacity, panel.start, noisy,
                                   panel.timezone).head(split))
    origins = np.arange(split, panel.n_steps - 8)
    np.testing.assert_array_equal(model.predict(panel, origins, 60),
                                  refit.predict(panel, origins, 60))


def test_model_interval_and_probability_of_a_space(
        fitted_model: tuple[GradientBoostingForecaster, Panel, int]) -> None:
    model, panel, split = fitted_model
    origins = np.arange(split, panel.n_steps - 8)
    point = model.predict(panel, origins, 60)
    low, high = model.predict_interval(panel, origins, 60)
    assert (low <= point).all()
    assert (point <= high).all()
    assert (low >= 0).all()
    assert (high <= panel.capacity[:, None]).all()
    assert (high - low).mean() > 0
    assert model.interval_scale_ > 0
    probability = model.prob_space(panel, origins, 60)
    assert ((probability >= 0) & (probability <= 1)).all()
    # A full lot right now makes a free space soon less likely than an empty lot does.
    full, empty = panel.free.copy(), panel.free.copy()
    full[:, split] = 0.0
    empty[:, split] = panel.capacity
    p_full, p_empty = (model.prob_space(Panel(panel.lot_ids, panel.capacity, panel.start, free,
                                              panel.timezone), [split], 15)
                       for free in (full, empty))
    assert (p_full < p_empty).all()


def test_model_with_a_short_history_still_fits() -> None:
    panel = synthetic_panel(weeks=1)
    model = GradientBoostingForecaster(max_iter=20).fit(panel.head(5 * 96))
    assert np.isfinite(model.predict(panel, [5 * 96], 30)).all()
    assert model.interval_scale_ == 1.0  # too little data to hold out a calibration tail


def test_evaluate_ignores_the_test_window_when_fitting() -> None:
    panel = synthetic_panel()
    split = panel.n_steps - 7 * 96
    fitted = ProfileAnomaly().fit(panel.head(split))
    noisy = panel.free.copy()
    noisy[:, split:] = 1.0
    refit = ProfileAnomaly().fit(Panel(panel.lot_ids, panel.capacity, panel.start, noisy,
                                       panel.timezone).head(split))
    np.testing.assert_array_equal(fitted.profile_, refit.profile_)
    np.testing.assert_array_equal(fitted.decay_, refit.decay_)


# --- cleaning --------------------------------------------------------------------------------

def frame(rows: list[tuple[str, str, object, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["lot_id", "time", "free", "capacity"]).astype(str)


def test_cleaning_snaps_deduplicates_clips_and_keeps_gaps() -> None:
    panel = panel_from_frame(frame([
        ("p1", "2024-03-04T08:07:00Z", 10, 100),       # snaps to 08:00
        ("p1", "2024-03-04T08:07:00Z", 10, 100),       # exact duplicate
        ("p1", "2024-03-04T09:08:00+01:00", 12, 100),  # 08:08Z snaps to 08:15: ...
        ("p1", "2024-03-04T08:14:00Z", 13, 100),       # ... the later reading of 08:15 wins
        ("p1", "2024-03-04T08:29:59Z", -4, 100),       # negative -> 0
        ("p1", "2024-03-04T09:15:00Z", 130, 100),      # above capacity -> capacity
        ("p2", "2024-03-04 08:00:00+00:00", 5, 50),
        ("p2", "2024-03-04T08:44:00Z", "", 50),        # missing free: dropped, not a gap fill
        ("p2", "2024-03-04T09:00:00Z", 7, 50),
    ]), timezone="UTC")
    assert panel.lot_ids == ("p1", "p2")
    assert panel.start == datetime(2024, 3, 4, 8, tzinfo=UTC)
    nan = np.nan
    np.testing.assert_array_equal(panel.free, [[10, 13, 0, nan, nan, 100],
                                               [5, nan, nan, nan, 7, nan]])
    assert panel.cleaning["merged_duplicates"] == 2
    assert panel.cleaning["clipped_negative"] == 1
    assert panel.cleaning["clipped_above_capacity"] == 1
    assert panel.cleaning["dropped_missing_or_bad_capacity"] == 1


@pytest.mark.parametrize(("rows", "reason"), [
    ([("p1", "2024-03-04 08:00:00", 1, 9), ("p1", "2024-03-04T09:00Z", 1, 9)], "no UTC offset"),
    ([("p1", "yesterday+01:00", 1, 9), ("p1", "2024-03-04T09:00Z", 1, 9)], "cannot parse time"),
    ([("p1", "2024-03-04T08:00Z", "many", 9), ("p1", "2024-03-04T09:00Z", 1, 9)],
     "free 'many' is not a number"),
    ([("p1", "2024-03-04T08:00Z", 1, 9), ("p1", "2024-03-04T09:00Z", 1, 9),
      ("p2", "2024-03-04T09:00Z", 1, 9)], "lot 'p2' has 1 row"),
])
def test_cleaning_rejects_unusable_rows(rows: list[tuple[str, str, object, object]],
                                        reason: str) -> None:
    with pytest.raises(DataError, match=reason):
        panel_from_frame(frame(rows))


# --- evaluate --------------------------------------------------------------------------------

def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("content", "reason"), [
    ("", "empty file"),
    ("lot_id,time,free,capacity\n", "no data rows"),
    ("lot,when,free,capacity\np1,2024-03-04T08:00Z,1,9\n", "missing column(s) lot_id, time"),
    ("lot_id,time,free,capacity\np1,2024-03-04T08:00Z,3,9\np1,2024-03-04T08:15Z,4,9\n",
     "no training data before the test window"),
    ("lot_id,time,free,capacity\np1,2024-03-04 08:00:00,3,9\np1,2024-03-04 08:15:00,4,9\n",
     "has no UTC offset"),
])
def test_evaluate_exits_2_with_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        content: str, reason: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, out, err = run(capsys, "forecast", "evaluate", "--csv", str(path), "--json")
    assert code == 2
    assert out == ""
    assert reason in err
    assert len(err.strip().splitlines()) == 1


def test_evaluate_exits_2_on_a_missing_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "forecast", "evaluate", "--csv", str(tmp_path / "nope.csv"))
    assert code == 2
    assert "no such file" in err


def test_evaluate_rejects_bad_horizons(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["forecast", "evaluate", "--csv", "x.csv", "--horizons", "15,20"])
    assert exit_info.value.code == 2
    assert "positive multiples of 15" in capsys.readouterr().err


def test_evaluate_json_reports_the_baselines_and_the_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = panel_to_csv(synthetic_panel(), tmp_path / "long.csv")
    code, out, _ = run(capsys, "forecast", "evaluate", "--csv", str(path), "--test-days", "7",
                       "--horizons", "15,60", "--json", "--timezone", "UTC")
    assert code == 0
    report = json.loads(out)
    assert report["lots"] == 3
    assert list(report["horizons"]) == ["15", "60"]
    for entry in report["horizons"].values():
        assert entry["points"] > 0
        for name in ("persistence", "seasonal_naive", "profile_anomaly", "model"):
            assert entry[name]["mae"] > 0
            assert entry[name]["mae_rate"] > 0
        assert 0.5 <= entry["model"]["coverage_80"] <= 1.0
        assert "coverage_80" not in entry["persistence"]
    # On this strongly seasonal synthetic data the profile beats persistence an hour ahead.
    sixty = report["horizons"]["60"]
    assert sixty["profile_anomaly"]["mae"] < sixty["persistence"]["mae"]


def test_evaluate_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = panel_to_csv(synthetic_panel(weeks=3), tmp_path / "long.csv")
    code, out, _ = run(capsys, "forecast", "evaluate", "--csv", str(path), "--test-days", "3")
    assert code == 0
    assert "profile_anomaly" in out
    assert "model" in out
    assert "120 min" in out


# --- Birmingham ------------------------------------------------------------------------------

# SOURCE.md: mean over 28 lots of per-lot MAE of the occupancy rate, test week 2016-12-13..19.
REFERENCE = {
    "persistence": {"30": 0.0331, "60": 0.0652, "120": 0.1309},
    "profile_anomaly": {"30": 0.0137, "60": 0.0228, "120": 0.0373},
}


@pytest.fixture(scope="module")
def birmingham(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BIRMINGHAM.is_file():
        pytest.skip(f"Birmingham data not found at {BIRMINGHAM} (the shared data directory "
                    "sits next to the repository)")
    target = tmp_path_factory.mktemp("birmingham") / "long.csv"
    convert(BIRMINGHAM, target)
    return target


def test_birmingham_conversion(birmingham: Path) -> None:
    frame = pd.read_csv(birmingham, dtype=str)
    assert list(frame.columns) == ["lot_id", "time", "free", "capacity"]
    assert len(frame) == 35717
    first = frame.iloc[0]
    assert (first["lot_id"], first["time"], first["free"], first["capacity"]) == (
        "BHMBCCMKT01", "2016-10-04T07:59:42+01:00", "516", "577")  # 577 - 61 occupied
    assert frame["time"].str.endswith("+00:00").any()  # after the end of British Summer Time


@pytest.fixture(scope="module")
def birmingham_report(birmingham: Path) -> dict[str, Any]:
    return evaluate(load_csv(birmingham, timezone="Europe/London"), test_days=7,
                    horizons=(30, 60, 120))


def test_birmingham_reproduces_the_reference_figures(birmingham_report: dict[str, Any]) -> None:
    report = birmingham_report
    assert report["test"]["start"].startswith("2016-12-13T00:00")
    for name, figures in REFERENCE.items():
        for horizon, expected in figures.items():
            entry = report["horizons"][horizon]
            assert entry["lots_scored"] == 28
            got = entry[name]["mae_rate"]
            assert abs(got - expected) <= 0.15 * expected, (name, horizon, got, expected)


def test_birmingham_start_of_test_window_is_a_local_midnight(birmingham: Path) -> None:
    panel = load_csv(birmingham, timezone="Europe/London")
    report = evaluate(panel, test_days=1, horizons=(30,), models={"persistence": Persistence()})
    begin = datetime.fromisoformat(report["test"]["start"])
    assert begin == datetime(2016, 12, 19, tzinfo=UTC)
    assert panel.time_at(panel.n_steps - 1) - begin < timedelta(days=1)


def test_birmingham_model_beats_the_baselines(birmingham_report: dict[str, Any]) -> None:
    # Measured (test week 2016-12-13..19, mean per-lot rate MAE over 28 lots): model 0.0121 /
    # 0.0195 / 0.0311 against profile + anomaly 0.0143 / 0.0232 / 0.0379 at 30 / 60 / 120 min,
    # i.e. 0.848 / 0.841 / 0.821 of it: the target of 0.85, with a thin margin at 30
    # min (asserted with a little slack: 0.86). Interval coverage 0.81 / 0.80 / 0.81.
    for horizon in ("30", "60", "120"):
        entry = birmingham_report["horizons"][horizon]
        model = entry["model"]
        assert model["mae_rate"] < 0.86 * entry["profile_anomaly"]["mae_rate"], horizon
        assert model["mae_rate"] < 0.5 * entry["persistence"]["mae_rate"], horizon
        assert 0.75 <= model["coverage_80"] <= 0.85, horizon


def test_lots_unseen_in_training_are_forecast_from_their_own_data() -> None:
    panel = synthetic_panel()
    split = 4 * 7 * 96
    known = Panel(panel.lot_ids[:2], panel.capacity[:2], panel.start, panel.free[:2],
                  panel.timezone)
    origins = np.arange(split, panel.n_steps - 8, 7)
    for model in (ProfileAnomaly(), GradientBoostingForecaster(max_iter=30)):
        model.fit(known.head(split))
        forecast = model.predict(panel, origins, 60)
        assert forecast.shape == (3, origins.size)
        # Lot "c" is new: its forecast follows its own daily cycle, not a flat line.
        actual = panel.free[2, origins + 4]
        assert np.isfinite(forecast[2]).all()
        assert np.corrcoef(forecast[2], actual)[0, 1] > 0.8, type(model).__name__
        assert np.abs(forecast[2] - actual).mean() < 0.1 * panel.capacity[2]
        if isinstance(model, ProfileAnomaly):
            # Lot by lot: the known lots are forecast as if the new one were not there (the
            # model's city-wide deviation feature makes its forecasts depend on all lots).
            np.testing.assert_allclose(forecast[:2], model.predict(known, origins, 60))


def test_an_unseen_lots_profile_is_the_one_fit_would_give_on_the_same_data() -> None:
    panel = synthetic_panel()
    split = 4 * 7 * 96
    seen = ProfileAnomaly().fit(panel.head(split))
    known = ProfileAnomaly().fit(Panel(panel.lot_ids[:2], panel.capacity[:2], panel.start,
                                       panel.free[:2], panel.timezone).head(split))
    np.testing.assert_allclose(known.profiles(panel, split)[2], seen.profile_[2])
    # ... and the forecasts use it: every origin of the test window sees the same data.
    origins = np.arange(split, panel.n_steps - 8, 5)
    np.testing.assert_allclose(known.predict(panel, origins, 30)[2],
                               seen.predict(panel, origins, 30)[2], rtol=0.05)


def test_an_unseen_lots_features_are_those_fit_would_give_on_the_same_data() -> None:
    panel = synthetic_panel()
    split = 4 * 7 * 96
    # What the first origin may read: the data up to and including it.
    seen = GradientBoostingForecaster(max_iter=5).fit(panel.head(split + 1))
    known = GradientBoostingForecaster(max_iter=5).fit(
        Panel(panel.lot_ids[:2], panel.capacity[:2], panel.start, panel.free[:2],
              panel.timezone).head(split))
    origins = np.arange(split, split + 96, 4)
    for horizon in (15, 120):
        theirs = seen.features(panel, origins, horizon)
        ours = known.features(panel, origins, horizon)
        assert list(ours.columns) == ["lot_id", "origin", *FEATURES]
        assert (ours["lot_id"] == np.repeat(panel.lot_ids, origins.size)).all()
        new = ours["lot_id"] == "c"
        # The lot's own statistics and profiles, not blanks: its spread, level and how fast
        # its deviation decays come from its history before the first origin.
        lot_columns = ["profile_origin", "profile_target", "lot_deviation_spread",
                       "lot_volatility", "lot_level", "lot_decay", "lot_forecast",
                       "pooled_target", "pooled_deviation"]
        assert ours.loc[new, lot_columns].notna().all().all()
        pd.testing.assert_frame_equal(ours.loc[new, lot_columns].reset_index(drop=True),
                                      theirs.loc[new, lot_columns].reset_index(drop=True),
                                      rtol=1e-9)


def test_a_model_pickled_with_its_lot_statistics_as_one_array_forecasts_the_same() -> None:
    # Stored models written before the statistics had names keep them as one array.
    panel = synthetic_panel()
    split = 4 * 7 * 96
    model = GradientBoostingForecaster(max_iter=5).fit(panel.head(split))
    old = copy.copy(model)
    stats = model.lot_stats_
    old.lot_stats_ = np.column_stack(  # type: ignore[assignment]
        [stats.spread, stats.volatility, stats.level, stats.decay])
    loaded = pickle.loads(pickle.dumps(old))
    origins = np.arange(split, panel.n_steps - 8, 7)
    for ours, theirs in zip(loaded.predict_all(panel, origins, 60),
                            model.predict_all(panel, origins, 60), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_a_new_lot_without_a_profile_gets_the_mean_profile_of_the_known_lots() -> None:
    panel = synthetic_panel()
    split = 4 * 7 * 96
    model = ProfileAnomaly().fit(Panel(panel.lot_ids[:2], panel.capacity[:2], panel.start,
                                       panel.free[:2], panel.timezone).head(split))
    fresh = panel.free.copy()
    fresh[2, :split - 2] = np.nan  # "c" reports for the first time just before the origin
    profiles = model.profiles(Panel(panel.lot_ids, panel.capacity, panel.start, fresh,
                                    panel.timezone), split)
    np.testing.assert_allclose(profiles[2], np.nanmean(model.profile_, axis=0))


def test_school_holidays_and_events_are_features() -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    steps = 8 * 7 * 96
    free = np.full((2, steps), 50.0)
    panel = Panel(("market", "other"), np.array([100.0, 100.0]), start, free, "Europe/Berlin")
    market = Event(name="Wochenmarkt", kind="market", lots=("market",), weekly="Sa",
                   start=time(8, 0), end=time(12, 0), cars=40)
    model = GradientBoostingForecaster(subdiv="ST", events=(market,), max_iter=5)
    model.fit(panel)
    grid = model._grid(panel, steps, lot_stats=model.lot_stats_)
    days = pd.date_range(start, periods=steps, freq="15min").tz_convert("Europe/Berlin")
    # Sachsen-Anhalt's summer holidays 2026 begin on 4 July (holidays package, school category).
    assert grid.school[days.date == date(2026, 7, 6)].all()
    assert not grid.school[days.date == date(2026, 6, 30)].any()
    # The market flag: Saturdays from an hour before 8:00 to 12:00 local, on its lot only.
    saturday = (days.day_of_week == 5) & (days.hour >= 7) & (days.hour < 12)
    np.testing.assert_array_equal(grid.event[0], saturday.astype(float))
    assert not grid.event[1].any()
