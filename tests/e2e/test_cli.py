"""The command line as a user runs it: a real process, a real database, real files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.e2e.cli_harness import cli


def _statuses(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("select status from eval_runs")]


def test_the_offline_example_runs_on_the_embedded_default(project: Path) -> None:
    result = cli("run", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "support-demo" in result.stdout
    for feature in ("faq-answers", "calculator", "ticket-triage"):
        assert feature in result.stdout
    assert "succeeded" in result.stdout
    db = project / "continuous-eval.db"
    assert _statuses(db) == ["succeeded"]
    with sqlite3.connect(db) as conn:
        run_id, total, scored, errored = conn.execute(
            "select id, total, scored, errored from eval_runs"
        ).fetchone()
        rows = conn.execute("select count(*) from eval_results").fetchone()[0]
    assert total == rows == scored + errored
    assert errored > 0  # the example has cases that error on purpose
    assert run_id in result.stdout

    listed = cli("runs", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert run_id in listed.stdout

    shown = cli("show", run_id, cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "worst" in shown.stdout
    assert "calculator" in shown.stdout

    missing = cli("show", "no-such-run", cwd=project)
    assert missing.returncode == 2
    assert "no run with id" in missing.stderr


def test_run_selects_a_suite_and_features(project: Path) -> None:
    result = cli("run", "--suite", "support-demo", "--feature", "calculator", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "calculator" in result.stdout
    assert "faq-answers" not in result.stdout

    unknown = cli("run", "--suite", "support-demo", "--feature", "nope", cwd=project)
    assert unknown.returncode == 2
    assert "no feature named 'nope'" in unknown.stderr


def test_check_config_validates_without_running(project: Path) -> None:
    result = cli("check-config", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert not (project / "continuous-eval.db").exists()


def test_check_config_counts_anchor_sets_apart_from_features(tmp_path: Path) -> None:
    (tmp_path / "suites.yaml").write_text(
        "suites:\n  s:\n    features:\n      f:\n"
        "        dataset: {cases: [{id: c1, input: hi}, {id: c2, input: there}]}\n"
        "        target: {type: python, callable: 'builtins:str'}\n"
        "        scorers: [{type: llm_judge, rubric: 'Is it right?'}]\n"
        "        anchors: {cases: [{id: a1, input: hi, output: kept}]}\n"
    )
    result = cli("check-config", "--config", str(tmp_path / "suites.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(1 suites, 1 features, 2 cases, 1 anchors)" in result.stdout


def test_check_config_says_an_online_feature_samples_up_to_its_max(tmp_path: Path) -> None:
    (tmp_path / "suites.yaml").write_text(
        "suites:\n  s:\n    features:\n      f:\n"
        "        dataset: {source: traces, feature: bot, sample: {max: 50}}\n"
        "        target: recorded\n"
        "        scorers: [{type: contains, value: refund}]\n"
    )
    result = cli("check-config", "--config", str(tmp_path / "suites.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(1 suites, 1 features, 0 cases, up to 50 sampled from traffic)" in result.stdout
    assert not (tmp_path / "continuous-eval.db").exists()  # validated, nothing read


BAD_CONFIGS = {
    "unknown scorer": (
        "suites:\n  s:\n    features:\n      f:\n        dataset: {cases: [{input: hi}]}\n"
        "        target: {type: python, callable: 'example_app:calculate'}\n"
        "        scorers: [{type: bleu}]\n",
        "suites.s.features.f.scorers[0]",
    ),
    "invalid regex": (
        "suites:\n  s:\n    features:\n      f:\n        dataset: {cases: [{input: hi}]}\n"
        "        target: {type: python, callable: 'example_app:calculate'}\n"
        "        scorers: [{type: regex, pattern: '(unclosed'}]\n",
        "suites.s.features.f.scorers[0].pattern",
    ),
    "wrong type": (
        "suites:\n  s:\n    concurrency: many\n    features:\n      f:\n"
        "        dataset: {cases: [{input: hi}]}\n"
        "        target: {type: python, callable: 'example_app:calculate'}\n"
        "        scorers: [{type: exact}]\n",
        "suites.s.concurrency",
    ),
    "row without input": (
        "suites:\n  s:\n    features:\n      f:\n        dataset: {path: data/bad.jsonl}\n"
        "        target: {type: python, callable: 'example_app:calculate'}\n"
        "        scorers: [{type: exact}]\n",
        "line 2",
    ),
    "csv missing column": (
        "suites:\n  s:\n    features:\n      f:\n        dataset: {path: data/bad.csv}\n"
        "        target: {type: python, callable: 'example_app:calculate'}\n"
        "        scorers: [{type: exact}]\n",
        "input",
    ),
    "unimportable callable": (
        "suites:\n  s:\n    features:\n      f:\n        dataset: {cases: [{input: hi}]}\n"
        "        target: {type: python, callable: 'no_such_module:fn'}\n"
        "        scorers: [{type: exact}]\n",
        "suites.s.features.f.target.callable",
    ),
}


@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_exits_2_with_one_clear_line(project: Path, case: str, command: str) -> None:
    text, where = BAD_CONFIGS[case]
    (project / "config" / "data" / "bad.jsonl").write_text(
        '{"id": "a", "input": "1 + 1"}\n{"id": "b", "expected": "2"}\n'
    )
    (project / "config" / "data" / "bad.csv").write_text("id,question,expected\na,1 + 1,2\n")
    config = project / "config" / "bad.yaml"
    config.write_text(text)
    result = cli(command, "--config", str(config), cwd=project)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith("error:")
    assert where in message
    assert "bad." in message  # names the file (the config or the dataset)
    db = project / "continuous-eval.db"
    if db.exists():
        assert "running" not in _statuses(db)


def test_missing_config_file(project: Path) -> None:
    result = cli("run", "--config", "config/nope.yaml", cwd=project)
    assert result.returncode == 2
    assert "config/nope.yaml" in result.stderr
    assert "not found" in result.stderr


@pytest.mark.postgres
def test_the_same_suite_runs_on_postgres(project: Path, empty_postgres_url: str) -> None:
    env = {"CONTINUOUS_EVAL_DATABASE_URL": empty_postgres_url}
    before = cli("run", cwd=project, env=env)
    assert before.returncode == 1
    assert "db upgrade" in before.stderr

    upgraded = cli("db", "upgrade", cwd=project, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    result = cli("run", cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    assert not (project / "continuous-eval.db").exists()


def test_every_config_problem_is_printed_each_on_its_own_line(project: Path) -> None:
    config = project / "config" / "two-problems.yaml"
    config.write_text(
        "suites:\n  s:\n    features:\n      f:\n        dataset: {cases: [{input: hi}]}\n"
        "        target: {type: python, calable: 'example_app:calculate'}\n"
        "        scorers: [{type: regex, pattern: '('}]\n"
        "      g:\n        dataset: {path: data/missing.jsonl}\n"
        "        target: {type: python, callable: 'example_app:calculate'}\n"
        "        scorers: [{type: exact}]\n"
    )
    result = cli("check-config", "--config", str(config), cwd=project)
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines() == [
        "error: config/two-problems.yaml: suites.s.features.f.target: "
        "unknown key 'calable' (did you mean 'callable'?)",
        "error: config/two-problems.yaml: suites.s.features.f.scorers[0].pattern: "
        "invalid regex: missing ), unterminated subpattern at position 0",
    ]


def test_every_bad_dataset_is_reported_before_any_run(project: Path) -> None:
    config = project / "config" / "datasets.yaml"
    config.write_text(
        "suites:\n  s:\n    features:\n"
        "      f:\n        dataset: {path: data/missing.jsonl}\n"
        "        target: {type: python, callable: 'example_app:calculate'}\n"
        "        scorers: [{type: exact}]\n"
        "      g:\n        dataset: {path: data/bad.jsonl}\n"
        "        target: {type: python, callable: 'no_such_module:fn'}\n"
        "        scorers: [{type: exact}]\n"
    )
    (project / "config" / "data" / "bad.jsonl").write_text('{"id": "a"}\n')
    result = cli("run", "--config", str(config), cwd=project)
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines() == [
        "error: config/datasets.yaml: suites.s.features.f.dataset.path: "
        "dataset file not found: config/data/missing.jsonl",
        "error: config/data/bad.jsonl: line 1: missing required key 'input'",
    ]
    assert not (project / "continuous-eval.db").exists()


@pytest.mark.parametrize("command", [["serve"], ["run"], ["db", "upgrade"]])
def test_a_bad_setting_exits_2_before_the_database_is_touched(
    project: Path, command: list[str]
) -> None:
    env = {
        "CONTINUOUS_EVAL_ALERT_WEBHOOK_URL": "not a url",
        "CONTINUOUS_EVAL_API_TOKENS": '["tok-secret-1"',
    }
    result = cli(*command, cwd=project, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [
        "error: environment: CONTINUOUS_EVAL_API_TOKENS: expected a JSON list, and the value "
        "is not valid JSON (Expecting ',' delimiter)",
        "error: environment: CONTINUOUS_EVAL_ALERT_WEBHOOK_URL: "
        "expected an http:// or https:// URL with a host",
    ]
    assert "tok-secret-1" not in result.stderr
    assert not (project / "continuous-eval.db").exists()
