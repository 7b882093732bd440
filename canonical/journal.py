"""Journal entries that cannot be unbalanced, and the entries o2c posts."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import model_validator

from canonical.models import InvoiceLine, Model
from canonical.money import Money, total


class ChartOfAccounts(Model):
    """GL account numbers in the ERP. Configuration, with the embedded stack's defaults."""

    receivable: str = "1200"
    deferred_revenue: str = "2400"
    tax_payable: str = "2200"
    bad_debt_expense: str = "6900"
    revenue: str = "4000"  # recognised subscription and services revenue
    cash: str = "1010"  # cash in transit from the payment processor (Stripe clearing)
    # Usage billed in arrears: recognised at the end of the month it was used, held as a
    # contract asset (unbilled receivable) until the invoice turns it into a receivable.
    unbilled_receivable: str = "1250"
    usage_revenue: str = "4100"
    # Cash, credits, disputes and write-offs.
    bank: str = "1000"  # the operating bank account bank statements report on
    unapplied_receipts: str = "2150"  # cash received, not yet applied (a liability): suspense
    customer_credit: str = "2160"  # credit balances owed to customers (a liability)
    credit_clearing: str = "2190"  # where a credit memo's lines post until its journal entry books them
    disputed_funds: str = "1300"  # disputed funds receivable: withdrawn by the card network
    dispute_fees: str = "6150"
    chargeback_loss: str = "6950"
    allowance_doubtful: str = "1290"  # allowance for doubtful accounts (contra-receivable)


class JournalLine(Model):
    account: str
    debit: Money | None = None
    credit: Money | None = None
    memo: str = ""

    @model_validator(mode="after")
    def _one_side(self) -> JournalLine:
        if (self.debit is None) == (self.credit is None):
            raise ValueError("a journal line is either a debit or a credit")
        amount = self.debit or self.credit
        assert amount is not None
        if amount.amount <= 0:
            raise ValueError("journal line amounts are positive; use the other side instead")
        return self

    @property
    def amount(self) -> Money:
        amount = self.debit or self.credit
        assert amount is not None, "a line is a debit or a credit (checked when it was made)"
        return amount


class JournalEntry(Model):
    external_id: str
    subsidiary: str
    currency: str
    posting_date: date
    memo: str
    lines: list[JournalLine]
    reverses: str = ""
    # The billing invoice the entry books, and the contract whose revenue it recognises:
    # the shared keys reconciliation matches on (custom body fields in the ERP).
    invoice_id: str = ""
    contract_id: str = ""
    internal_id: str = ""  # the ERP's own id, when read back
    # The billing customer whose receivable the entry books (the ERP customer's external
    # id): the ERP names it on the entry's lines, so payments and credit memos can be
    # applied to the entry as to an invoice. Empty on entries that book no receivable.
    customer: str = ""

    @model_validator(mode="after")
    def _balanced(self) -> JournalEntry:
        if not self.lines:
            raise ValueError("a journal entry needs lines")
        for line in self.lines:
            if line.amount.currency != self.currency:
                raise ValueError(f"line in {line.amount.currency} on a {self.currency} entry")
        debits = total((x.debit for x in self.lines if x.debit), self.currency)
        credits = total((x.credit for x in self.lines if x.credit), self.currency)
        if debits != credits:
            raise ValueError(f"unbalanced entry: debits {debits} != credits {credits}")
        return self

    @property
    def total_debits(self) -> Money:
        return total((x.debit for x in self.lines if x.debit), self.currency)

    def reversal(self, external_id: str, posting_date: date) -> JournalEntry:
        """The entry that cancels this one: every debit becomes a credit and back."""
        return JournalEntry(
            external_id=external_id,
            subsidiary=self.subsidiary,
            currency=self.currency,
            posting_date=posting_date,
            memo=f"Reversal of {self.external_id}: {self.memo}",
            lines=[JournalLine(account=x.account, debit=x.credit, credit=x.debit, memo=x.memo) for x in self.lines],
            reverses=self.external_id,
            invoice_id=self.invoice_id,
            contract_id=self.contract_id,
            customer=self.customer,
        )


class JournalEntryPage(Model):
    """A page of entries read back from the ERP (see models.InvoicePage for cursors)."""

    items: list[JournalEntry]
    next_cursor: str = ""


def _side(account: str, amount: Money, memo: str, *, debit: bool) -> JournalLine | None:
    """A line on the natural side for a positive amount, the other side for a negative one."""
    if amount.is_zero:
        return None
    if amount.is_negative:
        debit, amount = not debit, -amount
    return JournalLine(account=account, memo=memo, **{"debit" if debit else "credit": amount})


def invoice_entry(
    *,
    external_id: str,
    subsidiary: str,
    posting_date: date,
    memo: str,
    revenue: Money,
    tax: Money,
    chart: ChartOfAccounts,
    invoice_id: str = "",
    customer: str = "",
) -> JournalEntry:
    """Billing an invoice: receivable against deferred revenue and tax payable, the
    receivable in the name of `customer` (the billing customer id).

    A net credit (negative revenue) books the same accounts on the opposite sides.
    """
    receivable = revenue + tax
    lines = [
        _side(chart.receivable, receivable, "Accounts receivable", debit=True),
        _side(chart.deferred_revenue, revenue, "Deferred revenue", debit=False),
        _side(chart.tax_payable, tax, "Sales tax payable", debit=False),
    ]
    return JournalEntry(
        external_id=external_id,
        subsidiary=subsidiary,
        currency=revenue.currency,
        posting_date=posting_date,
        memo=memo,
        lines=[x for x in lines if x is not None],
        invoice_id=invoice_id,
        customer=customer,
    )


class WriteOffMethod(StrEnum):
    DIRECT = "direct"  # Dr bad-debt expense: the loss is recognised when written off
    ALLOWANCE = "allowance"  # Dr allowance for doubtful accounts: the loss was provided for


class WriteOffPolicy(Model):
    """How an uncollectible balance is written off. Configuration, not code."""

    method: WriteOffMethod = WriteOffMethod.DIRECT
    # Where the sales tax in a written-off balance is relieved (reclaimed as bad-debt relief),
    # by the customer's billing address: a country ("GB") or a country and region ("US-CA").
    # Elsewhere the tax is part of the bad debt.
    tax_relief_jurisdictions: list[str] = []

    def relieves_tax(self, country: str, region: str = "") -> bool:
        listed = {j.strip().upper() for j in self.tax_relief_jurisdictions}
        country, region = country.strip().upper(), region.strip().upper()
        return bool(country) and (country in listed or (bool(region) and f"{country}-{region}" in listed))


class WriteOffSplit(Model):
    """What a written-off balance consists of, to the minor unit; the parts add up to it."""

    balance: Money
    deferred_revenue: Money  # service billed ahead for periods after the cancellation: credited
    credited_tax: Money  # the tax on that service, reversed with it
    bad_debt: Money  # the rest of the net amount, and the tax where it is not relieved
    relieved_tax: Money  # the tax in the served part's balance, where the jurisdiction allows


def unserved_amount(lines: list[InvoiceLine], cancelled_on: date, currency: str) -> Money:
    """What the invoice's lines bill for service after `cancelled_on` (the cancellation takes
    effect that day): each line with a service period, by days, split exactly."""
    unserved = Money.zero(currency)
    for line in lines:
        start, end = line.period_start, line.period_end
        if start is None or end is None or end <= start or cancelled_on >= end:
            continue
        days_after = (end - max(cancelled_on, start)).days
        days_before = (end - start).days - days_after
        if line.amount.is_negative or line.amount.is_zero:
            continue
        unserved = unserved + line.amount.allocate([days_after, days_before])[0]
    return unserved


def split_write_off(
    balance: Money,
    *,
    invoice_total: Money,
    invoice_tax: Money | None,
    unserved_net: Money | None = None,
    relieve_tax: bool = False,
) -> WriteOffSplit:
    """Split an open balance of an invoice into the credited part (service after a
    cancellation: deferred revenue and its tax), the tax relieved and the bad debt.

    The balance is taken to consist of the invoice's parts in the invoice's proportions (net
    of service after cancellation, net of service delivered, and the tax on each), split by
    largest remainder so every part is exact and they add up to the balance."""
    currency = balance.currency
    zero = Money.zero(currency)
    tax = invoice_tax or zero
    net = invoice_total - tax
    unserved = unserved_net or zero
    if balance.amount <= 0:
        raise ValueError("only a positive balance can be written off")
    if invoice_total.amount <= 0 or tax.is_negative or net.is_negative:
        raise ValueError(f"an invoice of {invoice_total} with tax {tax} cannot be apportioned")
    if unserved.is_negative or unserved > net:
        raise ValueError(f"service after cancellation ({unserved}) is more than the invoice's net {net}")
    served = net - unserved
    unserved_tax, served_tax = tax.allocate([unserved.minor, served.minor]) if not net.is_zero else (zero, tax)
    parts = balance.allocate([unserved.minor, served.minor, unserved_tax.minor, served_tax.minor])
    deferred, served_part, credited_tax, served_tax_part = parts
    return WriteOffSplit(
        balance=balance,
        deferred_revenue=deferred,
        credited_tax=credited_tax,
        bad_debt=served_part + (zero if relieve_tax else served_tax_part),
        relieved_tax=served_tax_part if relieve_tax else zero,
    )


def write_off_entry(
    *,
    external_id: str,
    subsidiary: str,
    posting_date: date,
    memo: str,
    amount: Money,
    chart: ChartOfAccounts,
    invoice_id: str = "",
    policy: WriteOffPolicy | None = None,
    split: WriteOffSplit | None = None,
    customer: str = "",
) -> JournalEntry:
    """Writing off an uncollectible balance against the receivable (in the name of
    `customer`, where the ERP posts a receivable only to a customer's account).

    Without a split (runs before o2c-cash) all of it is bad-debt expense. With one: service
    after a cancellation reverses deferred revenue and its tax (a credit, not a loss), the
    tax relieved is debited to tax payable, and the bad debt goes to bad-debt expense or,
    under the allowance method, to the allowance for doubtful accounts."""
    if amount.amount <= 0:
        raise ValueError("only a positive balance can be written off")
    if split is None:
        split = WriteOffSplit(
            balance=amount,
            deferred_revenue=Money.zero(amount.currency),
            credited_tax=Money.zero(amount.currency),
            bad_debt=amount,
            relieved_tax=Money.zero(amount.currency),
        )
    if split.balance != amount:
        raise ValueError(f"the split is of {split.balance}, not of the balance {amount} written off")
    allowance = policy is not None and policy.method == WriteOffMethod.ALLOWANCE
    loss_account, loss_memo = (
        (chart.allowance_doubtful, "Allowance for doubtful accounts")
        if allowance
        else (chart.bad_debt_expense, "Bad debt expense")
    )
    lines = [
        _side(
            chart.deferred_revenue,
            split.deferred_revenue,
            "Deferred revenue reversed: service after cancellation",
            debit=True,
        ),
        _side(chart.tax_payable, split.credited_tax, "Sales tax on the service credited", debit=True),
        _side(chart.tax_payable, split.relieved_tax, "Sales tax relieved on the bad debt", debit=True),
        _side(loss_account, split.bad_debt, loss_memo, debit=True),
        JournalLine(account=chart.receivable, credit=amount, memo="Accounts receivable written off"),
    ]
    return JournalEntry(
        external_id=external_id,
        subsidiary=subsidiary,
        currency=amount.currency,
        posting_date=posting_date,
        memo=memo,
        customer=customer,
        lines=[x for x in lines if x is not None],
        invoice_id=invoice_id,
    )
