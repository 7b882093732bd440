"""Credit notes and service credits: what may be credited, its tax, its booking, its revenue.

Pure and exact. The workflow validates a request with `credit_problems`, sizes it with
`credit_amounts`, asks `credit_approval` who must approve it, books it with `credit_entry`
and changes the revenue schedules with `revenue_concession`.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from fractions import Fraction

from pydantic import ConfigDict, Field

from canonical.credits import CreditReason, CreditRequest, CreditSettlement
from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine
from canonical.models import TAX_PRODUCT, ApprovalRequest, ApproverRole, Invoice, InvoiceLine, Model, RevenueSchedule
from canonical.money import Money, largest_remainder, total
from canonical.policy_amounts import PerCurrency, UncoveredCurrency, per_currency
from canonical.requests import BusinessId, OptionalBusinessId
from canonical.revenue.schedules import split_line

# Billing's statuses of a finalised invoice: only those can be credited (a draft is edited,
# a void one has nothing left to credit, an uncollectible one is written off instead).
CREDITABLE = ("open", "paid")
# Reasons that say the whole invoice was wrong: a partial credit would leave the rest billed.
WHOLE_INVOICE_REASONS = (CreditReason.DUPLICATE, CreditReason.FRAUDULENT)


class CreditedSoFar(Model):
    """What credit notes have credited on an invoice before this credit, pre-tax."""

    amount: Money
    lines: dict[str, Money] = {}


def credited_so_far(invoice: Invoice) -> CreditedSoFar:
    zero = Money.zero(invoice.currency)
    return CreditedSoFar(
        amount=invoice.credited or zero,
        lines={x.line_id: x.credited for x in invoice.lines if x.line_id and x.credited is not None},
    )


def taxable_lines(invoice: Invoice) -> list[InvoiceLine]:
    """The invoice's priced lines (o2c invoices carry their sales tax as a line of its own)."""
    return [x for x in invoice.lines if x.product != TAX_PRODUCT]


def invoice_subtotal(invoice: Invoice) -> Money:
    return total((x.amount for x in taxable_lines(invoice)), invoice.currency)


def invoice_tax(invoice: Invoice) -> Money:
    if invoice.tax is not None:
        return invoice.tax
    return total((x.amount for x in invoice.lines if x.product == TAX_PRODUCT), invoice.currency)


def line_taxes(invoice: Invoice) -> dict[str, Money]:
    """The tax each priced line charges: billing's own figure when it gives one, else the
    invoice's tax split over the lines in proportion to their amounts (largest remainder,
    so the lines' tax adds up to the invoice's)."""
    lines = [x for x in taxable_lines(invoice) if x.line_id]
    if lines and all(x.tax is not None for x in lines):
        return {x.line_id: x.tax for x in lines if x.tax is not None}
    tax = invoice_tax(invoice)
    weights = [max(x.amount.minor, 0) for x in lines]
    if not lines or sum(weights) == 0:
        return {x.line_id: Money.zero(invoice.currency) for x in lines}
    return dict(zip((x.line_id for x in lines), tax.allocate(weights), strict=True))


def left_of_invoice(invoice: Invoice, so_far: CreditedSoFar) -> Money:
    return invoice_subtotal(invoice) - so_far.amount


def credit_problems(
    request: CreditRequest, invoice: Invoice | None, already_credited: CreditedSoFar | None = None
) -> list[str]:
    """Why this credit may not be given, in an analyst's words; empty when it may. What was
    credited before is what billing says of the invoice unless `already_credited` says more."""
    if invoice is None:
        return [f"invoice {request.invoice_id} does not exist in billing"]
    already_credited = already_credited or credited_so_far(invoice)
    problems: list[str] = []
    if invoice.id != request.invoice_id:
        problems.append(f"the request credits {request.invoice_id}, not invoice {invoice.id}")
    if invoice.status not in CREDITABLE:
        problems.append(
            f"invoice {invoice.id} is {invoice.status}; only a finalised invoice (open or paid) is credited"
        )
    if not request.explanation.strip():
        problems.append("a credit needs an explanation")
    if bool(request.lines) == (request.amount is not None):
        problems.append("name either the invoice lines to credit or an amount, not both and not neither")
        return problems
    amounts = [x.amount for x in request.lines] + ([request.amount] if request.amount is not None else [])
    wrong = sorted({m.currency for m in amounts if m.currency != invoice.currency})
    if wrong:
        problems.append(f"the credit is in {', '.join(wrong)}; invoice {invoice.id} is in {invoice.currency}")
        return problems
    for amount in amounts:
        if amount.amount <= 0:
            problems.append(f"a credited amount is positive, not {amount}")
    by_id = {x.line_id: x for x in taxable_lines(invoice) if x.line_id}
    seen: set[str] = set()
    for credited in request.lines:
        line = by_id.get(credited.line_id)
        if credited.line_id in seen:
            problems.append(f"line {credited.line_id} is named twice")
            continue
        seen.add(credited.line_id)
        if line is None:
            problems.append(f"invoice {invoice.id} has no line {credited.line_id}")
            continue
        left = line.amount - already_credited.lines.get(line.line_id, Money.zero(invoice.currency))
        if credited.amount > left:
            problems.append(
                f"line {line.line_id} ({line.description}) has {left} left to credit, not {credited.amount}"
            )
    requested = total(amounts, invoice.currency)
    left = left_of_invoice(invoice, already_credited)
    if requested > left:
        problems.append(f"invoice {invoice.id} has {left} left to credit before tax, not {requested}")
    if request.reason in WHOLE_INVOICE_REASONS and requested != left:
        problems.append(
            f"a {request.reason.value} credit credits the whole invoice ({left} before tax), not {requested}"
        )
    if request.reason == CreditReason.SERVICE_CREDIT and len(request.explanation.strip()) < 10:
        problems.append("a service credit says what it compensates (the incident or the SLA missed)")
    return problems


# -- the credit's amounts ----------------------------------------------------------------------


class CreditAmounts(Model):
    """A credit sized against its invoice: pre-tax, its tax share, and per credited line."""

    net: Money
    tax: Money
    lines: dict[str, Money] = {}  # credited line -> pre-tax amount (empty for an amount credit)

    @property
    def total(self) -> Money:
        return self.net + self.tax


def _share(whole: Money, part: Fraction) -> Money:
    """whole x part, rounded half away from zero to the minor unit."""
    exact = abs(whole.minor) * part
    minor = int(exact + Fraction(1, 2))
    return Money.from_minor(-minor if whole.minor < 0 else minor, whole.currency)


def credit_amounts(request: CreditRequest, invoice: Invoice, already_credited: CreditedSoFar) -> CreditAmounts:
    """The credit's tax is its lines' share of their tax. Each share is the difference of two
    cumulative roundings (credited after this credit, minus credited before it), so crediting
    a line in several pieces gives back exactly the line's tax, never a cent more or less.
    An amount credit takes the invoice's tax the same way, in proportion to its subtotal."""
    currency = invoice.currency
    zero = Money.zero(currency)
    if request.lines:
        taxes = line_taxes(invoice)
        by_id = {x.line_id: x for x in invoice.lines}
        tax = zero
        for credited in request.lines:
            line = by_id[credited.line_id]
            if line.amount.minor <= 0:
                continue
            before = already_credited.lines.get(line.line_id, zero)
            after = before + credited.amount
            line_tax = taxes.get(line.line_id, zero)
            tax = tax + _share(line_tax, Fraction(after.minor, line.amount.minor))
            tax = tax - _share(line_tax, Fraction(before.minor, line.amount.minor))
        net = total((x.amount for x in request.lines), currency)
        return CreditAmounts(net=net, tax=tax, lines={x.line_id: x.amount for x in request.lines})
    assert request.amount is not None, "credit_problems asks for lines or an amount"
    subtotal = invoice_subtotal(invoice)
    whole_tax = invoice_tax(invoice)
    if subtotal.minor <= 0:
        return CreditAmounts(net=request.amount, tax=zero)
    before = already_credited.amount
    after = before + request.amount
    tax = _share(whole_tax, Fraction(after.minor, subtotal.minor)) - _share(
        whole_tax, Fraction(before.minor, subtotal.minor)
    )
    return CreditAmounts(net=request.amount, tax=tax)


class CreditSplit(Model):
    """Where a credit goes (tax included): what it takes off the open invoice, and what of
    a paid one becomes the customer's credit balance or goes back to them as a refund."""

    off_receivable: Money
    to_balance: Money
    refunded: Money


def settlement_split(amounts: CreditAmounts, invoice: Invoice, settlement: CreditSettlement) -> CreditSplit:
    """Billing lowers what is still due first (Stripe's pre-payment part); the rest is post-payment."""
    currency = invoice.currency
    due = invoice.amount_remaining if invoice.amount_remaining is not None else Money.zero(currency)
    if invoice.status == "paid":
        due = Money.zero(currency)
    off = min(amounts.total, max(due, Money.zero(currency)), key=lambda m: m.amount)
    rest = amounts.total - off
    zero = Money.zero(currency)
    if settlement == CreditSettlement.REFUND:
        return CreditSplit(off_receivable=off, to_balance=zero, refunded=rest)
    return CreditSplit(off_receivable=off, to_balance=rest, refunded=zero)


# -- approval -------------------------------------------------------------------------------------


class CreditPolicy(Model):
    """Who approves a credit, by its pre-tax amount in its own currency: above `finance` a
    finance approver, above `controller` a controller. A finance threshold of zero (the
    default) means every credit is approved by a person. Service credits may have their own
    thresholds. A currency a threshold does not state is refused before anything starts."""

    finance: PerCurrency = per_currency(USD=0, EUR=0, GBP=0, CAD=0, AUD=0, JPY=0)
    controller: PerCurrency = per_currency(USD=5000, EUR=5000, GBP=4000, CAD=7000, AUD=7500, JPY=750000)
    service_finance: PerCurrency | None = None
    service_controller: PerCurrency | None = per_currency(USD=1000, EUR=1000, GBP=800, CAD=1400, AUD=1500, JPY=150000)

    def thresholds(self, reason: CreditReason) -> tuple[PerCurrency, PerCurrency]:
        if reason == CreditReason.SERVICE_CREDIT:
            return self.service_finance or self.finance, self.service_controller or self.controller
        return self.finance, self.controller

    def uncovered(self, reason: CreditReason, currency: str) -> str | None:
        """Why a credit in `currency` cannot be approved under this policy, or None."""
        for threshold, role in zip(self.thresholds(reason), ("finance", "controller"), strict=True):
            try:
                threshold.of(currency, what=f"the {role} threshold for credits")
            except UncoveredCurrency as problem:
                return str(problem)
        return None


def credit_approval(request: CreditRequest, net: Money, policy: CreditPolicy) -> ApprovalRequest | None:
    """What approval the credit needs, or None below the finance threshold. Raises
    UncoveredCurrency when the policy states no threshold in the credit's currency."""
    what = "service credit" if request.reason == CreditReason.SERVICE_CREDIT else "credit"
    return _approval(
        net,
        request.reason,
        policy,
        request.requested_by,
        what,
        f"on invoice {request.invoice_id} ({request.reason.value}): {request.explanation}",
    )


def _approval(
    amount: Money, reason: CreditReason, policy: CreditPolicy, requested_by: str, what: str, about: str
) -> ApprovalRequest | None:
    finance, controller = policy.thresholds(reason)
    finance_at = finance.of(amount.currency, what=f"the finance threshold for a {what}")
    controller_at = controller.of(amount.currency, what=f"the controller threshold for a {what}")
    if amount > controller_at:
        role, above = ApproverRole.CONTROLLER, controller_at
    elif amount > finance_at:
        role, above = ApproverRole.FINANCE, finance_at
    else:
        return None
    return ApprovalRequest(
        required_role=role,
        reasons=[f"{what} of {amount} above {above} {about}"],
        requested_by=requested_by,
        amount=amount,
    )


# -- revenue --------------------------------------------------------------------------------------


class RevenueConcession(Model):
    """How a price concession changes the schedules: the schedules as changed, what it takes
    from revenue still unrecognised (deferred) and what it reverses of revenue recognised."""

    save: list[RevenueSchedule] = []
    deferred: Money
    recognised: Money


def revenue_concession(schedules: list[RevenueSchedule], credit: Money, as_of: date) -> RevenueConcession:
    """A concession reduces what is still unrecognised from `as_of` on, across the remaining
    lines in proportion to them (largest remainder: exact). When it exceeds what is still
    unrecognised, those lines go to zero and the rest reverses recognised revenue at once, in
    the line of `as_of` (or the last line before it)."""
    currency = credit.currency
    zero = Money.zero(currency)
    ours = [s for s in schedules if s.total.currency == currency and s.lines]
    if not ours:
        return RevenueConcession(deferred=zero, recognised=zero)
    slots: list[tuple[int, int]] = []  # (schedule index, line index) of every line
    remaining: list[int] = []
    for i, schedule in enumerate(ours):
        for j, line in enumerate(schedule.lines):
            slots.append((i, j))
            remaining.append(max(split_line(line, as_of)[1].minor, 0))
    unrecognised = sum(remaining)
    cut = [0] * len(slots)
    if credit.minor <= unrecognised:
        if credit.minor and unrecognised:
            cut = largest_remainder(credit.minor, remaining)
        deferred, recognised = credit, zero
    else:
        cut = list(remaining)
        deferred = Money.from_minor(unrecognised, currency)
        recognised = credit - deferred
        # The catch-up lands in the period of `as_of`: the latest line that starts by then.
        started = [k for k, (i, j) in enumerate(slots) if ours[i].lines[j].start <= as_of] or [0]
        last = max(started, key=lambda k: (ours[slots[k][0]].lines[slots[k][1]].start, k))
        cut[last] += recognised.minor
    lines = [list(s.lines) for s in ours]
    for (i, j), minor in zip(slots, cut, strict=True):
        if minor:
            line = lines[i][j]
            lines[i][j] = line.model_copy(update={"amount": line.amount - Money.from_minor(minor, currency)})
    save = []
    for i, schedule in enumerate(ours):
        if lines[i] != list(schedule.lines):
            save.append(
                schedule.model_copy(update={"lines": lines[i], "total": total((x.amount for x in lines[i]), currency)})
            )
    return RevenueConcession(save=save, deferred=deferred, recognised=recognised)


# -- the journal entry ----------------------------------------------------------------------------


def credit_entry(
    *,
    external_id: str,
    subsidiary: str,
    posting_date: date,
    memo: str,
    amounts: CreditAmounts,
    split: CreditSplit,
    recognised: Money,
    chart: ChartOfAccounts,
    invoice_id: str = "",
    memo_posted: bool = True,
) -> JournalEntry:
    """The credit in the ledger (DOMAIN.md): Dr deferred revenue, or revenue for the part the
    schedules had recognised, and Dr tax payable / Cr receivable for what it takes off the
    open invoice, Cr customer credit for a paid invoice's balance, Cr cash when refunded.

    With the ERP credit memo posted (`memo_posted`), the memo has already booked Dr credit
    clearing (its lines) and Dr tax payable (its tax) / Cr receivable (its total). This entry
    then moves the clearing account on to deferred revenue and revenue, and reclassifies the
    paid part that the memo left on the receivable (a credit the customer holds, or cash paid
    back) to customer credit or cash, so the GL ends as if one entry had booked it all."""
    currency = amounts.net.currency
    zero = Money.zero(currency)
    if recognised > amounts.net:
        raise ValueError(f"the credit reverses {recognised} of recognised revenue, more than its {amounts.net}")
    if split.off_receivable + split.to_balance + split.refunded != amounts.total:
        raise ValueError("the credit's settlement does not add up to the credit")
    deferred = amounts.net - recognised
    lines: list[JournalLine | None] = [
        _debit(chart.deferred_revenue, deferred, "Deferred revenue credited"),
        _debit(chart.revenue, recognised, "Recognised revenue reversed"),
    ]
    paid_part = split.to_balance + split.refunded
    if memo_posted:
        lines += [
            _credit(chart.credit_clearing, amounts.net, "Credit memo clearing"),
            _debit(chart.receivable, paid_part, "Credit memo left on a settled invoice"),
        ]
    else:
        lines += [
            _debit(chart.tax_payable, amounts.tax, "Sales tax credited"),
            _credit(chart.receivable, split.off_receivable, "Accounts receivable credited"),
        ]
    lines += [
        _credit(chart.customer_credit, split.to_balance, "Customer credit balance"),
        _credit(chart.cash, split.refunded, "Refunded"),
    ]
    kept = [x for x in lines if x is not None]
    if not kept or (amounts.net == zero and amounts.tax == zero):
        raise ValueError("a credit of nothing books nothing")
    return JournalEntry(
        external_id=external_id,
        subsidiary=subsidiary,
        currency=currency,
        posting_date=posting_date,
        memo=memo,
        lines=kept,
        invoice_id=invoice_id,
    )


def _debit(account: str, amount: Money, memo: str) -> JournalLine | None:
    return JournalLine(account=account, debit=amount, memo=memo) if amount.amount > 0 else None


def _credit(account: str, amount: Money, memo: str) -> JournalLine | None:
    return JournalLine(account=account, credit=amount, memo=memo) if amount.amount > 0 else None


# -- refunds an operator decides --------------------------------------------------------------------

# Stripe's refund reasons (POST /v1/refunds `reason`).
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


class RefundSource(StrEnum):
    """What the money paid back was held as: a customer's credit balance, or cash received
    and never applied (a receipt an operator decided to give back)."""

    CUSTOMER_CREDIT = "customer_credit"
    UNAPPLIED_RECEIPTS = "unapplied_receipts"


class RefundRequest(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    refund_id: BusinessId  # the business key: refund-<refund_id>
    charge_id: BusinessId
    amount: Money
    reason: str
    explanation: str = Field(min_length=1)
    requested_by: str = ""  # the operator, set by the front door
    customer: OptionalBusinessId = ""
    invoice_id: OptionalBusinessId = ""
    source: RefundSource = RefundSource.CUSTOMER_CREDIT


def refund_problems(request: RefundRequest, policy: CreditPolicy) -> list[str]:
    problems = []
    if request.amount.amount <= 0:
        problems.append(f"a refund is a positive amount, not {request.amount}")
    if request.reason not in REFUND_REASONS:
        problems.append(f"the reason is one of {', '.join(REFUND_REASONS)}, not {request.reason!r}")
    if not request.requested_by.strip():
        problems.append("a refund names the operator who decided it")
    uncovered = policy.uncovered(CreditReason.ORDER_CHANGE, request.amount.currency)
    if uncovered:
        problems.append(uncovered)
    return problems


def refund_approval(request: RefundRequest, policy: CreditPolicy) -> ApprovalRequest | None:
    """A refund is approved as a credit of the same amount would be."""
    return _approval(
        request.amount,
        CreditReason.ORDER_CHANGE,
        policy,
        request.requested_by,
        "refund",
        f"on charge {request.charge_id}: {request.explanation}",
    )


def refund_entry(
    request: RefundRequest, *, external_id: str, subsidiary: str, posting_date: date, chart: ChartOfAccounts
) -> JournalEntry:
    """Dr what the customer's money was held as / Cr cash."""
    held = chart.customer_credit if request.source == RefundSource.CUSTOMER_CREDIT else chart.unapplied_receipts
    return JournalEntry(
        external_id=external_id,
        subsidiary=subsidiary,
        currency=request.amount.currency,
        posting_date=posting_date,
        memo=f"Refund {request.refund_id} on charge {request.charge_id}: {request.explanation}",
        lines=[
            JournalLine(account=held, debit=request.amount, memo=f"Refunded from {request.source.value}"),
            JournalLine(account=chart.cash, credit=request.amount, memo="Refunded"),
        ],
        invoice_id=request.invoice_id,
    )
