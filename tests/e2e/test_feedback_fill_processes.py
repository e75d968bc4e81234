"""``serve`` fills an eval set from production feedback on its own, on its interval."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.daemon_harness import SLOW_APP, Cluster, suite_yaml, wait_for

pytestmark = pytest.mark.slow

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_serve_fills_a_feature_s_eval_set_from_its_feedback(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    (tmp_path / "suites.yaml").write_text(suite_yaml({"slow": (1, 0.0)}))
    cluster = Cluster(tmp_path, migrated_sqlite_url)
    try:
        serve = cluster.start(
            "one",
            CONTINUOUS_EVAL_SCHEDULE_ENABLED="false",
            CONTINUOUS_EVAL_FEEDBACK_FILL_INTERVAL_S="0.5",
        )
        api = httpx.Client(base_url=f"http://127.0.0.1:{serve.port}", timeout=10)
        span = {
            "trace_id": TRACE,
            "span_id": "00f067aa0ba902b7",
            "feature": "support-bot",
            "input": "Where is my refund?",
            "output": "On its way",
            "started_at": "2026-03-01T12:00:00Z",
        }
        assert api.post("/api/traces", json={"interactions": [span]}).status_code == 200
        made = api.post(
            "/api/eval-sets",
            json={"name": "support", "scale": "pass_fail", "feature": "support-bot"},
        )
        assert made.status_code == 201, made.text
        set_id = made.json()["id"]
        feedback = {"author": "ann", "label": "thumbs_down", "comment": "not yet"}
        assert api.post(f"/api/traces/{TRACE}/feedback", json=feedback).status_code == 201

        def filled() -> bool:
            return bool(api.get(f"/api/eval-sets/{set_id}").json()["labelled_cases"] == 1)

        wait_for(filled, 30)
        [case] = api.get(f"/api/eval-sets/{set_id}/cases").json()["items"]
        assert (case["case_id"], case["output"], case["consensus"]) == (TRACE, "On its way", 0.0)
        assert case["labels"][0]["source"] == "feedback"
        assert case["labels"][0]["comment"] == "not yet"
        api.close()
        assert serve.stop() == 0
        assert "was never awaited" not in serve.output()
    finally:
        cluster.kill_all()
