"""Calibration's rules: the suite file key, the labels feature's fingerprint, when to notify."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from continuous_eval.adapters.suite_files import LoadedSuites
from continuous_eval.app.scanning import scan_suite
from continuous_eval.core import calibration
from continuous_eval.core.agreement import JudgedCase, RunAgreement, measure
from continuous_eval.core.labels import EvalCase, NewLabel
from continuous_eval.core.models import AlertKind, AlertRecord
from continuous_eval.core.suite import Calibration, format_location, parse_suite_file
from continuous_eval.settings import Settings
from continuous_eval.testing import DEFAULT_START, FakeClock
from continuous_eval.testing.labels import InMemoryEvalSetStore


def suite_file(feature: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dataset": {"cases": [{"input": "q", "output": "a"}]},
        "target": {"type": "frozen"},
        "scorers": [{"type": "llm_judge", "name": "judge", "rubric": "Right?"}],
    }
    return {"suites": {"support": {"features": {"refunds": {**base, **feature}}}}}


def errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        parse_suite_file(data)
    return [(format_location(e["loc"]), e["msg"]) for e in info.value.errors()]


def test_calibration_validates_with_defaults() -> None:
    parsed = parse_suite_file(suite_file({"calibration": {"eval_set": "gold"}}))
    config = parsed.suites["support"].features["refunds"].calibration
    assert config == Calibration(eval_set="gold", min_kappa=None, min_cases=20)


def test_bad_calibration_keys_are_named() -> None:
    got = errors(suite_file({"calibration": {"eval_set": "gold", "min_kappa": 2, "floor": 1}}))
    where = [w for w, _ in got]
    assert "suites.support.features.refunds.calibration.min_kappa" in where
    assert "suites.support.features.refunds.calibration.floor" in where
    missing = errors(suite_file({"calibration": {"min_kappa": 0.5}}))
    assert missing[0][0] == "suites.support.features.refunds.calibration.eval_set"


def test_calibration_needs_a_judge() -> None:
    data = suite_file({"calibration": {"eval_set": "gold"}})
    data["suites"]["support"]["features"]["refunds"]["scorers"] = [{"type": "exact"}]
    ((where, message),) = errors(data)
    assert where == "suites.support.features.refunds"
    assert "needs an llm_judge" in message


def _loaded(data: dict[str, Any]) -> LoadedSuites:
    path = Path("/nonexistent/suites.yaml")
    return LoadedSuites(parse_suite_file(data), path, path.parent, "suites.yaml")


def test_the_labels_feature_is_fingerprinted_by_its_cases_and_labels() -> None:
    clock = FakeClock()
    sets = InMemoryEvalSetStore(clock)
    gold = sets.create_eval_set("gold", "pass_fail")
    sets.put_cases(gold.id, [EvalCase("c1", "q1", "a1"), EvalCase("c2", "q2", "a2")])
    sets.add_labels(gold.id, [NewLabel("c1", "ann", 1.0)])
    loaded = _loaded(suite_file({"calibration": {"eval_set": "gold"}}))

    def scan(**kw: Any) -> dict[str, Any]:
        scanned = scan_suite(loaded, "support", [], Settings(), labels=sets, **kw)
        return {f.name: f for f in scanned.features}

    first = scan()["refunds@labels"]
    assert first.case_count == 1  # only labelled cases are judged
    assert first.cases is not None
    assert first.cases[0].output == "a1"
    assert [s.type for s in first.feature.scorers] == ["llm_judge"]
    clock.advance(timedelta(hours=1))
    sets.add_labels(gold.id, [NewLabel("c1", "ann", 0.0)])
    relabelled = scan()["refunds@labels"]
    assert relabelled.fingerprint.dataset != first.fingerprint.dataset
    as_before = scan(as_of=DEFAULT_START)["refunds@labels"]
    assert as_before.fingerprint == first.fingerprint
    # Without a store (check-config, start-up) or a set, nothing is judged.
    assert "refunds@labels" not in {
        f.name for f in scan_suite(loaded, "support", [], Settings()).features
    }
    missing = _loaded(suite_file({"calibration": {"eval_set": "nope"}}))
    names = scan_suite(missing, "support", [], Settings(), labels=sets).features
    assert [f.name for f in names] == ["refunds"]
    # A run's stored features name the labels feature; planning it again finds it.
    again = scan_suite(loaded, "support", ["refunds@labels", "refunds"], Settings(), labels=sets)
    assert [f.name for f in again.features] == ["refunds", "refunds@labels"]


FLOOR = Calibration(eval_set="gold", min_kappa=0.6, min_cases=4)


def row(run_id: str, wrong: int, n: int = 10) -> RunAgreement:
    cases = [
        JudgedCase(f"c{i}", score=5.0 if (i % 2 == 0) != (i < wrong) else 1.0,
                   passed=(i % 2 == 0) != (i < wrong), label=1.0 if i % 2 == 0 else 0.0)
        for i in range(n)
    ]  # fmt: skip
    return RunAgreement(run_id, "support", "refunds", "judge", "gold", measure(cases, "pass_fail"))


def alert(kind: AlertKind, n: int) -> AlertRecord:
    return AlertRecord(
        id=n, key=f"k{n}", channel="none", kind=kind, run_id=f"r{n}", suite="support",
        feature="refunds", scorer="judge", rule=None, status="suppressed", payload="",
        summary={}, reason=None, attempts=0, next_attempt_at=None, last_error=None,
        provider_id=None, created_at=DEFAULT_START + timedelta(hours=n), sent_at=None,
        claimed_by=None, claimed_until=None,
    )  # fmt: skip


def test_under_the_floor_notifies_once_and_back_above_once() -> None:
    bad, good = row("r2", wrong=4), row("r3", wrong=0)
    fired = calibration.decide(
        bad, FLOOR, scheduled=True, previous=good, last_alert=None, last_ok=None
    )
    assert fired is not None
    assert fired.kind == "judge_agreement"
    assert fired.previous == pytest.approx(1.0)
    assert fired.key == "support:refunds:judge:judge_agreement:r2"
    opened = alert("judge_agreement", 2)
    still = calibration.decide(
        bad, FLOOR, scheduled=True, previous=bad, last_alert=opened, last_ok=None
    )
    assert still is None
    back = calibration.decide(
        good, FLOOR, scheduled=True, previous=bad, last_alert=opened, last_ok=None
    )
    assert back is not None
    assert back.kind == "agreement_ok"
    closed = alert("agreement_ok", 3)
    assert (
        calibration.decide(
            good, FLOOR, scheduled=True, previous=good, last_alert=opened, last_ok=closed
        )
        is None
    )


def test_manual_small_degenerate_or_unfloored_runs_never_notify() -> None:
    bad = row("r2", wrong=4)
    kw: dict[str, Any] = {"previous": None, "last_alert": None, "last_ok": None}
    assert calibration.decide(bad, FLOOR, scheduled=False, **kw) is None
    assert calibration.decide(row("r", wrong=2, n=3), FLOOR, scheduled=True, **kw) is None
    no_floor = Calibration(eval_set="gold")
    assert calibration.decide(bad, no_floor, scheduled=True, **kw) is None
    same = [JudgedCase(f"c{i}", 5.0, True, 1.0) for i in range(10)]
    one_category = RunAgreement(
        "r", "support", "refunds", "judge", "gold", measure(same, "pass_fail")
    )
    assert one_category.agreement.kappa is None
    assert calibration.decide(one_category, FLOOR, scheduled=True, **kw) is None


def test_notices_render_for_every_channel_with_the_worst_contradictions() -> None:
    notice = calibration.decide(
        row("r2", wrong=4), FLOOR, scheduled=True, previous=None, last_alert=None, last_ok=None
    )
    assert notice is not None
    email = calibration.render_email(notice, sender="a@x", recipients=["b@x"], dashboard_url=None)
    assert "no longer agrees with your labels" in email["subject"]
    assert "floor 0.60, previous run not measured" in email["text"]
    assert "case c1: the judge said 1" in email["text"]
    slack = calibration.render_webhook(notice, slack=True, dashboard_url="https://d")
    assert slack["text"].startswith("[continuous-eval] the judge no longer agrees")
    assert slack["text"].endswith(" <https://d|open>")
    doc = calibration.render_webhook(notice, slack=False, dashboard_url=None)
    assert doc["event"] == "continuous_eval.judge_agreement"
    json.dumps(doc, allow_nan=False)
    assert doc["contradictions"][0]["case_id"] == "c1"


def test_every_configured_channel_gets_an_agreement_renderer() -> None:
    from continuous_eval.app.alerts import alert_wiring

    settings = Settings(
        alert_webhook_url="https://hooks.example/x",
        resend_api_key="re_test",
        alert_email_from="eval@example.com",
        alert_email_to=["team@example.com"],
    )
    wiring = alert_wiring(settings)
    assert set(wiring.agreement_renderers) == {"email", "webhook"}
    notice = calibration.decide(
        row("r2", wrong=4), FLOOR, scheduled=True, previous=None, last_alert=None, last_ok=None
    )
    assert notice is not None
    hook = json.loads(wiring.agreement_renderers["webhook"](notice))
    assert hook["event"] == "continuous_eval.judge_agreement"
    mail = json.loads(wiring.agreement_renderers["email"](notice))
    assert mail["to"] == ["team@example.com"]
