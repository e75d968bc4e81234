"""From a run's decisions to what people are told: one incident email per run, one recovery email.

Pure. A deploy that breaks three features is one event, so everything that
became news in one run (incidents opened, incidents that fell further, judge
drift found) goes into one report, grouped by feature with the worst fall
first; everything that recovered in the run goes into one recovery report.
Keys that are still down in an open incident are not news and appear in
neither. Each report's idempotency key names the suite, the run and the
transition, so the outbox sends each at most once per channel, whatever
happens to the process in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from continuous_eval.core.regression import Decision, DecisionKind, RunDecision

ReportKind = Literal["regression", "judge_drift", "recovery"]
"""``regression``: the run's news holds a target regression; ``judge_drift``: only the
judge moved (its own kind, so people can route it to whoever owns the judge)."""


@dataclass(frozen=True, slots=True)
class IncidentReport:
    """What one run changed, for the people who must act."""

    suite: str
    run_id: str
    kind: ReportKind
    items: tuple[Decision, ...]
    """Grouped by feature (the feature with the worst fall first), worst first within."""
    dashboard_run_url: str | None = None
    """A link to the run, when a dashboard URL is configured."""

    @property
    def key(self) -> str:
        """The outbox's idempotency key: one report per suite, run and kind."""
        return f"{self.suite}:{self.run_id}:{self.kind}"

    @property
    def features(self) -> tuple[str, ...]:
        """The features the report names, in report order."""
        seen: dict[str, None] = {}
        for item in self.items:
            seen.setdefault(item.feature, None)
        return tuple(seen)

    @property
    def regressions(self) -> tuple[Decision, ...]:
        """Items that are target regressions (not judge drift)."""
        return tuple(i for i in self.items if i.kind is not DecisionKind.JUDGE_DRIFT)

    @property
    def judge_drift(self) -> tuple[Decision, ...]:
        """Items where the judge moved."""
        return tuple(i for i in self.items if i.kind is DecisionKind.JUDGE_DRIFT)

    def summary(self) -> dict[str, object]:
        """The compact record kept with the outbox row (and shown by ``GET /api/alerts``)."""
        return {
            "suite": self.suite,
            "run_id": self.run_id,
            "kind": self.kind,
            "items": [
                {
                    "feature": i.feature,
                    "scorer": i.scorer,
                    "decision": i.kind.value,
                    "transition": i.transition,
                    "rule": i.rule,
                    "baseline": i.baseline,
                    "current": i.current,
                    "mean_difference": i.mean_difference,
                    "p_adjusted": i.p_adjusted,
                    "cases_fallen": len(i.fallen),
                }
                for i in self.items
            ],
        }


def _fall(decision: Decision) -> float:
    return decision.mean_difference if decision.mean_difference is not None else 0.0


def _grouped(items: Sequence[Decision]) -> tuple[Decision, ...]:
    by_feature: dict[str, list[Decision]] = {}
    for item in items:
        by_feature.setdefault(item.feature, []).append(item)
    for group in by_feature.values():
        group.sort(key=lambda d: (_fall(d), d.scorer))
    order = sorted(by_feature, key=lambda f: (_fall(by_feature[f][0]), f))
    return tuple(d for feature in order for d in by_feature[feature])


def reports(decision: RunDecision, *, run_url: str | None = None) -> list[IncidentReport]:
    """Return the run's incident report and recovery report, each only when it has items."""
    if decision.candidate:
        return []
    news = [d for d in decision.decisions if d.alerting]
    recovered = [d for d in decision.decisions if d.transition == "recovered"]
    out: list[IncidentReport] = []
    if news:
        judge_only = all(d.kind is DecisionKind.JUDGE_DRIFT for d in news)
        kind: ReportKind = "judge_drift" if judge_only else "regression"
        out.append(IncidentReport(decision.suite, decision.run_id, kind, _grouped(news), run_url))
    if recovered:
        out.append(
            IncidentReport(
                decision.suite, decision.run_id, "recovery", _grouped(recovered), run_url
            )
        )
    return out
