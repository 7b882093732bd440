"""Largest-remainder splits: the parts add up to the whole, to the minor unit."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical.money import Money, largest_remainder


@pytest.mark.parametrize(
    ("whole", "weights", "parts"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (5, [1, 1], [3, 2]),  # tie goes to the earlier part
        (-5, [1, 1], [-3, -2]),
        (10, [1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 1, 1]),
        (101, [1, 2, 3, 4], [10, 20, 30, 41]),  # the one left over goes to remainder .4
        (100, ["0.2", "0.3", "0.5"], [20, 30, 50]),
        (100, [Decimal("1.5"), Decimal("0.5")], [75, 25]),
        (2, [1, 1, 1], [1, 1, 0]),
        (1, [1, 3], [0, 1]),  # 0.25 / 0.75: the larger remainder wins
        (5, [0, 1, 1], [0, 3, 2]),
        (0, [1, 2], [0, 0]),
        (7, [1], [7]),
        (1000, [3, 1], [750, 250]),
        (999, [2, 1], [666, 333]),
    ],
)
def test_worked_examples(whole, weights, parts):
    assert largest_remainder(whole, weights) == parts
    assert sum(parts) == whole


def test_money_allocate_usd():
    assert Money.of("0.05", "USD").allocate([1, 1]) == [Money.of("0.03", "USD"), Money.of("0.02", "USD")]
    assert Money.of("1.00", "USD").allocate([1, 1, 1]) == [
        Money.of("0.34", "USD"),
        Money.of("0.33", "USD"),
        Money.of("0.33", "USD"),
    ]
    assert Money.of("-1.00", "USD").allocate([1, 1, 1]) == [
        Money.of("-0.34", "USD"),
        Money.of("-0.33", "USD"),
        Money.of("-0.33", "USD"),
    ]


def test_money_allocate_jpy_and_bhd():
    assert [m.amount for m in Money.of("1000", "JPY").allocate([1, 1, 1])] == [334, 333, 333]
    assert [str(m.amount) for m in Money.of("10.000", "BHD").allocate([1, 2])] == ["3.333", "6.667"]


def test_allocate_by_standalone_selling_price():
    # ASC 606 style: 1,000.00 over SSPs 600 / 300 / 300 (exact 500.00 / 250.00 / 250.00)
    parts = Money.of("1000.00", "USD").allocate(["600", "300", "300"])
    assert [str(p.amount) for p in parts] == ["500.00", "250.00", "250.00"]
    # 100.00 over 1 / 1 / 1 / 4: exact 14.2857.. x3 and 57.1428..; floors sum to 99.98,
    # the two cents left go to the two earliest .57 remainders
    parts = Money.of("100.00", "USD").allocate([1, 1, 1, 4])
    assert [str(p.amount) for p in parts] == ["14.29", "14.29", "14.28", "57.14"]
    assert sum(p.minor for p in parts) == 10000


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([], "zero parts"),
        ([0, 0], "all be zero"),
        ([1, -1], "must not be negative"),
        ([-1, -2], "must not be negative"),
    ],
)
def test_bad_weights_refused(weights, message):
    with pytest.raises(ValueError, match=message):
        largest_remainder(100, weights)
    with pytest.raises(ValueError, match=message):
        Money.of("1.00", "USD").allocate(weights)


@pytest.mark.parametrize("whole", [1.0, Decimal(1), "1", True])
def test_whole_must_be_an_int(whole):
    with pytest.raises(ValueError):
        largest_remainder(whole, [1, 1])


def test_float_weights_refused():
    with pytest.raises(ValueError):
        largest_remainder(100, [0.5, 0.5])


def test_huge_wholes_stay_exact():
    # Decimal's 28-digit context used to round shares up past an integer here.
    whole = 10**29 + 2
    parts = largest_remainder(whole, [1, 1, 1])
    assert sum(parts) == whole
    assert parts == [33333333333333333333333333334] * 3


int_weights = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12).filter(any)
decimal_weights = st.lists(
    st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=12,
).filter(any)


def _check(whole, weights, parts):
    assert len(parts) == len(weights)
    assert sum(parts) == whole
    weight_sum = sum(Fraction(w) for w in weights)
    for w, part in zip(weights, parts, strict=False):
        exact = Fraction(whole) * Fraction(w) / weight_sum
        assert abs(part - exact) < 1
        if w == 0:
            assert part == 0
        if whole >= 0:
            assert part >= 0
        else:
            assert part <= 0


@settings(max_examples=200, deadline=None)
@given(whole=st.integers(min_value=-(10**40), max_value=10**40), weights=int_weights)
def test_parts_sum_to_the_whole_integer_weights(whole, weights):
    _check(whole, weights, largest_remainder(whole, weights))


@settings(max_examples=200, deadline=None)
@given(whole=st.integers(min_value=-(10**12), max_value=10**12), weights=decimal_weights)
def test_parts_sum_to_the_whole_decimal_weights(whole, weights):
    _check(whole, weights, largest_remainder(whole, weights))


@settings(max_examples=100, deadline=None)
@given(whole=st.integers(min_value=-(10**6), max_value=10**6), weights=int_weights)
def test_negative_whole_is_the_mirror_of_the_positive(whole, weights):
    assert largest_remainder(-whole, weights) == [-p for p in largest_remainder(whole, weights)]


@settings(max_examples=100, deadline=None)
@given(
    minor=st.integers(min_value=-(10**13), max_value=10**13),
    currency=st.sampled_from(["USD", "JPY", "BHD"]),
    weights=int_weights,
)
def test_money_allocate_adds_up(minor, currency, weights):
    money = Money.from_minor(minor, currency)
    parts = money.allocate(weights)
    assert all(p.currency == currency for p in parts)
    assert sum(p.minor for p in parts) == minor
    _check(minor, weights, [p.minor for p in parts])


@settings(max_examples=100, deadline=None)
@given(
    whole=st.integers(min_value=0, max_value=10**9),
    weights=st.lists(st.integers(-5, 5), min_size=1).filter(lambda ws: any(w < 0 for w in ws) or not any(ws)),
)
def test_negative_or_all_zero_weights_always_refused(whole, weights):
    with pytest.raises(ValueError):
        largest_remainder(whole, weights)
