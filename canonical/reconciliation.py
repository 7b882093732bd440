"""Reconciliation: what billing, tax and the ERP each hold for a document, and how they differ.

Pure and exact. Each system's documents are first reduced to comparable facts keyed by the
document they concern (the billing invoice id, or the contract for recognised revenue):

    billed(invoice)        -> BilledInvoice   what billing invoiced, charged as tax, and its status
    taxed(document)        -> TaxRecord       what AvaTax recorded under the invoice's code
    ledger_fact(entry, ..) -> LedgerFact      one ERP entry, classified by the accounts it moves

Then compare_invoice() and compare_revenue() name every difference as a Break with a class,
an owner and an explanation a finance analyst understands. Tolerances are configuration
(zero minor units by default). A break that is safe to heal (an invoice entry missing in
the ERP) carries the entry that heals it, under the external ID the booking process uses,
so a process that later posts it too upserts the same entry instead of a second one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, field_validator

from canonical.approval import as_per_currency
from canonical.journal import ChartOfAccounts, JournalEntry, invoice_entry
from canonical.models import TAX_PRODUCT, Invoice, Model, TaxDocument
from canonical.money import Money
from canonical.policy_amounts import PerCurrency, UncoveredCurrency, per_currency
from canonical.revenue.ledger_check import ledger_revenue_key_of


class BreakKind(StrEnum):
    MISSING_IN_ERP = "missing_in_erp"
    MISSING_IN_BILLING = "missing_in_billing"
    DUPLICATE_POSTING = "duplicate_posting"
    AMOUNT_MISMATCH = "amount_mismatch"
    TAX_MISMATCH = "tax_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    REVENUE_MISMATCH = "revenue_mismatch"
    # One booking whose documents sit in different periods (DOMAIN.md, "Dating a booking"):
    # the invoice in one month, its ERP entry or tax document in another.
    CUT_OFF_DIFFERENCE = "cut_off_difference"
    # The usage check (canonical/usage/reconciliation.py): what o2c released, what billing
    # invoiced for it, and what the ERP accrued in the month of use.
    USAGE_NOT_INVOICED = "usage_not_invoiced"
    USAGE_QUANTITY_MISMATCH = "usage_quantity_mismatch"
    USAGE_NOT_RELEASED = "usage_not_released"
    USAGE_ACCRUAL_MISSING = "usage_accrual_missing"
    USAGE_ACCRUAL_MISMATCH = "usage_accrual_mismatch"
    USAGE_CUT_OFF = "usage_cut_off"


class BreakStatus(StrEnum):
    """Where a break stands. The database keeps, and activities send, these strings."""

    OPEN = "open"  # waits for a person: not healable, or its heal failed or was refused
    HEALING = "healing"  # its healing entry is to be posted
    AWAITING_APPROVAL = "awaiting_approval"  # its heal is above the limit and waits for a finance approver
    HEALED = "healed"  # its healing entry is posted
    ACKNOWLEDGED = "acknowledged"  # an operator accepted it as it is
    SUPERSEDED = "superseded"  # a later run found it again (and keeps it)
    FIXED = "fixed"  # a later run did not find it again


# Statuses that still ask something of somebody, and that a later run of the same period
# settles (superseded when it finds the break again, fixed when it does not). An acknowledged
# break is accepted for now, not resolved.
UNRESOLVED = (BreakStatus.OPEN, BreakStatus.HEALING, BreakStatus.AWAITING_APPROVAL, BreakStatus.ACKNOWLEDGED)


# Who fixes each class of break.
OWNERS: dict[BreakKind, str] = {
    BreakKind.MISSING_IN_ERP: "general ledger",
    BreakKind.MISSING_IN_BILLING: "billing operations",
    BreakKind.DUPLICATE_POSTING: "general ledger",
    BreakKind.AMOUNT_MISMATCH: "general ledger",
    BreakKind.TAX_MISMATCH: "tax",
    BreakKind.CURRENCY_MISMATCH: "general ledger",
    BreakKind.STATUS_MISMATCH: "accounts receivable",
    BreakKind.REVENUE_MISMATCH: "revenue accounting",
    # Which month a booking belongs in is an accounting call (an accrual, a reclass), never a heal.
    BreakKind.CUT_OFF_DIFFERENCE: "finance",
    # Usage breaks are never healed automatically: which quantity is right (o2c's count or
    # billing's meter) and whether an accrual belongs in a closed month are a person's call.
    BreakKind.USAGE_NOT_INVOICED: "billing operations",
    BreakKind.USAGE_QUANTITY_MISMATCH: "billing operations",
    BreakKind.USAGE_NOT_RELEASED: "billing operations",
    BreakKind.USAGE_ACCRUAL_MISSING: "finance",
    BreakKind.USAGE_ACCRUAL_MISMATCH: "finance",
    BreakKind.USAGE_CUT_OFF: "finance",
}

USAGE_BREAKS = frozenset(kind for kind in BreakKind if kind.value.startswith("usage_"))


class Tolerance(Model):
    """How far two systems may differ, in minor units, before it is a break."""

    amount_minor: int = Field(default=0, ge=0)
    tax_minor: int = Field(default=0, ge=0)
    revenue_minor: int = Field(default=0, ge=0)


NO_TOLERANCE = Tolerance()
DEFAULT_CHART = ChartOfAccounts()


def period_bounds(period: str) -> tuple[date, date]:
    """A calendar month 'YYYY-MM' as [first day, first day of the next month)."""
    try:
        first = date.fromisoformat(f"{period}-01")
    except ValueError:
        raise ValueError(f"a period is YYYY-MM, got {period!r}") from None
    if len(period) != 7:
        raise ValueError(f"a period is YYYY-MM, got {period!r}")
    return first, date(first.year + (first.month == 12), first.month % 12 + 1, 1)


def invoice_key(invoice_id: str) -> str:
    return f"invoice:{invoice_id}"


def revenue_key(contract_id: str) -> str:
    return f"revenue:{contract_id}"


def invoice_entry_id(workflow_id: str) -> str:
    """The external ID of the entry that books the invoice a process created."""
    return f"{workflow_id}-invoice"


def accrual_entry_id(workflow_id: str) -> str:
    """The external ID of the entry that accrues a usage release's revenue in the month of use."""
    return f"{workflow_id}-accrual"


def expected_entry_id(invoice: Invoice) -> str:
    """Where the ERP should keep the entry of a billing invoice: the booking process's own
    external ID when o2c made the invoice (metadata o2c_workflow), else one derived from
    the invoice (billing made it by itself, e.g. a subscription cycle)."""
    workflow_id = invoice.metadata.get("o2c_workflow", "")
    return invoice_entry_id(workflow_id) if workflow_id else f"billing-{invoice.id}-invoice"


# -- facts --------------------------------------------------------------------------------


class BilledInvoice(Model):
    invoice_id: str
    number: str = ""
    account_id: str = ""
    status: str  # draft, open, paid, void, uncollectible
    currency: str
    total: Money
    tax: Money
    document_date: date
    entry_id: str  # the external ID its ERP entry should have
    # Usage billed in arrears: the quantity of each meter its metered lines bill, and the
    # usage period ("YYYY-MM") their service period starts in.
    subscription_id: str = ""
    metered: dict[str, int] = {}
    usage_period: str = ""

    @property
    def match_key(self) -> str:
        return invoice_key(self.invoice_id)

    @property
    def revenue(self) -> Money:
        return self.total - self.tax


def billed(invoice: Invoice) -> BilledInvoice:
    tax = invoice.tax
    if tax is None:
        tax = Money.zero(invoice.currency)
        for line in invoice.lines:
            if line.product == TAX_PRODUCT:
                tax = tax + line.amount
    if invoice.created is None:
        raise ValueError(f"invoice {invoice.id} has no creation date to place it in a period")
    metered: dict[str, int] = {}
    usage_period = ""
    for line in invoice.lines:
        if line.meter and line.quantity is not None:
            metered[line.meter] = metered.get(line.meter, 0) + line.quantity
            if not usage_period and line.period_start is not None:
                usage_period = f"{line.period_start:%Y-%m}"
    return BilledInvoice(
        invoice_id=invoice.id,
        number=invoice.number,
        account_id=invoice.account_id,
        status=invoice.status,
        currency=invoice.currency,
        total=invoice.total,
        tax=tax,
        document_date=invoice.created,
        entry_id=expected_entry_id(invoice),
        subscription_id=invoice.subscription_id,
        metered=metered,
        usage_period=usage_period,
    )


class TaxRecord(Model):
    code: str  # the invoice id: o2c commits tax under the invoice's id
    type: str
    status: str  # Committed, Cancelled, Saved, ...
    amount: Money  # taxable total before tax
    tax: Money
    document_date: date | None = None
    lines: int = 0

    @property
    def match_key(self) -> str:
        return invoice_key(self.code)

    @property
    def committed(self) -> bool:
        return self.status == "Committed"


def taxed(document: TaxDocument) -> TaxRecord:
    return TaxRecord(
        code=document.code,
        type=document.type,
        status=document.status,
        amount=document.total_amount,
        tax=document.total_tax,
        document_date=document.document_date,
        lines=len(document.lines),
    )


class EntryKind(StrEnum):
    INVOICE = "invoice"  # receivable against deferred revenue and tax payable
    REVERSAL = "reversal"  # cancels another entry
    PAYMENT = "payment"  # cash against receivable
    WRITE_OFF = "write_off"  # bad debt against receivable
    REVENUE = "revenue"  # deferred revenue recognised as revenue
    ACCRUAL = "accrual"  # usage revenue accrued against unbilled receivable in the month of use
    OTHER = "other"


class LedgerFact(Model):
    """One ERP entry, reduced to what reconciliation compares. Amounts are signed in the
    account's natural direction: receivable a debit, deferred revenue, tax payable and
    revenue credits."""

    external_id: str
    internal_id: str = ""
    kind: EntryKind
    invoice_id: str = ""
    contract_id: str = ""
    reverses: str = ""
    currency: str
    posting_date: date
    receivable: Money
    deferred: Money
    tax: Money
    recognised: Money
    settled: Money  # receivable settled by cash or a write-off
    # Usage: the unbilled receivable it moves (a debit on an accrual, a credit on the usage
    # invoice that bills it) and the usage revenue it credits. None on facts staged before usage.
    unbilled: Money | None = None
    usage_revenue: Money | None = None

    @property
    def match_key(self) -> str:
        if self.kind == EntryKind.REVENUE:
            # A revenue posting of o2c's is matched per entity, month and currency by its
            # reference; another revenue entry by the contract it names.
            return ledger_revenue_key_of(self.external_id) or revenue_key(self.contract_id)
        if self.invoice_id:
            return invoice_key(self.invoice_id)
        return f"entry:{self.external_id}"  # nothing to match it with: left alone


def ledger_fact(entry: JournalEntry, chart: ChartOfAccounts) -> LedgerFact:
    net: dict[str, int] = {}  # account -> debits minus credits, in minor units
    for line in entry.lines:
        signed = line.amount.minor if line.debit is not None else -line.amount.minor
        net[line.account] = net.get(line.account, 0) + signed

    def amount(account: str, sign: int) -> Money:
        return Money.from_minor(sign * net.get(account, 0), entry.currency)

    receivable, deferred = amount(chart.receivable, 1), amount(chart.deferred_revenue, -1)
    tax, recognised = amount(chart.tax_payable, -1), amount(chart.revenue, -1)
    unbilled, usage_revenue = amount(chart.unbilled_receivable, 1), amount(chart.usage_revenue, -1)
    if entry.reverses:
        kind = EntryKind.REVERSAL
    elif not recognised.is_zero and receivable.is_zero:
        kind = EntryKind.REVENUE
    elif not usage_revenue.is_zero and receivable.is_zero:
        kind = EntryKind.ACCRUAL
    # A usage invoice credits the unbilled receivable its accrual debited, not deferred revenue.
    elif not receivable.is_zero and not (deferred.is_zero and tax.is_zero and unbilled.is_zero):
        kind = EntryKind.INVOICE
    elif not receivable.is_zero and net.get(chart.bad_debt_expense, 0) > 0:
        kind = EntryKind.WRITE_OFF
    elif not receivable.is_zero and net.get(chart.cash, 0) != 0:
        kind = EntryKind.PAYMENT
    else:
        kind = EntryKind.OTHER
    settled = -receivable if kind in (EntryKind.PAYMENT, EntryKind.WRITE_OFF) else Money.zero(entry.currency)
    return LedgerFact(
        external_id=entry.external_id,
        internal_id=entry.internal_id,
        kind=kind,
        invoice_id=entry.invoice_id,
        contract_id=entry.contract_id,
        reverses=entry.reverses,
        currency=entry.currency,
        posting_date=entry.posting_date,
        receivable=receivable,
        deferred=deferred,
        tax=tax,
        recognised=recognised,
        settled=settled,
        unbilled=unbilled,
        usage_revenue=usage_revenue,
    )


# -- breaks -------------------------------------------------------------------------------


class Break(Model):
    kind: BreakKind
    key: str  # invoice id, or contract id for recognised revenue
    currency: str
    billing: Money | None = None  # what billing (or o2c's schedules, for revenue) holds
    erp: Money | None = None  # what the ERP holds
    explanation: str
    documents: list[str] = []  # the documents involved: invoice, tax document, ERP entries
    heal: JournalEntry | None = None  # the entry that heals it, when healing is safe

    @property
    def owner(self) -> str:
        return OWNERS[self.kind]

    @property
    def difference(self) -> Money | None:
        if self.billing is None or self.erp is None or self.billing.currency != self.erp.currency:
            return None
        return self.erp - self.billing


def _beyond(a: Money, b: Money, tolerance_minor: int) -> bool:
    return abs(a.minor - b.minor) > tolerance_minor


def _erp_status(open_entries: list[LedgerFact], facts: list[LedgerFact], currency: str) -> str:
    """What the ERP says of an invoice: void once its entries are reversed, uncollectible
    once written off, paid once cash settles the receivable, else open."""
    if not open_entries:
        return "void"
    if any(f.kind == EntryKind.WRITE_OFF for f in facts):
        return "uncollectible"
    receivable = sum((f.receivable.minor for f in open_entries), 0)
    settled = sum((f.settled.minor for f in facts if f.kind == EntryKind.PAYMENT and f.currency == currency), 0)
    if receivable > 0 and settled >= receivable:
        return "paid"
    return "partially paid" if settled > 0 else "open"


def _tax_rounding_note(difference_minor: int, record: TaxRecord) -> str:
    if record.lines > 1 and 2 * abs(difference_minor) <= record.lines:
        return (
            f" Within per-line rounding: AvaTax rounds the tax of each of its {record.lines} lines, "
            "billing carries one rounded total."
        )
    return " Not explained by rounding."


def _in(period: str, day: date | None) -> bool:
    """Whether `day` falls in the calendar month `period` (always, when no period is given)."""
    if not period or day is None:
        return True
    start, end = period_bounds(period)
    return start <= day < end


def _cut_off_text(
    key: str, billing: BilledInvoice, tax: TaxRecord | None, entry: LedgerFact | None, period: str
) -> str:
    dated = [f"billing issued invoice {billing.number or key} on {billing.document_date}"]
    if entry is not None:
        dated.append(f"the ERP posts its entry {entry.external_id} on {entry.posting_date}")
    if tax is not None and tax.document_date is not None:
        dated.append(f"AvaTax dates its tax document {tax.code} {tax.document_date}")
    months = sorted(
        {f"{d:%Y-%m}" for d in (billing.document_date, entry and entry.posting_date, tax and tax.document_date) if d}
    )
    return (
        f"Invoice {key}: " + "; ".join(dated) + f". One booking across {' and '.join(months)}: a cut-off "
        f"difference, not a missing document (the run of {period} matched them by the invoice's key). Its "
        "documents should carry the invoice's date; moving the booking to one period is an accounting call."
    )


def compare_invoice(
    billing: BilledInvoice | None,
    tax: TaxRecord | None,
    ledger: Iterable[LedgerFact],
    *,
    tolerance: Tolerance = NO_TOLERANCE,
    subsidiary: str = "",
    chart: ChartOfAccounts = DEFAULT_CHART,
    period: str = "",
    names_customer: bool = False,
) -> list[Break]:
    """Every difference between billing, tax and the ERP for one invoice, at most one break
    per class. `subsidiary` and `chart` build the healing entry of a missing posting, in the
    name of the invoice's customer with `names_customer` (an ERP of DEBTOR_LINE_ERPS).

    With `period`, the documents given are the invoice's wherever they were found (the run
    looks up by key what its period's listings lack), and those dated outside the period are
    the same booking, not missing ones: a booking across periods is a cut-off difference.
    The run of the invoice's own period compares the amounts; the run of the other period
    reports only the cut-off difference."""
    facts = list(ledger)
    key = billing.invoice_id if billing else tax.code if tax else next((f.invoice_id for f in facts), "")
    reversed_ids = {f.reverses for f in facts if f.kind == EntryKind.REVERSAL}
    entries = [f for f in facts if f.kind == EntryKind.INVOICE]
    open_entries = [f for f in entries if f.external_id not in reversed_ids]
    breaks: list[Break] = []

    def add(kind: BreakKind, currency: str, explanation: str, **fields: Money | JournalEntry | None) -> None:
        documents = [
            d
            for d in ([billing.invoice_id] if billing else [])
            + ([tax.code] if tax else [])
            + [f.external_id for f in facts]
        ]
        breaks.append(
            Break(
                kind=kind,
                key=key,
                currency=currency,
                explanation=explanation,
                documents=list(dict.fromkeys(documents)),
                **fields,
            )
        )

    if billing is not None and billing.status != "draft" and not _in(period, billing.document_date):
        entry = next((f for f in open_entries if _in(period, f.posting_date)), None)
        held_tax = tax if tax is not None and tax.committed and _in(period, tax.document_date) else None
        if entry is not None or held_tax is not None:
            add(
                BreakKind.CUT_OFF_DIFFERENCE,
                billing.currency,
                _cut_off_text(key, billing, tax, entry or (open_entries[0] if open_entries else None), period),
                billing=billing.total,
                erp=entry.receivable if entry is not None else None,
            )
        return breaks

    if billing is None:
        if open_entries:
            unbilled = open_entries[0]
            add(
                BreakKind.MISSING_IN_BILLING,
                unbilled.currency,
                f"The ERP books invoice {key} (entry {unbilled.external_id}, receivable {unbilled.receivable}) "
                "but billing has no such invoice in this period.",
                erp=unbilled.receivable,
            )
        elif tax is not None and tax.committed:
            add(
                BreakKind.MISSING_IN_BILLING,
                tax.tax.currency,
                f"AvaTax holds committed tax document {key} (tax {tax.tax}) for an invoice billing does not "
                "have in this period.",
            )
        return breaks
    if billing.status == "draft":
        return breaks  # not an invoice yet: nothing should exist elsewhere

    currency = billing.currency
    if billing.status == "void":
        if open_entries:
            add(
                BreakKind.STATUS_MISMATCH,
                currency,
                f"Invoice {key} is void in billing but the ERP still books it (entry {open_entries[0].external_id} "
                "is not reversed).",
                billing=Money.zero(currency),
                erp=open_entries[0].receivable,
            )
        if tax is not None and tax.committed:
            add(
                BreakKind.TAX_MISMATCH,
                currency,
                f"Invoice {key} is void in billing but its tax document is still committed in AvaTax (tax {tax.tax}).",
                billing=Money.zero(currency),
                erp=tax.tax,
            )
        return breaks

    nothing_to_book = billing.total.is_zero and billing.tax.is_zero
    if not open_entries and not nothing_to_book:
        if entries:
            add(
                BreakKind.MISSING_IN_ERP,
                currency,
                f"Invoice {key} ({billing.total}) is open in billing but its ERP entry "
                f"{entries[0].external_id} is reversed.",
                billing=billing.total,
            )
        else:
            heal = invoice_entry(
                external_id=billing.entry_id,
                subsidiary=subsidiary,
                posting_date=billing.document_date,
                memo=f"Invoice {billing.number or key} booked by reconciliation: billing had it, the ERP did not",
                revenue=billing.revenue,
                tax=billing.tax,
                chart=chart,
                invoice_id=billing.invoice_id,
                customer=billing.account_id if names_customer else "",
            )
            add(
                BreakKind.MISSING_IN_ERP,
                currency,
                f"Billing invoiced {billing.total} on {billing.document_date} (invoice {billing.number or key}) "
                f"but the ERP has no entry for it; expected {billing.entry_id}.",
                billing=billing.total,
                heal=heal,
            )

    booked = next(
        (f for f in open_entries if f.external_id == billing.entry_id), open_entries[0] if open_entries else None
    )
    if booked is not None and len(open_entries) > 1:
        listed = ", ".join(f"{f.external_id} ({f.receivable})" for f in open_entries)
        same_currency = all(f.currency == currency for f in open_entries)
        add(
            BreakKind.DUPLICATE_POSTING,
            currency,
            f"Invoice {key} is booked {len(open_entries)} times in the ERP: {listed}; keep "
            f"{booked.external_id} and reverse the others.",
            billing=billing.total,
            erp=Money.from_minor(sum(f.receivable.minor for f in open_entries), currency) if same_currency else None,
        )

    if booked is not None:
        if booked.currency != currency:
            add(
                BreakKind.CURRENCY_MISMATCH,
                currency,
                f"Billing invoiced {billing.total} but the ERP entry {booked.external_id} books {booked.receivable}.",
                billing=billing.total,
                erp=booked.receivable,
            )
        elif _beyond(booked.receivable, billing.total, tolerance.amount_minor):
            add(
                BreakKind.AMOUNT_MISMATCH,
                currency,
                f"Billing invoiced {billing.total}; the ERP entry {booked.external_id} books a receivable of "
                f"{booked.receivable} (difference {booked.receivable - billing.total}).",
                billing=billing.total,
                erp=booked.receivable,
            )

    tax_problems: list[str] = []
    tax_other: Money | None = None
    if tax is None or not tax.committed:
        if not billing.tax.is_zero:
            state = "no tax document" if tax is None else f"tax document {tax.code} in status {tax.status}"
            tax_problems.append(f"billing charged {billing.tax} tax but AvaTax has {state}.")
    elif tax.tax.currency != currency or _beyond(tax.tax, billing.tax, tolerance.tax_minor):
        tax_other = tax.tax
        note = _tax_rounding_note(tax.tax.minor - billing.tax.minor, tax) if tax.tax.currency == currency else ""
        tax_problems.append(f"AvaTax committed {tax.tax} but billing charged {billing.tax}.{note}")
    if booked is not None and booked.currency == currency and _beyond(booked.tax, billing.tax, tolerance.tax_minor):
        tax_other = tax_other or booked.tax
        tax_problems.append(
            f"the ERP entry {booked.external_id} books {booked.tax} of tax payable, billing charged {billing.tax}."
        )
    if tax_problems:
        add(
            BreakKind.TAX_MISMATCH,
            currency,
            f"Invoice {key}: " + " And ".join(tax_problems),
            billing=billing.tax,
            erp=tax_other,
        )

    if booked is not None and booked.currency == currency:
        erp_status = _erp_status(open_entries, facts, currency)
        if not _same_status(billing.status, erp_status):
            add(
                BreakKind.STATUS_MISMATCH,
                currency,
                f"Invoice {key} is {billing.status} in billing but {erp_status} in the ERP"
                + (" (no cash receipt is booked against it)." if billing.status == "paid" else "."),
                billing=billing.total,
                erp=booked.receivable,
            )

    tax_elsewhere = tax is not None and tax.committed and not _in(period, tax.document_date)
    if (booked is not None and not _in(period, booked.posting_date)) or tax_elsewhere:
        add(
            BreakKind.CUT_OFF_DIFFERENCE,
            currency,
            _cut_off_text(key, billing, tax, booked, period),
            billing=billing.total,
            erp=booked.receivable if booked is not None else None,
        )
    return breaks


def _same_status(billing_status: str, erp_status: str) -> bool:
    if billing_status == "open":
        return erp_status in ("open", "partially paid")
    return billing_status == erp_status


def compare_revenue(
    contract_id: str,
    expected: Money | None,
    recognised: Money | None,
    *,
    period: str,
    tolerance: Tolerance = NO_TOLERANCE,
) -> Break | None:
    """What o2c's schedules recognise for a contract in a period against what the ERP's
    revenue account shows for it."""
    either = expected or recognised
    if either is None:
        return None
    currency = either.currency
    if (
        expected is not None
        and recognised is not None
        and expected.currency == recognised.currency
        and not _beyond(expected, recognised, tolerance.revenue_minor)
    ):
        return None
    subject = f"contract {contract_id}" if contract_id else "entries that name no contract"
    expected_text = str(expected) if expected is not None else "nothing"
    recognised_text = str(recognised) if recognised is not None else "nothing"
    return Break(
        kind=BreakKind.REVENUE_MISMATCH,
        key=contract_id,
        currency=currency,
        billing=expected,
        erp=recognised,
        explanation=f"For {subject} in {period}, o2c's revenue schedules recognise {expected_text}; "
        f"the ERP's revenue account shows {recognised_text}.",
    )


def heal_amount(entry: JournalEntry) -> Money:
    """The size of a healing entry, for the approval threshold: its debits."""
    return entry.total_debits


def needs_approval(entry: JournalEntry, limit: Decimal | PerCurrency) -> bool:
    """A missing entry above the limit is posted only after approval. A bare limit is in
    major units of whatever currency the entry is in (runs before o2c-cash); a table by
    currency is read in the entry's currency, and an entry in a currency it does not state
    always waits for approval rather than borrow another currency's number."""
    amount = heal_amount(entry)
    if isinstance(limit, PerCurrency):
        if not limit.covers(amount.currency):
            return True
        return amount > limit.of(amount.currency)
    return amount.amount > limit


# -- runs -------------------------------------------------------------------------------------


# About 1,000 dollars, at rounded rates.
HEAL_LIMITS = per_currency(USD=1_000, EUR=900, GBP=800, CAD=1_350, AUD=1_500, JPY=150_000)


class ReconciliationPolicy(Model):
    """How a reconciliation compares, heals and paces itself. Configuration, not code."""

    tolerance: Tolerance = Tolerance()
    # A missing entry up to this amount is posted at once; above it, after a finance approver
    # agrees. Stated per currency; `heal_limit` is the bare number runs before o2c-cash read in
    # any currency, and they still do (`per_currency` is set by the workflow on newer runs).
    heal_limit: Decimal = Decimal(1000)
    heal_limits: PerCurrency = HEAL_LIMITS
    per_currency: bool = False
    batch_size: int = Field(default=500, ge=1, le=5000)  # documents compared by one child workflow
    parallel_batches: int = Field(default=4, ge=1, le=32)
    # Batches one run of the workflow compares before it continues as new, so its history
    # stays small however large the period.
    batches_per_run: int = Field(default=40, ge=1)
    # How long a run with breaks nobody can heal waits in the exception queue for an operator.
    attention_days: int = Field(default=7, ge=0)
    # A reader that stays silent this long is presumed dead and retried from its last page.
    heartbeat_seconds: int = Field(default=30, ge=1)
    # How usage breaks name a meter's quantity ("9,800 API calls"), by meter event name;
    # a meter not listed is named by its event name.
    usage_units: dict[str, str] = {}

    @field_validator("heal_limits", mode="before")
    @classmethod
    def _table(cls, value: object) -> object:
        return as_per_currency(value)

    def heal_limit_rule(self) -> Decimal | PerCurrency:
        """What heals are measured against: the table by currency, or on runs that started
        before o2c-cash the bare number."""
        return self.heal_limits if self.per_currency else self.heal_limit

    def uncovered(self, currency: str) -> str | None:
        """Why this policy cannot reconcile an entity in `currency`, or None when it can."""
        try:
            self.heal_limits.of(currency, what="the healing limit")
        except UncoveredCurrency as error:
            return str(error)
        return None


class KeyRange(Model):
    """The match keys of one batch: after < key <= last."""

    after: str
    last: str


class HealOrder(Model):
    break_id: int
    entry: JournalEntry


class BreakRecord(Model):
    """A break as the database keeps it: with its run, status and age."""

    break_id: int
    run_id: str
    legal_entity: str
    period: str
    kind: BreakKind
    document: str
    currency: str
    billing: Money | None = None
    erp: Money | None = None
    difference: Money | None = None
    explanation: str
    owner: str
    status: BreakStatus
    first_seen_at: datetime
    detected_at: datetime
    resolution: str = ""


class RunSummary(Model):
    run_id: str
    legal_entity: str
    period: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    billing_documents: int = 0
    tax_documents: int = 0
    erp_entries: int = 0
    contracts: int = 0
    breaks_found: int = 0
    healed: int = 0
    open_breaks: int = 0
    fixed_since_last_run: int = 0
    open_by_kind: dict[str, int] = {}
