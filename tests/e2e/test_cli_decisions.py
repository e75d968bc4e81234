"""``show --decisions``, ``compare`` and ``alerts backtest``: real processes, a real SQLite file.

The database holds what the daemon would have written: scheduled runs of
suite ``shop`` (five good, two with both features down, two back), each
decided against the stored ones with its decisions stored, a manual run
decided as a candidate, and runs of another suite. Output is read piped (no
terminal, no COLUMNS), the way CI reads it, and as ``--json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.migrate import upgrade
from continuous_eval.adapters.db.store import SqlRunStore
from tests.e2e.cli_harness import cli, piped
from tests.fixtures.decisions import CASES, FALLEN, KEYS, add_run, fill_history

pytestmark = pytest.mark.slow

SUITES = """
suites:
  shop:
    features:
      answers: &feature
        dataset: {cases: [{id: c00, input: q, expected: a}]}
        target: {type: python, callable: "app:answer"}
        scorers: [{type: regex, pattern: "a"}]
      extra: *feature
  other:
    features:
      answers: *feature
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with the suite file and the embedded database, filled once."""
    root = tmp_path_factory.mktemp("decisions")
    (root / "config").mkdir()
    (root / "config" / "suites.yaml").write_text(SUITES)
    url = f"sqlite:///{root / 'continuous-eval.db'}"
    upgrade(url)
    store = SqlRunStore(make_engine(url))
    try:
        fill_history(store, "shop", "shop")
        add_run(store, "shop", "manual-01", FALLEN, run_type="manual")
        add_run(store, "other", "other-01", 0)
        add_run(store, "other", "bare-01", 0, run_type="manual", decide=False)
    finally:
        store.close()
    return root


def _json(project: Path, *args: str) -> Any:
    done = cli(*args, "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# ------------------------------------------------------------- show --decisions


def test_show_decisions_prints_every_key_and_every_fallen_case_unwrapped(project: Path) -> None:
    shown = piped("show", "shop-06", "--decisions", "--worst", "0", cwd=project)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("run shop-06 [shop] succeeded")
    rows = [ln for ln in lines if re.match(r"^\s*(answers|extra)\s+regex\s+regressed\b", ln)]
    assert len(rows) == 2
    for row in rows:  # one line each, never wrapped: every column is on it
        assert "opened" in row
        assert "1.000 -> 0.600" in row
        assert "-0.400 [" in row
        assert f"{FALLEN} of {CASES}" in row
    for feature, _ in KEYS:
        assert any(
            ln.startswith(f"{feature} / regex: regressed (opened): fell 0.400") for ln in lines
        )
    fallen = [ln.split()[0] for ln in lines if re.match(r"^\s*c\d\d\s+1\s+0\s+-1\.000\s*$", ln)]
    assert fallen == [f"c{i:02d}" for i in range(FALLEN)] * 2  # the complete list, per key
    assert "…" not in shown.stdout
    assert "shop-05, shop-04, shop-03, shop-02, shop-01" in shown.stdout


def test_show_decisions_lists_cases_of_a_key_still_down_and_of_a_candidate(project: Path) -> None:
    still = cli("show", "shop-07", "--decisions", cwd=project)
    assert still.returncode == 0, still.stderr
    assert "answers / regex: still_regressed: still down since run shop-06" in still.stdout
    manual = cli("show", "manual-01", "--decisions", cwd=project)
    assert "decisions as a candidate" in manual.stdout
    bare = cli("show", "bare-01", "--decisions", cwd=project)
    assert bare.returncode == 0, bare.stderr
    assert "run bare-01 has no stored decisions" in bare.stdout


def test_show_decisions_json_is_the_api_shape(project: Path) -> None:
    document = _json(project, "show", "shop-06", "--decisions")
    assert document["id"] == "shop-06"
    assert document["decided"] is True
    assert document["candidate"] is False
    decisions = {(d["feature"], d["scorer"]): d for d in document["decisions"]}
    assert set(decisions) == set(KEYS)
    for d in decisions.values():
        assert d["kind"] == "regressed"
        assert d["transition"] == "opened"
        assert len(d["fallen"]) == FALLEN
        assert d["p_adjusted"] <= 0.05
        assert d["incident"]["opened_run_id"] == "shop-06"
    plain = _json(project, "show", "shop-06")
    assert "decisions" not in plain  # only when asked
    bare = _json(project, "show", "bare-01", "--decisions")
    assert (bare["decided"], bare["decisions"]) == (False, [])


# ----------------------------------------------------------------------- compare


def test_compare_defaults_to_the_decisions_newest_baseline_falls_first(project: Path) -> None:
    shown = piped("compare", "shop-06", cwd=project)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == (
        "compare run shop-06 [shop] with run shop-05 "
        "(the newest known-good run each key's stored decision compared with)"
    )
    assert "answers / regex: 20 cases, 8 fell; baseline run shop-05, decided regressed" in lines
    first = lines.index(
        "answers / regex: 20 cases, 8 fell; baseline run shop-05, decided regressed"
    )
    assert lines[first + 1 : first + 4] == [
        "  c00  1 -> 0  (-1)",
        "    before: the right answer to case 0  why: case 0: matched",
        "    after:  a wrong answer to case 0  why: case 0: no match",
    ]

    document = _json(project, "compare", "shop-06")
    assert document["baseline_source"] == "decision"
    keys = {(k["feature"], k["scorer"]): k for k in document["keys"]}
    assert set(keys) == set(KEYS)
    cases = keys[("answers", "regex")]["cases"]
    assert keys[("answers", "regex")]["baseline_run_id"] == "shop-05"
    assert len(cases) == CASES
    assert [c["fell"] for c in cases] == [True] * FALLEN + [False] * (CASES - FALLEN)
    assert cases[0]["before"]["output_excerpt"] == "the right answer to case 0"
    assert cases[0]["after"]["rationale"] == "case 0: no match"
    assert cases[0]["difference"] == -1.0


def test_compare_with_a_given_baseline_and_one_feature(project: Path) -> None:
    document = _json(project, "compare", "shop-06", "shop-01", "--feature", "extra")
    assert document["baseline_source"] == "argument"
    (key,) = document["keys"]
    assert (key["feature"], key["baseline_run_id"]) == ("extra", "shop-01")
    assert sum(c["fell"] for c in key["cases"]) == FALLEN
    shown = cli("compare", "shop-06", "shop-01", "--feature", "extra", cwd=project)
    assert "with run shop-01 (as asked)" in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("compare", "nope-nope"), "no run with id 'nope-nope'"),
        (("compare", "shop"), "run id prefix 'shop' is ambiguous"),
        (("compare", "shop-06", "other-01"), "belongs to suite 'other', not 'shop'"),
        (("compare", "shop-06", "shop-06"), "cannot be compared with itself"),
        (("compare", "bare-01"), "run bare-01 has no stored decisions"),
        (("compare", "shop-01"), "give the BASELINE run to compare with"),
        (("compare", "shop-06", "--feature", "nope"), "has no results for feature 'nope'"),
        (("show", "nope-nope", "--decisions"), "no run with id 'nope-nope'"),
        (("alerts", "backtest", "--suite", "nope"), "no suite named 'nope'"),
        (("alerts", "backtest", "--fdr", "0.9"), "fdr must be in (0, 0.5)"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    project: Path, args: tuple[str, ...], message: str
) -> None:
    done = cli(*args, cwd=project)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert done.stderr.startswith("error: ")
    assert done.stdout == ""


# ---------------------------------------------------------------- alerts backtest


def test_backtest_prints_what_the_policy_would_have_sent(project: Path) -> None:
    shown = piped("alerts", "backtest", "--suite", "shop", cwd=project)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    opened = [ln for ln in lines if re.search(r"\bincident\s+opened\b", ln)]
    assert len(opened) == 2
    assert "shop-06" in opened[0]
    assert all("fell 0.400 (adjusted p=" in ln for ln in opened)
    recovered = [ln for ln in lines if re.search(r"\brecovery\s+recovered\b", ln)]
    assert len(recovered) == 2
    assert "shop-08" in recovered[0]
    assert lines[-1] == (
        "suite shop: 9 runs replayed, 1 incident report (2 incidents opened, 0 of them judge "
        "drift, 0 worsened), 2 recoveries; keys ever alerted: answers/regex, extra/regex"
    )


def test_backtest_json_and_overrides(project: Path) -> None:
    document = _json(project, "alerts", "backtest")
    suites = {s["suite"]: s for s in document["suites"]}
    assert set(suites) == {"shop", "other"}
    shop = suites["shop"]
    assert shop["runs_replayed"] == 9
    assert [r["run_id"] for r in shop["runs"]] == ["shop-06", "shop-08"]
    (incident,) = shop["runs"][0]["reports"]
    assert incident["kind"] == "regression"
    assert incident["features"] == ["answers", "extra"]
    assert {i["transition"] for i in incident["items"]} == {"opened"}
    assert (shop["incidents_opened"], shop["recoveries"]) == (2, 2)
    assert suites["other"]["runs"] == []

    strict = _json(project, "alerts", "backtest", "--suite", "shop", "--min-effect", "0.9")
    (only,) = strict["suites"]
    assert only["policy"]["pass_rate"] == {"min_effect": 0.9}
    assert only["runs"] == []
    holm = _json(
        project, "alerts", "backtest", "-s", "shop", "--correction", "holm", "--baseline-runs", "3"
    )
    assert (
        holm["suites"][0]["policy"]["correction"],
        holm["suites"][0]["policy"]["baseline_window"],
    ) == ("holm", 3)
    assert holm["suites"][0]["incidents_opened"] == 2
