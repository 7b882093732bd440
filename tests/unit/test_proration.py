"""Day-based proration of mid-period amendments, checked to the cent."""

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical.models import AmendedLine, ProrationKind, Subscription, SubscriptionLine
from canonical.money import Money
from canonical.proration import amended_lines, monthly_amount, period_fraction, prorate


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def subscription(start: date, end: date, *lines: SubscriptionLine, currency: str = "USD") -> Subscription:
    return Subscription(
        id="sub_1",
        account_id="acct_1",
        contract_id="C-1",
        currency=currency,
        status="active",
        lines=list(lines),
        current_period_start=start,
        current_period_end=end,
        term_start=date(2027, 1, 1),
        term_end=date(2029, 1, 1),
    )


def line(product: str, quantity: int, price: str, discount: str = "0", currency: str = "USD") -> SubscriptionLine:
    return SubscriptionLine(
        item_id=f"si_{product}",
        product=product,
        description=product.title(),
        quantity=quantity,
        unit_price=Money.of(price, currency),
        discount_percent=Decimal(discount),
    )


def change(product: str, quantity: int, price: str, discount: str = "0") -> AmendedLine:
    return AmendedLine(
        product=product, quantity=quantity, unit_price=Decimal(price), discount_percent=Decimal(discount)
    )


def amounts(proration):
    return [(x.product, x.kind, x.quantity, str(x.amount.amount)) for x in proration.lines]


# -- period_fraction ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("effective", "start", "end", "expected"),
    [
        (date(2027, 1, 11), date(2027, 1, 1), date(2027, 2, 1), (21, 31)),
        (date(2027, 2, 15), date(2027, 2, 1), date(2027, 3, 1), (14, 28)),
        (date(2028, 2, 20), date(2028, 2, 1), date(2028, 3, 1), (10, 29)),  # leap February
        (date(2027, 4, 21), date(2027, 4, 1), date(2027, 5, 1), (10, 30)),
        (date(2027, 1, 1), date(2027, 1, 1), date(2027, 2, 1), (31, 31)),  # first day: whole period
        (date(2027, 1, 31), date(2027, 1, 1), date(2027, 2, 1), (1, 31)),  # last day: one day
        (date(2027, 12, 31), date(2027, 12, 15), date(2028, 1, 15), (15, 31)),  # across a year end
        (date(2027, 3, 5), date(2027, 1, 1), date(2028, 1, 1), (302, 365)),  # annual period
    ],
)
def test_period_fraction(effective, start, end, expected):
    assert period_fraction(effective, start, end) == expected


@pytest.mark.parametrize("effective", [date(2027, 2, 1), date(2026, 12, 31), date(2027, 3, 1)])
def test_effective_date_outside_the_period_is_refused(effective):
    # [start, end): the end date itself already belongs to the next period
    with pytest.raises(ValueError, match="not inside the period"):
        period_fraction(effective, date(2027, 1, 1), date(2027, 2, 1))


@pytest.mark.parametrize("end", [date(2027, 1, 1), date(2026, 12, 1)])
def test_empty_period_is_refused(end):
    with pytest.raises(ValueError, match="empty billing period"):
        period_fraction(date(2027, 1, 1), date(2027, 1, 1), end)


# -- monthly_amount -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "price", "currency", "discount", "expected"),
    [
        (10, "50.00", "USD", "0", "500.00"),
        (10, "50.00", "USD", "15", "425.00"),
        (3, "33.33", "USD", "12.5", "87.49"),  # 87.49125
        (1, "0.05", "USD", "50", "0.03"),  # 0.025 rounds half-up
        (7, "19.99", "USD", "100", "0.00"),
        (0, "50.00", "USD", "0", "0.00"),
        (3, "1000", "JPY", "33", "2010"),
        (1, "999", "JPY", "50", "500"),  # 499.5 -> 500
        (4, "2.125", "BHD", "10", "7.650"),
    ],
)
def test_monthly_amount(quantity, price, currency, discount, expected):
    result = monthly_amount(quantity, Money.of(price, currency), Decimal(discount))
    assert result == Money.of(expected, currency)
    assert str(result.amount) == expected


# -- prorate: month lengths ---------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "effective", "new_qty", "credit", "charge", "net"),
    [
        # 31 days, 21 remaining: 500 x 21/31 = 338.709.. ; 750 x 21/31 = 508.064..
        (date(2027, 1, 1), date(2027, 2, 1), date(2027, 1, 11), 15, "-338.71", "508.06", "169.35"),
        # 28 days, 14 remaining: exactly half
        (date(2027, 2, 1), date(2027, 3, 1), date(2027, 2, 15), 12, "-250.00", "300.00", "50.00"),
        # leap February, 29 days, 10 remaining: 500 x 10/29 = 172.413.. ; 550 x 10/29 = 189.655..
        (date(2028, 2, 1), date(2028, 3, 1), date(2028, 2, 20), 11, "-172.41", "189.66", "17.25"),
        # 30 days, 10 remaining: 166.666.. ; 333.333..
        (date(2027, 4, 1), date(2027, 5, 1), date(2027, 4, 21), 20, "-166.67", "333.33", "166.66"),
        # first day of the period: the whole month on both sides
        (date(2027, 1, 1), date(2027, 2, 1), date(2027, 1, 1), 15, "-500.00", "750.00", "250.00"),
        # last day of the period: one day of 31 -> 16.129.. ; 24.193..
        (date(2027, 1, 1), date(2027, 2, 1), date(2027, 1, 31), 15, "-16.13", "24.19", "8.06"),
        # downgrade in a 30-day month, 1 remaining day: 500/30 = 16.666.. ; 250/30 = 8.333..
        (date(2027, 6, 1), date(2027, 7, 1), date(2027, 6, 30), 5, "-16.67", "8.33", "-8.34"),
    ],
)
def test_seat_change_credits_old_and_charges_new(start, end, effective, new_qty, credit, charge, net):
    sub = subscription(start, end, line("seats", 10, "50.00"))
    result = prorate(sub, [change("seats", new_qty, "50.00")], effective)
    assert amounts(result) == [
        ("seats", ProrationKind.CREDIT, 10, credit),
        ("seats", ProrationKind.CHARGE, new_qty, charge),
    ]
    assert result.net == usd(net)
    assert (result.days_remaining, result.days_in_period) == period_fraction(effective, start, end)
    assert (result.period_start, result.period_end, result.effective_date) == (start, end, effective)
    assert result.monthly_before == usd("500.00")
    assert result.monthly_after == usd("50.00").times(new_qty)


def test_exact_half_cent_rounds_up_not_down():
    # 13.30 x 1/28 is exactly 0.475; rounding 1/28 to a Decimal first gave 0.47.
    sub = subscription(date(2027, 2, 1), date(2027, 3, 1), line("addon", 1, "13.30"))
    result = prorate(sub, [change("addon", 0, "13.30")], date(2027, 2, 28))
    assert amounts(result) == [("addon", ProrationKind.CREDIT, 1, "-0.48")]
    # 0.14 x 1/28 = 0.005 exactly -> 0.01
    sub = subscription(date(2027, 2, 1), date(2027, 3, 1), line("meter", 1, "0.14"))
    result = prorate(sub, [change("meter", 2, "0.14")], date(2027, 2, 28))
    assert amounts(result) == [
        ("meter", ProrationKind.CREDIT, 1, "-0.01"),
        ("meter", ProrationKind.CHARGE, 2, "0.01"),
    ]


JAN = (date(2027, 1, 1), date(2027, 2, 1))
MID_JAN = date(2027, 1, 11)  # 21 of 31 days remain


def test_unchanged_lines_produce_nothing():
    sub = subscription(*JAN, line("seats", 10, "50.00"), line("support", 1, "200.00"))
    result = prorate(sub, [change("seats", 12, "50.00")], MID_JAN)
    assert [x.product for x in result.lines] == ["seats", "seats"]
    result = prorate(sub, [change("seats", 10, "50.00"), change("support", 1, "200.00")], MID_JAN)
    assert result.lines == []
    assert result.net == usd("0.00")
    assert result.monthly_before == result.monthly_after == usd("700.00")


def test_removed_line_gives_only_a_credit():
    sub = subscription(*JAN, line("seats", 10, "50.00"), line("support", 1, "200.00"))
    result = prorate(sub, [change("support", 0, "200.00")], MID_JAN)
    # 200 x 21/31 = 135.483..
    assert amounts(result) == [("support", ProrationKind.CREDIT, 1, "-135.48")]
    assert result.net == usd("-135.48")
    assert result.monthly_before == usd("700.00")
    assert result.monthly_after == usd("500.00")
    assert [x.product for x in amended_lines(sub, [change("support", 0, "200.00")])] == ["seats"]


def test_new_product_gives_only_a_charge():
    sub = subscription(*JAN, line("seats", 10, "50.00"))
    result = prorate(sub, [change("analytics", 2, "25.00")], MID_JAN)
    # 50 x 21/31 = 33.870..
    assert amounts(result) == [("analytics", ProrationKind.CHARGE, 2, "33.87")]
    assert result.net == usd("33.87")
    assert result.monthly_after == usd("550.00")
    assert result.lines[0].description == "Remaining time on 2 x analytics (2027-01-11 to 2027-02-01)"


def test_discount_change_alone_is_prorated():
    sub = subscription(*JAN, line("seats", 10, "50.00"))
    result = prorate(sub, [change("seats", 10, "50.00", discount="10")], MID_JAN)
    # 500 x 21/31 = 338.709.. ; 450 x 21/31 = 304.838..
    assert amounts(result) == [
        ("seats", ProrationKind.CREDIT, 10, "-338.71"),
        ("seats", ProrationKind.CHARGE, 10, "304.84"),
    ]
    assert result.net == usd("-33.87")
    assert result.max_discount_percent == Decimal("10")


def test_discounted_lines_on_both_sides():
    sub = subscription(*JAN, line("seats", 10, "50.00", discount="20"))  # 400.00 / month
    result = prorate(sub, [change("seats", 20, "45.00", discount="25")], MID_JAN)  # 675.00 / month
    # 400 x 21/31 = 270.967.. ; 675 x 21/31 = 457.258..
    assert amounts(result) == [
        ("seats", ProrationKind.CREDIT, 10, "-270.97"),
        ("seats", ProrationKind.CHARGE, 20, "457.26"),
    ]
    assert result.net == usd("186.29")
    assert result.monthly_before == usd("400.00")
    assert result.monthly_after == usd("675.00")
    assert result.max_discount_percent == Decimal("25")


def test_descriptions_name_the_period():
    sub = subscription(*JAN, line("seats", 10, "50.00"))
    result = prorate(sub, [change("seats", 15, "50.00")], MID_JAN)
    assert [x.description for x in result.lines] == [
        "Unused time on 10 x Seats (2027-01-11 to 2027-02-01)",
        "Remaining time on 15 x Seats (2027-01-11 to 2027-02-01)",
    ]


def test_same_amount_different_price_and_quantity_is_prorated():
    # 10 x 50 and 20 x 25 cost the same, but the seat count changed: both lines appear
    sub = subscription(*JAN, line("seats", 10, "50.00"))
    result = prorate(sub, [change("seats", 20, "25.00")], MID_JAN)
    assert amounts(result) == [
        ("seats", ProrationKind.CREDIT, 10, "-338.71"),
        ("seats", ProrationKind.CHARGE, 20, "338.71"),
    ]
    assert result.net == usd("0.00")


def test_jpy_proration():
    sub = subscription(*JAN, line("seats", 10, "5000", currency="JPY"), currency="JPY")
    result = prorate(sub, [change("seats", 13, "5000")], MID_JAN)
    # 50000 x 21/31 = 33870.96.. ; 65000 x 21/31 = 44032.25..
    assert amounts(result) == [
        ("seats", ProrationKind.CREDIT, 10, "-33871"),
        ("seats", ProrationKind.CHARGE, 13, "44032"),
    ]
    assert result.net == Money.of("10161", "JPY")


def test_effective_date_outside_the_period_raises():
    sub = subscription(*JAN, line("seats", 10, "50.00"))
    with pytest.raises(ValueError, match="not inside the period"):
        prorate(sub, [change("seats", 11, "50.00")], date(2027, 2, 1))


# -- property: every line exact, net is their sum ------------------------------------


def _half_up(value: Fraction, digits: int) -> Decimal:
    scaled = value * 10**digits
    sign = -1 if scaled < 0 else 1
    whole, rest = divmod(abs(scaled), 1)
    units = int(whole) + (1 if rest >= Fraction(1, 2) else 0)
    return Decimal(sign * units).scaleb(-digits)


prices = st.decimals(min_value=0, max_value=5000, places=2, allow_nan=False, allow_infinity=False)
discounts = st.sampled_from(["0", "5", "10", "12.5", "20", "33.33", "100"]).map(Decimal)


@settings(max_examples=150, deadline=None)
@given(
    start=st.dates(min_value=date(2024, 1, 1), max_value=date(2032, 12, 1)),
    length=st.sampled_from([28, 29, 30, 31, 90, 365]),
    offset=st.integers(min_value=0, max_value=364),
    old=st.lists(st.tuples(st.integers(0, 500), prices, discounts), min_size=1, max_size=4),
    new=st.lists(st.tuples(st.integers(0, 500), prices, discounts), min_size=1, max_size=4),
)
def test_net_is_the_sum_of_exact_lines(start, length, offset, old, new):
    end = start + timedelta(days=length)
    effective = start + timedelta(days=offset % length)
    sub = subscription(
        start,
        end,
        *[
            SubscriptionLine(product=f"p{i}", quantity=q, unit_price=Money.of(p, "USD"), discount_percent=d)
            for i, (q, p, d) in enumerate(old)
        ],
    )
    changes = [
        AmendedLine(product=f"p{i + 2}", quantity=q, unit_price=p, discount_percent=d)
        for i, (q, p, d) in enumerate(new)
    ]
    result = prorate(sub, changes, effective)

    remaining = (end - effective).days
    assert (result.days_remaining, result.days_in_period) == (remaining, length)
    assert result.net.amount == sum((x.amount.amount for x in result.lines), Decimal("0.00"))
    monthly = {}
    for x in sub.lines:
        monthly[("old", x.product)] = monthly_amount(x.quantity, x.unit_price, x.discount_percent).amount
    for x in changes:
        monthly[("new", x.product)] = monthly_amount(
            x.quantity, Money.of(x.unit_price, "USD"), x.discount_percent
        ).amount
    for x in result.lines:
        assert x.amount.currency == "USD"
        assert x.amount.amount.as_tuple().exponent == -2
        side = "old" if x.kind is ProrationKind.CREDIT else "new"
        exact = Fraction(monthly[(side, x.product)]) * remaining / length
        expected = _half_up(exact, 2)
        assert x.amount.amount == (-expected if side == "old" else expected)
        assert x.amount.amount != 0
    # products the amendment does not mention (p0, p1) never produce a line
    assert {x.product for x in result.lines} <= {c.product for c in changes}
