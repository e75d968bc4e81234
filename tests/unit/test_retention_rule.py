"""The effective retention rule of a feature, and the cutoffs it gives (``core.retention``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from continuous_eval.core.interactions import RetentionRule
from continuous_eval.core.retention import RetentionPolicy, cutoff

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
GLOBAL = RetentionRule(max_age_days=90, max_rows=1_000_000)


def test_a_feature_without_an_override_gets_the_global_rule() -> None:
    assert RetentionPolicy(GLOBAL).rule("support") == GLOBAL


def test_an_override_replaces_only_the_fields_it_sets() -> None:
    policy = RetentionPolicy(
        GLOBAL,
        {
            "ages": RetentionRule(max_age_days=7, max_rows=None),
            "caps": RetentionRule(max_age_days=None, max_rows=200),
            "both": RetentionRule(max_age_days=1.5, max_rows=10),
        },
    )
    assert policy.rule("ages") == RetentionRule(7, 1_000_000)
    assert policy.rule("caps") == RetentionRule(90, 200)
    assert policy.rule("both") == RetentionRule(1.5, 10)
    assert policy.rule("other") == GLOBAL


def test_unset_global_limits_mean_no_limit_unless_a_feature_sets_one() -> None:
    policy = RetentionPolicy(RetentionRule(None, None), {"capped": RetentionRule(None, 5)})
    assert policy.rule("free") == RetentionRule(None, None)
    assert policy.rule("capped") == RetentionRule(None, 5)
    assert policy.results_cutoff(NOW) is None


def test_the_cutoff_is_now_less_the_age() -> None:
    assert cutoff(NOW, 90) == NOW - timedelta(days=90)
    assert cutoff(NOW, 0.5) == NOW - timedelta(hours=12)
    assert cutoff(NOW, None) is None
    assert RetentionPolicy(GLOBAL).results_cutoff(NOW) == NOW - timedelta(days=90)


def test_a_naive_now_or_a_bad_age_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        cutoff(NOW.replace(tzinfo=None), 1)
    with pytest.raises(ValueError, match="positive"):
        cutoff(NOW, 0)
