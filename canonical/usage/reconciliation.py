"""The usage check of a reconciliation: what o2c released, what billing invoiced for it, and
what the ERP accrued in the month of use.

A run of period P reads o2c's usage releases of two usage months, each for the side of the
booking that lands in P's books:

- releases of the month before P are invoiced in P (usage is billed in arrears, on a draft
  billing creates at period end): their quantities per meter are compared with the metered
  lines of billing's invoice, which P's billing listing holds. A metered invoice of P that no
  release names was billed without o2c's review. The invoice's ERP entry (DR receivable /
  CR unbilled receivable / CR tax payable) is the ordinary invoice comparison's business.
- releases of P itself are accrued in P (DR unbilled receivable / CR usage revenue, on the
  last day of the month of use): their net revenue is compared with the accrual in P's ERP
  listing. An accrual found under its external ID in another month is a cut-off difference,
  with both dates, not a missing entry (DOMAIN.md, "Dating a booking").

Pure and exact. Nothing here heals: every usage break waits for a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from canonical.models import Model
from canonical.money import Money
from canonical.reconciliation import (
    NO_TOLERANCE,
    BilledInvoice,
    Break,
    BreakKind,
    EntryKind,
    LedgerFact,
    Tolerance,
    accrual_entry_id,
    invoice_entry_id,
    invoice_key,
    period_bounds,
)
from canonical.usage.models import UsageRelease, last_day

# Billing statuses of an invoice that was issued (finalised), whatever happened to it since.
ISSUED = ("open", "paid", "uncollectible")


class UsageFact(Model):
    """One usage release as reconciliation compares it."""

    workflow_id: str
    subscription_id: str
    customer: str
    invoice_id: str
    period: str  # the usage month
    currency: str
    quantities: dict[str, int]
    revenue: Money  # net of credits: what the accrual books as usage revenue
    total: Money
    released_at_date: date

    @property
    def match_key(self) -> str:
        return invoice_key(self.invoice_id)

    @property
    def accrual_id(self) -> str:
        return accrual_entry_id(self.workflow_id)

    @property
    def invoice_entry_id(self) -> str:
        return invoice_entry_id(self.workflow_id)


def usage_fact(release: UsageRelease) -> UsageFact:
    return UsageFact(
        workflow_id=release.workflow_id,
        subscription_id=release.subscription_id,
        customer=release.customer,
        invoice_id=release.invoice_id,
        period=release.period,
        currency=release.currency,
        quantities=release.quantities,
        revenue=release.subtotal - release.credit,
        total=release.total,
        released_at_date=release.released_at.date(),
    )


def quantity_text(quantity: int, meter: str, units: Mapping[str, str]) -> str:
    return f"{quantity:,} {units.get(meter, meter)}"


def _usage_text(quantities: Mapping[str, int], units: Mapping[str, str]) -> str:
    return ", ".join(quantity_text(q, m, units) for m, q in sorted(quantities.items())) or "no metered quantity"


def _open_accruals(ledger: Iterable[LedgerFact]) -> list[LedgerFact]:
    facts = list(ledger)
    reversed_ids = {f.reverses for f in facts if f.kind == EntryKind.REVERSAL}
    return [f for f in facts if f.kind == EntryKind.ACCRUAL and f.external_id not in reversed_ids]


def accrual_to_look_up(usage: Sequence[UsageFact], ledger: Sequence[LedgerFact], *, period: str) -> str:
    """The external ID of the accrual to look for outside the period's listing: a release of
    the period whose accrual the listing does not hold. Empty when there is none to look for."""
    accrued = [u for u in usage if u.period == period and not u.revenue.is_zero]
    if not accrued or _open_accruals(ledger):
        return ""
    return accrued[0].accrual_id


def without_usage_heals(breaks: list[Break], billing: BilledInvoice | None, usage: Sequence[UsageFact]) -> list[Break]:
    """The invoice comparison heals a missing invoice entry with a deferred-revenue booking; a
    usage invoice is booked against its accrual (CR unbilled receivable) by its release, so
    its missing entry waits for a person instead."""
    if not usage and not (billing is not None and billing.metered):
        return breaks
    kept: list[Break] = []
    for found in breaks:
        if found.kind == BreakKind.MISSING_IN_ERP and found.heal is not None:
            found = found.model_copy(
                update={
                    "heal": None,
                    "explanation": found.explanation + " It is a usage invoice: its release books it against the "
                    "unbilled receivable of its accrual, so reconciliation does not post it.",
                }
            )
        kept.append(found)
    return kept


def compare_usage(
    key: str,
    usage: Sequence[UsageFact],
    billing: BilledInvoice | None,
    ledger: Sequence[LedgerFact],
    *,
    period: str,
    elsewhere: Sequence[LedgerFact] = (),
    tolerance: Tolerance = NO_TOLERANCE,
    units: Mapping[str, str] | None = None,
) -> list[Break]:
    """The usage breaks of one invoice in the run of `period`, at most one per class.
    `elsewhere` holds the release's accrual when it was found outside the period's listing."""
    units = units or {}
    invoice_id = key.split(":", 1)[1] if ":" in key else key
    breaks: list[Break] = []

    def add(kind: BreakKind, currency: str, explanation: str, documents: list[str], **amounts: Money | None) -> None:
        breaks.append(
            Break(
                kind=kind,
                key=invoice_id,
                currency=currency,
                explanation=explanation,
                documents=list(dict.fromkeys(d for d in documents if d)),
                **amounts,
            )
        )

    invoiced = [u for u in usage if u.period < period]
    accrued = [u for u in usage if u.period == period]

    if not usage:
        if billing is not None and billing.metered and billing.status in ISSUED:
            usage_period = billing.usage_period or "its service period"
            add(
                BreakKind.USAGE_NOT_RELEASED,
                billing.currency,
                f"Billing invoiced metered usage on {billing.number or invoice_id} ({billing.total}): "
                f"{_usage_text(billing.metered, units)} for {usage_period}. o2c never released that invoice, "
                "so the usage was billed without o2c's count and review.",
                [billing.invoice_id],
                billing=billing.total,
            )
        return breaks

    for release in invoiced[:1]:
        documents = [release.workflow_id, invoice_id]
        if billing is None or billing.status not in ISSUED:
            state = (
                f"has no invoice {invoice_id} created in {period}"
                if billing is None
                else f"holds invoice {invoice_id} as {billing.status}"
            )
            add(
                BreakKind.USAGE_NOT_INVOICED,
                release.currency,
                f"o2c released {_usage_text(release.quantities, units)} of {release.period} usage for "
                f"{release.customer} ({release.total}) on invoice {invoice_id}, but billing {state}: "
                "the usage is counted and not invoiced.",
                documents,
                billing=billing.total if billing is not None else None,
            )
            continue
        differences = []
        for meter in sorted(set(release.quantities) | set(billing.metered)):
            counted, billed_quantity = release.quantities.get(meter), billing.metered.get(meter)
            if counted == billed_quantity:
                continue
            if billed_quantity is None:
                differences.append(
                    f"billing invoiced no {units.get(meter, meter)} on {invoice_id}; "
                    f"o2c released {quantity_text(counted or 0, meter, units)}"
                )
            elif counted is None:
                differences.append(
                    f"billing invoiced {quantity_text(billed_quantity, meter, units)} on {invoice_id}; "
                    "o2c released none"
                )
            else:
                differences.append(
                    f"billing invoiced {quantity_text(billed_quantity, meter, units)} on {invoice_id}; "
                    f"o2c released {counted:,}"
                )
        if differences:
            add(
                BreakKind.USAGE_QUANTITY_MISMATCH,
                release.currency,
                f"Usage of {release.period} for {release.customer}: " + "; ".join(differences) + ".",
                documents,
                billing=billing.total,
            )

    for release in accrued[:1]:
        expected = release.revenue
        accruals = _open_accruals(ledger)
        start, end = period_bounds(period)
        late = [f for f in _open_accruals(elsewhere) if not start <= f.posting_date < end]
        accruals += [f for f in _open_accruals(elsewhere) if start <= f.posting_date < end]
        documents = [release.workflow_id, invoice_id, *(f.external_id for f in accruals + late)]
        if accruals:
            booked = [f.usage_revenue for f in accruals if f.usage_revenue is not None]
            same_currency = all(m.currency == expected.currency for m in booked)
            total = Money.from_minor(sum(m.minor for m in booked), expected.currency) if same_currency else None
            if total is None or abs(total.minor - expected.minor) > tolerance.revenue_minor:
                listed = ", ".join(f"{f.external_id} ({f.usage_revenue})" for f in accruals)
                difference = f" (difference {total - expected})" if total is not None else ""
                add(
                    BreakKind.USAGE_ACCRUAL_MISMATCH,
                    expected.currency,
                    f"o2c released {expected} of {period} usage revenue for {release.customer} on invoice "
                    f"{invoice_id}; the ERP accrues {total if total is not None else listed} of usage revenue "
                    f"for it in {period} ({listed}){difference}.",
                    documents,
                    billing=expected,
                    erp=total,
                )
        elif expected.is_zero:
            continue  # a release with nothing to accrue has no accrual
        elif late:
            entry = late[0]
            add(
                BreakKind.USAGE_CUT_OFF,
                expected.currency,
                f"The accrual {entry.external_id} of {period} usage for {release.customer} (invoice {invoice_id}, "
                f"usage revenue {entry.usage_revenue}) is dated {entry.posting_date}, in "
                f"{entry.posting_date:%Y-%m}, not on {last_day(period)} in the month of use: a cut-off "
                f"difference, not a missing entry. {period} shows {expected} less usage revenue than o2c released.",
                documents,
                billing=expected,
                erp=entry.usage_revenue,
            )
        else:
            add(
                BreakKind.USAGE_ACCRUAL_MISSING,
                expected.currency,
                f"o2c released {expected} of {period} usage revenue for {release.customer} on invoice "
                f"{invoice_id}, but the ERP has no accrual for it; expected {release.accrual_id} on "
                f"{last_day(period)} (DR unbilled receivable / CR usage revenue).",
                documents,
                billing=expected,
            )
    return breaks
