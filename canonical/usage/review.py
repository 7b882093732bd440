"""Review before release: is the draft complete, and is the usage ordinary?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from canonical.money import Money
from canonical.usage.models import Difference, Finding, Meter, UsagePolicy


def median(values: Sequence[int | Decimal]) -> Decimal:
    raise NotImplementedError


def mad(values: Sequence[int | Decimal]) -> Decimal:
    """The median absolute deviation from the median (unscaled)."""
    raise NotImplementedError


def completeness(counted: Mapping[str, int], billed: Mapping[str, int]) -> list[Difference]:
    """Every meter where billing's draft quantity differs from o2c's count, in words."""
    raise NotImplementedError


def review_usage(
    *,
    quantities: Mapping[str, int],
    history: Mapping[str, Sequence[int]],
    meters: Mapping[str, Meter],
    segment: str,
    total: Money,
    previous_total: Money | None,
    policy: UsagePolicy,
) -> list[Finding]:
    """Why the invoice must be held, or [] to release it without a person.

    `history` holds each meter's quantities of the last closed periods, oldest first (at most
    policy.history_periods); an empty history with no previous invoice is a first usage invoice."""
    raise NotImplementedError
