"""Amendment requests are checked before any side effect, with messages a person can act on."""

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from canonical.amendment import (
    InvalidAmendment,
    request_problems,
    subscription_problems,
    validate_amendment,
)
from canonical.models import AmendedLine, AmendmentRequest, Subscription, SubscriptionLine
from canonical.money import Money
from canonical.proration import prorate

SUB = Subscription(
    id="sub_1",
    account_id="acct_1",
    contract_id="C-1",
    currency="USD",
    status="active",
    lines=[SubscriptionLine(item_id="si_1", product="seats", quantity=10, unit_price=Money.of("50.00", "USD"))],
    current_period_start=date(2027, 3, 1),
    current_period_end=date(2027, 4, 1),
    term_start=date(2027, 1, 1),
    term_end=date(2028, 1, 1),
)


def seats(quantity: int = 15, price: str = "50.00", discount: str = "0", product: str = "seats") -> AmendedLine:
    return AmendedLine(
        product=product, quantity=quantity, unit_price=Decimal(price), discount_percent=Decimal(discount)
    )


def request(**changes) -> AmendmentRequest:
    fields = dict(
        amendment_id="A-1",
        contract_id="C-1",
        subscription_id="sub_1",
        account_id="acct_1",
        currency="USD",
        effective_date=date(2027, 3, 15),
        lines=[seats()],
        requested_by="sam.sales",
    )
    fields.update(changes)
    return AmendmentRequest(**fields)


def test_a_good_request_has_no_problems():
    assert request_problems(request()) == []
    assert subscription_problems(request(), SUB) == []
    validate_amendment(request(), SUB)


def test_negative_quantity():
    assert request_problems(request(lines=[seats(-1)])) == ["quantity of seats is -1; it cannot be below zero"]


def test_quantity_zero_is_a_removal_not_a_problem():
    assert request_problems(request(lines=[seats(0)])) == []


def test_duplicate_product():
    assert request_problems(request(lines=[seats(11), seats(12)])) == ["product seats appears twice"]


def test_no_lines():
    assert request_problems(request(lines=[])) == ["the amendment changes no lines"]


def test_an_empty_requester():
    assert request_problems(request(requested_by="")) == ["the requester is empty"]


def test_a_blank_id_is_not_a_request():
    # The business id rule refuses it while the request is read, naming the field.
    with pytest.raises(ValidationError, match=r"amendment_id\n  starts with U\+0020 a space"):
        request(amendment_id="  ")


def test_unknown_currency():
    assert request_problems(request(currency="XYZ")) == ["unknown or unsupported currency 'XYZ'"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (seats(price="-1.00"), "unit price of seats is negative"),
        (seats(price="1.00001"), "unit price of seats has more decimals than USD allows (2)"),
        (seats(price="1e30"), "unit price of seats is above 1,000,000,000"),
        (seats(quantity=10**30), "quantity of seats is above 1,000,000"),
        (seats(price="49.995"), "unit price of seats has more decimals than USD allows (2)"),
        (seats(discount="-1"), "discount of seats must be between 0 and 100 %"),
        (seats(discount="100.01"), "discount of seats must be between 0 and 100 %"),
    ],
)
def test_line_problems(line, problem):
    assert request_problems(request(lines=[line])) == [problem]


def test_unit_price_precision_follows_the_currency():
    assert request_problems(request(currency="JPY", lines=[seats(price="5000.5")])) == [
        "unit price of seats has more decimals than JPY allows (0)"
    ]
    assert request_problems(request(currency="JPY", lines=[seats(price="5000.00")])) == []
    assert request_problems(request(currency="BHD", lines=[seats(price="19.125")])) == []


def test_every_request_that_passes_validation_can_be_prorated():
    # Before the currency check a 49.995 USD price passed validation and then failed inside prorate.
    for price in ("49.99", "49.995", "0.0001"):
        req = request(lines=[seats(price=price)])
        if not request_problems(req) and not subscription_problems(req, SUB):
            prorate(SUB, req.lines, req.effective_date)
        else:
            with pytest.raises(InvalidAmendment):
                validate_amendment(req, SUB)


def test_several_problems_are_reported_together():
    problems = request_problems(request(lines=[seats(-2, discount="150"), seats(3)]))
    assert problems == [
        "quantity of seats is -2; it cannot be below zero",
        "discount of seats must be between 0 and 100 %",
        "product seats appears twice",
    ]


def test_unknown_subscription():
    assert subscription_problems(request(subscription_id="sub_404"), None) == [
        "subscription sub_404 does not exist in billing"
    ]
    with pytest.raises(InvalidAmendment) as caught:
        validate_amendment(request(subscription_id="sub_404"), None)
    assert caught.value.problems == ["subscription sub_404 does not exist in billing"]


def test_wrong_currency():
    assert subscription_problems(request(currency="EUR"), SUB) == ["currency EUR differs from the contract's USD"]


@pytest.mark.parametrize("effective", [date(2026, 12, 31), date(2028, 1, 1), date(2028, 6, 1)])
def test_effective_date_outside_the_term(effective):
    assert subscription_problems(request(effective_date=effective), SUB) == [
        f"effective date {effective} is outside the current term 2027-01-01 to 2028-01-01"
    ]


@pytest.mark.parametrize("effective", [date(2027, 1, 1), date(2027, 2, 28), date(2027, 4, 1), date(2027, 12, 31)])
def test_effective_date_in_the_term_but_outside_the_open_period(effective):
    assert subscription_problems(request(effective_date=effective), SUB) == [
        f"effective date {effective} is outside the current billing period 2027-03-01 to 2027-04-01; "
        "o2c prorates within the open period only"
    ]


@pytest.mark.parametrize("effective", [date(2027, 3, 1), date(2027, 3, 31)])
def test_first_and_last_day_of_the_period_are_accepted(effective):
    assert subscription_problems(request(effective_date=effective), SUB) == []


def test_subscription_ownership_and_status():
    assert subscription_problems(request(account_id="acct_2", contract_id="C-9"), SUB) == [
        "subscription sub_1 belongs to acct_1, not acct_2",
        "subscription sub_1 is on contract C-1, not C-9",
    ]
    canceled = SUB.model_copy(update={"status": "canceled"})
    assert subscription_problems(request(), canceled) == ["subscription sub_1 is canceled, not active"]
    for status in ("trialing", "past_due"):
        assert subscription_problems(request(), SUB.model_copy(update={"status": status})) == []


def test_validate_amendment_reports_request_problems_first():
    with pytest.raises(InvalidAmendment) as caught:
        validate_amendment(request(lines=[seats(-1)], currency="EUR"), None)
    assert caught.value.problems == ["quantity of seats is -1; it cannot be below zero"]
    assert str(caught.value) == "quantity of seats is -1; it cannot be below zero"
    assert isinstance(caught.value, ValueError)


def test_invalid_amendment_message_joins_problems():
    error = InvalidAmendment(["a", "b"])
    assert str(error) == "a; b"
    assert error.problems == ["a", "b"]
