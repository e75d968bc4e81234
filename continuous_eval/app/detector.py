"""The regression detector as the commands ask it: the CI gate's decision, and the backtest.

The decisions are the service's (``service.detection``, ``service.backtest``:
pure over the store's ports); here they meet the configured policies, so
the command line needs neither the service nor the suite files itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from continuous_eval.app.config import regression_policies
from continuous_eval.app.scanning import load_suites, select_suites
from continuous_eval.core.models import RunRecord, ScoreAggregate
from continuous_eval.core.regression import RegressionPolicy, RunDecision
from continuous_eval.ports import HistoryReader
from continuous_eval.service.backtest import BacktestResult, backtest, with_overrides
from continuous_eval.service.detection import decide_finished_run
from continuous_eval.settings import Settings

__all__ = ["BacktestResult", "backtest", "backtest_policies", "gate_decision"]


def gate_decision(
    store: HistoryReader,
    run: RunRecord,
    aggregates: Sequence[ScoreAggregate],
    policy: RegressionPolicy,
    *,
    baseline_run_id: str | None = None,
) -> RunDecision:
    """Decide a finished run for the CI gate (``run --fail-on-regression``).

    As a candidate, whatever its type: compared with the known-good scheduled
    runs (or the one run given), it opens no incident and never becomes a
    baseline. Nothing is stored.
    """
    return decide_finished_run(
        store, run, aggregates, policy, candidate=True, baseline_run_id=baseline_run_id
    )


def backtest_policies(
    settings: Settings, config: Path, suite: str | None, overrides: Mapping[str, Any]
) -> dict[str, RegressionPolicy]:
    """Each selected suite's configured policy with the given knobs replaced.

    ``overrides`` are ``with_overrides``'s keywords; a None value keeps the
    configured one.

    Raises:
        ConfigError: The suite file is invalid, or names no such suite.
        ValueError: An override the policy refuses (``fdr`` outside (0, 0.5), ...).
    """
    loaded = load_suites(config)
    names = select_suites(loaded, suite)
    configured = regression_policies(settings, loaded)
    return {name: with_overrides(configured[name], **overrides) for name in names}
