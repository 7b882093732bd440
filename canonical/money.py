"""Exact money: a Decimal amount in an ISO 4217 currency, at the currency's minor unit.

Rounding is half-up at the minor unit, as billing systems print invoices. Splits use
the largest-remainder method so that the parts always add up to the whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

# ISO 4217 minor units for the currencies o2c books in. A currency not listed here is
# refused rather than guessed: a wrong exponent is a hundredfold error.
MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CAD": 2,
    "AUD": 2,
    "NZD": 2,
    "CHF": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "SGD": 2,
    "HKD": 2,
    "INR": 2,
    "BRL": 2,
    "MXN": 2,
    "ZAR": 2,
    "ILS": 2,
    "CNY": 2,
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "ISK": 0,
    "VND": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}


class CurrencyError(ValueError):
    """An unknown currency, or arithmetic across two currencies."""


def minor_unit(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise CurrencyError(f"unknown or unsupported currency {currency!r}") from None


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit(currency))


class Money(BaseModel):
    """An amount of one currency, always quantised to that currency's minor unit."""

    model_config = ConfigDict(frozen=True)

    amount: Decimal
    currency: str

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        minor_unit(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _exact_amount(cls, data: Any) -> Any:
        if isinstance(data, dict) and "amount" in data and "currency" in data:
            amount = _to_decimal(data["amount"])
            q = quantum(str(data["currency"]))
            try:
                amount.quantize(q)
            except InvalidOperation:
                # More digits than the decimal context holds (1e27 and up in cents): without this,
                # quantize raises InvalidOperation, which validation does not turn into an error.
                raise ValueError(f"{data['amount']!r} is not an amount any {data['currency']} account holds") from None
            if amount != amount.quantize(q, rounding=ROUND_DOWN):
                raise ValueError(
                    f"{amount} has more precision than {data['currency']} allows; "
                    "round explicitly with Money.of(..., rounded=True)"
                )
            data = {**data, "amount": amount.quantize(q)}
        return data

    # -- construction ---------------------------------------------------------------

    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str, *, rounded: bool = False) -> Money:
        value = _to_decimal(amount)
        if rounded:
            value = value.quantize(quantum(currency), rounding=ROUND_HALF_UP)
        return cls(amount=value, currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        if isinstance(minor, bool) or not isinstance(minor, int):
            raise ValueError(f"minor units must be a whole number, got {minor!r}")
        return cls(amount=Decimal(minor).scaleb(-minor_unit(currency)), currency=currency)

    @property
    def minor(self) -> int:
        """The amount in minor units (cents), as Stripe and most APIs carry it."""
        return int(self.amount.scaleb(minor_unit(self.currency)))

    # -- arithmetic -----------------------------------------------------------------

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(amount=-self.amount, currency=self.currency)

    def __abs__(self) -> Money:
        return Money(amount=abs(self.amount), currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def times(self, factor: Decimal | int | str) -> Money:
        """Multiply and round half-up to the minor unit (one rounding, at the end)."""
        return Money.of(self.amount * _to_decimal(factor), self.currency, rounded=True)

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    def allocate(self, weights: Sequence[Decimal | int | str]) -> list[Money]:
        """Split into parts proportional to weights that add up exactly to self."""
        return [Money.from_minor(m, self.currency) for m in largest_remainder(self.minor, weights)]

    def __str__(self) -> str:
        return f"{self.amount:,} {self.currency}"


def total(amounts: Iterable[Money], currency: str) -> Money:
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result


def largest_remainder(whole: int, weights: Sequence[Decimal | int | str]) -> list[int]:
    """Split an integer number of minor units in proportion to weights.

    Every part gets the floor of its exact share; the units left over go one each to
    the parts with the largest remainders (ties to the earlier part), so the parts sum
    to `whole` exactly. Negative wholes split symmetrically to positive ones.
    """
    if isinstance(whole, bool) or not isinstance(whole, int):
        raise ValueError("the whole must be a whole number of minor units")
    ws = [_to_decimal(w) for w in weights]
    if not ws:
        raise ValueError("cannot split into zero parts")
    if any(w < 0 for w in ws):
        raise ValueError("weights must not be negative")
    weight_sum = sum(ws, Decimal(0))
    if weight_sum == 0:
        raise ValueError("weights must not all be zero")
    sign = -1 if whole < 0 else 1
    magnitude = abs(whole)
    # Exact rational shares: Decimal division rounds at 28 digits, which can push a
    # share over an integer and make the floors add up to more than the whole.
    exact = [Fraction(magnitude) * Fraction(w) / Fraction(weight_sum) for w in ws]
    floors = [e.numerator // e.denominator for e in exact]
    left = magnitude - sum(floors)
    by_remainder = sorted(range(len(ws)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in by_remainder[:left]:
        floors[i] += 1
    return [sign * f for f in floors]


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, float):
        # Floats cannot hold most decimal amounts exactly; refuse rather than drift.
        raise ValueError("use a string or Decimal for amounts, not a float")
    try:
        result = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"not a decimal amount: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return result
