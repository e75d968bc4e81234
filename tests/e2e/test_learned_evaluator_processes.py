"""A learned evaluator from labels to a scheduled run, as a team uses one: real processes.

People's labels are imported from a file; ``serve`` runs the generation job
(the real Anthropic SDK against the fake API, scripted to write good code;
the held-out cases run in the bubblewrap sandbox); the version is promoted
and shown from the CLI; and a restarted ``serve`` runs a scheduled suite whose
scorer is that version, in the sandbox. One SQLite file throughout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.evaluators import SqlEvaluatorStore
from continuous_eval.fakes.anthropic_server import FakeAnthropicServer
from continuous_eval.fakes.evaluator_codes import CODES, GOOD
from tests.e2e.cli_harness import cli
from tests.e2e.daemon_harness import Cluster, database, runs, wait_for
from tests.fixtures.anthropic import FAKE_API_KEY
from tests.fixtures.sandbox import bwrap_path

pytestmark = pytest.mark.slow

ADMIN = "admin-token-learned"

APP = """
def answer(question):
    return "Yes, gladly." if "yes" in question else "No, sorry."
"""

SUITE = """
suites:
  replies:
    features:
      answers:
        dataset:
          cases:
            - {id: a, input: 'say yes'}
            - {id: b, input: 'say yes please'}
            - {id: c, input: 'say no'}
        target: {type: python, callable: 'reply_app:answer'}
        scorers:
          - {type: learned, name: says-yes, evaluator: 'answers@1'}
"""


def _labels(path: Path) -> None:
    rows = [
        {"case_id": f"pass-{i}", "input": f"q{i}", "output": f"Yes, case {i}.", "label": "pass"}
        for i in range(10)
    ]
    rows += [
        {"case_id": f"fail-{i}", "input": f"q{i}", "output": f"No idea {i}.", "label": "fail"}
        for i in range(10)
    ]
    path.write_text("".join(json.dumps({**r, "author": "ann"}) + "\n" for r in rows))


def _project(tmp_path: Path, url: str) -> dict[str, str]:
    """The app, the suite and the labels of 20 cases imported as ``answers``; the CLI's env."""
    (tmp_path / "reply_app.py").write_text(APP)
    (tmp_path / "suites.yaml").write_text(SUITE)
    _labels(tmp_path / "answers.jsonl")
    env = {"CONTINUOUS_EVAL_DATABASE_URL": url}
    imported = cli(
        "eval-sets", "import", "answers.jsonl", "--eval-set", "answers", "--create",
        "--scale", "pass_fail", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    return env


def _api(port: int, method: str, path: str) -> tuple[int, Any]:
    response = httpx.request(
        method,
        f"http://127.0.0.1:{port}{path}",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={} if method == "POST" else None,
        timeout=10,
    )
    return response.status_code, response.json()


def test_labels_to_a_promoted_evaluator_in_a_scheduled_run(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    bwrap_path()  # the held-out cases and the scheduled run score in the sandbox
    env = _project(tmp_path, migrated_sqlite_url)

    cluster = Cluster(
        tmp_path,
        migrated_sqlite_url,
        env={
            "CONTINUOUS_EVAL_API_TOKENS": json.dumps([ADMIN]),
            "CONTINUOUS_EVAL_JOB_POLL_S": "0.2",
        },
    )
    with FakeAnthropicServer(api_key=FAKE_API_KEY) as claude:
        claude.script_evaluators(GOOD)
        try:
            writer = cluster.start(
                "writer",
                CONTINUOUS_EVAL_SCHEDULE_ENABLED="false",
                ANTHROPIC_API_KEY=FAKE_API_KEY,
                ANTHROPIC_BASE_URL=claude.base_url,
            )
            status, sets = _api(writer.port, "GET", "/api/eval-sets")
            assert status == 200, sets
            [answers] = [s for s in sets["items"] if s["name"] == "answers"]
            status, job = _api(writer.port, "POST", f"/api/eval-sets/{answers['id']}/generate")
            assert status == 202, job

            def finished() -> bool:
                _, current = _api(writer.port, "GET", f"/api/jobs/{job['id']}")
                return bool(current["status"] in ("succeeded", "failed", "cancelled"))

            wait_for(finished, 60, interval=0.2)
            _, done = _api(writer.port, "GET", f"/api/jobs/{job['id']}")
            assert done["status"] == "succeeded", (done, writer.output())
            assert done["result"]["ref"] == "answers@1"
            assert writer.stop() == 0
        finally:
            cluster.stop_all()

    # The model wrote it once, through the SDK's forced tool call.
    [request] = [r.body for r in claude.requests]
    assert request["tool_choice"]["type"] == "tool"
    assert request["tool_choice"]["name"] == "write_evaluator"

    promoted = cli("evaluators", "promote", "answers@1", cwd=tmp_path, env=env)
    assert promoted.returncode == 0, promoted.stderr
    shown = cli("evaluators", "show", "answers@1", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "accuracy:       100.0% on" in shown.stdout
    assert "promoted:       yes" in shown.stdout

    try:
        scheduler = cluster.start("scheduler")
        with database(migrated_sqlite_url) as engine:
            wait_for(lambda: any(r["status"] == "succeeded" for r in runs(engine, "replies")), 60)
            [run] = [r for r in runs(engine, "replies") if r["status"] == "succeeded"]
        assert run["run_type"] == "scheduled"
        status, page = _api(scheduler.port, "GET", f"/api/runs/{run['id']}/results?limit=10")
        assert status == 200, page
    finally:
        cluster.stop_all()
    scores = {r["case_id"]: (r["status"], r["score"]) for r in page["items"]}
    assert scores == {"a": ("ok", 1.0), "b": ("ok", 1.0), "c": ("ok", 0.0)}


def test_hostile_code_is_refused_or_contained_and_serve_keeps_serving(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    """The model answers, in turn: code importing socket, then (asked again) subprocess;
    a loop; a 2 GB allocation; an escape that reads /etc/passwd and opens a socket at
    run time; and good code. The check refuses the first job's two answers; the sandbox
    stops the three that pass it, on every held-out case; the good one is stored; and
    ``serve`` answers throughout."""
    bwrap_path()
    _project(tmp_path, migrated_sqlite_url)
    cluster = Cluster(
        tmp_path,
        migrated_sqlite_url,
        env={
            "CONTINUOUS_EVAL_API_TOKENS": json.dumps([ADMIN]),
            "CONTINUOUS_EVAL_JOB_POLL_S": "0.2",
            "CONTINUOUS_EVAL_SCHEDULE_ENABLED": "false",
            "CONTINUOUS_EVAL_SANDBOX_WALL_S": "1",
            "CONTINUOUS_EVAL_SANDBOX_CPU_S": "1",
        },
    )
    kinds = ["socket", "subprocess", "loop", "memory", "escape", "good"]
    with FakeAnthropicServer(api_key=FAKE_API_KEY) as claude:
        claude.script_evaluators(*(CODES[k] for k in kinds))
        try:
            serve = cluster.start(
                "writer", ANTHROPIC_API_KEY=FAKE_API_KEY, ANTHROPIC_BASE_URL=claude.base_url
            )
            _, sets = _api(serve.port, "GET", "/api/eval-sets")
            set_id = sets["items"][0]["id"]
            jobs = []
            for _ in range(5):
                status, job = _api(serve.port, "POST", f"/api/eval-sets/{set_id}/generate")
                assert status == 202, job
                jobs.append(job["id"])

            def all_done() -> bool:
                assert serve.get("/healthz")[0] == 200  # never down while the code runs
                states = [_api(serve.port, "GET", f"/api/jobs/{j}")[1]["status"] for j in jobs]
                return all(s in ("succeeded", "failed") for s in states)

            wait_for(all_done, 120, interval=0.3)
            done = [_api(serve.port, "GET", f"/api/jobs/{j}")[1] for j in jobs]
            _, versions = _api(serve.port, "GET", "/api/evaluators")
        finally:
            cluster.stop_all()
        asked = [json.dumps(r.body) for r in claude.requests]

    refused, loop, memory, escape, good = done
    assert refused["status"] == "failed"
    assert "importing 'subprocess' is not allowed" in refused["error"]
    # The first answer (socket) was refused too: the model was asked again, told why.
    assert len(asked) == 6
    assert "importing 'socket' is not allowed" in asked[1]
    for contained in (loop, memory, escape):
        assert contained["status"] == "succeeded", contained
        result = contained["result"]
        assert result["accuracy"] == 0.0
        assert result["errors"] == result["test_cases"] > 0
    assert good["status"] == "succeeded"
    assert good["result"]["accuracy"] == 1.0
    assert len(versions["items"]) == 4  # the refused job stored nothing
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    assert passwd not in json.dumps(done)
    store = SqlEvaluatorStore(make_engine(migrated_sqlite_url))
    try:
        why = {
            v.version: {str(c.value) for c in v.evaluator.metrics.contradictions}
            for v in store.list_evaluators("answers")
        }
    finally:
        store.close()
    assert why[1] == {"timeout: no answer within 1 s (wall time)"}
    assert why[2] == {"memory: MemoryError"}
    [escaped] = why[3]
    # Both attempts ran and both met a wall: no /etc in the sandbox, no way out of it.
    assert "FileNotFoundError" in escaped
    assert "got through" not in escaped
    assert escaped.count("Error(") == 2, escaped
