"""Activity inputs: one model per call so that fields can be added without breaking history."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import ConfigDict

from canonical.credits import CreditNoteOrder
from canonical.journal import ChartOfAccounts
from canonical.models import (
    Account,
    Address,
    CrmTask,
    InvoiceLine,
    LegalEntity,
    Model,
    Notification,
    RevenueSchedule,
    SubscriptionLine,
    SubscriptionTerm,
)
from canonical.money import Money
from canonical.reconciliation import BreakStatus, HealOrder, KeyRange, ReconciliationPolicy
from canonical.usage.models import MeterReport


class UpdateSubscription(Model):
    subscription_id: str
    lines: list[SubscriptionLine]
    step: str


class CreateInvoice(Model):
    account_id: str
    subscription_id: str
    currency: str
    lines: list[InvoiceLine]
    description: str
    metadata: dict[str, str] = {}
    step: str = "invoice"
    billing_account: str = ""  # the legal entity's Stripe account; empty for the platform's


class VoidInvoice(Model):
    invoice_id: str
    step: str = "invoice-void"
    billing_account: str = ""


class TaxRequest(Model):
    code: str
    customer_code: str
    document_date: date
    currency: str
    address: Address
    lines: list[InvoiceLine]
    # The AvaTax company of the legal entity that books the invoice (empty before o2c-ledger:
    # the adapter's own company).
    company_code: str = ""


class SetSeats(Model):
    account_id: str
    product: str
    seats: int
    step: str


class SendNotification(Model):
    notification: Notification
    step: str


class InvoiceStep(Model):
    """A keyed change to one invoice (pay, mark uncollectible)."""

    invoice_id: str
    step: str


class CancelSubscription(Model):
    subscription_id: str
    step: str


class SetRestriction(Model):
    account_id: str
    restricted: bool
    step: str


class FlagAccount(Model):
    account_id: str
    flag: str
    on: bool


class CreateTask(Model):
    task: CrmTask
    step: str


class CreateCustomer(Model):
    account: Account
    billing_account: str
    step: str


class CreateSubscription(Model):
    term: SubscriptionTerm
    billing_account: str = ""
    step: str


class EndSubscription(Model):
    subscription_id: str
    at: date | None  # None: let it run on (undo an earlier end date)
    step: str


class UpsertErpCustomer(Model):
    account: Account
    subsidiary: str


class ContractSchedules(Model):
    contract_id: str
    open_on: date | None = None  # only those still recognising on or after this day


class ReplaceSchedules(Model):
    save: list[RevenueSchedule] = []
    delete: list[str] = []


class TermsEnding(Model):
    start: date
    end: date


# -- reconciliation ---------------------------------------------------------------------------


class OpenRun(Model):
    run_id: str
    legal_entity: str
    period: str
    started_at: datetime
    settings: dict[str, Any] = {}


class ReadSystem(Model):
    """Read one system's documents of a period into the run's staging, page by page."""

    run_id: str
    entity: LegalEntity
    period: str
    chart: ChartOfAccounts = ChartOfAccounts()


class PlanBatches(Model):
    run_id: str
    size: int


class MatchBatch(Model):
    run_id: str
    entity: LegalEntity
    period: str
    keys: KeyRange
    policy: ReconciliationPolicy = ReconciliationPolicy()
    chart: ChartOfAccounts = ChartOfAccounts()


class BatchFindings(Model):
    model_config = ConfigDict(frozen=False)

    found: dict[str, int] = {}  # break kind -> how many
    heal_now: list[HealOrder] = []  # below the healing limit: post them (those above wait in the database)


class ResolveBreaks(Model):
    updates: list[tuple[int, BreakStatus, str]]  # break id, new status, resolution


class HealOrders(Model):
    run_id: str
    status: BreakStatus
    after: int = 0
    limit: int = 500


class MoveBreaks(Model):
    run_id: str
    from_status: BreakStatus
    to_status: BreakStatus
    resolution: str


class CloseRun(Model):
    run_id: str


# -- usage to invoice -------------------------------------------------------------------------


class UsagePeriod(Model):
    """One customer's usage period ("YYYY-MM") in o2c's usage store."""

    customer: str
    period: str


class UsageHistory(Model):
    """The quantities released for each meter in up to `periods` periods before `before`."""

    customer: str
    meters: list[str]
    before: str
    periods: int


class ReportUsage(Model):
    reports: list[MeterReport]
    billing_account: str = ""  # the legal entity's own billing account; empty for the platform's


class UsageCustomers(Model):
    billing_account: str = ""
    after: str = ""  # the subscription the page starts after
    limit: int = 0  # 0: every one


class MeteredQuantities(Model):
    customer: str
    meters: list[str]
    start: datetime
    end: datetime  # exclusive
    billing_account: str = ""  # the legal entity's own billing account; empty for the platform's


class FindUsageDraft(Model):
    subscription_id: str
    period_start: date
    period_end: date  # exclusive
    billing_account: str = ""  # the legal entity's own billing account; empty for the platform's


class AddInvoiceLine(Model):
    invoice_id: str
    customer: str
    amount: Money  # negative for a credit
    description: str
    metadata: dict[str, str] = {}
    step: str
    billing_account: str = ""  # the legal entity's own billing account; empty for the platform's


class RemoveInvoiceLine(Model):
    line_id: str
    step: str
    billing_account: str = ""  # the legal entity's own billing account; empty for the platform's


class FinalizeInvoice(Model):
    invoice_id: str
    step: str = "invoice-finalize"
    billing_account: str = ""  # the legal entity's own billing account; empty for the platform's


class HoldInvoice(Model):
    invoice_id: str
    billing_account: str = ""  # the legal entity's own billing account; empty for the platform's


# -- credits, refunds and disputes -----------------------------------------------------------


class IssueCreditNote(Model):
    order: CreditNoteOrder
    step: str = "credit-note"
    billing_account: str = ""


class VoidCreditNote(Model):
    credit_note_id: str
    step: str = "credit-note-void"
    billing_account: str = ""


class IssueRefund(Model):
    charge_id: str
    amount: Money
    reason: str
    metadata: dict[str, str] = {}
    step: str = "refund"
    billing_account: str = ""


class ReadDispute(Model):
    dispute_id: str
    billing_account: str = ""


class FindReceivable(Model):
    invoice_id: str
    subsidiary: str
