"""``benchmarks.forecast`` at a tiny size, through the code path of the real run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _helpers import BIRMINGHAM, bench_report, positive

from benchmarks.forecast import (
    BenchError,
    birmingham_panel,
    main,
    simulated_lots,
    table,
)
from core.city import load_city

# Few boosting iterations: this checks the run and its report, not the model's accuracy.
TINY = ["--skip-birmingham", "--zeitz-weeks", "3", "--train-lots", "20", "--train-days", "15",
        "--threads", "1", "--max-iter", "30", "--oracle-reps", "5"]
MODELS = ("persistence", "seasonal_naive", "profile_anomaly", "model", "oracle")


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return bench_report(main, TINY)


def test_json_has_every_figure_finite_and_positive(result: dict[str, Any]) -> None:
    assert set(result["datasets"]) == {"zeitz"}
    assert "birmingham" in result["skipped_datasets"]
    zeitz = result["datasets"]["zeitz"]
    assert zeitz["lots"] == 16
    assert zeitz["test"]["start"] == "2026-11-16T00:00:00+01:00"  # the last of 3 weeks
    assert zeitz["train"]["start"].startswith("2026-11-01T23:00")  # Monday 00:00 local
    assert set(zeitz["horizons"]) == {"15", "30", "60", "120"}
    for horizon, entry in zeitz["horizons"].items():
        assert entry["points"] > 0 and entry["lots_scored"] == 16
        for name in MODELS:
            assert positive(entry[name]["mae"]) and positive(entry[name]["mae_rate"]), name
        assert 0 < entry["model"]["coverage_80"] <= 1
        ratio = result["ratios"]["zeitz"][horizon]
        expected = entry["model"]["mae_rate"] / entry["profile_anomaly"]["mae_rate"]
        assert ratio == pytest.approx(expected, abs=1e-4)
        floor = result["oracle_ratios"]["zeitz"][horizon]
        expected = entry["oracle"]["mae_rate"] / entry["profile_anomaly"]["mae_rate"]
        assert floor == pytest.approx(expected, abs=1e-4)
    # The oracle knows the city's state: two hours ahead it beats the profile baseline by
    # far, even from five futures.
    assert result["oracle_ratios"]["zeitz"]["120"] < 0.9
    assert positive(result["train_s"]) and positive(result["predict_s"])
    speed = result["speed"]
    assert (speed["lots"], speed["days"], speed["steps"]) == (20, 15, 15 * 96)
    assert len(speed["predict_s_runs"]) == 3 and all(map(positive, speed["predict_s_runs"]))
    assert speed["train_examples"] > 0
    targets = result["targets"]
    assert (targets["ratio_max"], targets["coverage_80"]) == (0.85, [0.75, 0.85])
    assert (targets["train_s_max"], targets["predict_s_max"]) == (60.0, 1.0)
    assert set(targets["met"]) == {"zeitz", "train_s", "predict_s"}
    assert targets["met"]["train_s"] is (result["train_s"] < 60)
    assert result["machine"]["threads"] == 1
    assert result["machine"]["openmp_threads"] == 1


def test_table_shows_each_data_set_and_the_speed_targets(result: dict[str, Any]) -> None:
    text = table(result)
    assert "birmingham: skipped (--skip-birmingham)" in text
    assert "zeitz: 16 lots (16 scored)" in text
    rows = [line.split() for line in text.splitlines()]
    for horizon in ("15", "30", "60", "120"):  # a row each for MAE of the rate and in spaces
        assert sum(row[:2] == [horizon, "min"] for row in rows) == 2, horizon
    assert "fit (s)" in text and "< 60" in text and "< 1" in text
    model = result["datasets"]["zeitz"]["horizons"]["60"]["model"]["mae_rate"]
    assert f"{model:.4f}" in text
    oracle = result["datasets"]["zeitz"]["horizons"]["120"]["oracle"]["mae_rate"]
    assert f"{oracle:.4f}" in text and "oracle/profile" in text


def test_simulated_lots_are_copies_of_the_city_with_other_seeds() -> None:
    city = load_city("zeitz")
    end = pd.Timestamp("2026-11-23T00:00:00+01:00").to_pydatetime()
    frame = simulated_lots(city, lots=20, end=end, days=1, seed=1)
    ids = frame["lot_id"].unique()
    assert len(ids) == 20
    assert {lot.id for lot in city.lots} < set(ids)
    assert sum(lot_id.endswith("~1") for lot_id in ids) == 4
    times = pd.to_datetime(frame["time"])
    assert times.min() == pd.Timestamp(end - timedelta(days=1))
    assert times.max() == pd.Timestamp(end - timedelta(minutes=15))
    assert (frame.groupby("lot_id").size() == 96).all()
    first = frame[frame["lot_id"] == "zeitz-altmarkt"]["free"].to_numpy()
    copy = frame[frame["lot_id"] == "zeitz-altmarkt~1"]["free"].to_numpy()
    assert (first != copy).any()  # another seed, another day


def test_birmingham_window_is_checked(tmp_path: Path) -> None:
    if not BIRMINGHAM.is_file():
        pytest.skip(f"Birmingham data not found at {BIRMINGHAM}")
    panel = birmingham_panel(BIRMINGHAM, tmp_path)
    assert len(panel.lot_ids) == 30
    # Without the last day the test week would start a day early: not SOURCE.md's protocol.
    lines = BIRMINGHAM.read_text().splitlines(keepends=True)
    short = tmp_path / "short.csv"
    short.write_text("".join(line for line in lines if "2016-12-19" not in line))
    with pytest.raises(BenchError, match="2016-12-12"):
        birmingham_panel(short, tmp_path)


def test_an_explicit_missing_birmingham_file_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--birmingham", str(tmp_path / "nothing.csv")])
    assert stopped.value.code == 2
    assert "no such file" in capsys.readouterr().err
