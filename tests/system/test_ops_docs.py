"""Operations material that must not rot: the alert rules use only metrics the code exports
(with the suffix each type gives), docs/operations.md lists every metric there is, and the
city gauges of ``/metrics/city`` say what the database holds."""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import yaml
from _helpers import ROOT, utc_now, wait_for
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from core.city import City
from core.registry import sync_registry

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
PACKAGES = ("core", "ingest", "signage", "forecasting", "api", "charging", "ocpi")
# The sample names each kind of metric exposes (prometheus_client): name -> names.
_SUFFIXES = {
    "Counter": ("_total", "_created"), "CounterMetricFamily": ("_total",),
    "Gauge": ("",), "GaugeMetricFamily": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
    "Summary": ("", "_sum", "_count", "_created"),
}
# Metrics of Prometheus itself that rules may use.
_PROMETHEUS_OWN = {"up"}


def exported_metrics(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Every ``parkleit_*`` metric the code defines: its name -> its kind, read from the calls
    of the prometheus_client constructors (a grep that knows the type)."""
    found: dict[str, str] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                kind = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                name = node.args[0]
                if (kind in _SUFFIXES and isinstance(name, ast.Constant)
                        and isinstance(name.value, str) and name.value.startswith("parkleit_")):
                    base = name.value.removesuffix("_total") if kind.startswith("Counter") \
                        else name.value
                    assert found.get(base, kind) == kind, f"{base} defined as two kinds"
                    found[base] = kind
    return found


def sample_names(metrics: dict[str, str]) -> set[str]:
    """The sample names a scrape shows for ``metrics``."""
    return {f"{name}{suffix}" for name, kind in metrics.items() for suffix in _SUFFIXES[kind]}


def unknown_in(expr: str, samples: set[str]) -> list[str]:
    """Metric names in a PromQL expression that no code exports."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    used = set(re.findall(r"\bparkleit_[a-z0-9_]+\b", without_strings))
    selectors = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", without_strings))
    others = {name for name in selectors if not name.startswith("parkleit_")}
    return sorted((used - samples) | (others - _PROMETHEUS_OWN))


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


# -- the alert rules ---------------------------------------------------------------------------

def test_every_metric_in_the_alert_rules_is_exported() -> None:
    samples = sample_names(exported_metrics())
    rules = _rules()
    assert len(rules) >= 20
    problems = {rule["alert"]: unknown_in(rule["expr"], samples) for rule in rules}
    assert {alert: names for alert, names in problems.items() if names} == {}


def test_the_rules_are_complete_and_well_formed() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert re.fullmatch(r"Parkleit[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
    text = " ".join(rule["expr"] for rule in rules)
    # What the issue asks to be watched, each by at least one rule.
    for metric in ("parkleit_ingest_lag_seconds_bucket", "parkleit_ingest_queue_full_total",
                   "parkleit_ingest_dead_letters_total", "parkleit_lot_data_age_seconds",
                   "parkleit_signage_consecutive_failures", "parkleit_sign_ack_age_seconds",
                   "parkleit_api_requests_total", "parkleit_api_request_seconds_bucket",
                   "parkleit_forecast_age_seconds", "parkleit_forecast_mae_ratio"):
        assert metric in text, metric
    for job in ("parkleit-ingest", "parkleit-signage", "parkleit-api", "parkleit-city"):
        assert f'up{{job="{job}"}}' in text, job


def test_the_check_can_fail() -> None:
    samples = sample_names(exported_metrics())
    assert "parkleit_ingest_messages_received_total" in samples
    assert "parkleit_ingest_queue_depth" in samples
    assert "parkleit_api_request_seconds_bucket" in samples
    # A counter without its _total, a gauge with one, a histogram without _bucket, a typo,
    # another exporter's metric: each is caught.
    for expr in ("rate(parkleit_ingest_messages_received[5m]) > 0",
                 "parkleit_ingest_queue_depth_total > 1",
                 "histogram_quantile(0.9, rate(parkleit_api_request_seconds[5m])) > 1",
                 'parkleit_lot_data_age_secs{lot="a"} > 1',
                 'pg_up{job="postgres"} == 0'):
        assert unknown_in(expr, samples), expr
    assert unknown_in('up{job="parkleit-api"} == 0 and parkleit_ingest_queue_depth > 1',
                      samples) == []


def test_operations_doc_lists_every_metric() -> None:
    doc = OPERATIONS.read_text(encoding="utf-8")
    listed = set(re.findall(r"`(parkleit_[a-z0-9_]+)`", doc))
    samples = sample_names(exported_metrics())
    exported = {f"{name}_total" if kind.startswith("Counter") else name
                for name, kind in exported_metrics().items()}
    assert sorted(exported - listed) == []  # every metric documented
    known = samples | set(exported_metrics())  # a histogram is listed by its base name
    assert sorted(name for name in listed if name not in known) == []  # none made up
    assert "deploy/prometheus/alerts.yml" in doc


# -- /metrics and /metrics/city ------------------------------------------------------------

def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_city_gauges_say_what_the_database_holds(
        api_client: TestClient, city: City, conn: psycopg.Connection[Any]) -> None:
    sync_registry(conn, city)
    garage, small, street = (f"{city.id}-{name}" for name in ("garage", "small", "street"))
    sign = city.signs[0].id
    now = utc_now()
    conn.execute("UPDATE lot_state SET updated = %s, status = 'open', quality = 0.75,"
                 " free = 70, occupied = 30 WHERE lot_id = %s", (now - timedelta(seconds=30),
                                                                  garage))
    conn.execute("UPDATE lot_state SET updated = %s, status = 'closed' WHERE lot_id = %s",
                 (now - timedelta(hours=2), small))
    conn.execute("INSERT INTO forecasts (time, lot_id, horizon_min, target_time, free, model)"
                 " VALUES (%s, %s, 60, %s, 60, 'test')",
                 (now - timedelta(minutes=10), garage, now + timedelta(minutes=50)))
    conn.execute("INSERT INTO forecast_accuracy (lot_id, horizon_min, window_days, mae,"
                 " mae_rate, points, computed_at) VALUES (%s, 60, 7, 8.5, 0.085, 600, %s)",
                 (garage, now))
    conn.execute("INSERT INTO forecast_models (version, city, created_at, kind, trained_from,"
                 " trained_to, lots, artefact) VALUES ('v1', %s, %s, 'test', %s, %s, %s, '')",
                 (city.id, now - timedelta(days=1), now - timedelta(days=92),
                  now - timedelta(days=1), [garage]))
    conn.execute("INSERT INTO sign_state (sign_id, last_ack, updated) VALUES (%s, %s, %s)",
                 (sign, now - timedelta(seconds=400), now))

    answer = api_client.get("/metrics/city")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    values = _values(answer.text)

    def value(name: str, **labels: str) -> float:
        return values[(name, tuple(sorted(labels.items())))]

    assert 29 <= value("parkleit_lot_data_age_seconds", city=city.id, lot=garage) < 60
    # never heard
    assert value("parkleit_lot_data_age_seconds", city=city.id, lot=street) == float("inf")
    assert value("parkleit_lot_stale_after_seconds", city=city.id, lot=garage) == 900
    assert value("parkleit_lot_closed", city=city.id, lot=small) == 1
    assert value("parkleit_lot_closed", city=city.id, lot=garage) == 0
    assert value("parkleit_lot_quality", city=city.id, lot=garage) == 0.75
    assert 599 <= value("parkleit_forecast_age_seconds", city=city.id) < 660
    assert 86_399 <= value("parkleit_forecast_model_age_seconds", city=city.id) < 86_460
    forecast = {"city": city.id, "lot": garage, "horizon_min": "60"}
    assert value("parkleit_forecast_mae_spaces", **forecast) == 8.5
    assert value("parkleit_forecast_mae_ratio", **forecast) == pytest.approx(0.085)
    assert 399 <= value("parkleit_sign_ack_age_seconds", city=city.id, sign=sign) < 460
    # Cached: a second scrape within the TTL asks the database nothing new.
    conn.execute("UPDATE lot_state SET updated = NULL WHERE lot_id = %s", (garage,))
    assert _values(api_client.get("/metrics/city").text)[
        ("parkleit_lot_data_age_seconds", (("city", city.id), ("lot", garage)))] < 60


def test_process_metrics_include_the_live_stream(api_client: TestClient) -> None:
    def listening() -> bool:
        values = _values(api_client.get("/metrics").text)
        return values.get(("parkleit_api_stream_listening", ())) == 1.0

    wait_for(listening, timeout=10)
    values = _values(api_client.get("/metrics").text)
    assert values[("parkleit_api_stream_clients", ())] == 0
    assert values[("parkleit_api_stream_dropped_total", ())] == 0


def test_every_service_with_metrics_is_covered() -> None:
    metrics = exported_metrics()
    for prefix in ("parkleit_ingest_", "parkleit_signage_", "parkleit_api_", "parkleit_lot_",
                   "parkleit_forecast_", "parkleit_sign_", "parkleit_ocpp_", "parkleit_ocpi_"):
        assert any(name.startswith(prefix) for name in metrics), prefix


def test_the_scan_reads_the_real_definitions() -> None:
    metrics = exported_metrics()
    assert metrics["parkleit_ingest_messages_received"] == "Counter"
    assert metrics["parkleit_ingest_lag_seconds"] == "Histogram"
    assert metrics["parkleit_signage_consecutive_failures"] == "Gauge"
    assert metrics["parkleit_api_stream_dropped"] == "CounterMetricFamily"
