"""Regression alerts end to end: a real daemon, a real database, the real SDK, the fake Resend API.

A target degrades between two scheduled runs. Exactly one email reaches the
provider, also when the daemon is killed between the outbox write and the
send, or between the send and marking the alert sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from continuous_eval.fakes.resend_server import FakeResendServer
from tests.e2e.daemon_harness import Cluster, Serve, database, dump, free_port, runs, wait_for

pytestmark = pytest.mark.slow

RESEND_KEY = "re_test_e2e_key_0123456789"

APP = """
from pathlib import Path

QUALITY = Path(__file__).with_name("quality.txt")


def answer(question):
    case = int(question.split("-")[1])
    if QUALITY.read_text().strip() == "bad" and case % 2 == 0:
        return "a wrong answer"
    return "the right answer"
"""

SUITE = """
suites:
  omega:
    concurrency: 8
    features:
      support:
        dataset:
          cases:
{cases}
        target: {{type: python, callable: 'quality_app:answer'}}
        scorers: [{{type: contains, value: right}}]
"""


def _project(tmp_path: Path) -> None:
    (tmp_path / "quality_app.py").write_text(APP)
    (tmp_path / "quality.txt").write_text("good")
    cases = "\n".join(f"            - {{id: c{i}, input: 'q-{i}'}}" for i in range(40))
    (tmp_path / "suites.yaml").write_text(SUITE.format(cases=cases))


def _env(resend_url: str) -> dict[str, str]:
    return {
        "CONTINUOUS_EVAL_SCHEDULE_INTERVAL_HOURS": str(3 / 3600),
        "CONTINUOUS_EVAL_RESEND_API_KEY": RESEND_KEY,
        "RESEND_API_URL": resend_url,
        "CONTINUOUS_EVAL_ALERT_EMAIL_FROM": "continuous-eval <alerts@example.com>",
        "CONTINUOUS_EVAL_ALERT_EMAIL_TO": '["oncall@example.com"]',
        "CONTINUOUS_EVAL_ALERT_CLAIM_S": "2",
        "CONTINUOUS_EVAL_ALERT_RETRY_BASE_S": "0.5",
        "CONTINUOUS_EVAL_ALERT_TIMEOUT_S": "2",
    }


def _scheduled(engine: sa.Engine) -> list[dict[str, object]]:
    return [r for r in runs(engine, "omega") if r["run_type"] == "scheduled"]


def _alerts(engine: sa.Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select * from alerts order by id")).mappings()
        return [dict(r) for r in rows]


def _degrade_after_first_run(tmp_path: Path, engine: sa.Engine) -> None:
    wait_for(lambda: any(r["status"] == "succeeded" for r in _scheduled(engine)), 30)
    (tmp_path / "quality.txt").write_text("bad")
    wait_for(lambda: sum(r["status"] == "succeeded" for r in _scheduled(engine)) >= 2, 30)


def _regression_alert(engine: sa.Engine) -> dict[str, object]:
    email = [a for a in _alerts(engine) if a["kind"] == "regression" and a["channel"] == "email"]
    assert len(email) == 1, dump(_alerts(engine))
    return email[0]


@pytest.mark.postgres
def test_a_degraded_target_sends_exactly_one_email(tmp_path: Path, postgres_url: str) -> None:
    _project(tmp_path)
    with FakeResendServer(api_key=RESEND_KEY) as resend:
        cluster = Cluster(tmp_path, postgres_url, env=_env(resend.base_url))
        try:
            daemon = cluster.start("a")
            with database(postgres_url) as engine:
                _degrade_after_first_run(tmp_path, engine)
                wait_for(lambda: len(resend.emails) == 1, 20)
                alert = _regression_alert(engine)
                wait_for(lambda: _regression_alert(engine)["status"] == "sent", 20)
                # A third scheduled run, still degraded: no drop against the second, no email.
                wait_for(
                    lambda: sum(r["status"] == "succeeded" for r in _scheduled(engine)) >= 3, 30
                )
                assert len(resend.emails) == 1
                email = resend.emails[0]
                assert email.idempotency_key == alert["key"]
                assert "omega" in email.payload["subject"]
                assert "support" in email.payload["subject"]
                assert str(alert["run_id"]) in email.payload["text"]
                assert daemon.metric("continuous_eval_alerts_total", status="sent") == 1
                assert daemon.metric("continuous_eval_regressions_total") == 1
                assert daemon.stop() == 0
        finally:
            cluster.kill_all()


@pytest.mark.postgres
def test_killed_between_the_outbox_write_and_the_send(tmp_path: Path, postgres_url: str) -> None:
    _project(tmp_path)
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: the send cannot happen
    cluster = Cluster(tmp_path, postgres_url, env=_env(nowhere))
    try:
        first = cluster.start("a")
        with database(postgres_url) as engine:
            _degrade_after_first_run(tmp_path, engine)
            wait_for(lambda: int(_regression_alert(engine)["attempts"]) >= 1, 20)  # type: ignore[call-overload]
            assert _regression_alert(engine)["status"] == "pending"
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(timeout=10)
            with FakeResendServer(api_key=RESEND_KEY) as resend:
                cluster.env = _env(resend.base_url)
                second = cluster.start("b")
                wait_for(lambda: _regression_alert(engine)["status"] == "sent", 30)
                key = str(_regression_alert(engine)["key"])
                assert len(resend.emails_for(key)) == 1
                assert len(resend.emails) == 1
                assert second.stop() == 0
    finally:
        cluster.kill_all()


@pytest.mark.postgres
def test_killed_between_the_send_and_marking_it_sent(tmp_path: Path, postgres_url: str) -> None:
    _project(tmp_path)
    with FakeResendServer(api_key=RESEND_KEY) as resend:
        cluster = Cluster(tmp_path, postgres_url, env=_env(resend.base_url))
        try:
            first: Serve = cluster.start("a")
            resend.kill_on_send(first.proc.pid)
            with database(postgres_url) as engine:
                _degrade_after_first_run(tmp_path, engine)
                first.proc.wait(timeout=30)  # the provider took the email, then the daemon died
                assert first.proc.returncode == -signal.SIGKILL
                alert = _regression_alert(engine)
                assert alert["status"] == "pending"
                key = str(alert["key"])
                assert len(resend.emails_for(key)) == 1

                second = cluster.start("b")
                wait_for(lambda: _regression_alert(engine)["status"] == "sent", 30)
                assert len(resend.emails_for(key)) == 1  # the retry was a replay, not an email
                assert len(resend.requests_for(key)) == 2
                bodies = {r.raw for r in resend.requests_for(key)}
                assert len(bodies) == 1  # byte-identical payload
                assert second.stop() == 0
        finally:
            cluster.kill_all()


def test_the_ci_gate_fails_a_manual_run_that_regresses(tmp_path: Path) -> None:
    _project(tmp_path)
    url = f"sqlite:///{tmp_path / 'gate.db'}"
    cluster = Cluster(tmp_path, url, env={"CONTINUOUS_EVAL_SCHEDULE_INTERVAL_HOURS": "24"})
    try:
        daemon = cluster.start("a")
        with database(url) as engine:
            wait_for(lambda: any(r["status"] == "succeeded" for r in _scheduled(engine)), 30)
        assert daemon.stop() == 0
    finally:
        cluster.kill_all()

    def gate() -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUOUS_EVAL_")}
        env.update(
            CONTINUOUS_EVAL_DATABASE_URL=url,
            CONTINUOUS_EVAL_CONFIG_PATH=str(tmp_path / "suites.yaml"),
            COLUMNS="200",
        )
        return subprocess.run(
            [sys.executable, "-m", "continuous_eval", "run", "--fail-on-regression"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    healthy = gate()
    assert healthy.returncode == 0, healthy.stderr
    assert "no regression" in healthy.stdout

    (tmp_path / "quality.txt").write_text("bad")
    regressed = gate()
    assert regressed.returncode == 3, (regressed.stdout, regressed.stderr)
    assert "regressions against the known-good scheduled baseline" in regressed.stdout
    assert "support" in regressed.stdout
    with database(url) as engine:
        assert _alerts(engine) == []  # manual runs never write alerts
