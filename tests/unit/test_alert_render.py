"""Rendering alerts: subjects, bodies, escaping, webhook documents, and the stored bytes."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuous_eval.core.alert_render import (
    MAX_CASES_SHOWN,
    canonical_json,
    email_renderer,
    render_email,
    render_webhook,
    summary_line,
    webhook_renderer,
)
from continuous_eval.core.models import CaseDrop, Regression

SENDER = "continuous-eval <alerts@example.com>"
TO = ("oncall@example.com",)


def regression(**overrides: Any) -> Regression:
    values: dict[str, Any] = {
        "suite": "support",
        "feature": "refunds",
        "scorer": "judge",
        "rule": "drop",
        "run_id": "run-0002",
        "baseline_run_id": "run-0001",
        "baseline": 4.10,
        "current": 3.48,
        "delta": 3.48 - 4.10,
        "p_value": 0.0123,
        "cases_paired": 40,
        "worst_cases": (CaseDrop("refund-7", 5.0, 1.0), CaseDrop("refund-3", 4.0, 2.0)),
    }
    values.update(overrides)
    return Regression(**values)


def email(reg: Regression | None = None, **kwargs: Any) -> dict[str, Any]:
    return render_email(reg or regression(), sender=SENDER, recipients=TO, **kwargs)


HOSTILE = regression(
    suite="s<script>alert(1)</script>",
    feature='f"&<b>',
    scorer="j>'",
    run_id="r<1>",
    baseline_run_id="b&1",
    worst_cases=(CaseDrop("<img src=x onerror=alert(1)>", 5.0, 1.0),),
)


# --------------------------------------------------------------------- email


def test_the_subject_names_the_suite_the_pair_and_the_fall() -> None:
    assert email()["subject"] == (
        "[continuous-eval] support: refunds/judge fell 0.62 (4.10 -> 3.48)"
    )


def test_the_email_has_the_fields_resend_needs() -> None:
    rendered = email()
    assert set(rendered) == {"from", "to", "subject", "text", "html"}
    assert rendered["from"] == SENDER
    assert rendered["to"] == ["oncall@example.com"]  # a list even from a tuple


def test_the_text_body_holds_the_table_the_cases_and_the_run() -> None:
    text = email()["text"]
    for expected in (
        "refunds/judge",
        "drop (against the previous scheduled run run-0001)",
        "4.100",
        "3.480",
        "-0.620",
        "0.012",
        "40",
        "run-0002",
        "refund-7  5.000 -> 1.000  (-4.000)",
        "refund-3  4.000 -> 2.000  (-2.000)",
    ):
        assert expected in text, expected


def test_the_html_body_holds_a_table_of_what_fell() -> None:
    body = email()["html"]
    for header in ("rule", "baseline", "current", "delta", "p-value", "cases paired"):
        assert f">{header}</th>" in body
    for cell in (">drop<", ">4.100<", ">3.480<", ">-0.620<", ">0.012<", ">40<", ">refund-7<"):
        assert cell in body, cell
    assert "run-0002" in body


def test_everything_from_the_suite_is_html_escaped() -> None:
    rendered = email(HOSTILE)
    body = rendered["html"]
    assert "<script>" not in body
    assert "<img" not in body
    assert 'f"&<b>' not in body
    assert "&lt;script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "f&quot;&amp;&lt;b&gt;" in body
    assert "r&lt;1&gt;" in body
    assert "b&amp;1" in body


def test_the_subject_is_one_line() -> None:
    subject = email(regression(feature="refunds\r\nBcc: evil@example.com"))["subject"]
    assert "\n" not in subject
    assert "\r" not in subject


def test_a_drift_regression_says_what_it_was_compared_with() -> None:
    rendered = email(regression(rule="drift", baseline_run_id=None))
    assert "median of recent scheduled runs" in rendered["text"]
    assert "baseline run" not in rendered["html"]


def test_missing_and_non_finite_numbers_render_as_na() -> None:
    rendered = email(regression(p_value=None))
    assert "p-value" in rendered["text"]
    assert "n/a" in rendered["text"]
    assert "n/a" in email(regression(p_value=math.nan))["text"]
    assert "<0.001" in email(regression(p_value=1e-6))["text"]


def test_no_paired_case_is_said_not_left_blank() -> None:
    rendered = email(regression(worst_cases=(), cases_paired=0))
    assert "No case was scored in both runs" in rendered["text"]
    assert "No case was scored in both runs" in rendered["html"]


def test_only_the_worst_cases_are_listed() -> None:
    cases = tuple(CaseDrop(f"case-{i:02d}", 5.0, 1.0) for i in range(MAX_CASES_SHOWN + 3))
    rendered = email(regression(worst_cases=cases))
    assert f"case-{MAX_CASES_SHOWN - 1:02d}" in rendered["text"]
    assert f"case-{MAX_CASES_SHOWN:02d}" not in rendered["text"]
    assert "and 3 more" in rendered["text"]
    assert "and 3 more" in rendered["html"]


def test_the_dashboard_is_linked_and_escaped() -> None:
    url = "https://eval.example.com/trend?suite=support&feature=refunds"
    rendered = email(dashboard_url=url)
    assert (
        'href="https://eval.example.com/trend?suite=support&amp;feature=refunds"'
        in (rendered["html"])
    )
    assert f"Dashboard: {url}" in rendered["text"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "ftp://x"])
def test_a_dashboard_link_must_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        email(dashboard_url=url)
    with pytest.raises(ValueError, match="http"):
        render_webhook(regression(), slack=True, dashboard_url=url)


@pytest.mark.parametrize(
    ("sender", "recipients"), [("", TO), ("a@example.com", ()), ("a@example.com", ("", "b"))]
)
def test_an_email_needs_a_sender_and_recipients(sender: str, recipients: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"sender|recipient"):
        render_email(regression(), sender=sender, recipients=recipients)


# ------------------------------------------------------------------- webhook


def test_the_generic_webhook_carries_every_field_of_the_regression() -> None:
    document = render_webhook(regression(), slack=False)

    fields = {f.name for f in dataclasses.fields(Regression)}
    assert fields <= set(document)
    assert document["event"] == "continuous_eval.regression"
    assert document["version"] == 1
    assert document["key"] == regression().key
    assert document["summary"] == summary_line(regression())
    assert document["delta"] == pytest.approx(-0.62)
    assert document["worst_cases"][0] == {
        "case_id": "refund-7",
        "before": 5.0,
        "after": 1.0,
        "delta": -4.0,
    }


def test_non_finite_numbers_are_null_in_json() -> None:
    document = render_webhook(regression(p_value=math.inf, current=math.nan), slack=False)
    assert document["p_value"] is None
    assert document["current"] is None
    canonical_json(document)  # storable


def test_the_slack_payload_has_text_and_blocks() -> None:
    payload = render_webhook(regression(), slack=True, dashboard_url="https://e.example.com")

    assert set(payload) == {"text", "blocks"}
    assert payload["text"] == "[continuous-eval] support: refunds/judge fell 0.62 (4.10 -&gt; 3.48)"
    types = [block["type"] for block in payload["blocks"]]
    assert types == ["header", "section", "section", "context", "actions"]
    header = payload["blocks"][0]["text"]
    assert header["type"] == "plain_text"
    assert len(header["text"]) <= 150
    fields = payload["blocks"][1]["fields"]
    assert len(fields) <= 10
    assert all(field["type"] == "mrkdwn" for field in fields)
    assert "refund-7" in payload["blocks"][2]["text"]["text"]


def test_slack_markup_in_names_is_escaped() -> None:
    payload = render_webhook(HOSTILE, slack=True)
    text = json.dumps(payload["blocks"][1:])
    assert "<script>" not in text
    assert "<img" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<" not in payload["text"]


def test_a_long_header_is_cut_for_slack() -> None:
    payload = render_webhook(regression(feature="f" * 400), slack=True)
    assert len(payload["blocks"][0]["text"]["text"]) == 150


# ----------------------------------------------------------------- the bytes


def test_rendering_is_deterministic() -> None:
    for render in (
        lambda r: email(r),
        lambda r: render_webhook(r, slack=False),
        lambda r: render_webhook(r, slack=True),
    ):
        assert render(regression()) == render(regression())
        assert canonical_json(render(regression())) == canonical_json(render(regression()))


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
    render = email_renderer(sender=SENDER, recipients=list(TO))
    assert render(regression()) == canonical_json(email())
    assert webhook_renderer(slack=True)(regression()) == canonical_json(
        render_webhook(regression(), slack=True)
    )


def test_the_renderers_check_their_settings_when_built() -> None:
    with pytest.raises(ValueError, match="recipient"):
        email_renderer(sender=SENDER, recipients=[])
    with pytest.raises(ValueError, match="http"):
        webhook_renderer(slack=False, dashboard_url="javascript:x")
