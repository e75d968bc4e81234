"""The suite schema's online features: ``source: traces`` datasets and ``target: recorded``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from continuous_eval.core.suite import (
    RecordedTarget,
    TracesDataset,
    format_location,
    parse_suite_file,
)


def _suite(feature: dict[str, Any]) -> dict[str, Any]:
    return {"suites": {"support": {"features": {"bot": feature}}}}


def test_a_traces_dataset_with_the_recorded_shorthand_validates() -> None:
    parsed = parse_suite_file(
        _suite(
            {
                "dataset": {"source": "traces", "feature": "bot", "sample": {"max": 50}},
                "target": "recorded",
                "scorers": [{"type": "contains", "value": "refund"}],
            }
        )
    )
    feature = parsed.suites["support"].features["bot"]
    assert isinstance(feature.dataset, TracesDataset)
    assert (feature.dataset.window_hours, feature.dataset.sample.max) == (24.0, 50)
    assert feature.dataset.sample.rate == 1.0
    assert isinstance(feature.target, RecordedTarget)
    assert feature.online


def test_recorded_needs_a_traces_dataset() -> None:
    with pytest.raises(ValidationError, match="'source: traces' dataset"):
        parse_suite_file(
            _suite(
                {
                    "dataset": {"cases": [{"input": "hi"}]},
                    "target": "recorded",
                    "scorers": [{"type": "contains", "value": "hi"}],
                }
            )
        )


def test_a_bad_sample_rate_is_named_at_its_key_without_union_tags() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_suite_file(
            _suite(
                {
                    "dataset": {"source": "traces", "feature": "bot", "sample": {"rate": 0}},
                    "target": "recorded",
                    "scorers": [{"type": "contains", "value": "x"}],
                }
            )
        )
    [error] = caught.value.errors()
    assert format_location(error["loc"]) == "suites.support.features.bot.dataset.sample.rate"
