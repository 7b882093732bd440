"""The sandbox's tax rates: a documented stand-in, not real jurisdiction data."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

# Combined sales-tax rates (percent) by US state used by the sandbox. Illustrative only.
US_STATE_RATES: dict[str, Decimal] = {
    "CA": Decimal("7.25"),
    "NY": Decimal("8.875"),
    "WA": Decimal("6.5"),
    "TX": Decimal("6.25"),
    "FL": Decimal("6"),
    "IL": Decimal("6.25"),
    "MA": Decimal("6.25"),
    "OR": Decimal("0"),
    "DE": Decimal("0"),
    "MT": Decimal("0"),
    "NH": Decimal("0"),
}


DEFAULT_RATE = Decimal("5")  # any other region (US state or foreign region)
CENT = Decimal("0.01")


# Rates before a change (illustrative): (region, the first day of the rate above) -> the
# rate until then. A document is taxed at the rates of its tax date, so a return dated
# today that carries the original's tax date is taxed as the original was.
US_STATE_RATES_BEFORE: dict[tuple[str, date], Decimal] = {
    ("IL", date(2026, 7, 1)): Decimal("6"),
}


def rate_for(country: str, region: str, on: date | None = None) -> Decimal:
    if country.upper() not in ("US", "USA"):
        return DEFAULT_RATE
    state = region.upper()
    if on is not None:
        earlier = [
            (start, rate) for (name, start), rate in US_STATE_RATES_BEFORE.items() if name == state and on < start
        ]
        if earlier:
            return min(earlier)[1]  # the rate before the first change after `on`
    return US_STATE_RATES.get(state, DEFAULT_RATE)
