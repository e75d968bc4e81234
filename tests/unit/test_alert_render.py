"""Rendering a run's report: subjects, bodies, escaping, webhook documents, and the stored bytes."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuous_eval.core.alert_render import (
    MAX_CASES_SHOWN,
    WEBHOOK_VERSION,
    canonical_json,
    email_renderer,
    render_email,
    render_webhook,
    summary_line,
    webhook_renderer,
)
from continuous_eval.core.alerting import IncidentReport, ReportKind, reports
from continuous_eval.core.models import CaseDrop
from continuous_eval.core.regression import AnchorCheck, Decision, DecisionKind, RunDecision

SENDER = "continuous-eval <alerts@example.com>"
TO = ("oncall@example.com",)
RUN_URL = "https://eval.example.com/runs/run-0002"


# ------------------------------------------------------------------ builders


def regressed(feature: str = "refunds", scorer: str = "judge", **overrides: Any) -> Decision:
    """A new incident: ``refunds/judge`` fell from 4.10 to 3.48 over 40 paired cases."""
    values: dict[str, Any] = {
        "feature": feature,
        "scorer": scorer,
        "kind": DecisionKind.REGRESSED,
        "message": "fell 0.620 (adjusted p=0.024): 4.100 -> 3.480 over 40 cases",
        "rule": "drop",
        "current": 3.48,
        "baseline": 4.10,
        "mean_difference": 3.48 - 4.10,
        "ci_low": -0.81,
        "ci_high": -0.43,
        "p_value": 0.0123,
        "p_adjusted": 0.0246,
        "n_paired": 40,
        "baseline_run_ids": ("run-0001", "run-0000"),
        "fallen": (CaseDrop("refund-7", 5.0, 1.0), CaseDrop("refund-3", 4.0, 2.0)),
        "transition": "opened",
    }
    values.update(overrides)
    return Decision(**values)


def judge_drift(feature: str = "refunds", scorer: str = "judge", **overrides: Any) -> Decision:
    """The judge's anchors moved -0.30; the target's fall of 0.30 is confounded by it."""
    values: dict[str, Any] = {
        "kind": DecisionKind.JUDGE_DRIFT,
        "message": "the judge moved -0.300 on 12 anchors (adjusted p=0.004)",
        "rule": None,
        "current": 3.80,
        "mean_difference": -0.30,
        "p_adjusted": 0.3,
        "anchor": AnchorCheck(12, -0.30, 0.002, 0.004, drifted=True),
        "corrected_difference": 0.0,
    }
    values.update(overrides)
    return regressed(feature, scorer, **values)


def recovered(feature: str = "refunds", scorer: str = "judge", **overrides: Any) -> Decision:
    """An incident closed: back at 4.05 against a known-good 4.10."""
    values: dict[str, Any] = {
        "kind": DecisionKind.RECOVERED,
        "message": "back at the known-good level (4.100 -> 4.050 over 40 cases): incident closed",
        "rule": None,
        "current": 4.05,
        "mean_difference": -0.05,
        "p_adjusted": None,
        "fallen": (CaseDrop("refund-3", 4.0, 3.0),),
        "transition": "recovered",
    }
    values.update(overrides)
    return regressed(feature, scorer, **values)


def report(
    *items: Decision,
    kind: ReportKind = "regression",
    suite: str = "support",
    run_id: str = "run-0002",
    run_url: str | None = None,
) -> IncidentReport:
    return IncidentReport(suite, run_id, kind, items or (regressed(),), run_url)


def fallen(n: int) -> tuple[CaseDrop, ...]:
    """``n`` fallen cases, worst first: case-00 fell most."""
    return tuple(CaseDrop(f"case-{i:02d}", 5.0, 1.0 + i / 100) for i in range(n))


def email(rep: IncidentReport | None = None, **kwargs: Any) -> dict[str, Any]:
    return render_email(rep or report(), sender=SENDER, recipients=TO, **kwargs)


HOSTILE = report(
    regressed(
        feature='f"&<b>',
        scorer="j>'",
        message="m<i>x</i>",
        baseline_run_ids=("b&1",),
        fallen=(CaseDrop("<img src=x onerror=alert(1)>", 5.0, 1.0),),
    ),
    suite="s<script>alert(1)</script>",
    run_id="r<1>",
)


# --------------------------------------------------------------------- email


def test_the_subject_names_the_suite_the_features_and_the_worst_falls() -> None:
    assert (
        email()["subject"] == "[continuous-eval] support: 1 feature regressed (refunds/judge -0.62)"
    )
    two = report(regressed(), regressed("billing", "pass_rate", mean_difference=-0.12, current=0.8))
    assert email(two)["subject"] == (
        "[continuous-eval] support: 2 features regressed "
        "(refunds/judge -0.62, billing/pass_rate -0.12)"
    )


def test_the_email_has_the_fields_resend_needs() -> None:
    rendered = email()
    assert set(rendered) == {"from", "to", "subject", "text", "html"}
    assert rendered["from"] == SENDER
    assert rendered["to"] == ["oncall@example.com"]  # a list even from a tuple


def test_the_text_body_holds_everything_needed_to_act() -> None:
    text = email()["text"]
    for expected in (
        "Scheduled run run-0002 of suite support regressed on 1 feature (1 key)",
        "Feature refunds",
        "refunds/judge: regressed, new incident (drop)",
        "known-good -> now  4.100 -> 3.480",
        "-0.620 (95% interval -0.810 to -0.430)",
        "0.012 / 0.025",
        "cases paired       40",
        "run-0001, run-0000",
        "fell 0.620 (adjusted p=0.024)",
        "refund-7  5.000 -> 1.000  (-4.000)",
        "refund-3  4.000 -> 2.000  (-2.000)",
    ):
        assert expected in text, expected
    assert text.index("refund-7") < text.index("refund-3")
    assert text.endswith("Alert key: support:run-0002:regression\n")


def test_a_further_fall_says_so() -> None:
    text = email(report(regressed(transition="worsened")))["text"]
    assert "refunds/judge: regressed, fell further (drop)" in text


def test_the_html_body_holds_the_same_facts() -> None:
    body = email()["html"]
    for header in ("known-good -&gt; now", "mean difference", "p / adjusted p", "cases paired"):
        assert f">{header}</th>" in body, header
    for cell in (">4.100 -&gt; 3.480<", ">0.012 / 0.025<", ">40<", ">refund-7<", ">-4.000<"):
        assert cell in body, cell
    assert "<h3>Feature refunds</h3>" in body
    assert "refunds/judge: regressed, new incident (drop)" in body
    assert "support:run-0002:regression" in body


def test_everything_from_the_suite_is_html_escaped() -> None:
    body = email(HOSTILE)["html"]
    for raw in ("<script>", "<img", 'f"&<b>', "<i>", "r<1>"):
        assert raw not in body, raw
    for escaped in (
        "&lt;script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
        "f&quot;&amp;&lt;b&gt;",
        "j&gt;&#x27;",
        "m&lt;i&gt;x&lt;/i&gt;",
        "r&lt;1&gt;",
        "b&amp;1",
    ):
        assert escaped in body, escaped


def test_the_subject_and_every_line_of_the_text_stay_one_line() -> None:
    rendered = email(report(regressed(feature="refunds\r\nBcc: evil@example.com")))
    assert "\n" not in rendered["subject"]
    assert "\r" not in rendered["subject"]
    assert "\r" not in rendered["text"]
    assert not any(line.startswith("Bcc:") for line in rendered["text"].splitlines())


def test_a_long_subject_names_what_fits_and_counts_the_rest() -> None:
    many = report(*(regressed(f"feature-{i:02d}", mean_difference=-1 + i / 100) for i in range(40)))
    subject = email(many)["subject"]
    assert len(subject) <= 250
    assert subject.startswith("[continuous-eval] support: 40 features regressed (feature-00/judge")
    assert subject.endswith(" more)")
    huge = email(report(regressed(feature="f" * 400)))["subject"]
    assert len(huge) == 250
    assert huge.endswith("\u2026")


def test_a_drift_says_what_it_was_compared_with() -> None:
    text = email(report(regressed(kind=DecisionKind.DRIFTING, rule="drift")))["text"]
    assert "refunds/judge: drifting, new incident (drift)" in text
    assert "sustained decline over recent runs" in text


def test_missing_and_non_finite_numbers_render_as_na() -> None:
    text = email(report(regressed(p_value=None, ci_low=None, ci_high=None)))["text"]
    assert "n/a / 0.025" in text
    assert "(95% interval n/a)" in text
    assert "n/a" in email(report(regressed(mean_difference=math.nan)))["text"]
    assert "<0.001" in email(report(regressed(p_value=1e-6)))["text"]


def test_no_paired_case_is_said_not_left_blank() -> None:
    rendered = email(report(regressed(fallen=(), n_paired=0)))
    assert "No case was scored both now and in the known-good runs." in rendered["text"]
    assert "No case was scored both now and in the known-good runs." in rendered["html"]
    assert "No paired case fell." in email(report(regressed(fallen=())))["text"]


def test_only_the_worst_cases_are_listed_and_the_rest_are_pointed_to() -> None:
    rep = report(regressed(fallen=fallen(MAX_CASES_SHOWN + 3)))
    rendered = email(rep)
    more = "... and 3 more, all listed in `continuous-eval show run-0002 --decisions`"
    for body in (rendered["text"], rendered["html"]):
        assert f"case-{MAX_CASES_SHOWN - 1:02d}" in body
        assert f"case-{MAX_CASES_SHOWN:02d}" not in body
    assert more in rendered["text"]
    assert more in rendered["html"]
    slack = json.dumps(render_webhook(rep, slack=True))
    assert f"case-{MAX_CASES_SHOWN:02d}" not in slack
    assert "and 3 more" in slack


def test_the_listed_command_quotes_the_run_id() -> None:
    text = email(report(regressed(fallen=fallen(11)), run_id="r 1;x"))["text"]
    assert "`continuous-eval show 'r 1;x' --decisions`" in text


def test_two_features_are_one_email_worst_first() -> None:
    billing = regressed("billing", "pass_rate", mean_difference=-0.12, current=0.83, baseline=0.95)
    tone = regressed("billing", "tone", mean_difference=-0.40)
    decision = RunDecision("support", "run-0002", False, "bh", 3, (billing, regressed(), tone))
    (rep,) = reports(decision, run_url=RUN_URL)

    rendered = email(rep)

    text = rendered["text"]
    assert text.index("Feature refunds") < text.index("Feature billing")
    assert text.index("billing/tone") < text.index("billing/pass_rate")  # worst first within
    assert "on 2 features (3 keys)" in text
    assert rendered["html"].index("Feature refunds") < rendered["html"].index("Feature billing")
    assert rendered["subject"] == (
        "[continuous-eval] support: 2 features regressed "
        "(refunds/judge -0.62, billing/tone -0.40, billing/pass_rate -0.12)"
    )


def test_a_recovery_report_names_what_recovered() -> None:
    judge_back = regressed(
        "billing",
        "tone",
        kind=DecisionKind.NOT_SIGNIFICANT,
        rule=None,
        transition="recovered",
        message="no regression: -0.010",
    )
    rep = report(recovered(), judge_back, kind="recovery")

    rendered = email(rep)

    assert (
        rendered["subject"] == "[continuous-eval] support: recovered: refunds/judge, billing/tone"
    )
    text = rendered["text"]
    assert "closed 2 incidents" in text
    assert "refunds/judge: recovered\n" in text  # said once, not "recovered, recovered"
    assert "billing/tone: recovered, the judge is back" in text
    assert "4.100 -> 4.050" in text
    assert text.endswith("Alert key: support:run-0002:recovery\n")
    document = render_webhook(rep, slack=False)
    assert document["event"] == "continuous_eval.recovery"
    assert [i["transition"] for i in document["items"]] == ["recovered", "recovered"]


def test_a_judge_drift_only_report_says_the_judge_changed() -> None:
    rendered = email(report(judge_drift()))

    assert rendered["subject"] == (
        "[continuous-eval] support: the judge moved on refunds/judge (-0.30 on anchors)"
    )
    text = rendered["text"]
    assert "refunds/judge: judge drift, new incident" in text
    assert "moved: -0.300 over 12 anchors, p 0.002, adjusted p 0.004" in text
    assert "corrected difference  +0.000" in text
    assert "the judge changed, not necessarily the product" in text
    assert "the judge changed, not necessarily the product" in rendered["html"]


def test_judge_drift_beside_regressions_is_counted_in_the_subject() -> None:
    rep = report(regressed(), judge_drift("billing", "tone"))
    assert summary_line(rep) == (
        "support: 1 feature regressed (refunds/judge -0.62); judge drift on 1 key"
    )
    assert "the judge moved on 1 key" in email(rep)["text"]


def test_a_steady_judge_is_shown_without_the_warning() -> None:
    steady = regressed(anchor=AnchorCheck(12, -0.01, 0.9, 0.9, drifted=False))
    text = email(report(steady))["text"]
    assert "steady: -0.010 over 12 anchors" in text
    assert "not necessarily the product" not in text


def test_the_run_is_linked_and_escaped() -> None:
    url = "https://eval.example.com/runs/run-0002?suite=support&tab=decisions"
    rendered = email(report(run_url=url), dashboard_url="https://eval.example.com")
    assert f'href="{url.replace("&", "&amp;")}"' in rendered["html"]
    assert f"Run: {url}" in rendered["text"]
    fallback = email(dashboard_url="https://eval.example.com")
    assert "Run: https://eval.example.com\n" in fallback["text"]
    assert "Run:" not in email()["text"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "ftp://x"])
def test_a_link_must_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        email(dashboard_url=url)
    with pytest.raises(ValueError, match="http"):
        email(report(run_url=url))
    with pytest.raises(ValueError, match="http"):
        render_webhook(report(), slack=True, dashboard_url=url)
    with pytest.raises(ValueError, match="http"):
        render_webhook(report(run_url=url), slack=False)


@pytest.mark.parametrize(
    ("sender", "recipients"), [("", TO), ("a@example.com", ()), ("a@example.com", ("", "b"))]
)
def test_an_email_needs_a_sender_and_recipients(sender: str, recipients: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"sender|recipient"):
        render_email(report(), sender=sender, recipients=recipients)


# ------------------------------------------------------------------- webhook


def test_the_generic_webhook_carries_every_field_of_every_decision() -> None:
    rep = report(regressed(), judge_drift("billing", "tone"), run_url=RUN_URL)

    document = render_webhook(rep, slack=False)

    assert document["event"] == "continuous_eval.regression"
    assert document["version"] == WEBHOOK_VERSION == 2
    assert document["key"] == rep.key
    assert document["summary"] == summary_line(rep)
    assert document["features"] == ["refunds", "billing"]
    assert document["run_url"] == RUN_URL
    # Pinned: a field of Decision added, renamed or dropped changes the document.
    fields = {f.name for f in dataclasses.fields(Decision)} - {"kind"} | {"decision"}
    assert all(set(item) == fields for item in document["items"])
    first, second = document["items"]
    assert first["decision"] == "regressed"
    assert first["mean_difference"] == pytest.approx(-0.62)
    assert first["baseline_run_ids"] == ["run-0001", "run-0000"]
    assert first["fallen"][0] == {"case_id": "refund-7", "before": 5.0, "after": 1.0, "delta": -4.0}
    assert second["anchor"] == {
        "n_paired": 12,
        "mean_difference": -0.30,
        "p_value": 0.002,
        "p_adjusted": 0.004,
        "drifted": True,
    }


def test_the_webhook_holds_every_fallen_case() -> None:
    document = render_webhook(report(regressed(fallen=fallen(MAX_CASES_SHOWN + 3))), slack=False)
    cases = [c["case_id"] for c in document["items"][0]["fallen"]]
    assert cases == [f"case-{i:02d}" for i in range(MAX_CASES_SHOWN + 3)]


def test_non_finite_numbers_are_null_in_json() -> None:
    rep = report(
        regressed(p_value=math.inf, current=math.nan, fallen=(CaseDrop("c", math.nan, 1.0),))
    )
    document = render_webhook(rep, slack=False)
    item = document["items"][0]
    assert item["p_value"] is None
    assert item["current"] is None
    assert item["fallen"][0]["before"] is None
    assert item["fallen"][0]["delta"] is None
    canonical_json(document)  # storable
    canonical_json(render_webhook(rep, slack=True))
    canonical_json(email(rep))


def test_the_slack_payload_has_text_and_blocks() -> None:
    rep = report(regressed(), regressed("billing", "pass_rate"), run_url=RUN_URL)

    payload = render_webhook(rep, slack=True)

    assert set(payload) == {"text", "blocks"}
    assert payload["text"] == (
        "[continuous-eval] support: 2 features regressed "
        "(refunds/judge -0.62, billing/pass_rate -0.62)"
    )
    types = [block["type"] for block in payload["blocks"]]
    assert types == ["header", "section", "section", "section", "context", "actions"]
    header = payload["blocks"][0]["text"]
    assert header["type"] == "plain_text"
    assert len(header["text"]) <= 150
    assert "refund-7" in payload["blocks"][2]["text"]["text"]
    assert "billing/pass_rate" in payload["blocks"][3]["text"]["text"]
    assert payload["blocks"][-1]["elements"][0]["url"] == RUN_URL


def test_slack_markup_in_names_is_escaped() -> None:
    payload = render_webhook(HOSTILE, slack=True)
    text = json.dumps(payload["blocks"][1:])
    for raw in ("<script>", "<img", "<i>", "<1>", "b&1"):
        assert raw not in text, raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<" not in payload["text"]
    assert "->" not in text  # even the labels' arrows are entities


def test_a_long_header_is_cut_for_slack() -> None:
    payload = render_webhook(report(regressed(feature="f" * 400)), slack=True)
    assert len(payload["blocks"][0]["text"]["text"]) == 150


def test_a_large_report_stays_within_slack_limits() -> None:
    huge = CaseDrop("c" * 2000, 5.0, 1.0)
    items = [regressed(f"feature-{i:02d}", fallen=(huge,) * 12) for i in range(30)]

    payload = render_webhook(report(*items), slack=True)

    blocks = payload["blocks"]
    assert len(blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert (
        "10 more keys, all listed in `continuous-eval show run-0002 --decisions`"
        in blocks[-2]["text"]["text"]
    )


# ----------------------------------------------------------------- the bytes


def test_rendering_is_deterministic() -> None:
    def build() -> IncidentReport:
        return report(regressed(fallen=fallen(12)), judge_drift("billing"), run_url=RUN_URL)

    renders: list[Callable[[IncidentReport], dict[str, Any]]] = [
        email,
        lambda r: render_webhook(r, slack=False),
        lambda r: render_webhook(r, slack=True),
    ]
    for render in renders:
        assert render(build()) == render(build())
        assert canonical_json(render(build())) == canonical_json(render(build()))


names = st.text(min_size=1, max_size=40)


@given(suite=names, feature=names, case_id=names, run_id=names)
def test_any_names_render_to_storable_bytes(
    suite: str, feature: str, case_id: str, run_id: str
) -> None:
    rep = report(
        regressed(feature, fallen=(CaseDrop(case_id, 5.0, 1.0),)), suite=suite, run_id=run_id
    )
    rendered = email(rep)
    assert not any(ord(c) < 32 or ord(c) == 127 for c in rendered["subject"])
    for payload in (rendered, render_webhook(rep, slack=False), render_webhook(rep, slack=True)):
        text = canonical_json(payload)
        assert canonical_json(json.loads(text)) == text


def test_canonical_json_is_sorted_compact_ascii() -> None:
    assert canonical_json({"b": 1, "a": ["é", 1.5]}) == '{"a":["\\u00e9",1.5],"b":1}'


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON"):
        canonical_json({"x": math.nan})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values))
def test_canonical_json_survives_a_parse_and_a_dump(payload: dict[str, Any]) -> None:
    text = canonical_json(payload)
    assert canonical_json(json.loads(text)) == text


def test_the_renderers_give_the_stored_text() -> None:
    rep = report(run_url=RUN_URL)
    render = email_renderer(sender=SENDER, recipients=list(TO))
    assert render(rep) == canonical_json(email(rep))
    for slack in (True, False):
        assert webhook_renderer(slack=slack)(rep) == canonical_json(
            render_webhook(rep, slack=slack)
        )


def test_the_renderers_check_their_settings_when_built() -> None:
    with pytest.raises(ValueError, match="recipient"):
        email_renderer(sender=SENDER, recipients=[])
    with pytest.raises(ValueError, match="sender"):
        email_renderer(sender=" ", recipients=TO)
    with pytest.raises(ValueError, match="http"):
        email_renderer(sender=SENDER, recipients=TO, dashboard_url="javascript:x")
    for slack in (True, False):
        with pytest.raises(ValueError, match="http"):
            webhook_renderer(slack=slack, dashboard_url="javascript:x")
