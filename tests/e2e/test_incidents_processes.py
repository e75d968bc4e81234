"""Incidents end to end: a real daemon on a schedule, the real SDK judging, the fake Resend API.

One suite of three judged features, each with anchors. Two features regress
in the same run: one email names both. The following runs at the same low
level send nothing and record no recovery; the return to the known-good level
sends one recovery email. Then the judge turns one point stricter on every
case: one judge-drift email, and no regression email.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from continuous_eval.fakes.anthropic_server import FakeAnthropicServer
from continuous_eval.fakes.resend_server import FakeResendServer
from tests.e2e.daemon_harness import Cluster, database, dump, runs, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RESEND_KEY = "re_test_incidents_0123456789"
ANTHROPIC_KEY = "sk-ant-test-incidents"
FEATURES = ("refunds", "billing", "tone")

APP = """
import json
import os
import subprocess
import sys
from pathlib import Path

QUALITY = Path(__file__).with_name("quality.json")


def answer(question):
    feature, case = question.split("-")
    bad = json.loads(QUALITY.read_text()).get(feature) == "bad"
    good = 4 + int(case) % 2  # 4 or 5: what the fake judge will score
    return f"answer {question} [[score:{2 if bad and int(case) < 15 else good}]]"
"""

SUITE_HEAD = """
suites:
  support:
    concurrency: 8
    features:
"""

FEATURE = """
      {name}:
        dataset:
          cases:
{cases}
        target: {{type: python, callable: 'incident_app:answer'}}
        scorers: [{{type: llm_judge, rubric: 'Is the answer right?'}}]
        anchors:
          cases:
{anchors}
"""


def _project(tmp_path: Path) -> None:
    (tmp_path / "incident_app.py").write_text(APP)
    _quality(tmp_path)
    parts = [SUITE_HEAD]
    for name in FEATURES:
        cases = "\n".join(f"            - {{id: c{i}, input: '{name}-{i}'}}" for i in range(30))
        anchors = "\n".join(
            f"            - {{id: a{i}, input: 'anchor {i}', output: 'kept [[score:{3 + i % 3}]]'}}"
            for i in range(12)
        )
        parts.append(FEATURE.format(name=name, cases=cases, anchors=anchors))
    (tmp_path / "suites.yaml").write_text("".join(parts))


def _quality(tmp_path: Path, **features: str) -> None:
    (tmp_path / "quality.json").write_text(json.dumps(features))


def _env(judge: FakeAnthropicServer, resend: FakeResendServer) -> dict[str, str]:
    return {
        "CONTINUOUS_EVAL_SCHEDULE_INTERVAL_HOURS": str(3 / 3600),
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "ANTHROPIC_BASE_URL": judge.base_url,
        "CONTINUOUS_EVAL_RESEND_API_KEY": RESEND_KEY,
        "RESEND_API_URL": resend.base_url,
        "CONTINUOUS_EVAL_ALERT_EMAIL_FROM": "continuous-eval <alerts@example.com>",
        "CONTINUOUS_EVAL_ALERT_EMAIL_TO": '["oncall@example.com"]',
        "CONTINUOUS_EVAL_ALERT_DASHBOARD_URL": "https://evals.example.com",
        "CONTINUOUS_EVAL_ALERT_RETRY_BASE_S": "0.5",
    }


def _succeeded(engine: sa.Engine) -> list[dict[str, Any]]:
    return [
        r
        for r in runs(engine, "support")
        if r["run_type"] == "scheduled" and r["status"] == "succeeded"
    ]


def _after_next_runs(engine: sa.Engine, count: int = 1) -> str:
    """Wait until ``count`` more scheduled runs succeeded; return the newest one's id."""
    start = len(_succeeded(engine))
    wait_for(lambda: len(_succeeded(engine)) >= start + count, 40)
    newest = max(_succeeded(engine), key=lambda r: r["started_at"])
    return str(newest["id"])


def _decisions(engine: sa.Engine, run_id: str) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select feature, kind, transition from eval_decisions where run_id = :r"),
            {"r": run_id},
        )
        return {row.feature: (row.kind, row.transition) for row in rows}


def _alert_rows(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select * from alerts order by id")).mappings()
        return [dict(r) for r in rows if r["kind"] not in ("run_finished",)]


def test_one_email_per_incident_silence_while_down_one_recovery_and_judge_drift_told_apart(
    tmp_path: Path, postgres_url: str
) -> None:
    _project(tmp_path)
    with (
        FakeAnthropicServer(api_key=ANTHROPIC_KEY, retry_after_ms=1) as judge,
        FakeResendServer(api_key=RESEND_KEY) as resend,
    ):
        cluster = Cluster(tmp_path, postgres_url, env=_env(judge, resend))
        try:
            daemon = cluster.start("a")
            with database(postgres_url) as engine:
                _after_next_runs(engine, 2)  # the known-good baseline
                assert resend.emails == []

                # The change lands between two runs (each takes well under the interval).
                _quality(tmp_path, refunds="bad", billing="bad")
                broken = _after_next_runs(engine)
                wait_for(lambda: len(resend.emails) == 1, 20)
                email = resend.emails[0].payload
                assert "2 features regressed" in email["subject"], email["subject"]
                assert "refunds/llm_judge" in email["text"], email["text"]
                assert "billing/llm_judge" in email["text"]
                assert "tone/llm_judge" not in email["text"]
                assert f"https://evals.example.com/runs/{broken}" in email["text"]
                decided = _decisions(engine, broken)
                assert decided["refunds"] == ("regressed", "opened"), decided
                assert decided["billing"] == ("regressed", "opened"), decided
                assert decided["tone"][0] == "not_significant", decided

                still = _after_next_runs(engine, 2)  # the same low level: nothing new
                assert _decisions(engine, still)["refunds"] == ("still_regressed", None)
                assert len(resend.emails) == 1
                assert [a["kind"] for a in _alert_rows(engine)] == ["regression"]

                _quality(tmp_path)  # fixed
                back = _after_next_runs(engine)
                wait_for(lambda: len(resend.emails) == 2, 20)
                recovery = resend.emails[1].payload
                assert "recovered" in recovery["subject"], recovery["subject"]
                assert _decisions(engine, back)["billing"] == ("recovered", "recovered")
                _after_next_runs(engine)
                assert len(resend.emails) == 2  # recovered once

                judge.set_judge_offset(-1)  # a stricter judge: targets and anchors alike
                drifted = _after_next_runs(engine)
                wait_for(lambda: len(resend.emails) == 3, 20)
                told = resend.emails[2].payload
                assert "the judge moved" in told["subject"], told["subject"]
                assert {k for k, _ in _decisions(engine, drifted).values()} == {"judge_drift"}
                kinds = [a["kind"] for a in _alert_rows(engine) if a["channel"] == "email"]
                assert kinds == ["regression", "recovery", "judge_drift"], dump(kinds)
                assert daemon.stop() == 0

                # The backtest replays the stored history and finds the same incidents.
                replayed = _backtest(tmp_path, postgres_url)
                reports = [(run["run_id"], r) for run in replayed["runs"] for r in run["reports"]]
                assert [(run_id, r["kind"]) for run_id, r in reports][:3] == [
                    (broken, "regression"),
                    (back, "recovery"),
                    (drifted, "judge_drift"),
                ], dump(reports)
                assert sorted(reports[0][1]["features"]) == ["billing", "refunds"]
                assert len(resend.emails) == 3  # the backtest sent nothing
        finally:
            cluster.kill_all()


def _backtest(tmp_path: Path, postgres_url: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUOUS_EVAL_")}
    env["CONTINUOUS_EVAL_DATABASE_URL"] = postgres_url
    done = subprocess.run(
        [sys.executable, "-m", "continuous_eval", "alerts", "backtest", "--json"],
        cwd=tmp_path,
        env={**env, "CONTINUOUS_EVAL_CONFIG_PATH": str(tmp_path / "suites.yaml")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (suite,) = json.loads(done.stdout)["suites"]
    return dict(suite)
