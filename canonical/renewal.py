"""Renewals: what the next term costs, what needs approval, what makes a request wrong."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from pydantic import ConfigDict, Field, StrictInt

from canonical.amendment import MAX_QUANTITY, line_problems
from canonical.models import (
    Account,
    AmendedLine,
    ApprovalRequest,
    ApproverRole,
    LegalEntity,
    Model,
    Subscription,
    SubscriptionLine,
)
from canonical.money import Money, total
from canonical.proration import line_amount
from canonical.requests import MAX_LINES, BusinessId, id_problem, request_size_problems

HUNDRED = Decimal(100)


class RenewalPolicy(Model):
    uplift_cap_percent: Decimal = Decimal(7)
    max_discount_percent: Decimal = Decimal(20)
    notice_days_before_end: list[int] = [60, 30]
    # List prices of what may be sold on a renewal, in major units per month.
    price_book: dict[str, Decimal] = {"seats": Decimal("50.00"), "support": Decimal("200.00")}
    # How long a calendar day lasts while waiting (shortened by configuration on test stacks).
    day: timedelta = timedelta(days=1)
    # The renewal window opens this many days before a term ends; a renewal started by the
    # window (not by a closed-won deal) carries the same lines with this uplift.
    window_days: int = 90
    window_uplift_percent: Decimal = Decimal(0)


class RenewedLine(Model):
    """The wanted state of a line in the new term; absent fields keep the current one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product: BusinessId
    quantity: StrictInt
    discount_percent: Decimal | None = None


class RenewalRequest(Model):
    # Unknown fields (`skip_approval`) are refused by name, never dropped.
    model_config = ConfigDict(frozen=True, extra="forbid")

    contract_id: BusinessId
    subscription_id: BusinessId
    account_id: BusinessId
    term: BusinessId  # names the new term, e.g. "2027" (and the current-term amendment's id)
    new_term_start: date
    new_term_end: date
    uplift_percent: Decimal = Decimal(0)
    lines: list[RenewedLine] = Field(default=[], max_length=MAX_LINES)
    # The entity that books the new term; empty keeps the current one. Checked against the
    # configured entities, so it needs no id rule of its own.
    legal_entity: str = ""
    # Carried out now, as an amendment.
    current_term_changes: list[AmendedLine] = Field(default=[], max_length=MAX_LINES)
    requested_by: str
    source: str = "crm_closed_won"
    reason: str = ""


class RenewalChange(Model):
    """An update while the renewal waits for its term: new seat counts or a new start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lines: list[RenewedLine] = Field(default=[], max_length=MAX_LINES)
    new_term_start: date | None = None
    requested_by: str


def months_between(start: date, end: date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


def price_new_term(
    subscription: Subscription, request: RenewalRequest, policy: RenewalPolicy
) -> list[SubscriptionLine]:
    """Current lines with the uplift on their unit price, then the requested seat and
    discount changes; new products come at their price-book price."""
    factor = (HUNDRED + request.uplift_percent) / HUNDRED
    lines = {
        line.product: line.model_copy(update={"item_id": "", "unit_price": line.unit_price.times(factor)})
        for line in subscription.lines
    }
    for change in request.lines:
        current = lines.get(change.product)
        if current is None:
            current = SubscriptionLine(
                product=change.product,
                description=change.product,
                quantity=0,
                unit_price=Money.of(policy.price_book[change.product], subscription.currency, rounded=True),
            )
        updates: dict[str, object] = {"quantity": change.quantity}
        if change.discount_percent is not None:
            updates["discount_percent"] = change.discount_percent
        lines[change.product] = current.model_copy(update=updates)
    return [line for line in lines.values() if line.quantity > 0]


def term_value(lines: list[SubscriptionLine], start: date, end: date, currency: str) -> Money:
    """What the new term is worth: the monthly amount times the months it runs."""
    return total((line_amount(x) for x in lines), currency).times(months_between(start, end))


def renewal_approval(
    request: RenewalRequest,
    lines: list[SubscriptionLine],
    policy: RenewalPolicy,
    value: Money,
) -> ApprovalRequest | None:
    reasons = []
    if request.uplift_percent > policy.uplift_cap_percent:
        reasons.append(f"uplift {request.uplift_percent}% above the {policy.uplift_cap_percent}% cap")
    discount = max((x.discount_percent for x in lines), default=Decimal(0))
    if discount > policy.max_discount_percent:
        reasons.append(f"discount {discount}% above the {policy.max_discount_percent}% policy")
    if not reasons:
        return None
    return ApprovalRequest(
        required_role=ApproverRole.FINANCE, reasons=reasons, requested_by=request.requested_by, amount=value
    )


MAX_UPLIFT_PERCENT = HUNDRED


def renewal_request_problems(request: RenewalRequest, policy: RenewalPolicy) -> list[str]:
    """Problems visible in the request alone, before anything looks at billing."""
    problems: list[str] = []
    if not request.requested_by.strip():
        problems.append("the requester is empty")
    if not request.term.strip():
        problems.append("the term has no name")
    if request.new_term_end <= request.new_term_start:
        problems.append("the new term ends before it starts")
    if request.uplift_percent < 0:
        problems.append("a negative uplift is a discount: put it on the lines")
    elif request.uplift_percent > MAX_UPLIFT_PERCENT:
        problems.append(f"an uplift of {request.uplift_percent}% is not a renewal price")
    seen: set[str] = set()
    for line in request.lines:
        if not line.product.strip():
            problems.append("a line names no product")
        if line.product in seen:
            problems.append(f"product {line.product} appears twice")
        seen.add(line.product)
        if line.quantity < 0:
            problems.append(f"quantity of {line.product} is {line.quantity}; it cannot be below zero")
        elif line.quantity > MAX_QUANTITY:
            problems.append(f"quantity of {line.product} is above {MAX_QUANTITY:,}")
        if line.discount_percent is not None and not Decimal(0) <= line.discount_percent <= HUNDRED:
            problems.append(f"discount of {line.product} must be between 0 and 100 %")
    if request.current_term_changes:
        # Its id joins two of the request's ids: each may be valid and the two too long together.
        amendment_id = current_term_amendment_id(request)
        wrong = id_problem(amendment_id)
        if wrong:
            problems.append(f"the current-term changes would be amendment {amendment_id}, whose id {wrong}")
    return problems + request_size_problems("renewal request", request)


def current_term_amendment_id(request: RenewalRequest) -> str:
    """The id of the amendment that carries out a renewal's current-term changes."""
    return f"{request.contract_id}-{request.term}-current"


def renewal_problems(
    request: RenewalRequest,
    subscription: Subscription | None,
    account: Account | None,
    entities: list[LegalEntity],
    policy: RenewalPolicy,
    *,
    today: date,
) -> list[str]:
    """Everything wrong with a renewal, in words a finance analyst acts on."""
    problems = renewal_request_problems(request, policy)
    if subscription is None:
        return [*problems, f"subscription {request.subscription_id} does not exist in billing"]
    if account is None:
        return [*problems, f"customer {request.account_id} does not exist in billing"]
    if subscription.account_id != request.account_id:
        problems.append(
            f"subscription {subscription.id} belongs to {subscription.account_id}, "
            f"not {request.account_id}: check the account hierarchy"
        )
    if subscription.contract_id and subscription.contract_id != request.contract_id:
        problems.append(
            f"subscription {subscription.id} is on contract {subscription.contract_id}, not {request.contract_id}"
        )
    if request.new_term_start != subscription.term_end:
        problems.append(
            f"the new term must start when the current one ends ({subscription.term_end}), "
            f"not on {request.new_term_start}"
        )
    if request.new_term_start <= today:
        problems.append(f"the new term starts on {request.new_term_start}, which is not in the future")
    entity_code = request.legal_entity or account.legal_entity
    entity = next((e for e in entities if e.code == entity_code), None)
    if entity is None:
        problems.append(f"legal entity {entity_code} is not configured")
    elif entity.functional_currency != subscription.currency:
        problems.append(
            f"legal entity {entity.code} books in {entity.functional_currency}, "
            f"but the contract is in {subscription.currency}"
        )
    current = {line.product for line in subscription.lines}
    for line in request.lines:
        if line.product not in current and line.product not in policy.price_book:
            problems.append(f"{line.product} is not in the price book")
    problems += line_problems(request.current_term_changes, subscription.currency)
    if not account.billing_address.has_tax_jurisdiction:
        problems.append(
            f"the billing address of {account.id} has no tax nexus (country, region and postal code are needed)"
        )
    return problems


def window_problem(subscription: Subscription) -> str:
    """Why the window cannot open a renewal for a subscription billing lists: an id that a
    renewal request (and its workflow id) may not carry. Empty when it can."""
    for what, value in (
        ("subscription", subscription.id),
        ("contract", subscription.contract_id),
        ("account", subscription.account_id),
    ):
        wrong = id_problem(value)
        if wrong:
            return f"subscription {subscription.id!r}: its {what} id {wrong}"
    return ""


def window_renewal(subscription: Subscription, policy: RenewalPolicy) -> RenewalRequest:
    """The renewal the window opens for a subscription: same lines, a term as long as the
    current one, the policy's uplift."""
    start = subscription.term_end
    length_years = max(1, round((subscription.term_end - subscription.term_start).days / 365))
    return RenewalRequest(
        contract_id=subscription.contract_id,
        subscription_id=subscription.id,
        account_id=subscription.account_id,
        term=f"{start:%Y-%m-%d}",
        new_term_start=start,
        new_term_end=start.replace(year=start.year + length_years),
        uplift_percent=policy.window_uplift_percent,
        requested_by="o2c-renewal-window",
        source="renewal_window",
        reason=f"the renewal window opened {policy.window_days} days before {start}",
    )
