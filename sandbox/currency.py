"""ISO 4217 minor units of the currencies the sandbox's systems take.

The sandbox keeps its own table rather than o2c's: a stand-in that shared o2c's code
could agree with o2c for the wrong reason. An unlisted currency is refused.
"""

from __future__ import annotations

_EXPONENTS = {
    0: ("CLP", "ISK", "JPY", "KRW", "VND"),
    2: (
        "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD",
        "ILS", "INR", "MXN", "NOK", "NZD", "PLN", "SEK", "SGD", "USD", "ZAR",
    ),
    3: ("BHD", "JOD", "KWD", "OMR", "TND"),
}  # fmt: skip

MINOR_UNITS: dict[str, int] = {code: exponent for exponent, codes in _EXPONENTS.items() for code in codes}


def minor_unit(currency: str) -> int:
    """Decimal places of `currency`'s minor unit (ISO code, upper case)."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise ValueError(f"unknown or unsupported currency {currency!r}") from None
