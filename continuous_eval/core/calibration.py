"""When a judge stops agreeing with people: tell them once, and once more when it agrees again.

A calibrated feature's judges score an eval set's labelled cases every run
(``<feature>@labels``); ``core.agreement`` measures how far they agree. Here
the pure rules turn that figure into notices:

- The first *scheduled* run whose kappa is under the feature's ``min_kappa``,
  measured on at least ``min_cases`` cases, opens a notice "the judge no
  longer agrees with your labels" (kind ``judge_agreement``). The runs after
  it, still under the floor, send nothing more; the first scheduled run back
  at or above the floor sends a recovery notice (``agreement_ok``). The
  open/closed state is the outbox itself, as for outages (``core.outage``):
  the judge's newest ``judge_agreement`` row against its newest
  ``agreement_ok`` row.
- A run that cannot measure (fewer than ``min_cases`` cases with a consensus,
  or kappa undefined because judge and people used one category only) says
  nothing and changes nothing: exact agreement on a degenerate set would alert
  on noise. Its figures are still stored and shown.
- Manual runs are measured and stored but never alert: the schedule is what
  people rely on, and a manual run is someone watching.

Pure: the decision and the rendering take the stored rows as arguments and
read no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from continuous_eval.core.agreement import Contradiction, JudgedCase, RunAgreement
from continuous_eval.core.labels import LabelledCase, LabelScale, consensus
from continuous_eval.core.models import AlertRecord
from continuous_eval.core.outage import is_open
from continuous_eval.core.suite import Calibration

AgreementKind = Literal["judge_agreement", "agreement_ok"]

SUBJECT_PREFIX: Final = "[continuous-eval]"
WEBHOOK_EVENTS: Final = {
    "judge_agreement": "continuous_eval.judge_agreement",
    "agreement_ok": "continuous_eval.agreement_ok",
}
"""The ``event`` of a generic webhook document, per kind."""

SHOWN_CONTRADICTIONS: Final = 5
"""Contradictions a notice lists; the API and the CLI show all that are stored."""


def judged_cases(
    scores: Mapping[str, float],
    labelled: Sequence[LabelledCase],
    scale: LabelScale,
    pass_threshold: float,
) -> list[JudgedCase]:
    """Pair a judge's scores of a run's ``@labels`` cases with people's consensus.

    Cases the judge did not score (an error, a spent budget) are left out:
    an unscored case is no verdict to compare.
    """
    out = []
    for item in labelled:
        score = scores.get(item.case.case_id)
        if score is None:
            continue
        out.append(
            JudgedCase(
                case_id=item.case.case_id,
                score=score,
                passed=score >= pass_threshold,
                label=consensus(item.labels, scale),
            )
        )
    return out


def below_floor(row: RunAgreement, calibration: Calibration) -> bool | None:
    """Whether the judge is under the floor; None when this run cannot say (see the module)."""
    if calibration.min_kappa is None:
        return None
    kappa = row.agreement.kappa
    if row.agreement.n < calibration.min_cases or kappa is None:
        return None
    return kappa < calibration.min_kappa


@dataclass(frozen=True, slots=True)
class AgreementNotice:
    """One notice to send: a judge fell under its agreement floor, or came back above it."""

    kind: AgreementKind
    suite: str
    feature: str
    scorer: str
    eval_set: str
    run_id: str
    kappa: float
    floor: float
    previous: float | None
    """The judge's kappa on the run before, when it was measured."""
    n: int
    exact: float | None
    contradictions: tuple[Contradiction, ...]

    @property
    def key(self) -> str:
        """The outbox key: one notice of each kind per run and judge."""
        return f"{self.suite}:{self.feature}:{self.scorer}:{self.kind}:{self.run_id}"

    @property
    def headline(self) -> str:
        """One line: what a subject or a chat message says first."""
        who = f"{self.suite}/{self.feature} judge {self.scorer}"
        if self.kind == "judge_agreement":
            return f"the judge no longer agrees with your labels: {who} (eval set {self.eval_set})"
        return f"the judge agrees with your labels again: {who} (eval set {self.eval_set})"

    @property
    def figures(self) -> str:
        """Kappa now against the floor and the run before."""
        before = f"{self.previous:.2f}" if self.previous is not None else "not measured"
        exact = f", exact agreement {self.exact:.0%}" if self.exact is not None else ""
        return (
            f"kappa {self.kappa:.2f} (floor {self.floor:.2f}, previous run {before}) "
            f"on {self.n} labelled cases{exact}"
        )


def decide(
    row: RunAgreement,
    calibration: Calibration,
    *,
    scheduled: bool,
    previous: RunAgreement | None,
    last_alert: AlertRecord | None,
    last_ok: AlertRecord | None,
) -> AgreementNotice | None:
    """Return the notice this run's agreement calls for, if any.

    Args:
        row: this run's agreement of one judge.
        calibration: the feature's floor.
        scheduled: whether the run is a scheduled one (only those notify).
        previous: the judge's agreement on the run before, if stored.
        last_alert: the judge's newest ``judge_agreement`` outbox row.
        last_ok: the judge's newest ``agreement_ok`` outbox row.
    """
    below = below_floor(row, calibration)
    if not scheduled or below is None or calibration.min_kappa is None:
        return None
    open_now = is_open(last_alert, last_ok)
    if below == open_now:
        return None  # still under (already told), or still fine
    assert row.agreement.kappa is not None  # below_floor measured it
    return AgreementNotice(
        kind="judge_agreement" if below else "agreement_ok",
        suite=row.suite,
        feature=row.feature,
        scorer=row.scorer,
        eval_set=row.eval_set,
        run_id=row.run_id,
        kappa=row.agreement.kappa,
        floor=calibration.min_kappa,
        previous=previous.agreement.kappa if previous is not None else None,
        n=row.agreement.n,
        exact=row.agreement.exact,
        contradictions=row.agreement.contradictions[:SHOWN_CONTRADICTIONS],
    )


def summary(notice: AgreementNotice) -> dict[str, object]:
    """The notice as JSON-able data, stored with the row (the API shows it)."""
    return {
        "suite": notice.suite,
        "feature": notice.feature,
        "scorer": notice.scorer,
        "eval_set": notice.eval_set,
        "run_id": notice.run_id,
        "kappa": notice.kappa,
        "floor": notice.floor,
        "previous": notice.previous,
        "n": notice.n,
        "exact": notice.exact,
        "contradictions": [c.as_json() for c in notice.contradictions],
    }


def _contradiction_line(c: Contradiction) -> str:
    said = f"the judge said {c.judge:g} (score {c.judge_score:g})"
    return f"case {c.case_id}: {said}, people {c.label:g}"


def render_email(
    notice: AgreementNotice, *, sender: str, recipients: list[str], dashboard_url: str | None
) -> dict[str, Any]:
    """Render the notice as the body of Resend's ``POST /emails``."""
    lines = [notice.headline[:1].upper() + notice.headline[1:] + ".", "", notice.figures + "."]
    if notice.kind == "judge_agreement":
        lines += [
            "",
            "Its scores of this feature can no longer be read as what people would say:",
            "check the rubric and the judge model against the contradictions below",
            f"(continuous-eval agreement --suite {notice.suite} --feature {notice.feature}).",
        ]
        if notice.contradictions:
            lines += ["", "Worst contradictions:"]
            lines += [f"- {_contradiction_line(c)}" for c in notice.contradictions]
    if dashboard_url:
        lines += ["", dashboard_url]
    lines += ["", f"Notice key: {notice.key}"]
    return {
        "from": sender,
        "to": list(recipients),
        "subject": f"{SUBJECT_PREFIX} {notice.headline}",
        "text": "\n".join(lines) + "\n",
    }


def render_webhook(
    notice: AgreementNotice, *, slack: bool, dashboard_url: str | None
) -> dict[str, Any]:
    """Render the notice as a generic JSON document, or as a Slack message."""
    if slack:
        text = f"{SUBJECT_PREFIX} {notice.headline}: {notice.figures}"
        if notice.kind == "judge_agreement" and notice.contradictions:
            text += "; worst: " + "; ".join(_contradiction_line(c) for c in notice.contradictions)
        text = _slack_escape(text)
        if dashboard_url:
            text += f" <{dashboard_url}|open>"
        return {"text": text}
    return {
        "event": WEBHOOK_EVENTS[notice.kind],
        "version": 1,
        "key": notice.key,
        "headline": notice.headline,
        **summary(notice),
        "dashboard_url": dashboard_url,
    }


def _slack_escape(text: str) -> str:
    # Slack's three mrkdwn entities; names and case ids come from users.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
