"""The approval policy: who must approve an amendment, and who may not."""

from datetime import date
from decimal import Decimal

import pytest

from canonical.approval import ApprovalPolicy, amendment_approval, annual_value_change, refusal
from canonical.models import ApprovalRequest, Approver, ApproverRole, Proration
from canonical.money import Money
from canonical.policy_amounts import UncoveredCurrency, per_currency

POLICY = ApprovalPolicy()


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def proration(before: str, after: str, net: str = "10.00", discount: str = "0") -> Proration:
    return Proration(
        period_start=date(2027, 1, 1),
        period_end=date(2027, 2, 1),
        effective_date=date(2027, 1, 11),
        days_remaining=21,
        days_in_period=31,
        lines=[],
        net=usd(net),
        monthly_before=usd(before),
        monthly_after=usd(after),
        max_discount_percent=Decimal(discount),
    )


def test_annual_value_change_is_twelve_months():
    assert annual_value_change(proration("500.00", "750.00")) == usd("3000.00")
    assert annual_value_change(proration("750.00", "500.00")) == usd("-3000.00")


@pytest.mark.parametrize(
    ("before", "after", "discount"),
    [
        ("500.00", "750.00", "0"),  # +3,000 a year
        ("1000.00", "1833.33", "0"),  # +9,999.96 a year: just under the finance threshold
        ("1833.33", "1000.00", "0"),  # -9,999.96 a year (net still positive here)
        ("500.00", "500.00", "20"),  # discount exactly at the policy limit
    ],
)
def test_small_changes_need_no_approval(before, after, discount):
    assert amendment_approval(proration(before, after, discount=discount), POLICY, "sam.sales") is None


def test_discount_above_policy_needs_finance():
    request = amendment_approval(proration("500.00", "500.00", discount="20.01"), POLICY, "sam.sales")
    assert request is not None
    assert request.required_role is ApproverRole.FINANCE
    assert request.reasons == ["discount 20.01% above the 20% policy"]
    assert request.requested_by == "sam.sales"
    assert request.amount == usd("0.00")


def test_net_credit_needs_finance():
    request = amendment_approval(proration("500.00", "450.00", net="-33.87"), POLICY, "sam.sales")
    assert request is not None
    assert request.required_role is ApproverRole.FINANCE
    assert request.reasons == ["net credit of 33.87 USD to the customer"]
    assert request.amount == usd("-600.00")


def test_zero_net_is_not_a_credit():
    assert amendment_approval(proration("500.00", "500.00", net="0.00"), POLICY, "sam.sales") is None


@pytest.mark.parametrize(
    ("before", "after", "role", "change"),
    [
        ("1000.00", "1833.34", ApproverRole.FINANCE, "10,000.08"),  # just over 10,000
        ("0.00", "4166.66", ApproverRole.FINANCE, "49,999.92"),  # just under 50,000
        ("0.00", "4166.67", ApproverRole.CONTROLLER, "50,000.04"),  # just over 50,000
        ("1000.00", "11000.00", ApproverRole.CONTROLLER, "120,000.00"),
    ],
)
def test_annual_value_thresholds(before, after, role, change):
    request = amendment_approval(proration(before, after), POLICY, "sam.sales")
    assert request is not None
    assert request.required_role is role
    threshold = "50,000.00 USD" if role is ApproverRole.CONTROLLER else "10,000.00 USD"
    assert request.reasons == [f"annual value change {change} USD above {threshold}"]
    assert str(request.amount) == f"{change} USD"
    # A run that started before the per-currency tables decides and words it as it did then.
    old = amendment_approval(proration(before, after), POLICY, "sam.sales", per_currency=False)
    assert old is not None and old.required_role is role
    assert old.reasons == [f"annual value change {change} USD above {threshold.split('.')[0].replace(',', '')}"]


def test_large_decrease_counts_by_size_and_lists_every_reason():
    request = amendment_approval(proration("6000.00", "0.00", net="-3870.97", discount="25"), POLICY, "sam.sales")
    assert request is not None
    assert request.required_role is ApproverRole.CONTROLLER
    assert request.amount == usd("-72000.00")
    assert request.reasons == [
        "discount 25% above the 20% policy",
        "net credit of 3,870.97 USD to the customer",
        "annual value change -72,000.00 USD above 50,000.00 USD",
    ]


def in_yen(before: str, after: str) -> Proration:
    base = proration("0.00", "0.00", net="0.00")
    jpy = {
        "net": Money.of(0, "JPY"),
        "monthly_before": Money.of(before, "JPY"),
        "monthly_after": Money.of(after, "JPY"),
    }
    return base.model_copy(update=jpy)


def test_thresholds_are_read_in_the_contract_currency():
    # JPY 12,000 a year (about 80 dollars) needs nobody; the bare 10,000 of old read it as large.
    assert amendment_approval(in_yen("0", "1000"), POLICY, "sam.sales") is None
    old = amendment_approval(in_yen("0", "1000"), POLICY, "sam.sales", per_currency=False)
    assert old is not None and old.required_role is ApproverRole.FINANCE
    finance = amendment_approval(in_yen("0", "125001"), POLICY, "sam.sales")  # 1,500,012 a year
    assert finance is not None and finance.required_role is ApproverRole.FINANCE
    assert finance.reasons == ["annual value change 1,500,012 JPY above 1,500,000 JPY"]
    controller = amendment_approval(in_yen("0", "625001"), POLICY, "sam.sales")  # 7,500,012 a year
    assert controller is not None and controller.required_role is ApproverRole.CONTROLLER


@pytest.mark.parametrize("currency", ["USD", "EUR", "GBP", "CAD", "AUD", "JPY"])
def test_the_default_policy_covers_the_major_currencies(currency):
    assert POLICY.uncovered(currency) is None
    assert POLICY.finance_limit(currency) < POLICY.controller_limit(currency)


def test_a_currency_the_policy_does_not_state_is_refused_not_borrowed():
    assert POLICY.uncovered("CHF") == (
        "the finance approval threshold is not stated in CHF (the policy covers AUD, CAD, EUR, GBP, JPY, USD)"
    )
    chf = in_yen("0", "1000").model_copy(
        update={"monthly_before": Money.of("0", "CHF"), "monthly_after": Money.of("1000", "CHF")}
    )
    with pytest.raises(UncoveredCurrency, match="not stated in CHF"):
        amendment_approval(chf, POLICY, "sam.sales")


def test_per_currency_tables_load_from_a_plain_mapping():
    policy = ApprovalPolicy.model_validate(
        {"finance_thresholds": {"USD": 5000, "JPY": "750000"}, "controller_thresholds": {"USD": 20000, "JPY": 3000000}}
    )
    assert policy.finance_limit("JPY") == Money.of(750000, "JPY")
    assert policy.uncovered("EUR") is not None
    with pytest.raises(ValueError, match="not negative"):
        ApprovalPolicy.model_validate({"finance_thresholds": {"USD": -1}})
    with pytest.raises(ValueError):
        ApprovalPolicy.model_validate({"finance_thresholds": {"XXQ": 1}})


def test_role_by_amount_is_per_currency():
    assert POLICY.role_for(Money.of(60_000, "USD")) is ApproverRole.CONTROLLER
    assert POLICY.role_for(Money.of(60_000, "JPY")) is ApproverRole.FINANCE
    assert POLICY.role_for(Money.of(60_000, "JPY"), per_currency=False) is ApproverRole.CONTROLLER


def test_thresholds_come_from_the_policy():
    strict = ApprovalPolicy(
        finance_thresholds=per_currency(USD=1000),
        controller_thresholds=per_currency(USD=2000),
        max_discount_percent=Decimal(5),
    )
    assert amendment_approval(proration("500.00", "600.00"), strict, "s").required_role is ApproverRole.FINANCE
    assert amendment_approval(proration("500.00", "700.00"), strict, "s").required_role is ApproverRole.CONTROLLER
    assert amendment_approval(proration("500.00", "500.00", discount="6"), strict, "s") is not None


def request_for(role: ApproverRole, requested_by: str = "sam.sales") -> ApprovalRequest:
    return ApprovalRequest(required_role=role, reasons=["r"], requested_by=requested_by, amount=usd("12000.00"))


def test_unknown_approver_is_refused():
    assert refusal(request_for(ApproverRole.FINANCE), POLICY, "mallory", ApproverRole.FINANCE) == (
        "'mallory' is not a known approver"
    )


def test_claimed_role_must_match_the_directory():
    assert refusal(request_for(ApproverRole.FINANCE), POLICY, "fiona.finance", ApproverRole.CONTROLLER) == (
        "fiona.finance holds the role finance, not controller"
    )
    assert refusal(request_for(ApproverRole.FINANCE), POLICY, "carla.controller", ApproverRole.FINANCE) == (
        "carla.controller holds the role controller, not finance"
    )


def test_requester_cannot_approve_their_own_change():
    request = request_for(ApproverRole.FINANCE, requested_by="fiona.finance")
    assert refusal(request, POLICY, "fiona.finance", ApproverRole.FINANCE) == (
        "fiona.finance requested this change and cannot approve it"
    )
    assert refusal(request, POLICY, "frank.finance", ApproverRole.FINANCE) is None


@pytest.mark.parametrize(
    ("requested_by", "approver"),
    [("Fiona.Finance ", "fiona.finance"), ("fiona.finance", " FIONA.FINANCE"), ("FIONA.finance\t", "Fiona.Finance")],
)
def test_segregation_of_duties_compares_identities_not_spellings(requested_by, approver):
    request = request_for(ApproverRole.FINANCE, requested_by=requested_by)
    assert refusal(request, POLICY, approver, ApproverRole.FINANCE) == (
        f"{approver} requested this change and cannot approve it"
    )


def test_approvers_are_looked_up_as_identities():
    assert refusal(request_for(ApproverRole.FINANCE), POLICY, " Frank.Finance", ApproverRole.FINANCE) is None
    assert POLICY.approver("CARLA.CONTROLLER ").name == "carla.controller"
    assert POLICY.approver("carla") is None


def test_role_too_low_is_refused():
    assert refusal(request_for(ApproverRole.CONTROLLER), POLICY, "fiona.finance", ApproverRole.FINANCE) == (
        "this change needs a controller; fiona.finance is finance"
    )


@pytest.mark.parametrize(
    ("required", "approver", "role"),
    [
        (ApproverRole.FINANCE, "fiona.finance", ApproverRole.FINANCE),
        (ApproverRole.FINANCE, "frank.finance", ApproverRole.FINANCE),
        (ApproverRole.FINANCE, "carla.controller", ApproverRole.CONTROLLER),  # a higher role may approve
        (ApproverRole.CONTROLLER, "carla.controller", ApproverRole.CONTROLLER),
    ],
)
def test_valid_approver_gets_no_refusal(required, approver, role):
    assert refusal(request_for(required), POLICY, approver, role) is None


def test_approvers_come_from_the_policy():
    policy = ApprovalPolicy(approvers=[Approver(name="pat", role=ApproverRole.CONTROLLER)])
    assert refusal(request_for(ApproverRole.CONTROLLER), policy, "pat", ApproverRole.CONTROLLER) is None
    assert refusal(request_for(ApproverRole.FINANCE), policy, "fiona.finance", ApproverRole.FINANCE) == (
        "'fiona.finance' is not a known approver"
    )
