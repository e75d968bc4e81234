"""The drift reference and the pooled excursion test (``core.baselines``)."""

from __future__ import annotations

import pytest

from continuous_eval.core.baselines import Selection, drift_test
from continuous_eval.core.regression import RunScores
from continuous_eval.core.scoring import aggregate

KEY = ("answers", "judge")


def _run(run_id: str, scores: list[float]) -> RunScores:
    cases = {f"c{i}": s for i, s in enumerate(scores)}
    agg = aggregate(*KEY, scores, errors=0, fingerprint="fp")
    return RunScores.build(run_id, "suite", "scheduled", 1.0, [agg], {KEY: cases})


def _pattern(shift: int, n: int = 40) -> list[float]:
    return [float(3 + (i + shift) % 3) for i in range(n)]  # 3, 4, 5, ... per case over runs


def _selection(excursion: list[RunScores], reference: list[RunScores]) -> Selection:
    return Selection(
        tuple(excursion + reference), None, tuple(reference[:7]), tuple(excursion), tuple(reference)
    )


def test_runs_that_sit_where_the_reference_does_give_no_evidence() -> None:
    reference = [_run(f"b{i}", _pattern(i)) for i in range(9)]
    excursion = [_run(f"e{i}", _pattern(i)) for i in range(2)]
    found = drift_test(
        _selection(excursion, reference), KEY, _run("now", _pattern(2)).case_scores[KEY]
    )
    assert found is not None
    assert found.runs == 3
    assert found.mean_difference == pytest.approx(0.0, abs=0.05)
    assert found.p_value > 0.3


def test_a_pooled_fall_is_significant_and_p_counts_every_look() -> None:
    reference = [_run(f"b{i}", _pattern(i)) for i in range(9)]
    lower = [[s - 1.0 if i < 16 else s for i, s in enumerate(_pattern(k))] for k in range(3)]
    excursion = [_run("e0", lower[0]), _run("e1", lower[1])]
    found = drift_test(
        _selection(excursion, reference), KEY, {f"c{i}": s for i, s in enumerate(lower[2])}
    )
    assert found is not None
    assert found.mean_difference == pytest.approx(-16 / 40, abs=0.01)
    assert 0 < found.p_value < 1e-4
    one_look = drift_test(
        _selection([], reference), KEY, {f"c{i}": s for i, s in enumerate(lower[2])}
    )
    assert one_look is not None
    assert one_look.runs == 1


def test_no_case_in_the_reference_means_no_test() -> None:
    assert drift_test(_selection([], [_run("b0", [])]), KEY, {"c0": 3.0}) is None
