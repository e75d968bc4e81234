"""Turn token counts into money, from a price table passed in.

Pure: the table comes from settings (``Settings.prices``) through the caller,
so this module never reads configuration itself and a test can price a call
from a literal dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from continuous_eval.core.models import Usage

_TOKENS_PER_PRICE_UNIT = 1_000_000

# A dated snapshot id is its alias plus a release date: ``claude-haiku-4-5-20251001``
# (Anthropic API) or ``claude-haiku-4-5@20251001`` (Vertex AI); ``-latest`` is
# the older alias spelling. Only these suffixes are stripped: a looser prefix
# match would price ``claude-opus-4-1`` as ``claude-opus-4``.
_DATED_SUFFIX = re.compile(r"(?:[-@]\d{8}|-latest)$")


class PriceLike(Protocol):
    """Anything with per-million-token prices: ``Price``, or the settings' ``ModelPrice``."""

    @property
    def input_per_mtok(self) -> float:
        """USD per million input tokens."""
        ...

    @property
    def output_per_mtok(self) -> float:
        """USD per million output tokens."""
        ...


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens for one model."""

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        if self.input_per_mtok < 0 or self.output_per_mtok < 0:
            raise ValueError("prices must be >= 0")


def price_for(model: str, prices: Mapping[str, PriceLike]) -> PriceLike | None:
    """Return the price of ``model``, matching a dated id to its alias; None when unknown.

    An exact entry wins, so a table can price one snapshot differently from
    its alias. Callers use None to log that a model's cost is unknown.
    """
    exact = prices.get(model)
    if exact is not None:
        return exact
    base = _DATED_SUFFIX.sub("", model)
    return prices.get(base) if base != model else None


def usage_for(
    model: str, input_tokens: int, output_tokens: int, prices: Mapping[str, PriceLike]
) -> Usage:
    """Return the usage of one call, with its cost in USD.

    A model missing from the table costs 0.0 rather than failing: the call
    happened and its answer is valid, and the token counts are still recorded,
    so the cost can be recomputed once the price is known. A result must not
    be turned into an error over bookkeeping; the caller logs the unknown
    model (``price_for`` returns None for it).

    Raises:
        ValueError: when a token count is negative, which no API reports.
    """
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got {input_tokens} and {output_tokens}")
    price = price_for(model, prices)
    if price is None:
        return Usage(input_tokens, output_tokens, 0.0)
    cost = (
        input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok
    ) / _TOKENS_PER_PRICE_UNIT
    return Usage(input_tokens, output_tokens, cost)
