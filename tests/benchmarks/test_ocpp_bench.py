"""``benchmarks.ocpp`` at a tiny size, through the code path of the real run."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
from _helpers import bench_report, positive

from benchmarks._common import Latency
from benchmarks.ocpp import Result, main, table

TINY = ["--stations", "6", "--interval", "0.5", "--duration", "2"]


@pytest.fixture(scope="module")
def result(admin_url: str) -> dict[str, Any]:
    return bench_report(main, TINY, PARKLEIT_BENCH_DATABASE_URL=admin_url)


def test_every_status_is_answered_stored_and_timed(result: dict[str, Any]) -> None:
    assert result["connected"] == result["stations"] == 6
    assert result["statuses_sent"] >= 6 * 3
    assert result["statuses_answered"] == result["statuses_sent"]
    assert result["statuses_stored"] == result["statuses_answered"]
    assert result["statuses_refused"] == 0
    assert 0 < result["visible_statuses"] <= result["statuses_answered"]
    assert result["api_reads"] > 0
    for series in ("latency", "answer", "visible", "api_read"):
        for quantile in ("p50_ms", "p99_ms"):
            assert positive(result[series][quantile]), (series, quantile)
    assert positive(result["rss_idle_kb"]) and positive(result["statuses_per_s"])


def test_table_names_the_target_and_the_reference(result: dict[str, Any]) -> None:
    text = table(Result(**{**result, **{series: Latency(**result[series]) for series in (
        "latency", "answer", "visible", "api_read")}}))
    assert "< 1,000" in text and "memory per connection" in text
    assert "status → /v1/charging/locations" in text
    assert "reference (same statuses)" in text


def test_bad_arguments_exit_2() -> None:
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["--stations", "0"]) == 2
