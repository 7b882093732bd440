"""Policy amounts that know their currency.

A threshold written as a bare number means nothing across currencies: 10,000 is about 80
dollars in yen. Every amount a policy states is therefore a table by currency, and a
currency the table does not cover is refused before a process starts, never read as the
number of another currency.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import field_validator

from canonical.models import Model
from canonical.money import Money, minor_unit


class UncoveredCurrency(ValueError):
    """The policy states no amount in this currency."""


class PerCurrency(Model):
    """One policy amount, stated per ISO 4217 currency (major units, e.g. {"USD": 10000, "JPY": 1500000})."""

    amounts: dict[str, Decimal]

    @field_validator("amounts")
    @classmethod
    def _known_currencies(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for currency, amount in value.items():
            minor_unit(currency)
            if amount < 0:
                raise ValueError(f"a policy amount is not negative ({currency} {amount})")
        return value

    def covers(self, currency: str) -> bool:
        return currency in self.amounts

    def of(self, currency: str, *, what: str = "this policy amount") -> Money:
        """The amount in `currency`; UncoveredCurrency when the policy states none."""
        if currency not in self.amounts:
            stated = ", ".join(sorted(self.amounts)) or "no currency"
            raise UncoveredCurrency(f"{what} is not stated in {currency} (the policy covers {stated})")
        return Money.of(self.amounts[currency], currency, rounded=True)


def per_currency(**amounts: int | str | Decimal) -> PerCurrency:
    return PerCurrency(amounts={currency: Decimal(str(amount)) for currency, amount in amounts.items()})
