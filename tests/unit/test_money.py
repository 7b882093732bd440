"""Money: exact amounts at each currency's minor unit, and nothing implicit."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from canonical.money import CurrencyError, Money, minor_unit, quantum, total


@pytest.mark.parametrize(
    ("currency", "digits", "q"),
    [
        ("USD", 2, Decimal("0.01")),
        ("JPY", 0, Decimal("1")),
        ("BHD", 3, Decimal("0.001")),
        ("EUR", 2, Decimal("0.01")),
        ("KWD", 3, Decimal("0.001")),
        ("KRW", 0, Decimal("1")),
    ],
)
def test_minor_units_per_currency(currency, digits, q):
    assert minor_unit(currency) == digits
    assert quantum(currency) == q


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("5", "USD", "5.00"),
        ("5", "JPY", "5"),
        ("5", "BHD", "5.000"),
        ("1.2", "BHD", "1.200"),
    ],
)
def test_amounts_are_quantised_to_the_minor_unit(amount, currency, expected):
    money = Money.of(amount, currency)
    assert str(money.amount) == expected
    assert money.amount.as_tuple().exponent == -minor_unit(currency)


@pytest.mark.parametrize("currency", ["XXX", "usd", "", "US"])
def test_unknown_currency_is_refused(currency):
    with pytest.raises(CurrencyError):
        minor_unit(currency)
    with pytest.raises(ValueError, match="unknown or unsupported currency"):
        Money.of("1", currency)


@pytest.mark.parametrize("bad", [0.1, 1.0, True, "NaN", "Infinity", "abc", None])
def test_non_decimal_amounts_are_refused(bad):
    with pytest.raises(ValueError):
        Money.of(bad, "USD")
    with pytest.raises(ValueError):
        Money(amount=bad, currency="USD")


def test_float_message_names_the_fix():
    with pytest.raises(ValueError, match="not a float"):
        Money.of(0.1, "USD")


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("1.005", "USD"),
        ("0.001", "USD"),
        ("1.5", "JPY"),
        ("0.0001", "BHD"),
    ],
)
def test_excess_precision_is_refused_without_explicit_rounding(amount, currency):
    with pytest.raises(ValueError, match="more precision than"):
        Money.of(amount, currency)


def test_trailing_zeros_beyond_the_minor_unit_are_not_excess_precision():
    assert Money.of("1.000000", "USD").amount == Decimal("1.00")
    assert Money.of("250.00", "JPY").amount == Decimal("250")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1.005", "USD", "1.01"),
        ("1.004999", "USD", "1.00"),
        ("2.675", "USD", "2.68"),
        ("-1.005", "USD", "-1.01"),  # half away from zero, symmetric for credits
        ("-1.004", "USD", "-1.00"),
        ("2.5", "JPY", "3"),
        ("3.5", "JPY", "4"),  # half-up, not banker's rounding
        ("-2.5", "JPY", "-3"),
        ("1.0005", "BHD", "1.001"),
        ("1.0004", "BHD", "1.000"),
    ],
)
def test_explicit_rounding_is_half_up(amount, currency, expected):
    assert Money.of(amount, currency, rounded=True).amount == Decimal(expected)
    assert str(Money.of(amount, currency, rounded=True).amount) == expected


def test_negative_amounts():
    credit = Money.of("-12.34", "USD")
    assert credit.is_negative
    assert credit.minor == -1234
    assert -credit == Money.of("12.34", "USD")
    assert abs(credit) == Money.of("12.34", "USD")
    assert credit + Money.of("12.34", "USD") == Money.zero("USD")
    assert Money.zero("USD").is_zero and not Money.zero("USD").is_negative


@pytest.mark.parametrize(
    ("minor", "currency", "amount"),
    [
        (1234, "USD", "12.34"),
        (-1234, "USD", "-12.34"),
        (5, "USD", "0.05"),
        (0, "USD", "0.00"),
        (1234, "JPY", "1234"),
        (1234, "BHD", "1.234"),
        (-1, "BHD", "-0.001"),
    ],
)
def test_from_minor_and_back(minor, currency, amount):
    money = Money.from_minor(minor, currency)
    assert money.amount == Decimal(amount)
    assert str(money.amount) == amount
    assert money.minor == minor
    assert Money.of(amount, currency).minor == minor


@pytest.mark.parametrize("bad", [1.5, 1.0, "12", True, Decimal("3")])
def test_from_minor_wants_an_int(bad):
    with pytest.raises(ValueError, match="whole number"):
        Money.from_minor(bad, "USD")


def test_arithmetic_in_one_currency():
    a, b = Money.of("10.10", "USD"), Money.of("0.95", "USD")
    assert a + b == Money.of("11.05", "USD")
    assert a - b == Money.of("9.15", "USD")
    assert b - a == Money.of("-9.15", "USD")
    assert b < a and b <= a and a > b and a >= b and a >= a and a <= a


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_mixed_currency_arithmetic_raises(op):
    with pytest.raises(CurrencyError, match="cannot combine USD with EUR"):
        op(Money.of("1", "USD"), Money.of("1", "EUR"))


def test_combining_with_a_bare_number_is_a_type_error():
    with pytest.raises(TypeError):
        Money.of("1", "USD") + Decimal(1)  # type: ignore[operator]


def test_times_rounds_once_half_up():
    assert Money.of("10.00", "USD").times("0.125") == Money.of("1.25", "USD")
    assert Money.of("0.10", "USD").times("0.05") == Money.of("0.01", "USD")  # 0.005 -> 0.01
    assert Money.of("0.10", "USD").times("0.04") == Money.of("0.00", "USD")  # 0.004 -> 0.00
    assert Money.of("-0.10", "USD").times("0.05") == Money.of("-0.01", "USD")
    assert Money.of("33.33", "USD").times(3) == Money.of("99.99", "USD")
    assert Money.of("999", "JPY").times("0.5") == Money.of("500", "JPY")
    with pytest.raises(ValueError):
        Money.of("1", "USD").times(0.5)


def test_total():
    amounts = [Money.of("0.10", "USD"), Money.of("0.20", "USD"), Money.of("-0.05", "USD")]
    assert total(amounts, "USD") == Money.of("0.25", "USD")
    assert total([], "JPY") == Money.zero("JPY")
    with pytest.raises(CurrencyError):
        total([Money.of("1", "EUR")], "USD")


def test_string_form_and_json_round_trip():
    money = Money.of("1234567.5", "USD")
    assert str(money) == "1,234,567.50 USD"
    assert Money.model_validate_json(money.model_dump_json()) == money
    assert Money.model_validate({"amount": "0.001", "currency": "BHD"}).minor == 1


def test_money_is_immutable():
    money = Money.of("1", "USD")
    with pytest.raises(ValidationError):
        money.amount = Decimal("2")  # type: ignore[misc]
