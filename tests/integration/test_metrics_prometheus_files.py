"""deploy/prometheus: the scrape config and alert rules are valid and name real metrics.

The YAML shape and the metric names are checked everywhere; ``promtool``
(check config, check rules, and the rule unit tests in ``alerts.test.yml``)
runs when it is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.metrics import DaemonMetrics
from continuous_eval.adapters.metrics_db import DatabaseCollector
from continuous_eval.ports import SuiteSchedule

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
METRIC = re.compile(r"\bcontinuous_eval_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def exposed_names(database_url: str) -> set[str]:
    """Every sample name ``/metrics`` can carry: the process metrics and the collector's."""
    registry = CollectorRegistry()
    schedule = SuiteSchedule(
        enabled=True, interval=timedelta(hours=1), watchdog_s=60, max_attempts=1
    )
    DaemonMetrics(registry, {"support": schedule})
    engine = make_engine(database_url)
    try:
        registry.register(DatabaseCollector(engine))
        families = list(registry.collect())
    finally:
        engine.dispose()
    return {
        family.name + suffix for family in families for suffix in SUFFIXES.get(family.type, ("",))
    }


def rules() -> list[dict[str, object]]:
    document = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    assert set(document) == {"groups"}
    found = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        assert group["name"]
        assert group["rules"]
        found += group["rules"]
    return found


def test_alert_rules_have_the_shape_prometheus_expects() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert isinstance(rule["expr"], str)
        assert rule["expr"].strip()
        labels, annotations = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict)
        assert labels["severity"] in {"warning", "critical"}
        assert isinstance(annotations, dict)
        assert {"summary", "description"} <= set(annotations)
    assert {
        "ContinuousEvalScheduledRunOverdue",
        "ContinuousEvalRegressionDetected",
        "ContinuousEvalAlertDeliveryDead",
    } <= set(names)


def test_alert_rules_reference_only_metrics_the_service_exposes(migrated_sqlite_url: str) -> None:
    exposed = exposed_names(migrated_sqlite_url)
    referenced = {name for rule in rules() for name in METRIC.findall(str(rule["expr"]))}
    assert referenced, "the rules reference no continuous_eval metric"
    assert referenced <= exposed, referenced - exposed
    assert "continuous_eval_scheduler_ticks_total" in exposed
    tests = (DEPLOY / "alerts.test.yml").read_text()
    assert set(METRIC.findall(tests)) <= exposed


def test_the_scrape_config_reads_the_bearer_token_from_a_file() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert "alerts.yml" in config["rule_files"]
    for job in config["scrape_configs"]:
        assert job["metrics_path"] == "/metrics"
        assert job["authorization"]["type"] == "Bearer"
        assert "credentials_file" in job["authorization"]
        assert "credentials" not in job["authorization"]  # never the token itself


def test_every_rule_has_a_unit_test_that_makes_it_fire() -> None:
    tests = yaml.safe_load((DEPLOY / "alerts.test.yml").read_text())
    fired = {
        case["alertname"]
        for group in tests["tests"]
        for case in group["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in rules()} <= fired


def test_a_dead_service_is_noticed_by_rules_that_need_no_series_of_its_own() -> None:
    by_name = {rule["alert"]: str(rule["expr"]) for rule in rules()}
    assert "up{" in by_name["ContinuousEvalReplicaDown"]
    assert "absent(" in by_name["ContinuousEvalAbsent"]
    for rule in rules():
        # The routes the annotations name are the API's.
        assert "GET /alerts" not in str(rule["annotations"])


def _require_promtool() -> None:
    if shutil.which("promtool") is None:
        message = "promtool is not installed (Debian's prometheus package has it)"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message, pytrace=False)  # CI must never pass by skipping these
        pytest.skip(message)


def _promtool(*args: str, cwd: Path = DEPLOY) -> None:
    _require_promtool()
    done = subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    _promtool("check", "rules", "alerts.yml")
    _promtool("test", "rules", "alerts.test.yml")


def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    _require_promtool()
    # promtool checks that the credentials file exists: point it at a scratch one.
    token = tmp_path / "token"
    token.write_text("a-token\n")
    text = (DEPLOY / "prometheus.yml").read_text()
    path = "/etc/prometheus/secrets/continuous-eval-token"
    assert path in text
    (tmp_path / "prometheus.yml").write_text(text.replace(path, str(token)))
    shutil.copy(DEPLOY / "alerts.yml", tmp_path / "alerts.yml")
    _promtool("check", "config", "prometheus.yml", cwd=tmp_path)
