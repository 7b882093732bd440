"""Cash application in o2c's words: bank statements, receipts, open receivables, and what
matching made of each receipt.

A receipt is one incoming payment: a Stripe charge, or a credit entry of a bank statement
(camt.053 or BAI2). Its id is deterministic (the source and the bank's own reference), so
the same receipt imported twice is one receipt.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from canonical.models import Model
from canonical.money import Money


class ReceiptSource(StrEnum):
    STRIPE = "stripe"
    CAMT053 = "camt053"
    BAI2 = "bai2"


class Receipt(Model):
    receipt_id: str  # "<source>:<bank account or billing account>:<bank reference>"
    source: ReceiptSource
    legal_entity: str  # the entity whose account received the money
    amount: Money  # positive: money in
    value_date: date
    bank_reference: str  # AcctSvcrRef / BAI2 bank reference / Stripe charge id
    statement_id: str = ""  # empty for a Stripe receipt
    bank_account: str = ""  # IBAN or account number that received it
    payer_name: str = ""
    payer_account: str = ""  # the payer's IBAN or account, when the bank gives it
    # What the payer wrote: invoice numbers or ids found in the remittance (structured
    # creditor references first, then unstructured text), end-to-end id, customer ref.
    references: list[str] = []
    remittance_text: str = ""
    customer_hint: str = ""  # the billing customer, when the source knows it (Stripe)
    charge_id: str = ""  # Stripe: the charge (refunds and disputes name it)
    invoice_hint: str = ""  # Stripe: the invoice the payment paid


class StatementFormat(StrEnum):
    CAMT053_02 = "camt.053.001.02"
    CAMT053_08 = "camt.053.001.08"
    BAI2 = "bai2"


class StatementEntry(Model):
    """One booked entry of a statement, credit or debit (debits are not receipts)."""

    line: int  # where the entry starts in the file (1-based), for error messages
    amount: Money
    credit: bool
    bank_reference: str
    booked_on: date
    value_date: date
    type_code: str = ""  # BkTxCd (camt) or the BAI2 type code
    payer_name: str = ""
    payer_account: str = ""
    references: list[str] = []
    remittance_text: str = ""
    reversal: bool = False


class BankStatement(Model):
    """A validated statement: its balances add up (opening + credits - debits = closing)."""

    statement_id: str  # "<format family>:<account>:<statement or file id>"
    format: StatementFormat
    bank_account: str
    currency: str
    created_at: datetime
    opening: Money
    closing: Money
    entries: list[StatementEntry]
    digest: str = ""  # sha256 of the file as received


class OpenItem(Model):
    """An invoice as receivables sees it: what is still due on it, and where it lives."""

    invoice_id: str
    number: str = ""
    customer: str
    legal_entity: str
    total: Money
    balance: Money  # still due; zero when settled
    issued_on: date | None = None
    due_on: date | None = None
    erp_document: str = ""  # the ERP's internal id of the receivable the invoice booked


class OpenItemBook(Model):
    """What matching a batch of receipts may look at: the open items their references name
    and those of the customers their payers map to, and the payer directory (a payer's
    account, or their normalised name, to the one customer it belongs to)."""

    items: list[OpenItem] = []
    payers: dict[str, str] = {}


class MatchRule(StrEnum):
    """Which rule of DOMAIN.md matched a receipt (or none did)."""

    EXACT_REFERENCE = "exact_reference"  # names an open invoice, amount equals its balance
    PARTIAL_REFERENCE = "partial_reference"  # names it, pays less
    OVERPAID_REFERENCE = "overpaid_reference"  # names it, pays more: the rest on account
    UNIQUE_AMOUNT = "unique_amount"  # no reference; the payer's one open invoice of that amount
    COMBINATION = "combination"  # equals the sum of several open invoices of the customer
    OPERATOR = "operator"  # applied by a person from the exception queue
    UNMATCHED = "unmatched"


class ExceptionKind(StrEnum):
    UNMATCHED = "unmatched"  # no rule matched: unapplied cash
    ON_ACCOUNT = "on_account"  # the rest of an overpayment, unapplied on the customer
    DUPLICATE_SETTLEMENT = "duplicate_settlement"  # pays an invoice already settled
    CROSS_ENTITY = "cross_entity"  # received by one entity for another entity's invoice


class Application(Model):
    invoice_id: str
    amount: Money
    erp_document: str = ""


class Suggestion(Model):
    """A ranked guess for an operator: which invoices the receipt may pay, and why."""

    invoice_ids: list[str]
    amount: Money
    score: int = Field(ge=0, le=100)
    why: str


class CashMatch(Model):
    """What matching made of one receipt. applied + unapplied = the receipt's amount."""

    receipt_id: str
    rule: MatchRule
    customer: str = ""  # empty when no customer is known (the receipt goes to suspense)
    applications: list[Application] = []
    unapplied: Money
    exception: ExceptionKind | None = None
    explanation: str = ""
    suggestions: list[Suggestion] = []


class CashDecisionKind(StrEnum):
    APPLY = "apply"
    REFUND = "refund"


class CashDecision(Model):
    """An operator's answer to a receipt in the exception queue."""

    receipt_id: str
    kind: CashDecisionKind
    applications: list[Application] = []  # APPLY: which invoices, how much each
    refund: Money | None = None  # REFUND: how much goes back to the payer
    decided_by: str
    decided_at: datetime | None = None
    comment: str = ""
    # APPLY to an invoice of another legal entity than the one that received the cash: only
    # when the operator says it is meant (an intercompany settlement follows it).
    cross_entity: bool = False


class QueuedReceipt(Model):
    """A receipt waiting in the cash exception queue, as an operator lists it."""

    receipt: Receipt
    match: CashMatch
    age_days: int
    workflow_id: str = ""
