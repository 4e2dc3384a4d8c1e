"""``benchmarks.api`` at a tiny size, through the code path of the real run."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
from _helpers import bench_report, positive

from benchmarks._common import Latency
from benchmarks.api import Phase, Result, main, table

TINY = ["--days", "2", "--concurrency", "2", "--duration", "0.5", "--rate", "50",
        "--rate-duration", "0.5", "--history-requests", "3"]


@pytest.fixture(scope="module")
def result(admin_url: str) -> dict[str, Any]:
    return bench_report(main, TINY, PARKLEIT_BENCH_DATABASE_URL=admin_url)


def test_json_has_every_figure_the_issue_asks_for(result: dict[str, Any]) -> None:
    for key in ("ratio", "history_database_ms"):
        assert positive(result[key]), key
    for phase in ("lots", "reference"):
        for key in ("rps", "server_cpu_ms"):
            assert positive(result[phase][key]), (phase, key)
        for quantile in ("p50_ms", "p99_ms"):
            assert positive(result[phase]["latency"][quantile]), (phase, quantile)
    assert positive(result["history"]["p99_ms"])
    assert result["ratio"] == pytest.approx(result["lots"]["rps"] / result["reference"]["rps"],
                                            abs=1e-3)
    assert result["lots_errors"] == result["history_errors"] == 0
    assert result["history_requests"] == 3
    # Two days of 15-minute buckets of the largest lot, gzipped as browsers ask for them.
    assert 190 <= result["history_buckets"] <= 193
    assert 0 < result["history_bytes_gzip"] < result["history_buckets"] * 100
    assert result["history_rows"] == 2 * 288 * 16  # Zeitz: 16 lots every 5 minutes


def test_table_names_targets_and_references(result: dict[str, Any]) -> None:
    phases = {name: Phase(**{**result[name], "latency": Latency(**result[name]["latency"])})
              for name in ("lots", "reference")}
    series = {name: Latency(**result[name]) for name in ("history", "stream_lots")}
    text = table(Result(**{**result, **phases, **series}))
    assert "< 20" in text and "< 100" in text and "reference (constant JSON)" in text


def test_bad_arguments_exit_2() -> None:
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["--rate", "0"]) == 2
