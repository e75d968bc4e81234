"""Output a script can read and a person can trust, from real processes.

``--json`` documents, full ids and unique prefixes, lines that are never
wrapped when stdout is not a terminal, the same error count in the progress
bar and the table, ``init``, and shell completion.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from continuous_eval.adapters.clock import SystemClock
from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.core.models import NewRun, RunStatus
from tests.e2e.cli_harness import REPO, cli, piped
from tests.fixtures.alerts import FakeWebhook

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_run_runs_and_show_print_json_with_full_ids(project: Path) -> None:
    ran = cli("run", "--json", cwd=project)
    assert ran.returncode == 0, ran.stderr
    document = json.loads(ran.stdout)
    (run,) = document["runs"]
    assert UUID.match(run["id"])
    assert run["status"] == "succeeded"
    assert run["progress"]["cases_done"] == run["progress"]["cases_total"] == 23
    scores = {(s["feature"], s["scorer"]): s for s in run["scores"]}
    assert scores[("calculator", "numeric")]["errors"] == 1
    assert "┏" not in ran.stdout  # no table mixed into the document

    listed = json.loads(cli("runs", "--json", cwd=project).stdout)
    assert [r["id"] for r in listed["runs"]] == [run["id"]]

    shown = cli("show", run["id"][:8], "--json", "--worst", "3", cwd=project)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["id"] == run["id"]
    assert len(detail["worst"]) == 3
    assert detail["worst"][0]["status"] == "error"  # errors first
    assert detail["worst"][0]["run_id"] == run["id"]


def test_the_gate_is_in_the_json_document(project: Path) -> None:
    ran = cli("run", "--json", "--fail-on-regression", cwd=project)
    assert ran.returncode == 0, ran.stderr
    (run,) = json.loads(ran.stdout)["runs"]
    assert run["regressions"] == []
    assert run["compared"] is False  # no scheduled run yet: nothing to compare with
    assert "no_baseline" in {d["kind"] for d in run["decisions"]}

    required = cli("run", "--json", "--fail-on-regression", "--require-baseline", cwd=project)
    assert required.returncode == 4, required.stderr  # said plainly, in its own exit code


def test_show_takes_a_unique_prefix_and_explains_an_ambiguous_one(project: Path) -> None:
    url = f"sqlite:///{project / 'continuous-eval.db'}"
    upgraded = cli("db", "upgrade", cwd=project, env={"CONTINUOUS_EVAL_DATABASE_URL": url})
    assert upgraded.returncode == 0, upgraded.stderr
    store = SqlRunStore(make_engine(url), SystemClock())
    try:
        for run_id in ("abcd-1111", "abcd-2222", "abce-3333"):
            new = NewRun(
                id=run_id,
                suite="s",
                run_type="manual",
                features=("f",),
                cases_total=1,
                total=1,
                fingerprint="fp",
            )
            store.create_run(new)
            store.finish_run(run_id, RunStatus.SUCCEEDED, None, [])
    finally:
        store.close()

    unique = cli("show", "abce", cwd=project)
    assert unique.returncode == 0, unique.stderr
    assert "run abce-3333 [s] succeeded" in unique.stdout

    ambiguous = cli("show", "abcd", cwd=project)
    assert ambiguous.returncode == 2
    assert ambiguous.stderr.strip() == (
        "error: run id prefix 'abcd' is ambiguous: abcd-1111, abcd-2222"
    )
    short = cli("show", "abc", cwd=project)
    assert short.returncode == 2
    assert "a prefix needs 4 characters" in short.stderr


def test_piped_output_is_never_wrapped_or_cut(project: Path) -> None:
    ran = piped("run", cwd=project)
    assert ran.returncode == 0, ran.stderr
    last = ran.stdout.splitlines()[-1]
    assert re.fullmatch(
        r"run [0-9a-f-]{36} \[support-demo\] succeeded in [0-9.]+s: "
        r"23/23 cases, 34 scored, 2 errors",
        last,
    ), last
    assert len(last) > 80  # one line, longer than the 80 columns rich would wrap at

    listed = piped("runs", cwd=project)
    run_id = last.split()[1]
    assert any(line.lstrip().startswith(run_id) for line in listed.stdout.splitlines())
    assert "…" not in listed.stdout


def test_a_narrow_terminal_never_cuts_a_run_id(project: Path) -> None:
    assert cli("run", cwd=project).returncode == 0
    listed = cli("runs", cwd=project, env={"COLUMNS": "80"})
    assert listed.returncode == 0, listed.stderr
    ids = [w for w in listed.stdout.split() if UUID.match(w)]
    assert len(ids) == 1
    assert "…" not in listed.stdout


def test_the_bar_and_the_table_count_the_same_errors(project: Path) -> None:
    # One case whose target fails, with two scorers: one case, two errored results.
    config = project / "config" / "errors.yaml"
    config.write_text(
        "suites:\n  s:\n    features:\n      f:\n"
        "        dataset: {cases: [{id: bad, input: 'not arithmetic', expected: '0'}, "
        + ", ".join(f"{{id: ok{i}, input: '{i} + 1', expected: '{i + 1}'}}" for i in range(10))
        + "]}\n"
        "        target: {type: python, callable: 'example_app:calculate'}\n"
        "        scorers: [{type: exact}, {type: numeric}]\n"
    )
    ran = piped("run", "--config", str(config), cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert re.search(r"11/11 cases 2 errors", ran.stderr), ran.stderr
    rows = [line for line in ran.stdout.splitlines() if line.startswith("│ f ")]
    assert [int(row.split("│")[6]) for row in rows] == [1, 1]
    assert ran.stdout.splitlines()[-1].endswith("11/11 cases, 20 scored, 2 errors")


def test_init_writes_a_starter_that_runs_offline(tmp_path: Path) -> None:
    made = cli("init", "starter", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "starter"
    assert (root / "config" / "suites.yaml").read_text().startswith("# A starter suite")
    checked = cli("check-config", cwd=root)
    assert checked.returncode == 0, checked.stderr
    ran = cli("run", cwd=root)
    assert ran.returncode == 0, ran.stderr
    assert "succeeded" in ran.stdout

    # The settings file: every line a comment or blank, each setting once, and
    # uncommented it is a valid environment.
    settings = (root / "continuous-eval.env").read_text()
    names = re.findall(r"^# ([A-Z][A-Z0-9_]+)=(.*)$", settings, flags=re.MULTILINE)
    assert all(not line or line.startswith("#") for line in settings.splitlines())
    assert len(names) == len({n for n, _ in names}) > 40
    environment = {n: v for n, v in names if v}
    checked = cli("check-config", cwd=root, env=environment)
    assert checked.returncode == 0, checked.stderr

    again = cli("init", "starter", cwd=tmp_path)
    assert again.returncode == 2
    assert "already exist" in again.stderr
    assert cli("init", "starter", "--force", cwd=tmp_path).returncode == 0


def test_shell_completion_is_offered() -> None:
    shown = cli("--show-completion", "bash", cwd=REPO)
    assert shown.returncode == 0, shown.stderr
    assert "_continuous_eval_completion" in shown.stdout
    helped = cli("--help", cwd=REPO)
    assert "--install-completion" in helped.stdout


@pytest.mark.parametrize("command", ["runs", "trend"])
def test_empty_listings_are_valid_json(tmp_path: Path, command: str) -> None:
    listed = cli(command, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) in ({"runs": []}, {"items": []})


def test_a_cli_run_reports_to_the_run_webhook_before_it_exits(
    project: Path, fake_webhook: FakeWebhook
) -> None:
    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    env = {
        "CONTINUOUS_EVAL_RUN_WEBHOOK_URL": fake_webhook.url,
        "CONTINUOUS_EVAL_RUN_WEBHOOK_SECRET": secret,
    }
    ran = cli("run", "--json", cwd=project, env=env)
    assert ran.returncode == 0, ran.stderr
    (run,) = json.loads(ran.stdout)["runs"]
    (hook,) = fake_webhook.received  # delivered by the time the command returned
    body = Webhook(secret).verify(hook.raw, hook.headers)
    assert body["data"]["run_id"] == run["id"]
    assert body["data"]["status"] == "succeeded"
    assert secret not in ran.stderr


def test_a_run_webhook_without_its_secret_is_a_settings_error(project: Path) -> None:
    ran = cli("run", cwd=project, env={"CONTINUOUS_EVAL_RUN_WEBHOOK_URL": "https://x.example/h"})
    assert ran.returncode == 2
    assert "CONTINUOUS_EVAL_RUN_WEBHOOK_SECRET" in ran.stderr
