"""ASC 606's own figures, to the cent: modifications weighed by the SSPs at the modification
date, reductions beyond what is unrecognised, and prices allocated directly."""

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from canonical.amendment import request_problems
from canonical.models import AmendedLine, AmendmentRequest, Subscription, SubscriptionLine
from canonical.money import CurrencyError, Money
from canonical.proration import prorate
from canonical.revenue import (
    ContractModification,
    ModificationTreatment,
    ObligationKind,
    PerformanceObligation,
    RevenueContract,
    allocate,
    amendment_schedules,
    modify,
    recognise,
    recognised_before,
    treatment,
)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def per_unit(total: Money, units: int) -> Decimal:
    return (total.amount / units).quantize(Decimal("0.01"))


def contract(price: str, *obligations: PerformanceObligation, contract_id: str = "C1") -> RevenueContract:
    return RevenueContract(
        contract_id=contract_id,
        account_id="A1",
        legal_entity="US01",
        booked_on=date(2026, 1, 1),
        transaction_price=usd(price),
        obligations=list(obligations),
    )


def subscription(ssp: str = "12000.00", oid: str = "subscription") -> PerformanceObligation:
    return PerformanceObligation(
        obligation_id=oid, kind=ObligationKind.SUBSCRIPTION, ssp=usd(ssp), start=date(2026, 1, 1), end=date(2027, 1, 1)
    )


def by_period(schedule) -> dict[str, str]:
    return {line.period: str(line.amount.amount) for line in schedule.lines}


# -- ASC 606-10-55-111 to 55-115, Example 5: modification of a contract for goods --------
#
# 120 products for 12,000 (100 each), transferred over six months, control at delivery:
# here 20 a month, one point-in-time obligation per delivery. After 60 are delivered the
# contract is modified for 30 more products. Case A: at 95 each, their SSP then, a separate
# contract. Case B: at 80 each, not their SSP, and the remaining products are distinct, so
# the original contract is terminated and a new one created (606-10-25-13(a)): the 6,000
# not yet recognised plus the 2,400 promised for the 30 added, 8,400 over the 90 products
# left, 93.33 each. (In the standard the customer pays 1,500 for the 30: 2,400 less a
# 900 credit for defects in the 60 delivered, which reduces revenue on those at once and
# is not consideration of the new contract. That credit is booked on the delivered
# products, e.g. as a credit memo, not through this modification.)


def _example_5() -> list:
    deliveries = [
        PerformanceObligation(
            obligation_id=f"delivery-{month}",
            kind=ObligationKind.PROFESSIONAL_SERVICES,
            ssp=usd("2000.00"),  # 20 products at 100
            delivered_on=date(2026, month, 15),
        )
        for month in range(1, 7)
    ]
    return recognise(contract("12000.00", *deliveries, contract_id="C5"))


def _thirty_more(ssp_per_unit: str) -> PerformanceObligation:
    return PerformanceObligation(
        obligation_id="thirty-more",
        kind=ObligationKind.PROFESSIONAL_SERVICES,
        ssp=usd(str(Decimal(ssp_per_unit) * 30)),
        delivered_on=date(2026, 6, 30),
    )


MODIFIED_ON = date(2026, 4, 1)  # deliveries of January to March (60 products) transferred


def test_example_5_case_a_added_products_at_their_ssp_are_a_separate_contract():
    before = _example_5()
    change = ContractModification(modification_id="M", added=[_thirty_more("95")], added_price=usd("2850.00"))
    assert treatment(change) == ModificationTreatment.SEPARATE_CONTRACT
    after = modify(before, change, MODIFIED_ON)
    assert after[:6] == before  # the original 120 stay at 100 each
    [added] = after[6:]
    assert (added.contract_id, per_unit(added.total, 30)) == ("C5-M", Decimal("95.00"))


def test_example_5_case_b_remaining_and_added_products_at_their_ssp_on_the_modification_date():
    before = _example_5()
    # Every product's SSP on the modification date is 95 (Case A's figure): the 60 left
    # weigh 60 x 95 = 5,700 (three deliveries of 1,900), the 30 added 30 x 95 = 2,850.
    change = ContractModification(
        modification_id="M",
        added=[_thirty_more("95")],
        added_price=usd("2400.00"),  # 30 x 80
        remaining_ssp={f"delivery-{month}": usd("1900.00") for month in (4, 5, 6)},
    )
    assert treatment(change) == ModificationTreatment.PROSPECTIVE
    after = modify(before, change, MODIFIED_ON)
    assert after[:3] == before[:3]  # the 60 delivered keep their 100 each
    april, may, june, added = after[3:]
    # 8,400 x 1,900 / 8,550 = 1,866.666.. for each delivery of 20; the two cents left over go
    # to the earliest equal remainders. 8,400 x 2,850 / 8,550 = 2,800.00 for the 30 added.
    assert [s.total for s in (april, may, june, added)] == [
        usd("1866.67"),
        usd("1866.67"),
        usd("1866.66"),
        usd("2800.00"),
    ]
    assert {per_unit(s.total, 20) for s in (april, may, june)} == {Decimal("93.33")}
    assert per_unit(added.total, 30) == Decimal("93.33")
    assert (april.schedule_id, april.supersedes, april.ssp) == ("C5-delivery-4.M", "C5-delivery-4", usd("1900.00"))
    assert (added.schedule_id, by_period(added)) == ("C5-thirty-more.M", {"2026-06": "2800.00"})
    assert sum(s.total.minor for s in after) == usd("14400.00").minor  # 12,000 + 2,400


def test_example_5_case_b_without_current_ssps_weighs_the_remaining_at_their_ssp_at_inception():
    # The default when finance states no SSP for what remains: the SSP at inception (100 a
    # product), the only one o2c holds and what modifications booked before used. The
    # blend is then off the standard's 93.33: 8,400 x 2,000 / 8,850 = 1,898.31 per delivery
    # of 20 (94.92 each) and 8,400 x 2,850 / 8,850 = 2,705.08 for the 30 added (90.17).
    before = _example_5()
    change = ContractModification(modification_id="M", added=[_thirty_more("95")], added_price=usd("2400.00"))
    april, may, june, added = modify(before, change, MODIFIED_ON)[3:]
    assert [s.total for s in (april, may, june, added)] == [
        usd("1898.31"),
        usd("1898.31"),
        usd("1898.30"),
        usd("2705.08"),
    ]
    assert (per_unit(april.total, 20), per_unit(added.total, 30)) == (Decimal("94.92"), Decimal("90.17"))
    # Stating some of the SSPs weighs those as stated and the others as before.
    partly = change.model_copy(update={"remaining_ssp": {"delivery-4": usd("1900.00")}})
    assert modify(before, partly, MODIFIED_ON)[3].ssp == usd("1900.00")


def test_the_current_ssp_of_a_remaining_subscription_weighs_it_against_added_seats():
    # 12,000 for 2026; on 1 July 6,049.32 is unrecognised (184 of 365 days). 10 seats are
    # added for the rest of the year at 3,000, below their SSP of 4,000; the remaining
    # subscription's SSP today is 8,000 (list prices rose). 9,049.32 splits 8,000 : 4,000.
    before = recognise(contract("12000.00", subscription()))
    seats = PerformanceObligation(
        obligation_id="seats",
        kind=ObligationKind.SUBSCRIPTION,
        ssp=usd("4000.00"),
        start=date(2026, 7, 1),
        end=date(2027, 1, 1),
    )
    change = ContractModification(
        modification_id="M1",
        added=[seats],
        added_price=usd("3000.00"),
        remaining_ssp={"subscription": usd("8000.00")},
    )
    _past, remaining, added = modify(before, change, date(2026, 7, 1))
    assert (remaining.total, added.total) == (usd("6032.88"), usd("3016.44"))  # 9,049.32 x 2/3 and 1/3
    assert remaining.ssp == usd("8000.00")


@pytest.mark.parametrize(
    ("remaining_ssp", "error", "message"),
    [
        ({"support": usd("1.00")}, ValueError, "no such open obligation"),
        ({"subscription": usd("-1.00")}, ValueError, "cannot be negative"),
        ({"subscription": Money.of("1", "EUR")}, CurrencyError, "in EUR"),
    ],
)
def test_a_stated_ssp_must_name_an_open_obligation_in_the_contracts_currency(remaining_ssp, error, message):
    before = recognise(contract("12000.00", subscription()))
    change = ContractModification(modification_id="M", added_price=usd("100.00"), remaining_ssp=remaining_ssp)
    with pytest.raises(error, match=message):
        modify(before, change, date(2026, 7, 1))


# -- a reduction larger than what is still unrecognised ----------------------------------


def test_a_reduction_beyond_what_is_unrecognised_reverses_revenue_at_once():
    # 12,000 for 2026; on 1 October 8,975.34 is recognised and 3,024.66 is not. The price
    # is reduced by 5,000: 1,975.34 more than is left. Nothing is spread over the last
    # quarter; October reverses the 1,975.34 at once, and the year recognises 7,000.
    before = recognise(contract("12000.00", subscription()))
    past, new = modify(
        before, ContractModification(modification_id="M1", added_price=usd("-5000.00")), as_of=date(2026, 10, 1)
    )
    assert past.total == usd("8975.34")
    assert (new.schedule_id, new.total) == ("C1-subscription.M1", usd("-1975.34"))
    reversal, *spread = new.lines
    assert (reversal.start, reversal.end, reversal.amount) == (date(2026, 10, 1), date(2026, 10, 2), usd("-1975.34"))
    assert [(line.period, line.amount) for line in spread] == [(f"2026-{m}", usd("0.00")) for m in (10, 11, 12)]
    assert past.total + new.total == usd("7000.00")


def test_a_reversal_is_split_by_what_each_obligation_recognised_and_none_goes_below_zero():
    # 15,000 for a 12,000 subscription and a 3,000 support plan, both 2026 (allocated
    # 12,000 / 3,000). On 1 October 8,975.34 and 2,243.84 are recognised, 3,780.82 is not.
    # A 13,000.00 reduction exceeds that by 9,219.18, reversed 8 : 2 as recognised.
    before = recognise(contract("15000.00", subscription(), subscription("3000.00", oid="support")))
    after = modify(
        before, ContractModification(modification_id="M1", added_price=usd("-13000.00")), as_of=date(2026, 10, 1)
    )
    recognised = {s.obligation: recognised_before(s, date(2026, 10, 1)) for s in before}
    assert recognised == {"subscription": usd("8975.34"), "support": usd("2243.84")}
    reversed_ = {s.obligation: s.total for s in after if s.supersedes}
    # 9,219.18 x 8,975.34 / 11,219.18 = 7,375.3407.. and x 2,243.84 / 11,219.18 = 1,843.8393..:
    # the cent the floors leave goes to the larger remainder.
    assert reversed_ == {"subscription": usd("-7375.34"), "support": usd("-1843.84")}
    for obligation in recognised:
        lifetime = sum(s.total.minor for s in after if s.obligation == obligation)
        assert lifetime >= 0
    assert sum(s.total.minor for s in after) == usd("2000.00").minor  # 15,000 - 13,000


def test_a_reduction_beyond_everything_the_obligations_hold_is_refused_as_a_refund():
    before = recognise(contract("12000.00", subscription()))
    with pytest.raises(ValueError, match="refund"):
        modify(before, ContractModification(modification_id="M1", added_price=usd("-12000.01")), date(2026, 10, 1))
    # Exactly everything: the year recognises nothing, October reverses what was recognised.
    past, new = modify(
        before, ContractModification(modification_id="M1", added_price=usd("-12000.00")), date(2026, 10, 1)
    )
    assert past.total + new.total == usd("0.00") and new.lines[0].amount == usd("-8975.34")


def test_modifications_booked_before_the_rule_keep_spreading_a_negative_pool():
    # What released workflows replay (reverse_excess=False): the 1,975.34 below zero spread
    # over the last quarter by days, as before.
    before = recognise(contract("12000.00", subscription()))
    _past, new = modify(
        before,
        ContractModification(modification_id="M1", added_price=usd("-5000.00")),
        as_of=date(2026, 10, 1),
        reverse_excess=False,
    )
    assert by_period(new) == {"2026-10": "-665.61", "2026-11": "-644.13", "2026-12": "-665.60"}


def test_a_second_modification_the_month_of_a_reversal_keeps_every_cent():
    before = recognise(contract("12000.00", subscription()))
    first = modify(before, ContractModification(modification_id="M1", added_price=usd("-5000.00")), date(2026, 10, 1))
    open_ = [s for s in first if s.end > date(2026, 10, 16)]
    second = modify(open_, ContractModification(modification_id="M2", added_price=usd("100.00")), date(2026, 10, 16))
    closed = [s for s in first if s.end <= date(2026, 10, 16)]
    assert sum(s.total.minor for s in [*closed, *second]) == usd("7100.00").minor
    # The reversal was wholly recognised on 1 October, so the 100 spreads over what is left.
    reversed_, spread = second
    assert reversed_.end == date(2026, 10, 16) and reversed_.total == usd("-1975.34")
    assert spread.total == usd("100.00")


def test_a_catch_up_refuses_a_price_below_zero():
    before = recognise(contract("12000.00", subscription()))
    change = ContractModification(modification_id="M1", added_price=usd("-12000.01"), remaining_distinct=False)
    with pytest.raises(ValueError, match="refund"):
        modify(before, change, date(2026, 10, 1))
    # A reduction within the price catches up at once: 7,000 x 273/365 = 5,235.62 is due to
    # date against 8,975.34 recognised, so October starts with 3,739.72 reversed.
    [s] = modify(before, change.model_copy(update={"added_price": usd("-5000.00")}), date(2026, 10, 1))
    assert s.total == usd("7000.00")
    assert recognised_before(s, date(2026, 10, 1)) == usd("8975.34")
    october = s.lines[9].amount
    assert october == usd("-3739.72") + usd("594.52")  # the catch-up and October's 31/92 of 1,764.38


# -- ASC 606-10-32-37 to 32-41: a price allocated directly --------------------------------


def test_a_discount_that_belongs_to_some_obligations_is_allocated_to_them_alone():
    # ASC 606-10-55-259 to 55-262 (Example 34, Case A): products A, B and C with SSPs 40,
    # 55 and 45 sell together for 100. B and C are regularly sold together for 60 and A
    # alone for 40, so the whole discount of 40 belongs to B and C: A gets its 40 and
    # B and C share the rest, 60, by their SSPs: 33 and 27.
    def product(name: str, ssp: str, direct: str | None = None) -> PerformanceObligation:
        return PerformanceObligation(
            obligation_id=name,
            kind=ObligationKind.PROFESSIONAL_SERVICES,
            ssp=usd(ssp),
            delivered_on=date(2026, 3, 1),
            direct_price=None if direct is None else usd(direct),
        )

    products = [product("A", "40.00", direct="40.00"), product("B", "55.00"), product("C", "45.00")]
    assert allocate(usd("100.00"), products) == {"A": usd("40.00"), "B": usd("33.00"), "C": usd("27.00")}
    schedules = recognise(contract("100.00", *products))
    assert sum(s.total.minor for s in schedules) == usd("100.00").minor


def test_directly_allocated_prices_must_fit_the_transaction_price():
    usage = PerformanceObligation(
        obligation_id="usage",
        kind=ObligationKind.USAGE,
        ssp=usd("0"),
        delivered_on=date(2026, 3, 31),
        direct_price=usd("431.17"),
    )
    with pytest.raises(ValueError, match="exceed the transaction price"):
        allocate(usd("431.16"), [subscription(), usage])
    with pytest.raises(ValueError, match="allocated to no obligation"):
        allocate(usd("500.00"), [usage])
    assert allocate(usd("431.17"), [usage]) == {"usage": usd("431.17")}
    # Nothing left for the subscription is an allocation of zero, not an error.
    assert allocate(usd("431.17"), [subscription(), usage])["subscription"] == usd("0.00")


# -- the amendment request states the SSPs -----------------------------------------------

SUBSCRIPTION = Subscription(
    id="sub_1",
    account_id="cus_1",
    contract_id="C-1",
    currency="USD",
    status="active",
    lines=[SubscriptionLine(product="seats", quantity=10, unit_price=usd("50.00"))],
    current_period_start=date(2026, 11, 1),
    current_period_end=date(2026, 12, 1),
    term_start=date(2026, 1, 1),
    term_end=date(2027, 3, 1),
)


def request(quantity: int, **extra) -> AmendmentRequest:
    return AmendmentRequest(
        amendment_id="A-7",
        contract_id="C-1",
        subscription_id="sub_1",
        account_id="cus_1",
        currency="USD",
        effective_date=date(2026, 11, 16),
        requested_by="sam",
        lines=[AmendedLine(product="seats", quantity=quantity, unit_price=Decimal("50.00"))],
        **extra,
    )


def _seats_schedule(total: str):
    return recognise(
        RevenueContract(
            contract_id="C-1",
            account_id="cus_1",
            legal_entity="US01",
            booked_on=date(2026, 1, 1),
            transaction_price=usd(total),
            obligations=[
                PerformanceObligation(
                    obligation_id="seats",
                    kind=ObligationKind.SUBSCRIPTION,
                    ssp=usd(total),
                    start=date(2026, 1, 1),
                    end=date(2027, 3, 1),
                )
            ],
        )
    )


def test_an_amendment_weighs_the_remaining_seats_at_the_ssp_it_states():
    existing = _seats_schedule("7000.00")  # 14 months of 10 seats at 50
    r = request(12, remaining_ssp={"seats": Decimal("1750.00")})
    change = amendment_schedules(
        existing, SUBSCRIPTION, prorate(SUBSCRIPTION, r.lines, r.effective_date), r, legal_entity="US01", id_prefix="x"
    )
    [_past, new] = change.save
    assert (new.schedule_id, new.ssp) == ("C-1-seats.A-7", usd("1750.00"))
    # Without the field the SSP at inception, prorated to the 105 of 424 days left.
    plain = request(12)
    assert plain.remaining_ssp == {}
    default = amendment_schedules(
        existing,
        SUBSCRIPTION,
        prorate(SUBSCRIPTION, plain.lines, plain.effective_date),
        plain,
        legal_entity="US01",
        id_prefix="x",
    )
    assert default.save[1].ssp == usd("1733.49")


def test_an_amendment_taking_more_than_is_unrecognised_reverses_it_in_the_effective_month():
    # The seats were sold at a discount (5,600 for the term, 424 days), the downgrade to
    # none takes their list value for the rest of it: 50.00 x 10 x 15/30 for November, then
    # 500.00 for each of December to February, 1,750.00, against 1,386.78 unrecognised (the
    # monthly lines recognised 4,213.22 by the 16th). The 363.22 beyond it is reversed on
    # the effective date.
    existing = _seats_schedule("5600.00")
    r = request(0)
    change = amendment_schedules(
        existing, SUBSCRIPTION, prorate(SUBSCRIPTION, r.lines, r.effective_date), r, legal_entity="US01", id_prefix="x"
    )
    past, new = change.save
    assert usd("5600.00") - past.total == usd("1386.78")
    assert new.total == usd("-363.22")
    assert (new.lines[0].start, new.lines[0].amount) == (date(2026, 11, 16), usd("-363.22"))
    assert all(line.amount.is_zero for line in new.lines[1:])


@pytest.mark.parametrize(
    ("remaining_ssp", "problem"),
    [
        ({"seats": Decimal("-1")}, "remaining SSP of seats must be a price not below zero"),
        ({"seats": Decimal("1.001")}, "remaining SSP of seats has more decimals than USD allows"),
        ({" ": Decimal("1")}, "a remaining SSP names no obligation"),
    ],
)
def test_an_amendment_with_a_bad_ssp_is_refused_before_anything_happens(remaining_ssp, problem):
    assert problem in request_problems(request(12, remaining_ssp=remaining_ssp))


def test_an_amendment_ssp_that_is_not_a_number_does_not_parse():
    with pytest.raises(ValidationError, match="finite"):
        AmendmentRequest.model_validate({**request(12).model_dump(), "remaining_ssp": {"seats": "NaN"}})
