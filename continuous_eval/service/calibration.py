"""At a run's end: measure each calibrated judge against people, store it, and plan its notices.

Called by ``AlertPlanner.plan`` inside the run's finish. The run's
``<feature>@labels`` case scores are paired with the eval set's labels as of
the run's ``as_of`` (the same time its plan read the cases with), measured
(``core.agreement``), and written to the ``AgreementStore`` BEFORE the run's
final transaction: the write is an upsert by (run, feature, judge), so a
finish retried after a takeover writes the same rows again. The notices
(``core.calibration``) are outbox rows the planner returns, so they commit
with the run's status, exactly once by their key.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from continuous_eval.core import calibration
from continuous_eval.core.agreement import RunAgreement, measure
from continuous_eval.core.calibration import AgreementNotice
from continuous_eval.core.models import NewAlert, RunRecord
from continuous_eval.core.suite import LABELS_SUFFIX, Suite, scorer_name
from continuous_eval.ports import HistoryReader
from continuous_eval.ports.agreement import AgreementStore
from continuous_eval.ports.labels import EvalSetStore

log = logging.getLogger(__name__)

AgreementRender = Callable[[AgreementNotice], str]
"""Turns an agreement notice into the exact JSON text a channel sends."""


@dataclass(frozen=True, slots=True)
class CalibrationPlan:
    """What a run's calibration produced: the rows stored, the outbox rows to write."""

    agreements: tuple[RunAgreement, ...] = ()
    alerts: tuple[NewAlert, ...] = ()


class Calibrator:
    """Measure, store and decide the agreement of every calibrated judge of a run.

    Args:
        suites: the suite file's suites, by name (their features' ``calibration``).
        labels: where the eval sets' labels are.
        agreements: where each run's agreement goes.
        renderers: channel name -> notice renderer; empty: notices are recorded ``suppressed``.
    """

    def __init__(
        self,
        suites: Mapping[str, Suite],
        labels: EvalSetStore,
        agreements: AgreementStore,
        renderers: Mapping[str, AgreementRender] | None = None,
    ) -> None:
        self._suites = suites
        self._labels = labels
        self._agreements = agreements
        self._renderers = dict(renderers or {})

    def plan(self, store: HistoryReader, run: RunRecord) -> CalibrationPlan:
        """Measure and store the run's agreements; return them and the notices they call for."""
        suite = self._suites.get(run.suite)
        if suite is None:
            return CalibrationPlan()
        rows = self.measure(store, run, suite)
        if not rows:
            return CalibrationPlan()
        self._agreements.put_agreements(rows)
        alerts: list[NewAlert] = []
        for row in rows:
            config = suite.features[row.feature].calibration
            assert config is not None
            notice = calibration.decide(
                row,
                config,
                scheduled=run.run_type == "scheduled",
                previous=self._previous(row),
                last_alert=store.latest_alert(
                    row.suite, row.feature, row.scorer, kind="judge_agreement"
                ),
                last_ok=store.latest_alert(row.suite, row.feature, row.scorer, kind="agreement_ok"),
            )
            if notice is not None:
                self._log(notice)
                alerts.extend(self._rows(notice))
        return CalibrationPlan(tuple(rows), tuple(alerts))

    def measure(self, store: HistoryReader, run: RunRecord, suite: Suite) -> list[RunAgreement]:
        """The agreement of every judge of every calibrated feature the run judged labels for."""
        scores = store.case_scores(run.id)
        rows: list[RunAgreement] = []
        for feature_name, feature in suite.features.items():
            config = feature.calibration
            if config is None:
                continue
            judged_scores = {
                scorer_name(j): scores.get((feature_name + LABELS_SUFFIX, scorer_name(j)), {})
                for j in feature.judges()
            }
            if not any(judged_scores.values()):
                continue  # this run did not judge the labels (none yet, or not selected)
            eval_set = self._labels.eval_set(config.eval_set)
            if eval_set is None:
                continue  # deleted since the plan; nothing to compare with
            # The labels the plan read the cases with: as of the run's as_of.
            labelled = self._labels.labelled_cases(eval_set.id, run.as_of)
            for judge in feature.judges():
                scorer = scorer_name(judge)
                judged = calibration.judged_cases(
                    judged_scores[scorer], labelled, eval_set.scale, judge.pass_threshold
                )
                if judged:
                    measured = measure(judged, eval_set.scale)
                    rows.append(
                        RunAgreement(
                            run.id, run.suite, feature_name, scorer, eval_set.name, measured
                        )
                    )
        return rows

    def _previous(self, row: RunAgreement) -> RunAgreement | None:
        """The judge's agreement on the run before this one (this run's own row excluded)."""
        trend = self._agreements.history(row.suite, row.feature, row.scorer, limit=2)
        return next((r for r in trend if r.run_id != row.run_id), None)

    def _log(self, notice: AgreementNotice) -> None:
        extra = {"event": notice.kind, "run_id": notice.run_id, "suite": notice.suite}
        if notice.kind == "judge_agreement":
            log.warning("%s: %s", notice.headline, notice.figures, extra=extra)
        else:
            log.info("%s: %s", notice.headline, notice.figures, extra=extra)

    def _rows(self, notice: AgreementNotice) -> list[NewAlert]:
        base = NewAlert(
            key=notice.key,
            channel="none",
            kind=notice.kind,
            run_id=notice.run_id,
            suite=notice.suite,
            feature=notice.feature,
            scorer=notice.scorer,
            rule=None,
            status="suppressed",
            payload="",
            summary=calibration.summary(notice),
            reason="no alert channel is configured",
        )
        if not self._renderers:
            return [base]  # recorded all the same: the row is the notice's state
        return [
            dataclasses.replace(
                base, channel=channel, status="pending", payload=render(notice), reason=None
            )
            for channel, render in self._renderers.items()
        ]
