"""What makes an amendment request acceptable, checked before any side effect."""

from __future__ import annotations

from decimal import Decimal

from canonical.models import AmendedLine, AmendmentRequest, Subscription
from canonical.money import CurrencyError, minor_unit, quantum
from canonical.requests import request_size_problems


class InvalidRequest(ValueError):
    """A request cannot be carried out as it stands; `problems` says why, in finance words."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class InvalidAmendment(InvalidRequest):
    pass


# Sanity bounds: a request beyond them is a typo or an attack, not a contract.
MAX_QUANTITY = 1_000_000
MAX_UNIT_PRICE = Decimal(10) ** 9


def line_problems(lines: list[AmendedLine], currency: str) -> list[str]:
    """What is wrong with the wanted lines of a change, before anything looks at billing."""
    problems: list[str] = []
    try:
        digits: int | None = minor_unit(currency)
    except CurrencyError as exc:
        problems.append(str(exc))
        digits = None
    seen: set[str] = set()
    for line in lines:
        if not line.product.strip():
            problems.append("a line names no product")
        if line.product in seen:
            problems.append(f"product {line.product} appears twice")
        seen.add(line.product)
        if line.quantity < 0:
            problems.append(f"quantity of {line.product} is {line.quantity}; it cannot be below zero")
        elif line.quantity > MAX_QUANTITY:
            problems.append(f"quantity of {line.product} is above {MAX_QUANTITY:,}")
        if line.unit_price < 0:
            problems.append(f"unit price of {line.product} is negative")
        elif line.unit_price >= MAX_UNIT_PRICE:
            problems.append(f"unit price of {line.product} is above {MAX_UNIT_PRICE:,}")
        elif digits is not None and line.unit_price != line.unit_price.quantize(quantum(currency)):
            # Subscription lines are priced in Money, so a finer price would fail later.
            problems.append(f"unit price of {line.product} has more decimals than {currency} allows ({digits})")
        if not Decimal(0) <= line.discount_percent <= Decimal(100):
            problems.append(f"discount of {line.product} must be between 0 and 100 %")
    return problems


def request_problems(request: AmendmentRequest) -> list[str]:
    """Problems visible in the request alone."""
    problems: list[str] = []
    if not request.amendment_id.strip():
        problems.append("the amendment id is empty")
    if not request.requested_by.strip():
        problems.append("the requester is empty")
    if not request.lines:
        problems.append("the amendment changes no lines")
    problems += request_size_problems("amendment request", request)
    return problems + line_problems(request.lines, request.currency) + ssp_problems(request)


def ssp_problems(request: AmendmentRequest) -> list[str]:
    """What is wrong with the stated standalone selling prices of what remains."""
    problems: list[str] = []
    try:
        exponent = quantum(request.currency)
    except CurrencyError:
        return problems  # said once already by the lines
    for obligation, ssp in request.remaining_ssp.items():
        if not obligation.strip():
            problems.append("a remaining SSP names no obligation")
        if not ssp.is_finite() or ssp < 0:
            problems.append(f"remaining SSP of {obligation} must be a price not below zero")
        elif ssp >= MAX_UNIT_PRICE * MAX_QUANTITY:
            problems.append(f"remaining SSP of {obligation} is above {MAX_UNIT_PRICE * MAX_QUANTITY:,}")
        elif ssp != ssp.quantize(exponent):
            problems.append(f"remaining SSP of {obligation} has more decimals than {request.currency} allows")
    return problems


def subscription_problems(request: AmendmentRequest, subscription: Subscription | None) -> list[str]:
    """Problems visible only against the subscription as billing holds it."""
    if subscription is None:
        return [f"subscription {request.subscription_id} does not exist in billing"]
    problems: list[str] = []
    if subscription.status not in ("active", "trialing", "past_due"):
        problems.append(f"subscription {subscription.id} is {subscription.status}, not active")
    if subscription.account_id != request.account_id:
        problems.append(
            f"subscription {subscription.id} belongs to {subscription.account_id}, not {request.account_id}"
        )
    if subscription.contract_id and subscription.contract_id != request.contract_id:
        problems.append(
            f"subscription {subscription.id} is on contract {subscription.contract_id}, not {request.contract_id}"
        )
    if request.currency != subscription.currency:
        problems.append(f"currency {request.currency} differs from the contract's {subscription.currency}")
    effective = request.effective_date
    if not subscription.term_start <= effective < subscription.term_end:
        problems.append(
            f"effective date {effective} is outside the current term "
            f"{subscription.term_start} to {subscription.term_end}"
        )
    elif not subscription.current_period_start <= effective < subscription.current_period_end:
        problems.append(
            f"effective date {effective} is outside the current billing period "
            f"{subscription.current_period_start} to {subscription.current_period_end}; "
            "o2c prorates within the open period only"
        )
    return problems


def validate_amendment(request: AmendmentRequest, subscription: Subscription | None) -> None:
    problems = request_problems(request)
    if not problems:
        problems = subscription_problems(request, subscription)
    if problems:
        raise InvalidAmendment(problems)
