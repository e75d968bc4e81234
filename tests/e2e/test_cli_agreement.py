"""``continuous-eval agreement``: latest figures, trend and contradictions, from a real process."""

from __future__ import annotations

import json
from pathlib import Path

from continuous_eval.adapters.db.agreement import SqlAgreementStore
from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.core.agreement import JudgedCase, RunAgreement, measure
from continuous_eval.testing import FakeClock
from continuous_eval.testing.builders import new_run
from tests.e2e.cli_harness import cli


def _seed(url: str) -> None:
    engine = make_engine(url)
    clock = FakeClock()
    runs, agreements = SqlRunStore(engine, clock), SqlAgreementStore(engine, clock)
    try:
        for i, wrong in enumerate((0, 3, 8)):
            runs.create_run(new_run(f"run-{i}"))
            cases = [
                JudgedCase(f"case-{c:02d}", 1.0 if c < wrong else 5.0, c >= wrong, 1.0)
                for c in range(16)
            ]
            cases += [JudgedCase(f"bad-{c}", 1.0, False, 0.0) for c in range(4)]
            measured = measure(cases, "pass_fail")
            agreements.put_agreements(
                [RunAgreement(f"run-{i}", "support", "refunds", "judge", "gold", measured)]
            )
            clock.advance(seconds=3600)
    finally:
        engine.dispose()


def test_agreement_prints_the_latest_the_trend_and_the_contradictions(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    _seed(migrated_sqlite_url)
    env = {"CONTINUOUS_EVAL_DATABASE_URL": migrated_sqlite_url}
    shown = cli("agreement", "--suite", "support", "--top", "3", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "support/refunds judge judge: eval set gold (pass_fail)" in out
    assert "run run-2: kappa" in out
    assert "on 20 cases (0 left out: people split)" in out
    kappas = next(x for x in out.splitlines() if "kappa by run" in x).split(":")[1].split()
    assert kappas[-1] == "1.00"
    assert float(kappas[0]) < float(kappas[1]) < 1.0
    assert "worst 3 contradictions" in out
    assert "case-00" in out
    assert "case-03" not in out

    as_json = cli("agreement", "--suite", "support", "--json", cwd=tmp_path, env=env)
    assert as_json.returncode == 0, as_json.stderr
    (judge,) = json.loads(as_json.stdout)["judges"]
    assert judge["latest"]["run_id"] == "run-2"
    assert [t["run_id"] for t in judge["trend"]] == ["run-2", "run-1", "run-0"]

    empty = cli("agreement", "--suite", "nope", cwd=tmp_path, env=env)
    assert empty.returncode == 0
    assert "no agreement measured yet for suite nope" in empty.stdout
