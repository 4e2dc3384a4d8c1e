"""``benchmarks.failover`` through the code path of the real run (a smaller ingest load): every
disruption is survived with nothing lost, nothing twice and no two leaders at once."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
from _helpers import bench_report, positive

from benchmarks.failover import Result, main, table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(admin_url: str) -> dict[str, Any]:
    return bench_report(main, ["--messages", "1000"], PARKLEIT_BENCH_DATABASE_URL=admin_url)


def test_a_new_signage_leader_pushes_within_10_s_and_never_beside_the_old(
        result: dict[str, Any]) -> None:
    assert 0 < result["takeover_s"] <= 10
    assert 0 < result["db_leads_after_s"] <= 10
    assert result["new_term"] > result["old_term"] >= 1
    assert result["signs_pushed_by_two_terms"] == result["db_signs_pushed_by_two_terms"] == 0
    assert positive(result["longest_sign_gap_s"]) and positive(result["db_longest_sign_gap_s"])
    # The signs went without a push for at least the database's absence, not much longer.
    assert 10 <= result["db_longest_sign_gap_s"] <= 40


def test_no_change_is_missed_and_no_message_lost_or_stored_twice(
        result: dict[str, Any]) -> None:
    assert result["stream_changes"] >= 5 and result["stream_missed"] == 0
    assert 0 < result["stream_resume_s"] < 10
    assert result["messages"] == 1000
    for lost, duplicated in (("lost", "duplicated"), ("db_lost", "db_duplicated"),
                             ("broker_lost", "broker_duplicated")):
        assert (result[lost], result[duplicated]) == (0, 0), lost


def test_the_table_shows_each_figure_beside_its_target(result: dict[str, Any]) -> None:
    text = table(Result(**result))
    assert "<= 10 s" in text and "0 / 0" in text and " NO " not in text
    refused = io.StringIO()
    with contextlib.redirect_stderr(refused):
        assert main(["--messages", "10"]) == 2
    assert "--messages" in refused.getvalue()
