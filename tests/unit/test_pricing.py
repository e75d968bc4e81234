"""Token counts to money: exact and dated model ids, unknown models, arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuous_eval.core.models import Usage
from continuous_eval.core.pricing import Price, price_for, usage_for
from continuous_eval.settings import ModelPrice

PRICES = {
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-5-20251101": Price(4.0, 20.0),
}


def test_cost_is_tokens_times_price_per_million() -> None:
    assert usage_for("claude-haiku-4-5", 1_000_000, 200_000, PRICES) == Usage(
        1_000_000, 200_000, 2.0
    )
    assert usage_for("claude-haiku-4-5", 1200, 300, PRICES).cost_usd == pytest.approx(0.0027)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),
        ("claude-opus-4-5-latest", "claude-opus-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5-20251101"),
    ],
)
def test_dated_ids_match_their_alias_and_an_exact_entry_wins(model: str, expected: str) -> None:
    assert price_for(model, PRICES) is PRICES[expected]


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-4-5",
        "claude-haiku-4",  # a prefix of a known id is another model
        "claude-haiku-4-5-turbo",  # only a date suffix is stripped
        "claude-haiku-4-5-2025",  # not a full date
        "claude-opus-4-2-20260101",  # must not fall back to claude-opus-4
        "",
    ],
)
def test_other_ids_are_unknown(model: str) -> None:
    assert price_for(model, PRICES) is None


def test_unknown_model_costs_nothing_but_keeps_its_tokens() -> None:
    assert usage_for("claude-unknown", 120, 30, PRICES) == Usage(120, 30, 0.0)
    assert usage_for("claude-haiku-4-5", 120, 30, {}) == Usage(120, 30, 0.0)


def test_zero_tokens_cost_nothing() -> None:
    assert usage_for("claude-haiku-4-5", 0, 0, PRICES) == Usage()


def test_negative_tokens_are_refused() -> None:
    with pytest.raises(ValueError, match="token counts"):
        usage_for("claude-haiku-4-5", -1, 0, PRICES)


def test_negative_prices_are_refused() -> None:
    with pytest.raises(ValueError, match="prices"):
        Price(-1.0, 0.0)


def test_settings_prices_are_accepted_as_they_are() -> None:
    prices = {"claude-haiku-4-5": ModelPrice(input_per_mtok=1.0, output_per_mtok=5.0)}
    assert usage_for("claude-haiku-4-5-20251001", 1_000_000, 0, prices).cost_usd == 1.0


def test_price_is_frozen() -> None:
    price = Price(1.0, 5.0)
    with pytest.raises(AttributeError):
        price.input_per_mtok = 2.0  # type: ignore[misc]


tokens = st.integers(min_value=0, max_value=10**9)


@given(tokens, tokens, tokens, tokens)
def test_cost_adds_up_over_calls(in_a: int, out_a: int, in_b: int, out_b: int) -> None:
    # Summing the usage of two calls equals pricing their summed tokens (up to float rounding).
    separate = usage_for("claude-opus-4-5", in_a, out_a, PRICES) + usage_for(
        "claude-opus-4-5", in_b, out_b, PRICES
    )
    together = usage_for("claude-opus-4-5", in_a + in_b, out_a + out_b, PRICES)
    assert (separate.input_tokens, separate.output_tokens) == (
        together.input_tokens,
        together.output_tokens,
    )
    assert separate.cost_usd == pytest.approx(together.cost_usd)
    assert together.cost_usd >= 0
