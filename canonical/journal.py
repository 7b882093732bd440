"""Journal entries that cannot be unbalanced, and the entries o2c posts."""

from __future__ import annotations

from datetime import date

from pydantic import model_validator

from canonical.models import Model
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


def write_off_entry(
    *,
    external_id: str,
    subsidiary: str,
    posting_date: date,
    memo: str,
    amount: Money,
    chart: ChartOfAccounts,
    invoice_id: str = "",
) -> JournalEntry:
    """Writing off an uncollectible balance: bad-debt expense against the receivable."""
    if amount.amount <= 0:
        raise ValueError("only a positive balance can be written off")
    return JournalEntry(
        external_id=external_id,
        subsidiary=subsidiary,
        currency=amount.currency,
        posting_date=posting_date,
        memo=memo,
        lines=[
            JournalLine(account=chart.bad_debt_expense, debit=amount, memo="Bad debt expense"),
            JournalLine(account=chart.receivable, credit=amount, memo="Accounts receivable written off"),
        ],
        invoice_id=invoice_id,
    )
