"""The revenue schedules amendments and renewals record, to the cent."""

from datetime import date
from decimal import Decimal

from canonical.models import AmendedLine, AmendmentRequest, Subscription, SubscriptionLine
from canonical.money import Money
from canonical.proration import prorate
from canonical.renewal import RenewalPolicy
from canonical.revenue import amendment_schedules, contract_value_change, renewal_schedules


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def line(product: str, quantity: int, price: str, discount: str = "0") -> SubscriptionLine:
    return SubscriptionLine(
        product=product, quantity=quantity, unit_price=usd(price), discount_percent=Decimal(discount)
    )


SUBSCRIPTION = Subscription(
    id="sub_1",
    account_id="cus_1",
    contract_id="C-1",
    currency="USD",
    status="active",
    lines=[line("seats", 10, "50.00")],
    current_period_start=date(2026, 11, 1),
    current_period_end=date(2026, 12, 1),
    term_start=date(2026, 1, 1),
    term_end=date(2027, 3, 1),
)


def amendment(amendment_id: str, quantity: int) -> AmendmentRequest:
    return AmendmentRequest(
        amendment_id=amendment_id,
        contract_id="C-1",
        subscription_id="sub_1",
        account_id="cus_1",
        currency="USD",
        effective_date=date(2026, 11, 16),
        requested_by="sam",
        lines=[AmendedLine(product="seats", quantity=quantity, unit_price=Decimal("50.00"))],
    )


def test_a_renewal_allocates_the_discounted_term_across_products_by_list_price():
    # List prices: seats 50.00 x 12 x 12 months = 7,200; support 200.00 x 1 x 12 = 2,400.
    # The term sells for 8,640.00 (support discounted): allocated 3 : 1, exactly.
    lines = [line("seats", 12, "50.00"), line("support", 1, "120.00")]
    schedules = renewal_schedules(
        lines=lines,
        start=date(2027, 1, 1),
        end=date(2028, 1, 1),
        value=usd("8640.00"),
        policy=RenewalPolicy(),
        id_prefix="renewal-C-1-2027-01-01",
        contract_id="C-1",
        account_id="cus_1",
        legal_entity="US01",
        booked_on=date(2026, 11, 2),
    )
    seats, support = schedules
    assert (seats.schedule_id, seats.total, seats.ssp) == (
        "renewal-C-1-2027-01-01-seats",
        usd("6480.00"),
        usd("7200.00"),
    )
    assert (support.total, support.ssp) == (usd("2160.00"), usd("2400.00"))
    assert all(
        s.booked_on == date(2026, 11, 2) and sum(x.amount.minor for x in s.lines) == s.total.minor for s in schedules
    )


def test_the_contract_value_change_runs_to_the_end_of_the_term():
    proration = prorate(SUBSCRIPTION, amendment("A-1", 12).lines, date(2026, 11, 16))
    # 50.00 for the rest of November, then 100.00 more a month for December to February.
    assert proration.net == usd("50.00")
    assert contract_value_change(SUBSCRIPTION, proration) == usd("350.00")


def test_two_amendments_the_same_day_replace_rather_than_stack():
    first = amendment_schedules(
        [],
        SUBSCRIPTION,
        prorate(SUBSCRIPTION, amendment("A-1", 12).lines, date(2026, 11, 16)),
        amendment("A-1", 12),
        legal_entity="US01",
        id_prefix="amendment-A-1",
    )
    assert [s.schedule_id for s in first.save] == ["amendment-A-1-subscription"] and first.delete == []
    after_first = SUBSCRIPTION.model_copy(update={"lines": [line("seats", 12, "50.00")]})
    second = amendment_schedules(
        first.save,
        after_first,
        prorate(after_first, amendment("A-2", 14).lines, date(2026, 11, 16)),
        amendment("A-2", 14),
        legal_entity="US01",
        id_prefix="amendment-A-2",
    )
    # The first schedule had recognised nothing before the 16th: it is replaced, not cut.
    assert second.delete == ["amendment-A-1-subscription"]
    [replacement] = second.save
    assert replacement.schedule_id == "amendment-A-1-subscription.A-2"
    assert replacement.total == usd("700.00")  # 350.00 + another 350.00
