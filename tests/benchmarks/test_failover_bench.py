"""``benchmarks.failover`` through the code path of the real run, in its short mode (the kills
only, a smaller ingest load): each kill -9 is survived with nothing lost, nothing twice and no
two leaders at once. The full run's database outage and broker restart are left out:
tests/system/test_reliability.py puts ingest through both, tests/signage/test_signage_leader.py
cuts the signage leader's database session."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
from _helpers import bench_report, positive

from benchmarks.failover import Result, main, table

pytestmark = pytest.mark.slow

OUTAGE_FIGURES = ("db_leads_after_s", "db_longest_sign_gap_s", "db_signs_pushed_by_two_terms",
                  "db_lost", "db_duplicated", "broker_lost", "broker_duplicated")


@pytest.fixture(scope="module")
def result(admin_url: str) -> dict[str, Any]:
    return bench_report(main, ["--messages", "1000", "--kills-only"],
                        PARKLEIT_BENCH_DATABASE_URL=admin_url)


def test_a_new_signage_leader_pushes_within_10_s_and_never_beside_the_old(
        result: dict[str, Any]) -> None:
    assert 0 < result["takeover_s"] <= 10
    assert result["new_term"] > result["old_term"] >= 1
    assert result["signs_pushed_by_two_terms"] == 0
    # The signs went without a push for at most a keep-alive missed and the takeover.
    assert positive(result["longest_sign_gap_s"]) and result["longest_sign_gap_s"] <= 15


def test_no_change_is_missed_and_no_message_lost_or_stored_twice(
        result: dict[str, Any]) -> None:
    assert result["stream_changes"] >= 5 and result["stream_missed"] == 0
    assert 0 < result["stream_resume_s"] < 10
    assert result["messages"] == 1000
    assert (result["lost"], result["duplicated"]) == (0, 0)


def test_the_short_mode_leaves_out_the_outages(result: dict[str, Any]) -> None:
    assert result["kills_only"] is True
    assert all(result[name] is None for name in OUTAGE_FIGURES)


def test_the_table_shows_each_figure_beside_its_target(result: dict[str, Any]) -> None:
    text = table(Result(**result))
    assert "<= 10 s" in text and "0 / 0" in text and " NO " not in text
    assert "database down" not in text and "broker restart" not in text
    full = table(Result(**(result | {"kills_only": False})))
    assert "database down 10 s: a leader pushes" in full and "broker restart" in full
    refused = io.StringIO()
    with contextlib.redirect_stderr(refused):
        assert main(["--messages", "10"]) == 2
    assert "--messages" in refused.getvalue()
