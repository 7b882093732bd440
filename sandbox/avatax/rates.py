"""The sandbox's tax rates: a documented stand-in, not real jurisdiction data."""

from __future__ import annotations

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


def rate_for(country: str, region: str) -> Decimal:
    if country.upper() in ("US", "USA"):
        return US_STATE_RATES.get(region.upper(), DEFAULT_RATE)
    return DEFAULT_RATE
