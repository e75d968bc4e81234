"""An outage is not a success: a judge that refuses every call, end to end.

A real ``serve`` on Postgres, the real Anthropic SDK against the fake
Messages API scripted to answer 401 to every call, the fake Resend API for
the admins' email. The run stops after the breaker's threshold of
requests, ends ``failed`` naming the refusal, and one notice goes out;
runs failing the same way send nothing more; once calls succeed again, the
next scheduled run succeeds and one recovery notice goes out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from continuous_eval.fakes.anthropic_server import FakeAnthropicServer
from continuous_eval.fakes.resend_server import FakeResendServer
from tests.e2e.daemon_harness import Cluster, database, dump, runs, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ANTHROPIC_KEY = "sk-ant-outage-test-key-0123456789"
RESEND_KEY = "re_test_outage_0123456789"
THRESHOLD = 4
CASES = 40

APP = "def answer(question):\n    return 'the answer to ' + question\n"


def _project(directory: Path) -> None:
    (directory / "plain_app.py").write_text(APP)
    cases = "\n".join(f"            - {{id: c{i}, input: 'q{i}'}}" for i in range(CASES))
    (directory / "suites.yaml").write_text(
        f"""\
suites:
  judged:
    concurrency: 16
    features:
      answers:
        dataset:
          cases:
{cases}
        target: {{type: python, callable: 'plain_app:answer'}}
        scorers:
          - {{type: llm_judge, rubric: "The answer answers the question.", model: claude-haiku-4-5}}
"""
    )


def _alerts(engine: sa.Engine, kind: str) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select * from alerts where kind = :kind order by id"), {"kind": kind}
        ).mappings()
        return [dict(r) for r in rows]


def _scheduled(engine: sa.Engine) -> list[dict[str, Any]]:
    return [r for r in runs(engine, "judged") if r["run_type"] == "scheduled"]


def test_a_refusing_judge_stops_the_run_fails_it_and_tells_the_admins_once(
    tmp_path: Path, postgres_url: str
) -> None:
    _project(tmp_path)
    with (
        FakeAnthropicServer(api_key="sk-ant-not-the-configured-one", retry_after_ms=1) as judge,
        FakeResendServer(api_key=RESEND_KEY) as resend,
    ):
        env = {
            "CONTINUOUS_EVAL_SCHEDULE_INTERVAL_HOURS": str(3 / 3600),
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,  # refused: the fake wants another key
            "ANTHROPIC_BASE_URL": judge.base_url,
            "CONTINUOUS_EVAL_ANTHROPIC_MAX_RETRIES": "0",
            "CONTINUOUS_EVAL_BREAKER_REFUSALS": str(THRESHOLD),
            "RESEND_API_KEY": RESEND_KEY,
            "RESEND_API_URL": resend.base_url,
            "CONTINUOUS_EVAL_ALERT_EMAIL_FROM": "continuous-eval <alerts@example.com>",
            "CONTINUOUS_EVAL_ALERT_EMAIL_TO": '["oncall@example.com"]',
            "CONTINUOUS_EVAL_ALERT_RETRY_BASE_S": "0.5",
        }
        cluster = Cluster(tmp_path, postgres_url, env=env)
        try:
            daemon = cluster.start("r1")
            with database(postgres_url) as engine:
                wait_for(lambda: any(r["status"] == "failed" for r in _scheduled(engine)), 30)
                first = next(r for r in _scheduled(engine) if r["status"] == "failed")
                # The breaker: at most its threshold of requests for 40 cases.
                assert len(judge.requests) <= THRESHOLD, len(judge.requests)
                assert all(r.status == 401 for r in judge.requests)
                reason = str(first["status_reason"])
                assert f"{THRESHOLD} cases in a row were refused" in reason, reason
                assert "401 authentication_error" in reason, reason
                assert ANTHROPIC_KEY not in reason

                wait_for(lambda: len(resend.emails) == 1, 20)
                # Two more scheduled runs fail the same way: no second notice.
                wait_for(lambda: sum(r["status"] == "failed" for r in _scheduled(engine)) >= 3, 30)
                assert len(resend.emails) == 1
                outage = resend.emails[0].payload
                assert outage["subject"] == (
                    "[continuous-eval] could not evaluate suite judged since "
                    f"{first['started_at'].isoformat()}"
                )
                assert "401 authentication_error" in outage["text"]
                assert len(_alerts(engine, "outage")) == 1, dump(_alerts(engine, "outage"))

                judge.state.api_key = ANTHROPIC_KEY  # the key is fixed: calls succeed again
                wait_for(lambda: any(r["status"] == "succeeded" for r in _scheduled(engine)), 30)
                wait_for(lambda: len(resend.emails) == 2, 20)
                recovered = resend.emails[1].payload
                assert recovered["subject"].startswith(
                    "[continuous-eval] suite judged evaluates again"
                )
                assert daemon.metric("continuous_eval_process_runs_total", status="failed") >= 3
                # Later successes tell nobody anything more.
                wait_for(
                    lambda: sum(r["status"] == "succeeded" for r in _scheduled(engine)) >= 2, 30
                )
                assert len(resend.emails) == 2
                assert cluster.stop_all() == [0]
        finally:
            cluster.kill_all()
